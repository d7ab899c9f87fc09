"""What the library, the searcher and governance ask of a vector store, whatever the engine.

:class:`VectorStore` is the whole shared contract: a new engine knows exactly what it must do, and
callers never need to know which engine they hold. In particular ``remove(ids)`` makes those ids
unreachable by every later search at once, and :meth:`VectorStore.ids`, :meth:`VectorStore.vectors`
and ``len()`` stop counting them, on every engine.

How an engine reclaims the space of removed vectors is its own business. FAISS's HNSW graph cannot
delete in place, so it hides removed ids until it is rebuilt; it says so by also being
:class:`Compactable`, a narrow optional capability that only a caller who must leave nothing behind
(erasure: "gone from disk") checks for with ``isinstance``. Milvus deletes at once and is not one.
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np

from facesearch.errors import LibraryError


@runtime_checkable
class VectorStore(Protocol):
    """Face ids → unit vectors, searched by inner product (= cosine similarity).

    ``ef_search`` is the graph search breadth (0: adaptive); engines without a graph ignore it.
    """

    dim: int
    ef_search: int

    @property
    def engine(self) -> str:
        """The engine and its index type, e.g. ``"Flat"``, ``"HNSW32"``, ``"milvus:FLAT"``."""
        ...

    def __len__(self) -> int:
        """How many vectors searches can reach."""
        ...

    def add(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        """Store vectors under their face ids (see :func:`checked_batch`)."""
        ...

    def search(
        self, queries: np.ndarray, k: int, allowed: np.ndarray | None = None, excluded: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Top-k (similarities, ids) per query, ids -1 where fewer exist; only ``allowed`` ids if given, never
        ``excluded`` ones (a few: opted-out people's faces). Exclusions are their own argument so that a
        gallery of millions with one opt-out is not searched through an "allowed" list of millions of ids."""
        ...

    def remove(self, ids: np.ndarray) -> int:
        """Make ids unreachable by every later search, at once; returns how many were held."""
        ...

    def ids(self) -> np.ndarray:
        """Every id a search can reach (removed ids never appear)."""
        ...

    def vectors(self) -> np.ndarray:
        """The vectors of :meth:`ids`, in the same order."""
        ...

    def save(self, path: Path, extra: dict | None = None) -> None:
        """Persist (atomically), recording ``extra`` beside the vectors."""
        ...


@runtime_checkable
class Compactable(Protocol):
    """An engine that still holds removed vectors, hidden from search, until :meth:`compact`."""

    @property
    def uncompacted(self) -> int:
        """Removed vectors still held (in memory, and on disk after a save)."""
        ...

    def compact(self) -> None:
        """Drop every removed vector for good."""
        ...


def checked_batch(ids: np.ndarray, vectors: np.ndarray, dim: int) -> tuple[np.ndarray, np.ndarray]:
    """ids as int64 and vectors as contiguous float32 rows of ``dim``: what every engine's add() takes."""
    ids = np.ascontiguousarray(ids, dtype=np.int64)
    vectors = np.ascontiguousarray(vectors, dtype=np.float32)
    if vectors.ndim != 2 or vectors.shape[1] != dim:
        raise LibraryError(f"vectors of dimension {vectors.shape[-1]} cannot go into a {dim}-d index")
    return ids, vectors


def without_excluded(
    allowed: np.ndarray | None, excluded: np.ndarray | None
) -> tuple[np.ndarray | None, np.ndarray | None]:
    """``allowed`` less ``excluded`` when both are given (then nothing is left to exclude); else each as is
    (``excluded`` as int64, None when empty). A collection's ids less a few opted-out ones: O(n), no sort."""
    if excluded is not None:
        excluded = np.ascontiguousarray(excluded, dtype=np.int64)
        if len(excluded) == 0:
            excluded = None
    if allowed is not None:
        allowed = np.ascontiguousarray(allowed, dtype=np.int64)
        if excluded is not None:
            allowed, excluded = allowed[~np.isin(allowed, excluded)], None
    return allowed, excluded
