"""Issue 15 ("a 10M index that answers in under 5 ms"): IVF with fast-scan PQ codes, re-ranked on float16 rows.

Why this shape, measured on LFW faces plus matched distractors (bench/scale/engines.py, docs/benchmarks.md):

* Face embeddings are spread over most of their 128 dimensions, so an inverted file has to visit a
  quarter of its lists for recall@10 >= 0.99, whatever its codes. What costs is scanning those
  lists; 4-bit fast-scan PQ (``PQ64x4fsr``: 32 bytes a face, SIMD table look-ups) scans several times
  faster than 16-bit scalar codes (256 bytes a face, ``IVF…,SQfp16``, the engine before this one):
  at 10M faces and nprobe 1024 of 8192 lists, 8.3 ms of CPU a query against 18.8 ms.
* PQ codes alone rank too coarsely to keep the true top 10, so the best ``k x REFINE_FACTOR`` candidates
  are re-ranked exactly on float16 copies of the vectors (256 bytes a face: 10M faces in ~3 GB).
* Unit vectors rank the same by L2 distance as by inner product, and k-means in L2 splits the narrow
  cone of face embeddings better than inner-product k-means (recall 0.99 at nprobe 512 of 4096 lists at
  1M faces instead of 1024): the lists are trained and searched in L2, the re-ranking is by inner product.

Measured (docs/benchmarks.md): 1.7-2.1 ms a query at recall@10 0.990 at 1M faces (IVF4096,SQfp16: 2.6 ms,
HNSW32: 7.0 ms); at 10M, recall 0.99 needs a quarter of 8192 lists: 15.1 ms of CPU against 18.6 ms (same run) for
``IVF8192_HNSW32,SQfp16``, in 3.3 GB. The issue's 5 ms at 10M is not reached by this engine.

* Rotated (issue 15, fourth pass): ``OPQ64,IVF<n>,PQ64x4fs,Refine(SQfp16)`` first turns each vector by an
  orthogonal matrix learnt so that the 4-bit sub-quantisers fit it (OPQ), then codes it without residuals.
  Codes without residuals scan at ~2.3 ns a code against ~4.0 (no look-up table per list), but unrotated
  they needed ``k x 32`` candidates for the same recall; rotated, ``k x 16`` keep it: at 1M faces the same
  recall at every nprobe as ``PQ64x4fsr`` (0.990 / 0.992 / 0.994 at 256 / 320 / 384 of 1024 lists) for
  x0.58-0.65 of its CPU time, x0.77-0.79 filtered. A rotation keeps distances, so the lists are the same.
  At 10M it reached 0.99 at nprobe 1024 of 8192 in one run (5.4 ms of CPU) and 1536 in another (0.9893 at 1024),
  where ``PQ64x4fsr`` needed 2048 (15.8 ms): it visits 3/16 of the lists there (:func:`adaptive_refined_nprobe`).
  FAISS's own OPQ training learns the rotation for 8-bit sub-quantisers (256 centroids each: ~200 s at 1M
  on 2 cores); :meth:`RefinedIVF.trained` learns it for the 4-bit ones the codes use, in seconds.

Removal: the float16 row is zeroed at once and the id is dropped from every result from then on; the
32-byte PQ code stays in its list as a tombstone until :meth:`RefinedIVF.compact` re-encodes the live rows
(FAISS 1.15's fast-scan ``remove_ids`` corrupts the lists for later adds: a face added after a removal
was no longer found, so it is not used). Filters are FAISS id selectors over the faces' own ids.
"""

from __future__ import annotations

import re
from pathlib import Path

import faiss
import numpy as np

from facesearch.errors import LibraryError

REFINE_SUFFIX = ",Refine(SQfp16)"
REFINE_FACTOR = 16  # candidates re-ranked per result wanted: k x 8 capped recall at 0.983 at 1M (k x 16: 0.994)
ROWS_SUFFIX = ".rows.npy"
_PATTERN = re.compile(r"^(?:OPQ(\d+),)?IVF(\d+)(_HNSW\d+)?,PQ(\d+)x4fsr?" + re.escape(REFINE_SUFFIX) + "$")
# OPQ's alternating training (a PQ, then the rotation) on fewer points and rounds than FAISS's defaults
# (65,536 points, 50 rounds): 16 centroids a sub-quantiser need few points (bench/scale/codecs.py, the same)
OPQ_TRAIN_POINTS, OPQ_NITER = 16_384, 25
# The rotated engine visits a quarter of the lists up to this many (1M faces), then a share falling to 3/16 at
# 8192 lists (10M faces), and 3/16 beyond (adaptive_refined_nprobe)
ROTATED_FULL_SHARE_UPTO, ROTATED_SHARE_AT_8192 = 1024, 3 / 16
FILTERED_PROBE_FACTOR = 1.25  # lists visited by a filtered search, per list of an unfiltered one
_NO_SCORE = np.float32(-np.finfo(np.float32).max)  # what FAISS reports where fewer than k were found


def is_refined(engine: str) -> bool:
    """Whether an engine string names this engine, e.g. ``IVF4096,PQ64x4fsr,Refine(SQfp16)``."""
    return engine.endswith(REFINE_SUFFIX)


def check_refined(engine: str, dim: int) -> None:
    """Refuse a refined engine string this module cannot build, before any face is added."""
    match = _PATTERN.match(engine)
    if match is None:
        raise LibraryError(
            f"bad refined engine {engine!r}: use [OPQ<m>,]IVF<nlist>[_HNSW<M>],PQ<m>x4fs[r],Refine(SQfp16), "
            "e.g. IVF4096,PQ64x4fsr,Refine(SQfp16) or OPQ64,IVF4096,PQ64x4fs,Refine(SQfp16)"
        )
    opq, nlist, _, m = match.groups()
    if int(nlist) < 1 or dim % int(m) or (opq is not None and dim % int(opq)):
        raise LibraryError(f"bad refined engine {engine!r}: nlist must be positive and OPQ<m>, PQ<m> divide {dim}")


def adaptive_refined_nprobe(nlist: int, rotated: bool = False, filtered: bool = False) -> int:
    """Lists visited per query, at least 16. With about a thousand faces a list
    (:func:`~facesearch.store.vectors.faiss_index.refined_engine`) recall@10 >= 0.99 needed a quarter of them:
    256 of 1024 lists at 1M faces (0.994; 128: 0.978) and 2048 of 8192 at 10M (0.991; 1024: 0.988), on LFW
    faces plus matched distractors (bench/scale/engines.py, docs/benchmarks.md).

    ``rotated`` (the OPQ engine, issue 15's fourth pass): a quarter up to 1024 lists (1M faces: 0.990 at 256),
    then a share falling geometrically with the number of lists to 3/16 at 8192 (10M faces: two runs on
    different distractors gave 0.9917 and 0.9893 at 1024 lists, an eighth, and 0.9920 at 1536 in the second;
    1536 instead of 2048 is ~x0.75 of the CPU time). Between 1024 and 8192 lists the share is interpolated,
    not measured (at 4096 lists, 4M faces, the interpolated 845 gave 0.995: stop 25).

    ``filtered`` (a collection filter too large to answer exactly, past ``EXACT_FILTER_LIMIT`` ids): x
    :data:`FILTERED_PROBE_FACTOR` more lists. The best allowed faces lie deeper than the gallery's best, and at
    the unfiltered count a 10% collection got recall 0.987 at 1M (256 lists), 0.990 at 4M (832) and 0.990 at 10M
    (1536); a quarter more gave 0.992 (320), 0.993 (1024) and 0.992 (2048) (docs/benchmarks.md, passes four
    and five)."""
    share = 0.25
    if rotated and nlist > ROTATED_FULL_SHARE_UPTO:
        octaves = np.log2(nlist / ROTATED_FULL_SHARE_UPTO) / np.log2(8192 / ROTATED_FULL_SHARE_UPTO)
        share *= (ROTATED_SHARE_AT_8192 / 0.25) ** min(1.0, octaves)
    if filtered:
        share *= FILTERED_PROBE_FACTOR
    return int(min(nlist, max(16, round(nlist * share))))


class RefinedIVF:
    """Fast-scan IVF-PQ (L2) for candidates, float16 rows for exact re-ranking; ids are the faces' own."""

    def __init__(self, index: faiss.Index, dim: int) -> None:
        self.index = index
        self.dim = dim
        self._ids = np.zeros(0, np.int64)  # sorted, parallel to _rows and _live (capacity-grown)
        self._rows = np.zeros((0, dim), np.float16)
        self._live = np.zeros(0, bool)
        self._n = 0
        self._dead = 0  # removed rows (zeroed) whose codes are still in the lists

    # construction -------------------------------------------------------------------------------

    @classmethod
    def trained(cls, engine: str, vectors: np.ndarray, per_list: int = 64) -> RefinedIVF:
        """An empty index whose lists and PQ codebooks are trained on (a sample of) ``vectors``."""
        check_refined(engine, vectors.shape[1])
        base = engine[: -len(REFINE_SUFFIX)]
        index = faiss.index_factory(vectors.shape[1], base, faiss.METRIC_L2)
        ivf = faiss.extract_index_ivf(index)
        sample = vectors
        if len(vectors) > per_list * ivf.nlist:
            rows = np.random.default_rng(0).choice(len(vectors), per_list * ivf.nlist, replace=False)
            sample = vectors[np.sort(rows)]
        sample = np.ascontiguousarray(sample, dtype=np.float32)
        if isinstance(index, faiss.IndexPreTransform):
            _train_rotation(faiss.downcast_VectorTransform(index.chain.at(0)), sample)
        index.train(sample)  # the lists and codebooks, in the rotated space (the trained rotation is kept)
        return cls(index, vectors.shape[1])

    @property
    def rotated(self) -> bool:
        """True for the OPQ engine (a rotation before the lists)."""
        return isinstance(self.index, faiss.IndexPreTransform)

    @property
    def nlist(self) -> int:
        return int(faiss.extract_index_ivf(self.index).nlist)

    def __len__(self) -> int:
        return int(self.index.ntotal) - self._dead

    # the operations ---------------------------------------------------------------------------

    def add(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        """Add codes to the lists and float16 rows to the store (ids: int64, vectors: float32 rows)."""
        order = np.argsort(ids, kind="stable")
        ids, rows = ids[order], vectors[order].astype(np.float16)
        if self._n and ids[0] <= self._ids[self._n - 1] and self.uncompacted:
            self.compact()  # a removed id may come back: its tombstone must not shadow the new row
        self.index.add_with_ids(np.ascontiguousarray(vectors[order]), ids)
        if self._n and ids[0] <= self._ids[self._n - 1]:  # out of order (rare: ids grow): merge
            all_ids = np.concatenate([self._ids[: self._n], ids])
            merge = np.argsort(all_ids, kind="stable")
            self._ids = all_ids[merge]
            self._rows = np.concatenate([self._rows[: self._n], rows])[merge]
            self._live = np.concatenate([self._live[: self._n], np.ones(len(ids), bool)])[merge]
            self._n = len(self._ids)
            return
        self._reserve(self._n + len(ids))
        end = self._n + len(ids)
        self._ids[self._n : end], self._rows[self._n : end], self._live[self._n : end] = ids, rows, True
        self._n = end

    def search(
        self, queries: np.ndarray, k: int, nprobe: int, selector: faiss.IDSelector | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Top-k (inner products, ids) per query: k x REFINE_FACTOR candidates from the lists, re-ranked."""
        params = faiss.SearchParametersIVF()
        params.nprobe = nprobe
        quantizer = faiss.downcast_index(faiss.extract_index_ivf(self.index).quantizer)
        if isinstance(quantizer, faiss.IndexHNSW):  # see faiss_index._params: efSearch must cover nprobe
            coarse = faiss.SearchParametersHNSW()
            coarse.efSearch = 2 * nprobe
            params.quantizer_params = coarse
            params.keep_alive_coarse = coarse
        if selector is not None:
            params.sel = selector
            params.keep_alive = selector
        _, candidates = self.index.search(queries, k * REFINE_FACTOR, params=params)
        scores = np.full((len(queries), k), _NO_SCORE, np.float32)
        found = np.full((len(queries), k), -1, np.int64)
        for row, cand in enumerate(candidates):
            cand = cand[cand >= 0]
            pos = np.searchsorted(self._ids[: self._n], cand)
            if self._dead:
                keep = self._live[pos]
                cand, pos = cand[keep], pos[keep]
            if len(cand) == 0:
                continue
            sims = self._rows[pos].astype(np.float32) @ queries[row]
            top = np.argsort(-sims, kind="stable")[:k]
            scores[row, : len(top)], found[row, : len(top)] = sims[top], cand[top]
        return scores, found

    def exact_among(self, queries: np.ndarray, k: int, allowed: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Top-k (inner products, ids) among ``allowed`` only, on the float16 rows: exact, without the lists.

        The lists answer a tight filter badly: the best allowed faces of a small collection are mostly
        strangers scattered over lists the probe never visits (1M random faces, 1,000 allowed: recall@10
        0.50 from the lists). Ids not held, or removed, are left out. FAISS scans the allowed rows as float16
        codes (``QT_fp16``), without a float32 copy: ~x0.35 of numpy's convert-then-multiply at 20,000 rows."""
        held = self._ids[: self._n]
        wanted = np.asarray(allowed, np.int64)
        if len(wanted) > 1 and not (np.diff(wanted) > 0).all():
            wanted = np.unique(wanted)
        pos = np.minimum(np.searchsorted(held, wanted), max(self._n - 1, 0))
        keep = (held[pos] == wanted) & self._live[pos] if self._n else np.zeros(len(wanted), bool)
        pos, present = pos[keep], wanted[keep]
        scores = np.full((len(queries), k), _NO_SCORE, np.float32)
        found = np.full((len(queries), k), -1, np.int64)
        if len(present) == 0:
            return scores, found
        scan = faiss.IndexScalarQuantizer(self.dim, faiss.ScalarQuantizer.QT_fp16, faiss.METRIC_INNER_PRODUCT)
        scan.add_sa_codes(np.ascontiguousarray(self._rows[pos]).view(np.uint8))
        sims, rows = scan.search(np.ascontiguousarray(queries, np.float32), min(k, len(present)))
        n = rows.shape[1]
        scores[:, :n], found[:, :n] = sims, present[rows]
        return scores, found

    def remove(self, ids: np.ndarray) -> int:
        """Zero the float16 rows and leave the ids out of every later result, at once; how many were held."""
        held = self._ids[: self._n]
        pos = np.searchsorted(held, ids)
        pos = pos[pos < self._n]
        pos = np.unique(pos[np.isin(held[pos], ids) & self._live[pos]])
        self._live[pos] = False
        self._rows[pos] = 0  # the vector leaves memory now (and the file at the next save)
        self._dead += len(pos)
        return len(pos)

    @property
    def uncompacted(self) -> int:
        """Removed faces whose PQ codes still sit in the lists (never returned), until :meth:`compact`."""
        return self._dead

    def compact(self) -> None:
        """Re-encode the live rows into fresh lists (same trained centroids and codebooks): removed
        faces' codes and ids leave memory, and the disk at the next save."""
        if not self._dead:
            return
        ids, vectors = self.ids(), self.vectors()
        fresh = faiss.clone_index(self.index)
        fresh.reset()
        self.index = fresh
        self._ids, self._rows, self._live = (
            np.zeros(0, np.int64),
            np.zeros((0, self.dim), np.float16),
            np.zeros(0, bool),
        )
        self._n = self._dead = 0
        for start in range(0, len(ids), 500_000):
            self.add(ids[start : start + 500_000], vectors[start : start + 500_000])

    def ids(self) -> np.ndarray:
        return self._ids[: self._n][self._live[: self._n]].copy()

    def vectors(self) -> np.ndarray:
        """The float16 rows of :meth:`ids` as float32 (within 1e-3 of what was added)."""
        return self._rows[: self._n][self._live[: self._n]].astype(np.float32)

    # persistence --------------------------------------------------------------------------------

    def write(self, index_path: Path, rows_path: Path) -> None:
        """Write the lists, the rows (removed ones zeroed) and which are live (the caller renames both)."""
        faiss.write_index(self.index, str(index_path))
        with open(rows_path, "wb") as f:
            np.save(f, self._ids[: self._n])
            np.save(f, self._rows[: self._n])
            np.save(f, self._live[: self._n])

    @classmethod
    def read(cls, index: faiss.Index, rows_path: Path) -> RefinedIVF:
        """The engine from a loaded FAISS index and its rows file; LibraryError if they disagree."""
        try:
            with open(rows_path, "rb") as f:
                ids, rows, live = np.load(f), np.load(f), np.load(f)
        except (OSError, ValueError, EOFError) as exc:
            raise LibraryError(f"refine rows at {rows_path} are missing or unreadable: {exc}") from exc
        if len(ids) != int(index.ntotal) or rows.shape != (len(ids), index.d) or live.shape != ids.shape:
            raise LibraryError(f"refine rows at {rows_path} do not match the index beside them")
        engine = cls(index, int(index.d))
        engine._ids, engine._rows, engine._live, engine._n = ids, rows.astype(np.float16, copy=False), live, len(ids)
        engine._dead = int(len(ids) - live.sum())
        return engine

    # internals ----------------------------------------------------------------------------------

    def rotation(self) -> np.ndarray | None:
        """The OPQ matrix applied before the lists (d x d, orthonormal), or None for an unrotated engine."""
        if not isinstance(self.index, faiss.IndexPreTransform):
            return None
        opq = faiss.downcast_VectorTransform(self.index.chain.at(0))
        return faiss.vector_to_array(opq.A).reshape(opq.d_out, opq.d_in)

    def _reserve(self, size: int) -> None:
        """Room for ``size`` rows, growing by half: untouched capacity is not resident memory."""
        if size <= len(self._ids):
            return
        capacity = max(size, len(self._ids) * 3 // 2, 1024)
        n = self._n
        ids, rows = np.empty(capacity, np.int64), np.empty((capacity, self.dim), np.float16)
        live = np.zeros(capacity, bool)
        ids[:n], rows[:n], live[:n] = self._ids[:n], self._rows[:n], self._live[:n]
        self._ids, self._rows, self._live = ids, rows, live


def _train_rotation(opq: faiss.OPQMatrix, sample: np.ndarray) -> None:
    """Learn the OPQ rotation for 4-bit sub-quantisers (the codes' own), not FAISS's default 8-bit ones."""
    pq = faiss.ProductQuantizer(opq.d_out, opq.M, 4)
    opq.pq, opq.niter, opq.max_train_points = pq, OPQ_NITER, OPQ_TRAIN_POINTS
    opq.train(sample)
    opq.pq = None  # borrowed, not owned: no pointer to a freed quantiser stays in the index (or its clones)
