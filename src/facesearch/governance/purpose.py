"""Why a search is run: every search names a case and a purpose, recorded in the audit log.

A collection can demand more through its settings JSON, e.g. ``{"require": ["legal_basis"]}``:
searches that may return its faces must then state a legal basis too. A search over the whole
library may return faces of every collection, so it must meet the requirements of all of them.
"""

from __future__ import annotations

import logging

from facesearch.errors import FaceSearchError
from facesearch.governance.db import immediate, update_collection_settings
from facesearch.governance.errors import PurposeRequired
from facesearch.governance.events import GovernanceEvent, record
from facesearch.governance.types import SearchPurpose, User, actor_name
from facesearch.store.catalog import Catalog

log = logging.getLogger(__name__)

__all__ = ["REQUIRABLE", "SearchPurpose", "check_purpose", "requirements", "set_requirements"]

REQUIRABLE = ("legal_basis",)  # case_id and purpose are always required


def requirements(catalog: Catalog, collection: str | None) -> set[str]:
    """What searches of ``collection`` (None: every collection) must state beyond case id and purpose."""
    wanted: set[str] = set()
    for row in catalog.collections():
        if collection is not None and row.name != collection:
            continue
        require = (row.settings or {}).get("require", [])
        if isinstance(require, str):
            require = [require]
        wanted.update(str(r) for r in require)
    return wanted


def check_purpose(catalog: Catalog, purpose: SearchPurpose | None, collection: str | None) -> SearchPurpose:
    """The validated purpose, or :class:`PurposeRequired` when it is missing or lacks what a collection demands.

    An unknown requirement in a collection's settings refuses the search too (a typo in a policy
    must not switch the policy off).
    """
    if purpose is None:
        raise PurposeRequired("a search needs a case id and a purpose")
    purpose = purpose.validated()
    for need in sorted(requirements(catalog, collection)):
        if need not in REQUIRABLE:
            raise PurposeRequired(
                f"collection settings require unknown field {need!r}; requirable: {', '.join(REQUIRABLE)}",
                code="bad_settings",
            )
        if getattr(purpose, need) is None:
            where = f"collection {collection!r}" if collection else "a collection in this library"
            raise PurposeRequired(f"{where} requires a {need} for every search")
    return purpose


def set_requirements(catalog: Catalog, collection: str, require: list[str], *, actor: str | User | None = None) -> dict:
    """Set what searches of a collection must state (e.g. ``["legal_basis"]``; ``[]`` clears it). Audited."""
    unknown = sorted(set(require) - set(REQUIRABLE))
    if unknown:
        raise FaceSearchError(f"cannot require {unknown}; requirable: {', '.join(REQUIRABLE)}", code="bad_request")
    with immediate(catalog) as s:
        settings = update_collection_settings(s, collection, {"require": sorted(set(require)) or None})
        record(
            catalog,
            GovernanceEvent("collection_require", {"collection": collection, "require": sorted(set(require))}),
            actor_name(actor),
            session=s,
        )
    return settings
