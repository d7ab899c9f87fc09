"""Who a search never shows, and whose face is never a probe: opted-out people, faces outside the collection.

Kept in one module so that every part of the search path (a search, an indexed face as the probe, a
face view) asks the opt-outs the same questions. The faces excluded here are left out of the vector
search itself (the vector store's ``allowed`` id set), so ranking never sees them: no "slack"
candidates fetched and filtered afterwards.
"""

from __future__ import annotations

from typing import Protocol

import numpy as np

from facesearch.errors import FaceSearchError
from facesearch.store.catalog import Catalog
from facesearch.store.vectors.protocol import without_excluded


class OptOuts(Protocol):
    """What search needs of the opt-outs (governance/optout.py)."""

    def count(self) -> int: ...

    def is_opted_out(self, embeddings: np.ndarray) -> np.ndarray: ...

    def suppressed_face_ids(self) -> np.ndarray: ...


def suppressed_ids(optouts: OptOuts) -> np.ndarray | None:
    """The indexed faces of opted-out people, or None when nobody opted out."""
    return optouts.suppressed_face_ids() if optouts.count() else None


def is_suppressed(optouts: OptOuts, face_id: int) -> bool:
    """Whether indexed face ``face_id`` is an opted-out person's (never shown, never a probe)."""
    suppressed = suppressed_ids(optouts)
    return suppressed is not None and face_id in set(suppressed.tolist())


def collection_faces(catalog: Catalog, collection: str | None) -> np.ndarray | None:
    """The ids of the faces in ``collection`` (None: every collection); an unknown name is ``not_found``."""
    if collection is None:
        return None
    cid = catalog.collection_id(collection, create=False)
    if cid is None:
        raise FaceSearchError(f"no collection named {collection!r}", code="not_found")
    return catalog.face_ids_in_collection(cid)


def without_opted_out(optouts: OptOuts, allowed: np.ndarray | None) -> tuple[np.ndarray | None, np.ndarray | None]:
    """(allowed, excluded) for the vector search: the collection's ids (or None: all) less opted-out people's
    faces, and those faces to exclude when no collection is named. The exclusions go to the vector store as
    they are: listing every other id of the gallery instead (as before) cost ~1.9 s of CPU a search at 2M faces
    with a single opt-out (bench/scale/optout_search.py)."""
    suppressed = suppressed_ids(optouts)
    return without_excluded(allowed, suppressed)


def blocked_probe_faces(optouts: OptOuts, queries: np.ndarray, parts: np.ndarray | None) -> np.ndarray:
    """Which probe faces are an opted-out person's (they are shown nobody). A fused probe is blocked
    when the template or any one of its photos (``parts``) is: adding a photo of someone else to an
    opted-out person's photo must not get a search past the opt-out (issue 13)."""
    if not optouts.count():
        return np.zeros(len(queries), bool)
    blocked = optouts.is_opted_out(queries)
    if parts is not None and bool(optouts.is_opted_out(parts).any()):
        blocked = np.ones(len(queries), bool)
    return blocked
