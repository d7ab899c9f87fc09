"""Creating a collection: an admin's act, in every interface.

Why: a collection carries rules (a legal basis every search of it must state, how long it keeps
photos). When ingesting into a new name created the collection on the fly, an ingester could
upload into a fresh name and so sidestep the rules an admin had set for the collection the photos
belonged in (issue 12 §3). Now ingest never creates a collection; it is created here, with its
rules, in one transaction with its audit entry, and only by an admin:

* over the API, a :class:`User` whose role allows ``manage_collections``;
* from the command line and the Python API, the local operator (``actor`` a name or None): whoever
  runs them on the library's folder can read and change every file in it, so they are its admin
  (recorded as ``cli:<operating-system user>``, as every other local act).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from facesearch.errors import FaceSearchError
from facesearch.governance.db import immediate
from facesearch.governance.events import GovernanceEvent, record
from facesearch.governance.purpose import REQUIRABLE
from facesearch.governance.retention import _days
from facesearch.governance.types import User, actor_name, require
from facesearch.store.catalog import Catalog
from facesearch.store.schema import CollectionRow

DEFAULT_COLLECTION = "default"
MAX_NAME = 200


def create_collection(
    catalog: Catalog,
    name: str,
    *,
    require_fields: list[str] | tuple[str, ...] = (),
    retention_days: float | None = None,
    actor: str | User | None,
    exist_ok: bool = False,
) -> dict[str, Any]:
    """Create a collection with its search requirements and retention; returns its settings. Audited.

    ``actor``: a :class:`User` needs the ``manage_collections`` permission (admin); a name or None is
    the local operator (see the module docstring). A taken name is refused (``collection_exists``),
    unless ``exist_ok``: then the existing collection is left as it is (its settings returned,
    nothing audited).
    """
    if isinstance(actor, User):
        require(actor, "manage_collections")
    if exist_ok:
        for row in catalog.collections():
            if row.name == name:
                return dict(row.settings or {})
    if not isinstance(name, str) or not name.strip() or len(name) > MAX_NAME or not name.isprintable():
        raise FaceSearchError(f"a collection name is 1 to {MAX_NAME} printable characters", code="bad_name")
    unknown = sorted(set(require_fields) - set(REQUIRABLE))
    if unknown:
        raise FaceSearchError(f"cannot require {unknown}; requirable: {', '.join(REQUIRABLE)}", code="bad_request")
    settings: dict[str, Any] = {}
    if require_fields:
        settings["require"] = sorted(set(require_fields))
    if retention_days is not None:
        try:
            settings["retention_days"] = _days(retention_days)
        except ValueError as exc:
            raise FaceSearchError(str(exc), code="bad_request") from exc
    taken = FaceSearchError(f"a collection named {name!r} already exists", code="collection_exists")
    try:
        with immediate(catalog) as s:
            if s.scalar(select(CollectionRow.id).where(CollectionRow.name == name)) is not None:
                raise taken
            s.add(CollectionRow(name=name, settings=settings))
            facts = {
                "collection": name,
                "require": settings.get("require", []),
                "retention_days": settings.get("retention_days"),
            }
            record(catalog, GovernanceEvent("collection_create", facts), actor_name(actor), session=s)
    except IntegrityError as exc:  # created meanwhile by another process sharing the catalog
        raise taken from exc
    return settings


def ensure_default_collection(catalog: Catalog, actor: str | User | None = None) -> bool:
    """Create the ``default`` collection of a new library (its creator is its first admin); True if created."""
    if catalog.collection_id(DEFAULT_COLLECTION, create=False) is not None:
        return False
    try:
        create_collection(catalog, DEFAULT_COLLECTION, actor=actor)
    except FaceSearchError as exc:
        if exc.code != "collection_exists":
            raise
        return False
    return True
