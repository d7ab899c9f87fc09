"""``facesearch calibrate``: measure score → false-match-rate tables on labelled photos.

Every photo in an LFW-layout folder (``DIR/<Person>/<photo>``; only those named in a pairs file,
when one is given) is embedded with the library's pipeline. Every pair of photos of different
people is an impostor comparison and every pair of photos of the same person a genuine one: a
pairs file's 1,100 impostor pairs could only measure FMRs down to 1e-3, all pairs of lfw-dev's
9.5k photos measure down to ~2e-8. Above ``max_comparisons`` impostor pairs a fixed-seed random
sample is used instead.

Cosine scores are the raw similarities. S-norm scores (and issue 16's ``snorm_cos``, s-norm + 45 x cosine, from
the same comparisons) use the library's own cohort when a library
is given (what its searches use), otherwise a cohort sampled from the photos of half of the people,
with the other half compared (see _snorm_with_disjoint_cohort).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

import numpy as np

from facesearch.eval.halves import half_of
from facesearch.search.calibration import Calibration, CalibrationError, ScoreTable
from facesearch.search.normalize import COHORT_SIZE, SNORM_KINDS, CohortNormalizer, cohort_score

log = logging.getLogger(__name__)

MAX_COMPARISONS = 60_000_000
BLOCK = 512


def comparison_scores(
    vectors: np.ndarray,
    people: np.ndarray,
    normalizer: CohortNormalizer | None,
    max_comparisons: int = MAX_COMPARISONS,
    seed: int = 0,
    progress: Callable[[int], None] | None = None,
    cosine: bool = True,
) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Impostor and genuine scores, per score kind: ``{"cosine": (impostor, genuine), "snorm": ...}``.

    ``cosine=False`` leaves the cosine kind out (s-norm only, with a normalizer). With a normalizer both cohort
    kinds are measured, ``snorm`` and ``snorm_cos`` (issue 16), whatever the normalizer's own weight: a library's
    calibration then holds a table for either kind, and the shipped one describes both.
    """
    n = len(vectors)
    vectors = np.ascontiguousarray(vectors, dtype=np.float32)
    if normalizer is not None:
        mu, sd = normalizer.stats(vectors)
    kinds = (["cosine"] if cosine else []) + (list(SNORM_KINDS) if normalizer is not None else [])
    impostor: dict[str, list[np.ndarray]] = {k: [] for k in kinds}
    genuine: dict[str, list[np.ndarray]] = {k: [] for k in kinds}

    def add(raw: np.ndarray, rows: np.ndarray, cols: np.ndarray, same: np.ndarray) -> None:
        scores = {"cosine": raw}
        if normalizer is not None:
            rows_side, cols_side = (mu[rows], sd[rows]), (mu[cols], sd[cols])
            scores |= {kind: cohort_score(raw, rows_side, cols_side, w) for kind, w in SNORM_KINDS.items()}
        for kind in kinds:
            impostor[kind].append(scores[kind][~same].astype(np.float32))
            genuine[kind].append(scores[kind][same].astype(np.float32))

    def add_pairs(rows: np.ndarray, cols: np.ndarray, same: np.ndarray) -> None:
        add(np.einsum("ij,ij->i", vectors[rows], vectors[cols]), rows, cols, same)

    total = n * (n - 1) // 2
    if total <= max_comparisons:
        for start in range(0, n, BLOCK):
            rows = np.arange(start, min(n, start + BLOCK))
            block = vectors[rows] @ vectors.T
            r, c = np.nonzero(np.arange(n)[None, :] > rows[:, None])
            add(block[r, c], rows[r], c, people[rows[r]] == people[c])
            if progress:
                progress(len(rows))
    else:
        rng = np.random.default_rng(seed)
        a = rng.integers(0, n, max_comparisons)
        b = rng.integers(0, n, max_comparisons)
        keep = a != b
        a, b = a[keep], b[keep]
        diff = people[a] != people[b]
        a, b = a[diff], b[diff]
        for start in range(0, len(a), 1_000_000):
            sl = slice(start, start + 1_000_000)
            add_pairs(a[sl], b[sl], np.zeros(len(a[sl]), bool))
        # Genuine pairs are few: take them all (every pair of photos of each person).
        order = np.argsort(people, kind="stable")
        bounds = np.flatnonzero(np.r_[True, people[order][1:] != people[order][:-1], True])
        for lo, hi in zip(bounds[:-1], bounds[1:], strict=True):
            members = order[lo:hi]
            if len(members) > 1:
                r, c = np.triu_indices(len(members), k=1)
                add_pairs(members[r], members[c], np.ones(len(r), bool))
        if progress:
            progress(n)
    return {k: (np.concatenate(impostor[k]), np.concatenate(genuine[k])) for k in kinds}


def _snorm_with_disjoint_cohort(
    vectors: np.ndarray, people: np.ndarray, max_comparisons: int
) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """S-norm scores with a cohort drawn from half of the people, compared among the other half.

    Why: a cohort holding other photos of a compared person makes that person's top cohort scores
    high and their s-norm scores low, which would understate the false match rate. In a search the
    probe's person is (for the case FMR is about) not in the library; with no photos of either side
    in the cohort, the estimate is that case, and conservative when the library holds a candidate's
    other photos (their s-norm scores then run lower still).
    """
    half = np.array([half_of(p) for p in people.tolist()])  # the halves of docs/accuracy.md (eval/halves.py)
    cohort_rows, pair_rows = np.flatnonzero(half == 0), np.flatnonzero(half == 1)
    if len(cohort_rows) < 200 or len(set(people[pair_rows].tolist())) < 10:
        log.info("too few photos for a disjoint s-norm cohort: no s-norm table")
        return {}
    rng = np.random.default_rng(0)
    chosen = np.sort(rng.choice(cohort_rows, size=min(COHORT_SIZE, len(cohort_rows)), replace=False))
    cohort = CohortNormalizer(vectors[chosen])
    return comparison_scores(vectors[pair_rows], people[pair_rows], cohort, max_comparisons, cosine=False)


def calibrate(
    embeddings: dict[Path, np.ndarray | None],
    person_of: Callable[[Path], str],
    model_key: str,
    source: str,
    normalizer: CohortNormalizer | None = None,
    cohort_from_photos: bool = True,
    max_comparisons: int = MAX_COMPARISONS,
    progress: Callable[[int], None] | None = None,
) -> Calibration:
    """Measure a calibration from embedded photos (photos without a face are left out)."""
    paths = sorted(p for p, v in embeddings.items() if v is not None)
    if len(paths) < 20:
        raise CalibrationError(f"only {len(paths)} photos with a face: calibration needs many people and photos")
    vectors = np.stack([embeddings[p] for p in paths]).astype(np.float32)
    people = np.array([person_of(p) for p in paths])
    if len(set(people.tolist())) < 10:
        raise CalibrationError("calibration needs photos of at least 10 different people")
    scores = comparison_scores(vectors, people, None, max_comparisons, progress=progress)
    if normalizer is not None:
        scores |= comparison_scores(vectors, people, normalizer, max_comparisons, cosine=False)
    elif cohort_from_photos:
        scores |= _snorm_with_disjoint_cohort(vectors, people, max_comparisons)
    tables = {kind: ScoreTable.from_scores(kind, imp, gen) for kind, (imp, gen) in scores.items()}
    log.info("calibrated %s on %d photos of %d people", model_key, len(vectors), len(set(people.tolist())))
    return Calibration(model=model_key, source=source, tables=tables)
