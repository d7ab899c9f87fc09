"""Score normalisation against an impostor cohort (adaptive symmetric normalisation, "s-norm").

A raw cosine similarity means different things for different faces: some faces (a common pose, a
frequent look, a low-quality photo) sit close to many strangers, so their impostor scores run high.
S-norm measures that per face: each probe and each candidate is compared with a cohort of faces
sampled from the operator's own library, and the score is expressed in standard deviations above
the mean of the *top* cohort scores of each side, averaged over both sides:

    s' = ((s - mu_p) / sigma_p + (s - mu_c) / sigma_c) / 2

The cohort is a fixed-seed sample of indexed faces (never embeddings shipped with the package). A
face compared with itself (similarity ~1) is left out of its own cohort statistics.

Issue 16: a library may instead score ``snorm_cos``, the s-norm score plus :data:`SNORM_COS_WEIGHT` times the
raw cosine (one normaliser with ``cos_weight`` set): s-norm divides out how crowded each face's neighbourhood is,
and near a search's FPIR 0.01 threshold the raw similarity still says something the normalised score lost.
"""

from __future__ import annotations

import faiss
import numpy as np

from facesearch.store.catalog import Catalog

COHORT_SIZE = 2000
# Below this many indexed faces the cohort is too small for stable top-100 statistics: search ranks
# by plain cosine similarity instead (and says so in its "score" field).
MIN_LIBRARY_FACES = 500
COHORT_TOP = 100
SELF_MATCH = 0.9999
# Gallery faces whose cohort statistics a normaliser keeps (two floats each): enough for the faces a
# server's searches keep meeting, bounded for a 10M-face library (the cache is emptied when full).
STATS_CACHE = 1_000_000
# Issue 15: up to this many rows (a search's probe face, its <= 50 uncached candidates) are scored on the calling
# thread alone (cohort_scores); larger batches (calibration: every face of a library) keep BLAS's threads.
ONE_THREAD_ROWS = 64
# Issue 16: the weight of the cosine in the ``snorm_cos`` score, ``s-norm + SNORM_COS_WEIGHT x cosine`` (s-norm
# units per unit of cosine). Provenance: a logistic regression on (cosine, s-norm) of each candidate of lfw-dev's
# seed-0 1:N searches (int8 model, central faces, the 50 re-ranked candidates; bench/accuracy/fusion.py --part
# identify, docs/accuracy.md "learned score fusion") ranks as s-norm + 55 x cosine fitted on half 0 of the
# people and + 36 x cosine fitted on half 1; 45 is their mean, rounded, chosen before looking at any tested
# half's best weight (the sweep's floor, ~80-120, was read off the tested searches: selection, not evidence).
# Every weight from 10 to 240 lowered FNIR @ FPIR 0.01 on both halves and the whole there. One aggregate
# coefficient: no embedding of anyone is shipped.
SNORM_COS_WEIGHT = 45.0
# The score kind a normaliser produces, by the weight of its cosine term.
SNORM_KINDS = {"snorm": 0.0, "snorm_cos": SNORM_COS_WEIGHT}


def cos_weight_of(normalization: str) -> float:
    """The cosine weight of a library's ``score_normalization`` ("snorm" or "snorm_cos"; search/scoring.py)."""
    if normalization not in SNORM_KINDS:
        raise ValueError(f"score normalisation {normalization!r} has no cohort: one of {', '.join(SNORM_KINDS)}")
    return SNORM_KINDS[normalization]


def fuse(snorm: np.ndarray, raw: np.ndarray, cos_weight: float) -> np.ndarray:
    """The score of a kind from its s-norm and raw cosine scores: ``snorm + cos_weight x raw`` (0: plain s-norm).

    Applied to s-norm by :func:`cohort_score`, the one formula of search, the opt-out rule and calibration."""
    return snorm + cos_weight * raw if cos_weight else snorm


def cohort_score(
    raw: np.ndarray,
    a: tuple[np.ndarray, np.ndarray],
    b: tuple[np.ndarray, np.ndarray],
    cos_weight: float = 0.0,
) -> np.ndarray:
    """The score of a kind for raw similarities between two sides, each given by its (mean, std) against the
    cohort (shapes broadcasting with ``raw``): s-norm, the mean of the two z-scores, then :func:`fuse`. The one
    formula of search, the opt-out rule and calibration."""
    (mu_a, sd_a), (mu_b, sd_b) = a, b
    return fuse(((raw - mu_a) / sd_a + (raw - mu_b) / sd_b) / 2, raw, cos_weight)


def cohort_ids(ids: np.ndarray, size: int = COHORT_SIZE, seed: int = 0) -> np.ndarray:
    """The faces of a library's cohort: a fixed-seed sample of its face ids, sorted (the one rule, also used by
    ``eval identify --gallery-sizes`` to draw the cohort a larger library would have)."""
    return np.sort(np.random.default_rng(seed).choice(ids, size=min(size, len(ids)), replace=False))


def cohort_scores(vectors: np.ndarray, cohort: np.ndarray) -> np.ndarray:
    """Each row's similarity with every cohort face (float32 rows; ``cohort`` C-contiguous float32).

    Issue 15: a search's rows (its probe face; its <= 50 candidates not yet cached) are scored on the calling
    thread by FAISS's SIMD inner products, one row at a time, never by NumPy's BLAS. OpenBLAS splits a
    51x128 @ 128x2000 product over its threads and the caller spins until the other thread has had a core:
    on this loaded 2-core machine that took 37-104 ms p50 and 12-14 ms of CPU per call, against 1.8-12 ms
    and 1.7-1.9 ms here (bench/speed/snorm_threads.py, docs/benchmarks.md). Limiting BLAS to one thread
    per call is no way out: its thread count is process-global, and with NumPy's OpenBLAS 0.3.31 a count
    set from a server's worker thread was not applied at all. Batches (calibration: every face of a
    library) keep BLAS and its threads. The two ways agree to float rounding (~2e-7).
    """
    rows = np.ascontiguousarray(np.atleast_2d(vectors), dtype=np.float32)
    if len(rows) > ONE_THREAD_ROWS:
        return rows @ cohort.T
    base = np.ascontiguousarray(cohort, dtype=np.float32)
    if rows.shape[1] != base.shape[1]:  # FAISS would read past the rows' ends
        raise ValueError(f"vectors of {rows.shape[1]} dimensions against a cohort of {base.shape[1]}")
    scores = np.empty((len(rows), len(base)), dtype=np.float32)
    for row, out in zip(rows, scores, strict=True):
        faiss.fvec_inner_products_ny(
            faiss.swig_ptr(out), faiss.swig_ptr(row), faiss.swig_ptr(base), rows.shape[1], len(base)
        )
    return scores


class CohortNormalizer:
    def __init__(self, cohort: np.ndarray, top: int = COHORT_TOP, cos_weight: float = 0.0) -> None:
        """``cos_weight``: 0 scores s-norm, :data:`SNORM_COS_WEIGHT` the ``snorm_cos`` kind (issue 16)."""
        self.cohort = np.ascontiguousarray(cohort, dtype=np.float32)
        self.top = max(2, min(top, len(self.cohort) - 1))
        self.cos_weight = float(cos_weight)
        # An indexed face's statistics depend only on its vector and this cohort: computed once per face.
        # A changed library draws a new cohort, hence a new normaliser and an empty cache (search/scoring.py).
        self._face_stats: dict[int, tuple[float, float]] = {}

    @property
    def kind(self) -> str:
        """The score kind this normaliser produces: the calibration table its scores are read in."""
        return next((k for k, w in SNORM_KINDS.items() if w == self.cos_weight), f"snorm+{self.cos_weight:g}cos")

    @classmethod
    def from_catalog(
        cls, catalog: Catalog, size: int = COHORT_SIZE, seed: int = 0, cos_weight: float = 0.0
    ) -> CohortNormalizer | None:
        """A fixed-seed sample of the library's faces; None when the library is too small to normalise."""
        ids = catalog.all_face_ids()
        if len(ids) < MIN_LIBRARY_FACES:
            return None
        vectors = catalog.embeddings_of(cohort_ids(ids, size, seed))
        return cls(vectors, cos_weight=cos_weight)

    def stats(self, vectors: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Mean and std of each vector's top cohort scores (self-matches excluded)."""
        scores = cohort_scores(vectors, self.cohort)
        scores[scores >= SELF_MATCH] = -np.inf
        top = -np.partition(-scores, self.top - 1, axis=1)[:, : self.top]
        return top.mean(axis=1), np.maximum(top.std(axis=1), 1e-6)

    def face_stats(self, ids: np.ndarray, vectors: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """:meth:`stats` of indexed faces (``ids`` with their ``vectors``), each computed once per normaliser."""
        # One dict throughout: a concurrent search may replace a full cache meanwhile (issue 15).
        cache = self._face_stats
        missing = [i for i, face in enumerate(ids) if int(face) not in cache]
        if missing:
            if len(cache) + len(missing) > STATS_CACHE:  # a new, empty cache: every face is missing from it
                cache = self._face_stats = {}
                missing = list(range(len(ids)))
            mu, sd = self.stats(vectors[missing])
            for i, m, s in zip(missing, mu, sd, strict=True):
                cache[int(ids[i])] = (float(m), float(s))
        known = np.array([cache[int(face)] for face in ids], dtype=np.float32).reshape(len(ids), 2)
        return known[:, 0], known[:, 1]

    def normalize(
        self, raw: np.ndarray, probe: np.ndarray, candidates: np.ndarray, ids: np.ndarray | None = None
    ) -> np.ndarray:
        """Normalised scores of one probe against its candidates (raw similarities given): s-norm, plus
        ``cos_weight`` x the raw similarity for the ``snorm_cos`` kind.

        ``ids``: the candidates' face ids, when they are indexed faces: their statistics are then
        taken from (or kept in) the per-face cache instead of being computed at every search.
        """
        mu_p, sd_p = self.stats(probe[None])
        mu_c, sd_c = self.stats(candidates) if ids is None else self.face_stats(ids, candidates)
        return cohort_score(raw, (mu_p[0], sd_p[0]), (mu_c, sd_c), self.cos_weight)
