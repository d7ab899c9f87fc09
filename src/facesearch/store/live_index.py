"""The vector index a process works with, kept in step with the file on disk and with the catalog.

The catalog is the truth; the vector index is derived from it and saved as a file (FAISS) or a
stamp beside a Milvus collection. Several processes may open one library (a server, a CLI ingest,
``facesearch erase``): each holds its own copy of the index in memory. Two rules keep the copies
honest:

* a writer reloads the file under the library's write lock before changing it, so it never saves
  a stale copy over another process's work (:meth:`LiveIndex.refresh`, called by the writer);
* a reader notices that the file changed since it loaded it (another process saved) and reloads
  before it answers, so it never serves a stale index; if what it loaded does not hold the catalog's
  faces (a stale copy saved over the file by an older version or a crashed writer, issue 12 §5), it
  repairs its own copy from the catalog in memory. It never saves: the writer owns the file.

A file is "changed" when its (inode, size, modification time) differs from what this process last
loaded or saved; saves are atomic (temporary file + rename), so a reader never sees half a file.
"""

from __future__ import annotations

import logging
import os
import threading
from pathlib import Path

import numpy as np

from facesearch.config import LibraryConfig
from facesearch.errors import LibraryError
from facesearch.store.catalog import Catalog
from facesearch.store.vectors.factory import check_engine, close_store, load_store, new_store, store_path
from facesearch.store.vectors.protocol import Compactable, VectorStore

log = logging.getLogger(__name__)

Signature = tuple[int, int, int] | None


def _signature(path: Path) -> Signature:
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return None
    return (st.st_ino, st.st_size, st.st_mtime_ns)


def live_ids(index: VectorStore) -> np.ndarray:
    """The ids an index answers with (every engine leaves removed ids out of ``ids()``)."""
    return index.ids()


class LiveIndex:
    """One process's vector index: loaded (repaired from the catalog if needed), refreshed, saved."""

    def __init__(
        self, folder: Path, config: LibraryConfig, catalog: Catalog, dim: int, model_key: str, *, repair: bool = True
    ) -> None:
        self.folder = folder
        self.config = config
        self.catalog = catalog
        self.dim = dim
        self.model_key = model_key
        self.path = store_path(folder, config)
        self._lock = threading.RLock()
        self._signature: Signature = None
        self._store: VectorStore = self._open(repair)

    @property
    def current(self) -> VectorStore:
        """The index as loaded now (a reload replaces it; a caller keeps the one it took for one query)."""
        return self._store

    def __len__(self) -> int:
        return len(self._store)

    # loading --------------------------------------------------------------------------------------

    def _open(self, repair: bool) -> VectorStore:
        signature = _signature(self.path)
        try:
            index = load_store(self.folder, self.config, self.catalog)
        except LibraryError as exc:
            if not repair:
                return new_store(self.folder, self.config, self.catalog, self.dim, replace=False)
            if self.path.exists():
                log.warning("%s; rebuilding it from the catalog", exc)
            return self._rebuilt()
        index.ef_search = self.config.hnsw_ef_search
        self._signature = signature
        if not repair:
            self._repair_in_memory(index)
            return index
        if index.dim != self.dim:
            log.warning("vector index dimension %d != model's %d; rebuilding", index.dim, self.dim)
            close_store(index)
            return self._rebuilt()
        if len(index) != self.catalog.face_count():
            self._store = index
            self.reconcile()
        return index

    def refresh(self, *, repair: bool) -> bool:
        """Reload the index when another process saved it since this one loaded or saved it; True if reloaded.

        ``repair=True`` (the writer, under the write lock) also reconciles the reloaded index with the
        catalog and saves it. A reader passes False: another process may be half-way through an
        ingest, and a reader must never rewrite the file under it (if the file cannot be read, the
        copy in memory is kept); faces committed but not yet saved appear at the writer's next save.
        """
        with self._lock:
            signature = _signature(self.path)
            if signature == self._signature:
                return False
            log.info("%s changed on disk: reloading the vector index", self.path.name)
            previous = self._store
            if repair:
                self._store = self._open(repair=True)
            else:
                try:
                    fresh = load_store(self.folder, self.config, self.catalog)
                except LibraryError as exc:
                    log.warning("%s; keeping the index loaded before", exc)
                    return False
                fresh.ef_search = self.config.hnsw_ef_search
                self._repair_in_memory(fresh)
                self._store, self._signature = fresh, signature
            if previous is not self._store:
                close_store(previous)
            return True

    def _repair_in_memory(self, index: VectorStore) -> None:
        """A reader's repair: make ``index`` (just loaded) hold exactly the catalog's faces, without saving.

        The catalog is the truth, so faces committed by a writer that has not saved yet may be added
        here too; the count check keeps the usual case (the file is right) to one query. Only a FAISS
        index is this process's own copy; a Milvus collection is shared, and only the writer changes it.
        """
        if check_engine(self.config) != "faiss" or len(index) == self.catalog.face_count():
            return
        in_catalog = self.catalog.all_face_ids()
        in_index = live_ids(index)
        missing = np.setdiff1d(in_catalog, in_index)
        extra = np.setdiff1d(in_index, in_catalog)
        if len(extra):
            index.remove(extra)
        if len(missing):
            try:
                vectors = self.catalog.embeddings_of(missing)
            except ValueError:  # every missing face was deleted meanwhile
                vectors = np.empty((0, self.dim), dtype=np.float32)
            if len(vectors) != len(missing):  # some were deleted meanwhile: take the ones still there
                present = set(self.catalog.all_face_ids().tolist())
                missing = np.asarray([i for i in missing.tolist() if i in present], dtype=np.int64)
                vectors = self.catalog.embeddings_of(missing) if len(missing) else vectors[:0]
            if len(missing):
                index.add(missing, vectors)
        log.warning(
            "the saved vector index did not hold the catalog's faces: %d added, %d removed in memory "
            "(the next write saves a repaired file; `facesearch doctor` checks it)",
            len(missing),
            len(extra),
        )

    def changed_on_disk(self) -> bool:
        """Whether the file differs from what this process last loaded or saved (a cheap stat)."""
        return _signature(self.path) != self._signature

    # changing (the writer's, under the library's write lock) ----------------------------------------

    def add(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        with self._lock:
            self._store.add(ids, vectors)

    def remove(self, ids: np.ndarray) -> None:
        """Make ``ids`` unreachable by every search for good (HNSW keeps tombstones until compacted)."""
        if not len(ids):
            return
        with self._lock:
            self._store.remove(ids)
            if isinstance(self._store, Compactable):
                self._store.compact()  # erased means gone, not hidden: no removed vector stays held

    def save(self) -> None:
        with self._lock:
            self._store.save(self.path, {"model": self.model_key})
            self._signature = _signature(self.path)

    def _rebuilt(self) -> VectorStore:
        index = new_store(self.folder, self.config, self.catalog, self.dim, replace=True)
        index.ef_search = self.config.hnsw_ef_search
        for ids, vectors in self.catalog.iter_embeddings():
            index.add(ids, vectors)
        self._store = index
        self.save()
        return index

    def rebuild(self) -> VectorStore:
        """Build the index afresh from the embeddings stored in the catalog, and save it."""
        with self._lock:
            previous = getattr(self, "_store", None)
            index = self._rebuilt()
            if previous is not None and previous is not index:
                close_store(previous)
            return index

    def reconcile(self) -> dict:
        """Make the index hold exactly the catalog's faces (after a crash between commit and save)."""
        with self._lock:
            index = self._store
            in_catalog = self.catalog.all_face_ids()
            in_index = live_ids(index)
            missing = np.setdiff1d(in_catalog, in_index)
            extra = np.setdiff1d(in_index, in_catalog)
            if len(extra):
                index.remove(extra)
            if len(missing):
                wanted = set(missing.tolist())
                for ids, vectors in self.catalog.iter_embeddings():
                    keep = np.fromiter((i in wanted for i in ids.tolist()), bool, len(ids))
                    if keep.any():
                        index.add(ids[keep], vectors[keep])
            log.info("vector index reconciled: %d added, %d removed", len(missing), len(extra))
            self.save()
            return {"added": int(len(missing)), "removed": int(len(extra))}

    def check_file(self) -> list[str]:
        """What is wrong with the saved index against the catalog (``facesearch doctor``); [] when nothing."""
        problems: list[str] = []
        try:
            index = load_store(self.folder, self.config, self.catalog)
        except LibraryError as exc:
            return [str(exc)]
        try:
            held = live_ids(index)
            in_catalog = self.catalog.all_face_ids()
            missing = np.setdiff1d(in_catalog, held)
            extra = np.setdiff1d(held, in_catalog)
            if len(missing):
                problems.append(f"{len(missing)} faces in the catalog are missing from the index")
            if len(extra):
                problems.append(f"{len(extra)} vectors in the index have no face in the catalog")
            if index.dim != self.dim:
                problems.append(f"index dimension {index.dim} != model dimension {self.dim}")
        finally:
            close_store(index)
        return problems

    def describe(self) -> dict:
        """What ``facesearch stats`` shows of the index: its engine, vectors and uncompacted removals."""
        index = self.current
        tombstones = index.uncompacted if isinstance(index, Compactable) else 0
        return {"engine": index.engine, "vectors": len(index), "tombstones": tombstones}

    def close(self) -> None:
        close_store(getattr(self, "_store", None))
