"""Issue 16, normalisation computed once: the scoring functions of bench/accuracy/asnorm.py, on synthetic vectors.

The measurement decides whether stored per-face cohort statistics are worth building; these checks make sure
what it measures is what search computes (today's s-norm) and that "re-rank every candidate" really looks
past the raw top ``depth``. Random unit vectors only: no embedding of a real person.
"""

from __future__ import annotations

import numpy as np

from bench.accuracy.asnorm import cohort_stats, fnir_at_fpir, quality_term, snorm, top1
from facesearch.search.normalize import CohortNormalizer


def unit(rng: np.random.Generator, n: int, dim: int = 16) -> np.ndarray:
    v = rng.normal(size=(n, dim)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def test_snorm_with_stored_statistics_equals_search_normalisation() -> None:
    """Statistics computed once per gallery face give the very scores search/normalize.py gives today."""
    rng = np.random.default_rng(3)
    cohort, gallery, probe = unit(rng, 300), unit(rng, 40), unit(rng, 1)
    raw = probe @ gallery.T
    mu_p, sd_p = cohort_stats(probe, cohort, 100)
    mu_g, sd_g = cohort_stats(gallery, cohort, 100)
    stored = snorm(raw, mu_p, sd_p, mu_g, sd_g)[0]
    today = CohortNormalizer(cohort, top=100).normalize(raw[0], probe[0], gallery)
    np.testing.assert_allclose(stored, today, rtol=1e-5, atol=1e-5)


def test_topk_statistics_use_only_the_top_of_the_cohort_and_skip_self() -> None:
    """k = the cohort's size is plain s-norm (all scores); a small k is adaptive (the highest scores only);
    a face found in the cohort (similarity ~1) is not its own impostor."""
    rng = np.random.default_rng(4)
    cohort = unit(rng, 50)
    face = cohort[:1]
    mu_all, _ = cohort_stats(face, cohort, 50)
    mu_top, _ = cohort_stats(face, cohort, 5)
    scores = (face @ cohort.T)[0, 1:]
    np.testing.assert_allclose(mu_all, scores.mean(), rtol=1e-5)
    np.testing.assert_allclose(mu_top, np.sort(scores)[-5:].mean(), rtol=1e-5)
    assert mu_top[0] > mu_all[0]


def test_rerank_all_finds_a_candidate_beyond_the_raw_depth() -> None:
    """A candidate whose normalised score is best but whose raw score ranks 3rd is missed at depth 2 and found
    when every candidate is re-ranked (what stored statistics make affordable)."""
    raw = np.array([[0.9, 0.8, 0.7, 0.1]], np.float32)
    normalised = np.array([[1.0, 2.0, 5.0, 0.0]], np.float32)
    assert top1(normalised, raw, 2)[0][0] == 1
    best, value = top1(normalised, raw, None)
    assert best[0] == 2 and value[0] == 5.0
    assert top1(normalised, raw, 3)[0][0] == 2


def test_quality_term_moves_a_pair_by_its_weaker_face() -> None:
    term = quality_term(np.array([1.0, -2.0]), np.array([0.5, 3.0]), 0.5)
    np.testing.assert_allclose(term, [[0.25, 0.5], [-1.0, -1.0]])


def test_fnir_counts_misses_and_mates_at_or_below_the_threshold() -> None:
    """Of four mated searches: one wrong top candidate, one right but not above the FPIR threshold."""
    non_mated = np.arange(100, dtype=float)  # threshold at FPIR 0.01: the 99th percentile, 99 ('higher')
    hit = np.array([True, True, True, False])
    mated = np.array([150.0, 99.0, 120.0, 200.0])
    assert fnir_at_fpir(hit, mated, non_mated) == 0.5
