"""The factory that opens a library's configured vector store (``vector_store`` in its config).

Two engines satisfy :class:`~facesearch.store.vectors.protocol.VectorStore`:

* ``"faiss"`` (the default): :class:`~facesearch.store.vectors.faiss_index.VectorIndex`, an in-memory FAISS
  index saved to ``index.faiss`` in the library folder. Nothing else to run.
* ``"milvus"``: :class:`~facesearch.store.vectors.milvus_index.MilvusIndex`, the same operations on a Milvus
  collection: Milvus Lite in ``vectors.milvus.db`` in the library folder, or a Milvus server
  (``milvus_uri`` and a token in the config, or the token in ``$FACESEARCH_MILVUS_TOKEN``), for
  galleries beyond one machine's memory or shared by several services.

Either way the catalog keeps every embedding and stays the truth: a store can always be rebuilt
from it (``facesearch doctor``), so the choice of engine never risks data. pymilvus is imported only
when a library uses Milvus.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import TYPE_CHECKING

from facesearch.errors import LibraryError
from facesearch.store.vectors.face_collections import FaceCollections
from facesearch.store.vectors.protocol import VectorStore

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


def check_engine(config: LibraryConfig) -> str:
    """The library's engine name; LibraryError for one this version does not know."""
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
