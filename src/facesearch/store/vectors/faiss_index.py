"""The FAISS vector store: the VectorStore operations in memory, engines chosen by a factory string.

Engines (FAISS, inner product on unit vectors = cosine similarity):

* ``"Flat"``: exact search. Best below ~100k faces, where scanning everything takes a few ms.
* ``"HNSW32"`` (any ``HNSW<M>``): a graph index for large galleries, sub-millisecond at 1M faces.
  HNSW cannot delete in place, so removed ids are kept as tombstones, excluded from every search (and
  from :meth:`VectorIndex.ids`) at once, and dropped for good by :meth:`VectorIndex.compact` (rebuild):
  the index is :class:`~facesearch.store.vectors.protocol.Compactable`.
* ``"auto-opq"`` (the default for new libraries, issue 15's fourth pass): as ``"auto-ivfpq"``, with the
  rotated refined IVF, ``OPQ64,IVF<n>,PQ64x4fs,Refine(SQfp16)`` (:func:`refined_engine` with
  ``rotated``): the same recall at x0.58-0.65 of the CPU time at 1M faces (docs/benchmarks.md).
* ``"auto-ivfpq"`` (the default from issue 15 until its fourth pass; libraries created with it keep it): as
  ``"auto"``, then, from ``REFINED_FROM`` faces, the refined fast-scan IVF below with lists for its size
  (:func:`refined_engine`), retrained with more lists each time the gallery grows 4-fold.
* ``"auto"`` (the default before issue 15; libraries created with it keep it): Flat until
  ``auto_threshold`` faces, then converted to HNSW32 as it grows.
* ``"[OPQ<m>,]IVF<nlist>[_HNSW<M>],PQ<m>x4fs[r],Refine(SQfp16)"``: fast-scan PQ lists re-ranked on float16
  rows (:mod:`facesearch.store.vectors.refined`): 1.7 ms a query at 1M faces, 10M faces in 3.3 GB (but no faster
  than ``IVF8192_HNSW32,SQfp16`` there at recall 0.99; docs/benchmarks.md). Flat until trained.
* ``"IVF<nlist>,SQ8"`` (any FAISS IVF factory string, e.g. ``IVF16384_HNSW32,SQ8``): a compressed
  index for galleries that outgrow memory as float32 (10M faces in ~1.4 GB with SQ8 instead of ~8 GB
  with HNSW32; bench/scale/engines.py). IVF must be trained on real vectors, so the index stays Flat (exact)
  until it holds enough faces to train on (:func:`ivf_train_size`), then trains and converts. IVF
  deletes in place (no tombstones); searches visit ``nprobe`` lists (0: :func:`adaptive_nprobe`).

The index is derived data: the catalog stores every embedding and can rebuild it (``doctor``).
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import faiss
import numpy as np

from facesearch.errors import LibraryError
from facesearch.store.vectors.hnsw import HNSW_EF_CONSTRUCTION, HNSW_EF_SEARCH, adaptive_ef_search
from facesearch.store.vectors.protocol import checked_batch, without_excluded
from facesearch.store.vectors.refined import (
    ROWS_SUFFIX,
    RefinedIVF,
    adaptive_refined_nprobe,
    check_refined,
    is_refined,
)

log = logging.getLogger(__name__)

AUTO_THRESHOLD = 100_000
AUTO_IVFPQ = "auto-ivfpq"  # issue 15: Flat, HNSW32, then the refined IVF (see refined_engine)
AUTO_OPQ = "auto-opq"  # issue 15, fourth pass, the default: as AUTO_IVFPQ with the rotated refined IVF
AUTO_REFINED = (AUTO_IVFPQ, AUTO_OPQ)
AUTO_ENGINES = ("auto", *AUTO_REFINED)
REFINED_FROM = 500_000  # faces from which AUTO_IVFPQ leaves HNSW32 for the refined IVF (docs/benchmarks.md)
REFINED_GROWTH = 4  # AUTO_IVFPQ retrains its lists (more of them) each time the gallery grows this much
IVF_NPROBE = 0  # 0: adaptive_nprobe(nlist)
EXACT_FILTER_LIMIT = 20_000
BITMAP_FILTER_FROM = 4_096  # allowed ids from which a bitmap selector is cheaper than a hash set
ONE_THREAD_BELOW = 20  # queries: fewer are searched on the calling thread alone (one_thread_for)


class VectorIndex:
    """A VectorStore in a FAISS index (Flat, HNSW, IVF); Compactable, for HNSW's and the refined IVF's tombstones."""

    def __init__(
        self, dim: int, engine: str = "auto", auto_threshold: int = AUTO_THRESHOLD, refined_from: int = REFINED_FROM
    ) -> None:
        self.dim = dim
        self.requested = engine
        self.auto_threshold = auto_threshold
        self.refined_from = refined_from
        self.ef_search = HNSW_EF_SEARCH
        self.nprobe = IVF_NPROBE
        self.tombstones: set[int] = set()
        self._refined: RefinedIVF | None = None
        self.trained_at = 0  # faces the refined IVF was trained on (AUTO_IVFPQ retrains as it grows)
        self._index = self._new(self._initial_engine())
        self.max_id = 0

    # construction -------------------------------------------------------------------------------

    def _initial_engine(self) -> str:
        if is_refined(self.requested):
            check_refined(self.requested, self.dim)
            return "Flat"
        if is_ivf(self.requested):
            check_ivf(self.requested, self.dim)
            return "Flat"
        return "Flat" if self.requested in AUTO_ENGINES else self.requested

    @property
    def ivf(self) -> bool:
        """Whether the live index is a scalar-code IVF (it keeps its own ids: no IDMap, deletes in place)."""
        return is_ivf(self.engine) and self._refined is None

    def _new(self, engine: str) -> faiss.Index:
        if engine == "Flat":
            inner = faiss.IndexFlatIP(self.dim)
        elif engine.startswith("HNSW"):
            try:
                m = int(engine[4:] or 32)
            except ValueError as exc:
                raise LibraryError(f"bad HNSW engine {engine!r}: use HNSW<M>, e.g. HNSW32") from exc
            inner = faiss.IndexHNSWFlat(self.dim, m, faiss.METRIC_INNER_PRODUCT)
            inner.hnsw.efConstruction = HNSW_EF_CONSTRUCTION
        else:
            raise LibraryError(
                f"unknown index engine {engine!r}: choose {AUTO_OPQ}, {AUTO_IVFPQ}, auto, Flat, HNSW<M>, "
                "IVF<nlist>,SQfp16 or [OPQ64,]IVF<nlist>,PQ64x4fs[r],Refine(SQfp16)"
            )
        self.engine = engine
        return faiss.IndexIDMap2(inner)

    # the interface ------------------------------------------------------------------------------

    def __len__(self) -> int:
        if self._refined is not None:
            return len(self._refined)
        return int(self._index.ntotal) - len(self.tombstones)

    def add(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        ids, vectors = checked_batch(ids, vectors, self.dim)
        if len(ids) == 0:
            return
        if self._refined is not None:
            self._refined.add(ids, vectors)
        else:
            self._index.add_with_ids(vectors, ids)
        self.max_id = max(self.max_id, int(ids.max()))
        if self.requested in AUTO_REFINED and len(self) >= max(self.refined_from, REFINED_GROWTH * self.trained_at):
            # straight from Flat too: no graph built to be dropped
            self._convert(refined_engine(len(self), rotated=self.requested == AUTO_OPQ))
        elif self.engine == "Flat":
            if self.requested in AUTO_ENGINES and self._index.ntotal >= self.auto_threshold:
                self._convert("HNSW32")
            elif (is_ivf(self.requested) or is_refined(self.requested)) and (
                self._index.ntotal >= ivf_train_size(self.requested)
            ):
                self._convert(self.requested)

    def search(
        self, queries: np.ndarray, k: int, allowed: np.ndarray | None = None, excluded: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Top-k (similarities, ids) per query; ids are -1 where fewer than k exist.

        ``allowed`` restricts the search to those ids (a collection filter); ``excluded`` ids (opted-out
        people's faces) and tombstones are never returned.
        """
        queries = np.ascontiguousarray(np.atleast_2d(queries), dtype=np.float32)
        k = max(1, min(k, max(1, len(self))))
        allowed, excluded = without_excluded(allowed, excluded)
        tight = allowed is not None and len(allowed) <= EXACT_FILTER_LIMIT
        if self._refined is not None:
            if tight:
                return self._refined.exact_among(queries, k, allowed)  # type: ignore[arg-type]
            if allowed is not None:
                selector = id_selector(allowed)
            else:
                selector = None if excluded is None else not_selector(excluded)
            nprobe = self.nprobe or adaptive_refined_nprobe(
                self._refined.nlist, self._refined.rotated, filtered=allowed is not None
            )
            return self._refined.search(queries, k, nprobe, selector)
        if tight and (self.engine.startswith("HNSW") or self.ivf):
            return self._exact_among(queries, k, allowed)  # type: ignore[arg-type]
        params = self._params(allowed, excluded)
        with one_thread_for(len(queries)):
            scores, ids = self._index.search(queries, k, params=params)
        return scores, ids

    def remove(self, ids: np.ndarray) -> int:
        """Remove ids from search (and from :meth:`ids`) at once. Flat and IVF delete in place; HNSW keeps
        tombstones until :meth:`compact`."""
        ids = np.ascontiguousarray(ids, dtype=np.int64)
        if len(ids) == 0:
            return 0
        if self._refined is not None:
            return self._refined.remove(ids)
        if self.ivf:  # its hash-table id map removes only by an explicit id array
            return int(self._index.remove_ids(faiss.IDSelectorArray(ids)))
        if self.engine == "Flat":
            return int(self._index.remove_ids(faiss.IDSelectorBatch(ids)))
        present = set(self.ids().tolist())
        new = {int(i) for i in ids if int(i) in present} - self.tombstones
        self.tombstones |= new
        return len(new)

    def ids(self) -> np.ndarray:
        """Every id a search can reach (tombstones left out)."""
        if self._refined is not None:
            return self._refined.ids()
        ids = self._all_ids()
        return ids[self._live(ids)] if self.tombstones else ids

    def vectors(self) -> np.ndarray:
        """The vectors of :meth:`ids`, in that order (decoded, hence approximate, for SQ/PQ codes)."""
        if self._refined is not None:
            return self._refined.vectors()
        if not self.tombstones:
            return self._all_vectors()
        return self._all_vectors()[self._live(self._all_ids())]

    @property
    def uncompacted(self) -> int:
        """Removed vectors still held as tombstones (HNSW; PQ codes in the refined IVF), until :meth:`compact`."""
        if self._refined is not None:
            return self._refined.uncompacted
        return len(self.tombstones)

    def compact(self) -> None:
        """Rebuild without tombstones (HNSW, refined IVF), so removed vectors are gone from memory and disk."""
        if self._refined is not None:
            self._refined.compact()
            self._index = self._refined.index
            return
        if not self.tombstones:
            return
        ids, vectors = self._all_ids(), self._all_vectors()
        keep = self._live(ids)
        self.tombstones = set()
        self._index = self._new(self.engine)
        if keep.any():
            self._index.add_with_ids(np.ascontiguousarray(vectors[keep]), ids[keep])

    # persistence --------------------------------------------------------------------------------

    def save(self, path: Path, extra: dict | None = None) -> None:
        """Write atomically (temp file + rename): a crash never leaves half an index behind."""
        tmp = path.with_suffix(".tmp")
        if self._refined is not None:  # the rows first: a crash between the renames fails load()'s check
            rows_tmp = path.with_suffix(".rows.tmp")
            self._refined.write(tmp, rows_tmp)
            os.replace(rows_tmp, rows_path(path))
        else:
            faiss.write_index(self._index, str(tmp))
        os.replace(tmp, path)
        meta = {
            "dim": self.dim,
            "requested": self.requested,
            "engine": self.engine,
            "ntotal": int(self._index.ntotal),
            "max_id": self.max_id,
            "tombstones": sorted(self.tombstones),
            "trained_at": self.trained_at,
            "auto_threshold": self.auto_threshold,
            "refined_from": self.refined_from,
            **(extra or {}),
        }
        meta_tmp = path.with_suffix(".json.tmp")
        meta_tmp.write_text(json.dumps(meta))
        os.replace(meta_tmp, meta_path(path))

    @classmethod
    def load(cls, path: Path) -> tuple[VectorIndex, dict]:
        """Load an index and its metadata; raises LibraryError if either is missing or corrupt."""
        try:
            meta = json.loads(meta_path(path).read_text())
            raw = faiss.read_index(str(path))
        except Exception as exc:  # faiss raises RuntimeError; json ValueError; missing files OSError
            raise LibraryError(f"vector index at {path} is missing or unreadable: {exc}") from exc
        if int(raw.ntotal) != int(meta.get("ntotal", -1)) or raw.d != meta.get("dim"):
            raise LibraryError(f"vector index at {path} does not match its metadata")
        index = cls.__new__(cls)
        index.dim = int(meta["dim"])
        index.requested = meta["requested"]
        index.auto_threshold = int(meta.get("auto_threshold", AUTO_THRESHOLD))
        index.ef_search = HNSW_EF_SEARCH
        index.nprobe = IVF_NPROBE
        index.engine = meta["engine"]
        index.tombstones = set(int(i) for i in meta.get("tombstones", []))
        index.max_id = int(meta["max_id"])
        index.trained_at = int(meta.get("trained_at", 0))
        index.refined_from = int(meta.get("refined_from", REFINED_FROM))
        index._index = raw
        index._refined = RefinedIVF.read(raw, rows_path(path)) if is_refined(index.engine) else None
        return index, meta

    # internals ----------------------------------------------------------------------------------

    def _all_ids(self) -> np.ndarray:
        """Every id the FAISS index holds, tombstones included, in storage order."""
        if self.ivf:
            return _ivf_ids(self._index)
        return faiss.vector_to_array(self._index.id_map).astype(np.int64)

    def _all_vectors(self) -> np.ndarray:
        """Every stored vector, in the order of :meth:`_all_ids`."""
        n = int(self._index.ntotal)
        if n == 0:
            return np.zeros((0, self.dim), np.float32)
        if self.ivf:
            return self._index.reconstruct_batch(self._all_ids())
        return self._index.index.reconstruct_n(0, n)

    def _live(self, ids: np.ndarray) -> np.ndarray:
        """Which of ``ids`` are not tombstones (a boolean mask)."""
        return ~np.isin(ids, np.fromiter(self.tombstones, dtype=np.int64, count=len(self.tombstones)))

    def _params(self, allowed: np.ndarray | None, excluded: np.ndarray | None = None) -> faiss.SearchParameters | None:
        selector = None
        if allowed is not None:
            allowed = np.ascontiguousarray(allowed, dtype=np.int64)
            if self.tombstones:
                allowed = allowed[~np.isin(allowed, np.fromiter(self.tombstones, dtype=np.int64))]
            selector = id_selector(allowed)
        elif self.tombstones or excluded is not None:
            dead = np.fromiter(self.tombstones, dtype=np.int64, count=len(self.tombstones))
            selector = not_selector(dead if excluded is None else np.concatenate([dead, excluded]))
        if self.engine.startswith("HNSW"):
            params = faiss.SearchParametersHNSW()
            params.efSearch = self.ef_search or adaptive_ef_search(int(self._index.ntotal))
        elif self.ivf:
            params = faiss.SearchParametersIVF()
            params.nprobe = self.nprobe or adaptive_nprobe(int(self._index.nlist))
            if isinstance(faiss.downcast_index(self._index.quantizer), faiss.IndexHNSW):
                # An HNSW coarse quantiser finds only ~efSearch lists: without this, nprobe stops
                # counting past a few hundred and recall stalls (measured: 0.72 at any nprobe >= 512).
                coarse = faiss.SearchParametersHNSW()
                coarse.efSearch = 2 * params.nprobe
                params.quantizer_params = coarse
                params.keep_alive_coarse = coarse
        elif selector is None:
            return None
        else:
            params = faiss.SearchParameters()
        if selector is not None:
            params.sel = selector
            params.keep_alive = selector
        return params

    def _exact_among(self, queries: np.ndarray, k: int, allowed: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Exact search restricted to a few ids: a graph or an IVF index loses recall under a tight filter (the
        best allowed faces of a small collection are strangers scattered over the graph or the lists)."""
        present = np.unique(np.asarray(allowed, np.int64))
        if self.tombstones:
            present = present[~np.isin(present, np.fromiter(self.tombstones, dtype=np.int64))]
        scores = np.full((len(queries), k), -np.inf, dtype=np.float32)
        ids = np.full((len(queries), k), -1, dtype=np.int64)
        if len(present) == 0:
            return scores, ids
        try:
            vectors = self._index.reconstruct_batch(present)
        except RuntimeError:  # an allowed id the index does not hold (out of step with the catalog)
            present = present[np.isin(present, self._all_ids())]
            if len(present) == 0:
                return scores, ids
            vectors = self._index.reconstruct_batch(present)
        sims = queries @ vectors.T
        top = np.argsort(-sims, axis=1)[:, :k]
        n = top.shape[1]
        scores[:, :n] = np.take_along_axis(sims, top, axis=1)
        ids[:, :n] = present[top]
        return scores, ids

    def _convert(self, engine: str) -> None:
        log.info("vector index reached %d faces: converting %s to %s", len(self), self.engine, engine)
        ids, vectors = self.ids(), self.vectors()  # tombstones left out
        self.tombstones = set()
        if is_refined(engine):
            self._refined = RefinedIVF.trained(engine, vectors)
            self._refined.add(ids, vectors)
            self._index = self._refined.index
            self.engine = engine
            self.trained_at = len(ids)
            return
        if is_ivf(engine):
            self._index = train_ivf(engine, vectors)
            self.engine = engine
        else:
            self._index = self._new(engine)
        self._index.add_with_ids(vectors, ids)


@contextmanager
def one_thread_for(queries: int) -> Iterator[None]:
    """Search a few queries (a probe's faces) on the calling thread alone, many with FAISS's OpenMP team.

    FAISS runs parts of every search (the id translation of IndexIDMap, selectors) in OpenMP parallel
    regions, so each single-face search wakes the team and its idle threads then spin. Measured on the
    shared 2-core machine (load ~7), a 1-query top-20 search of a Flat index: 500 faces 1.0 ms wall, 0.36 ms
    CPU with two threads, 0.02 / 0.01 ms with one; 20k faces 21 ms wall, 7.6 ms CPU against 0.8 / 0.24 ms.
    The eval identify tests (~1,700 searches) went from 101 to 75 s of CPU (issue 11); every user search
    gains too. Batches (clustering, bench) keep the team.
    ``omp_set_num_threads`` sets the calling thread's own value (libgomp), so the previous value is put back
    and other threads (a server's pool) are unaffected.
    """
    if queries >= ONE_THREAD_BELOW:
        yield
        return
    previous = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(1)
    try:
        yield
    finally:
        faiss.omp_set_num_threads(previous)


def is_ivf(engine: str) -> bool:
    return engine.startswith("IVF")


def refined_engine(n: int, rotated: bool = False) -> str:
    """The refined IVF that AUTO_IVFPQ (``rotated``: AUTO_OPQ) builds at n faces: about a thousand faces a
    list, as a power of two (1024 lists at 1M, as measured), at least 16 and at most 8192 (k-means on 2
    cores; 10M faces). The coarse quantiser is flat: a search visits a quarter of the lists (the rotated
    engine fewer past 1M faces: refined.adaptive_refined_nprobe), and finding
    2048 of 8192 centroids through HNSW took 6.8 ms of one thread against 0.45 ms for scanning them all.
    Rotated: an OPQ rotation learnt for the 4-bit codes, which then need no residuals (no look-up table
    per list): the same recall for x0.58-0.65 of the CPU time at 1M faces (docs/benchmarks.md)."""
    nlist = min(8192, max(16, 1 << int(round(np.log2(max(n, 1) / 1000)))))
    if rotated:
        return f"OPQ64,IVF{nlist},PQ64x4fs,Refine(SQfp16)"
    return f"IVF{nlist},PQ64x4fsr,Refine(SQfp16)"


def ivf_nlist(engine: str) -> int:
    """The number of lists an IVF factory string asks for (``IVF16384_HNSW32,SQ8`` -> 16384; a rotation
    before the lists, ``OPQ64,IVF1024,...``, is skipped)."""
    lists = engine.split(",", 1)[1] if engine.startswith("OPQ") and "," in engine else engine
    head = lists.split(",", 1)[0][3:].split("_", 1)[0]
    try:
        nlist = int(head)
    except ValueError as exc:
        raise LibraryError(f"bad IVF engine {engine!r}: use IVF<nlist>,SQ8, e.g. IVF16384,SQ8") from exc
    if nlist < 1:
        raise LibraryError(f"bad IVF engine {engine!r}: nlist must be positive")
    return nlist


def check_ivf(engine: str, dim: int) -> None:
    """Refuse an IVF factory string FAISS cannot build, before any face is added."""
    ivf_nlist(engine)
    try:
        faiss.index_factory(dim, engine, faiss.METRIC_INNER_PRODUCT)
    except RuntimeError as exc:
        raise LibraryError(f"unknown index engine {engine!r}: FAISS cannot build it ({exc})") from exc


def ivf_train_size(engine: str) -> int:
    """Faces needed before training: FAISS wants >= 39 points per list for stable k-means."""
    return 39 * ivf_nlist(engine)


def train_ivf(engine: str, vectors: np.ndarray, max_train: int | None = None) -> faiss.Index:
    """An empty, trained IVF index (inner product) with a hash-table direct map, so faces can be
    reconstructed and removed by id. Trains on at most 64 points per list (a random sample: FAISS
    asks for 39 to 256; k-means cost grows with it, and 64 trains 8192 lists in minutes on 2 cores)."""
    nlist = ivf_nlist(engine)
    try:
        index = faiss.index_factory(vectors.shape[1], engine, faiss.METRIC_INNER_PRODUCT)
    except RuntimeError as exc:
        raise LibraryError(f"bad IVF engine {engine!r}: {exc}") from exc
    limit = max_train or 64 * nlist
    sample = vectors
    if len(vectors) > limit:
        rows = np.random.default_rng(0).choice(len(vectors), limit, replace=False)
        sample = vectors[np.sort(rows)]
    index.train(np.ascontiguousarray(sample, dtype=np.float32))
    ivf = faiss.extract_index_ivf(index)
    ivf.set_direct_map_type(faiss.DirectMap.Hashtable)
    return index


def adaptive_nprobe(nlist: int) -> int:
    """Lists visited per query: a quarter of them, at least 16.

    Face embeddings sit in a narrow cone, so k-means lists separate them poorly: recall@10 >= 0.99
    needed nprobe 1024 of 4096 lists at 1M faces (0.997; 512 gave 0.985) and 1024 of 8192 at 10M
    (0.996), on LFW faces plus matched synthetic distractors (bench/scale/engines.py, docs/benchmarks.md).
    """
    return int(min(nlist, max(16, nlist // 4)))


def _ivf_ids(index: faiss.Index) -> np.ndarray:
    ivf = faiss.extract_index_ivf(index)
    lists = ivf.invlists
    parts = []
    for number in range(ivf.nlist):
        size = lists.list_size(number)
        if size:
            parts.append(faiss.rev_swig_ptr(lists.get_ids(number), size).copy())
    return np.concatenate(parts).astype(np.int64) if parts else np.zeros(0, np.int64)


def not_selector(excluded: np.ndarray) -> faiss.IDSelector:
    """A FAISS selector for every id but these (a hash set of the few excluded ids: tombstones, opt-outs)."""
    dead = faiss.IDSelectorBatch(np.ascontiguousarray(excluded, dtype=np.int64))
    selector = faiss.IDSelectorNot(dead)
    selector.keep_alive = dead  # the Not selector does not own its operand
    return selector


def id_selector(allowed: np.ndarray) -> faiss.IDSelector:
    """A FAISS selector for these ids. Past a few thousand ids a bitmap over 0..max id is built with one
    vectorised call, where a hash set costs an insert per id on every search (10M faces, 1M allowed:
    ~0.4 s a query)."""
    if len(allowed) < BITMAP_FILTER_FROM or allowed.min() < 0:
        return faiss.IDSelectorBatch(allowed)
    bits = np.zeros(int(allowed.max()) + 1, dtype=bool)
    bits[allowed] = True
    packed = np.packbits(bits, bitorder="little")
    selector = faiss.IDSelectorBitmap(len(bits), faiss.swig_ptr(packed))
    selector.keep_alive = packed  # FAISS keeps a pointer, not a copy
    return selector


def meta_path(path: Path) -> Path:
    return path.with_suffix(".json")


def rows_path(path: Path) -> Path:
    """The refined engine's float16 rows beside its index (``index.faiss`` -> ``index.rows.npy``)."""
    return path.with_suffix(ROWS_SUFFIX)
