"""What the library asks of a vector store, and the factory that opens the configured one.

Two engines satisfy :class:`VectorStore`:

* ``"faiss"`` (the default): :class:`~facesearch.store.vectors.faiss_index.VectorIndex`, an in-memory FAISS
  index saved to ``index.faiss`` in the library folder. Nothing else to run.
* ``"milvus"``: :class:`~facesearch.store.vectors.milvus_index.MilvusIndex`, the same operations on a Milvus
  collection: Milvus Lite in ``vectors.milvus.db`` in the library folder, or a Milvus server
  (``milvus_uri`` and a token in the config, or the token in ``$FACESEARCH_MILVUS_TOKEN``), for
  galleries beyond one machine's memory or shared by several services.

Either way the catalog keeps every embedding and stays the truth: a store can always be rebuilt
from it (``facesearch doctor``), so the choice of engine never risks data.

The Protocol lists exactly what ``library.py``, ``search/searcher.py`` and ``governance/`` use, so a
new engine knows what it must do; pymilvus is imported only when a library uses Milvus.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import TYPE_CHECKING, Protocol, runtime_checkable

import numpy as np
from sqlalchemy import select

from facesearch.errors import LibraryError
from facesearch.store.schema import FaceRow, ImageRow

if TYPE_CHECKING:
    from facesearch.config import LibraryConfig
    from facesearch.store.catalog import Catalog
    from facesearch.store.vectors.milvus_index import MilvusSettings

log = logging.getLogger(__name__)

ENGINES = ("faiss", "milvus")
FAISS_FILE = "index.faiss"
MILVUS_STAMP_FILE = "vectors.milvus.json"
MILVUS_LITE_FILE = "vectors.milvus.db"
TOKEN_ENV = "FACESEARCH_MILVUS_TOKEN"
SQL_CHUNK = 10_000  # ids per IN (...) query: well under SQLite's bound-variable limit


@runtime_checkable
class VectorStore(Protocol):
    """Face ids → unit vectors, searched by inner product (= cosine similarity).

    ``tombstones`` are ids removed from search but still held (FAISS HNSW until :meth:`compact`);
    an engine that deletes at once keeps it empty. ``ef_search`` is the graph search breadth
    (0: adaptive), ignored by engines without a graph.
    """

    dim: int
    ef_search: int
    tombstones: set[int]

    @property
    def engine(self) -> str: ...

    def __len__(self) -> int: ...

    def add(self, ids: np.ndarray, vectors: np.ndarray) -> None: ...

    def search(
        self, queries: np.ndarray, k: int, allowed: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray]: ...

    def remove(self, ids: np.ndarray) -> int: ...

    def ids(self) -> np.ndarray: ...

    def vectors(self) -> np.ndarray: ...

    def compact(self) -> None: ...

    def save(self, path: Path, extra: dict | None = None) -> None: ...


class FaceCollections:
    """Which collection each face is in, answered from the catalog.

    A Milvus store keeps the collection id beside each vector so that a search restricted to one
    collection is a scalar filter (``collection_id == 7``: 1-5 ms on Milvus Lite here) instead of a
    list of every allowed face id (``id in [...]`` with 20k ids: 15 ms at 20k faces, 90-150 ms at
    100k). The searcher passes only ``allowed`` ids, so :meth:`whole_collection` checks (one more
    query of the collection's face ids) whether they are exactly one collection's faces: only then
    is the scalar filter used, so the results are the same either way.
    """

    def __init__(self, catalog: Catalog) -> None:
        self.catalog = catalog

    def of(self, ids: np.ndarray) -> np.ndarray:
        """The collection id of each face id (-1 for a face the catalog does not hold)."""
        ids = np.asarray(ids, dtype=np.int64)
        found: dict[int, int] = {}
        with self.catalog.engine.connect() as conn:
            for start in range(0, len(ids), SQL_CHUNK):
                chunk = [int(i) for i in ids[start : start + SQL_CHUNK]]
                query = select(FaceRow.id, ImageRow.collection_id).join(ImageRow).where(FaceRow.id.in_(chunk))
                found.update((int(f), int(c)) for f, c in conn.execute(query))
        return np.fromiter((found.get(int(i), -1) for i in ids), dtype=np.int64, count=len(ids))

    def whole_collection(self, allowed: np.ndarray) -> int | None:
        """The collection whose faces are exactly ``allowed``, or None when they are any other set.

        Exact, not a guess: the collection's face ids are read (Core rows, no ORM objects: ~12 ms
        for 20k faces here, against ~100 ms for Milvus to apply a 20k-id list) and compared.
        """
        if len(allowed) == 0:
            return None
        cid = int(self.of(np.asarray(allowed[:1]))[0])
        if cid < 0:
            return None
        query = select(FaceRow.id).join(ImageRow).where(ImageRow.collection_id == cid)
        with self.catalog.engine.connect() as conn:
            members = np.fromiter((row[0] for row in conn.execute(query)), dtype=np.int64)
        if len(members) != len(allowed):
            return None
        same = np.array_equal(np.sort(members), np.sort(np.asarray(allowed, dtype=np.int64)))
        return cid if same else None


def check_engine(config: LibraryConfig) -> str:
    if config.vector_store not in ENGINES:
        raise LibraryError(f"unknown vector_store {config.vector_store!r}: choose {' or '.join(ENGINES)}")
    return config.vector_store


def store_path(folder: Path, config: LibraryConfig) -> Path:
    """The file in the library folder that stands for the store: FAISS's index, or Milvus's stamp.

    The Milvus stamp (count, model, collection) is rewritten at every save, so whoever watches this
    file's mtime (the API server reopening after another process ingested) works for both engines.
    """
    return folder / (FAISS_FILE if check_engine(config) == "faiss" else MILVUS_STAMP_FILE)


def milvus_settings(folder: Path, config: LibraryConfig) -> MilvusSettings:
    """Where the library's Milvus collection is: a server (URI, token) or Milvus Lite in the folder."""
    from facesearch.store.vectors.milvus_index import MilvusSettings

    token = config.milvus_token or os.environ.get(TOKEN_ENV) or ""
    uri = config.milvus_uri or str((folder / MILVUS_LITE_FILE).resolve())
    return MilvusSettings(uri=uri, token=token, collection=config.milvus_collection)


def load_store(folder: Path, config: LibraryConfig, catalog: Catalog) -> VectorStore:
    """Open the library's existing store; LibraryError when it is missing or unreadable (then rebuild)."""
    if check_engine(config) == "faiss":
        from facesearch.store.vectors.faiss_index import VectorIndex

        index, _ = VectorIndex.load(store_path(folder, config))
        return index
    from facesearch.store.vectors.milvus_index import MilvusIndex

    return MilvusIndex.open(milvus_settings(folder, config), FaceCollections(catalog))


def new_store(folder: Path, config: LibraryConfig, catalog: Catalog, dim: int, *, replace: bool) -> VectorStore:
    """An empty store. ``replace``: a Milvus collection already there is dropped (a rebuild).

    Without ``replace`` (a reader that must not rewrite anything), Milvus creates the collection
    only when the first vector is added.
    """
    if check_engine(config) == "faiss":
        from facesearch.store.vectors.faiss_index import VectorIndex

        return VectorIndex(dim, config.index_engine)
    from facesearch.store.vectors.milvus_index import MilvusIndex

    return MilvusIndex.create(milvus_settings(folder, config), dim, FaceCollections(catalog), replace=replace)


def close_store(store: VectorStore | None) -> None:
    """Let go of a store's connection (Milvus Lite's server process stops with its last user)."""
    close = getattr(store, "close", None)
    if callable(close):
        close()
