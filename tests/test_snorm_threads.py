"""Issue 15: s-norm's cohort scores of a search computed on the calling thread, without BLAS's threads, and
safely under concurrent searches (search/normalize.py ``cohort_scores``).

Synthetic faces only (random unit vectors): what is tested is where the arithmetic runs and that it answers
as before, not what it finds.
"""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pytest

import facesearch.search.normalize as normalize_module
from facesearch import Library
from facesearch.search.normalize import MIN_LIBRARY_FACES, ONE_THREAD_ROWS, CohortNormalizer, cohort_scores
from tests.helpers import PURPOSE, store_synthetic_faces


def unit(rows: int, seed: int, dim: int = 128) -> np.ndarray:
    v = np.random.default_rng(seed).normal(size=(rows, dim)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


class SeenCohort(np.ndarray):
    """A cohort that counts the times a product with BLAS takes its transpose (``rows @ cohort.T``)."""

    to_blas = 0

    @property
    def T(self) -> np.ndarray:  # noqa: N802 (ndarray's name)
        SeenCohort.to_blas += 1
        return np.asarray(self).T


def test_a_search_s_rows_are_scored_without_blas_and_batches_with_it() -> None:
    """Issue 15: a search's probe face and its uncached candidates (1..64 rows) are scored on the calling
    thread, not handed to BLAS (which split a 51-row product over its threads: 37 ms p50 under load against
    1.8 ms, docs/benchmarks.md); a calibration's batch still goes to BLAS. Both give the plain product's
    scores to float rounding."""
    cohort = unit(2000, 0).view(SeenCohort)
    for rows, blas_calls in ((1, 0), (51, 0), (ONE_THREAD_ROWS, 0), (ONE_THREAD_ROWS + 1, 1), (500, 1)):
        SeenCohort.to_blas = 0
        vectors = unit(rows, rows)
        scores = cohort_scores(vectors, cohort)
        assert SeenCohort.to_blas == blas_calls, rows
        plain = vectors.astype(np.float64) @ np.asarray(cohort, dtype=np.float64).T
        assert scores.dtype == np.float32 and scores.shape == (rows, 2000)
        assert np.abs(scores - plain).max() < 1e-5


def test_the_statistics_of_a_search_s_rows_match_the_batch_ones() -> None:
    """Issue 15: the same faces' cohort statistics, computed as a search does (a few rows on the calling
    thread) and as calibration does (one batch through BLAS), agree to float rounding, self-matches left out
    in both (a cohort member's own score ~1 must not count)."""
    cohort = unit(2000, 3)
    normalizer = CohortNormalizer(cohort)
    faces = np.vstack([cohort[:10], unit(90, 4)])  # 10 cohort members: each meets itself
    mu_batch, sd_batch = normalizer.stats(faces)  # 100 rows: BLAS
    parts = [normalizer.stats(faces[i : i + 20]) for i in range(0, 100, 20)]  # 20 rows: the calling thread
    assert np.allclose(np.concatenate([p[0] for p in parts]), mu_batch, atol=1e-6)
    assert np.allclose(np.concatenate([p[1] for p in parts]), sd_batch, atol=1e-6)
    alone, _ = CohortNormalizer(cohort[1:]).stats(cohort[:1])  # member 0 against a cohort without it
    assert np.isclose(mu_batch[0], alone[0], atol=1e-6) and np.isclose(parts[0][0][0], alone[0], atol=1e-6)


def test_a_full_cache_is_replaced_without_losing_the_faces_a_search_still_needs(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Issue 15: when a search's new candidates overflow the per-face cache it starts an empty one; its
    candidates that were in the old one must be computed again, not looked up in the new one (a KeyError
    that failed the search; with concurrent searches another search can replace the cache at any moment)."""
    monkeypatch.setattr(normalize_module, "STATS_CACHE", 3)
    normalizer = CohortNormalizer(unit(300, 5))
    faces = unit(3, 6)
    mu_first, _ = normalizer.face_stats(np.array([1, 2]), faces[:2])
    normalizer.face_stats(np.array([2, 3]), faces[1:])  # 1 known + 1 new: 3 faces, the cache stays
    mu, _ = normalizer.face_stats(np.array([2, 3, 4]), np.vstack([faces[1:], faces[:1]]))  # 2 + 1 > 3: a new cache
    assert np.isclose(mu[0], mu_first[1]) and np.isclose(mu[2], mu_first[0])
    assert set(normalizer._face_stats) == {2, 3, 4}


def test_vectors_of_another_dimension_are_refused() -> None:
    """Issue 15: FAISS reads raw memory: rows of the wrong width get a clear error, not a read past their end."""
    with pytest.raises(ValueError, match="64 dimensions against a cohort of 128"):
        cohort_scores(unit(3, 1, dim=64), unit(2000, 0))


@pytest.fixture(scope="module")
def snorm_library(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A library of 600 synthetic faces (>= MIN_LIBRARY_FACES: searches are s-normed), written by the one
    writer; no photo, no model."""
    folder = tmp_path_factory.mktemp("snorm") / "library"
    vectors = unit(600, 7)
    with Library.open(folder, jitter=0) as lib:
        lib.create_collection("synthetic")
        store_synthetic_faces(lib, "synthetic", vectors)
    return folder


def answers(lib: Library, face_ids: list[int]) -> dict[int, list[tuple[int, float, float, str]]]:
    """Each probe face's search: (face, score, similarity, label) of every candidate."""
    out = {}
    for face_id in face_ids:
        result = lib.search(None, purpose=PURPOSE, probe_face_id=face_id, top_k=10)
        assert result.score == "snorm"
        out[face_id] = [(c.face_id, c.score, c.similarity, c.label) for f in result.faces for c in f.candidates]
    return out


def test_concurrent_searches_answer_as_serial_ones(snorm_library: Path) -> None:
    """Issue 15: searches from 4 threads at once (each meeting candidates no search has met: their cohort rows
    are scored concurrently, and the per-face cache filled from several threads) answer exactly as the same
    searches one after another on a freshly opened library."""
    with Library.open(snorm_library) as lib:
        face_ids = [int(i) for i in lib.catalog.all_face_ids()[:40]]
        assert len(lib.catalog.all_face_ids()) >= MIN_LIBRARY_FACES
    with Library.open(snorm_library) as lib:
        serial = answers(lib, face_ids)
    with Library.open(snorm_library) as lib:
        start = threading.Barrier(4)
        found: list[dict] = [{} for _ in range(4)]
        errors: list[BaseException] = []

        def run(n: int) -> None:
            try:
                start.wait(10)
                found[n] = answers(lib, face_ids[n::4])
            except BaseException as exc:  # reported below, with the thread's answers
                errors.append(exc)

        threads = [threading.Thread(target=run, args=(n,)) for n in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
        assert not errors
        concurrent = {k: v for part in found for k, v in part.items()}
        assert isinstance(lib.searches.scoring.normalizer, CohortNormalizer)
    assert concurrent == serial
    assert all(len(v) == 10 for v in serial.values())
