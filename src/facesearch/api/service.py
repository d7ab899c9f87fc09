"""The governance glue between the routes and the library: one function per operation.

Routes parse and check the request, then call one function here with the served
:class:`~facesearch.library.Library`; these functions apply the rules that must hold whoever calls.
``Library.search``/``verify``/``index`` check the stated purpose, keep opted-out people out and
write their audit entries themselves (``purpose=``, ``actor=``); what the API adds is here: the
audit entry of a search or comparison is found again so the response can name it, views of faces
and reviews are audited, and the library's own copies of uploaded photos are deleted once erased.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

from facesearch.api.errors import NotFound
from facesearch.governance import (
    ROLE_PERMISSIONS,
    AuditEntry,
    AuditLog,
    AuditVerification,
    ErasureReceipt,
    OptOutPreview,
    OptOutReceipt,
    SearchPurpose,
    User,
    add_user,
    erase,
    list_users,
    revoke_user,
    rotate_key,
    set_requirements,
    set_retention,
    set_role,
)
from facesearch.governance.audit import canonical_json
from facesearch.governance.collections import create_collection as governance_create_collection
from facesearch.governance.errors import PurposeRequired
from facesearch.governance.events import GovernanceEvent, ReviewEvent, record
from facesearch.governance.purpose import clean_case_id
from facesearch.library import Library
from facesearch.search.results import SearchResult, VerifyResult
from facesearch.store.catalog import Catalog
from facesearch.store.schema import FaceRow

log = logging.getLogger(__name__)

EXPORT_BATCH = 1000


# search and compare -------------------------------------------------------------------------------


def search(
    library: Library,
    probe: bytes | list[bytes] | None,
    *,
    purpose: SearchPurpose | None,
    actor: User,
    top_k: int = 20,
    collection: str | None = None,
    face: int | None = None,
    max_fmr: float | None = None,
    max_fpir: float | None = None,
    same_person: bool = False,
    taken_after: str | None = None,
    taken_before: str | None = None,
    probe_face_id: int | None = None,
) -> SearchResult:
    """Search for a stated purpose (always required over the API).

    The library checks the purpose against the collections' demands, drops opted-out people and
    audits the probe's SHA-256 and the faces shown; the result names its audit entry.
    """
    if purpose is None:
        raise PurposeRequired("a search needs a case id and a purpose")
    return library.search(
        probe,
        top_k=top_k,
        collection=collection,
        face=face,
        max_fmr=max_fmr,
        max_fpir=max_fpir,
        purpose=purpose,
        actor=actor,
        same_person=same_person,
        taken_after=taken_after,
        taken_before=taken_before,
        probe_face_id=probe_face_id,
    )


def verify(
    library: Library, a: bytes, b: bytes, *, purpose: SearchPurpose | None, actor: User, max_fmr: float | None = None
) -> VerifyResult:
    """Compare two photos for a stated purpose (audited by the library, which names the entry in the result)."""
    if purpose is None:
        raise PurposeRequired("a comparison needs a case id and a purpose")
    return library.verify(a, b, max_fmr=max_fmr, purpose=purpose, actor=actor)


# faces and reviews --------------------------------------------------------------------------------


def view_face(
    library: Library, face_id: int, *, purpose: SearchPurpose, actor: User, thumbnail: bool, photo: bool = False
) -> FaceRow:
    """A face's row, for its metadata, thumbnail or whole photo; purpose-bound and audited by the search path
    (search/service.py)."""
    row = library.searches.view_face(face_id, purpose=purpose, actor=actor, thumbnail=thumbnail, photo=photo)
    if row is None:
        raise NotFound(f"no face {face_id}")
    return row


def review(catalog: Catalog, *, case_id: str, face_id: int, decision: str, note: str, actor: User) -> AuditEntry:
    """Record that a person reviewed a candidate face for a case, and what they concluded (in the audit log)."""
    case_id = clean_case_id(case_id)  # normalised and checked as every case id is (governance/purpose.py)
    if not catalog.faces_by_ids([face_id]):
        raise NotFound(f"no face {face_id} (erased, or never indexed)")
    return record(catalog, ReviewEvent(case_id, face_id, decision, note), actor)


def reviews(catalog: Catalog, case_id: str, *, after: int | None, limit: int) -> list[AuditEntry]:
    return AuditLog(catalog).entries(action="review", case_id=case_id, after=after, limit=limit)


# collections --------------------------------------------------------------------------------------


def collections(library: Library) -> dict[str, Any]:
    stats = library.catalog.stats()
    settings = {row.name: dict(row.settings or {}) for row in library.catalog.collections()}
    for item in stats["collections"]:
        item["settings"] = settings.get(item["name"], {})
    return {**stats, "model": library.model_info.key, "warnings": library.warnings()}


def create_collection(
    catalog: Catalog, name: str, *, require: list[str], retention_days: float | None, actor: User
) -> None:
    """Create a collection with its search requirements and retention (governance: admins only, audited);
    409 when the name is taken."""
    governance_create_collection(catalog, name, require_fields=require, retention_days=retention_days, actor=actor)


def configure_collection(
    catalog: Catalog, name: str, *, require: list[str], retention_days: float | None, actor: User
) -> None:
    """Set what searches of a collection must state, and how long it keeps photos (both audited)."""
    if catalog.collection_id(name, create=False) is None:
        raise NotFound(f"no collection named {name!r}")
    set_requirements(catalog, name, sorted(set(require)), actor=actor)
    set_retention(catalog, name, retention_days, actor=actor)


# removal, erasure, opt-out ------------------------------------------------------------------------


def erase_items(
    library: Library,
    *,
    actor: User,
    reason: str,
    face_ids: list[int] | None = None,
    image_ids: list[int] | None = None,
    source: str | None = None,
    collection: str | None = None,
) -> ErasureReceipt:
    """Erase (with a receipt and an audit entry); the library deletes its own copies of erased uploads too."""
    receipt = erase(
        library,
        face_ids=face_ids,
        image_ids=image_ids,
        source=source,
        collection=collection,
        actor=actor,
        reason=reason,
    )
    return receipt


def add_optout(library: Library, photos: list[bytes], *, note: str, actor: User) -> OptOutReceipt:
    """Register an opt-out from photos of a person (kept: one embedding and the hash of each) and remove
    the person's faces."""
    return library.optouts.add(photos, note, actor=actor)


def preview_optout(library: Library, photos: list[bytes], *, actor: User) -> OptOutPreview:
    """What an opt-out with these photos would remove now; nothing changes (audited as a preview)."""
    return library.optouts.preview(photos, actor=actor)


# users --------------------------------------------------------------------------------------------


def create_user(catalog: Catalog, name: str, role: str, *, actor: User) -> tuple[User, str]:
    return add_user(catalog, name, role, actor=actor)


def users(catalog: Catalog) -> list[User]:
    return list_users(catalog)


def revoke(catalog: Catalog, name: str, *, actor: User) -> User:
    """Revoke a user's key; governance refuses the last active admin (``last_admin``, HTTP 409)."""
    return revoke_user(catalog, name, actor=actor)


def change_role(catalog: Catalog, name: str, role: str, *, actor: User) -> User:
    """Give a user another role; governance refuses demoting the last active admin (``last_admin``, HTTP 409)."""
    return set_role(catalog, name, role, actor=actor)


def new_key(catalog: Catalog, name: str, *, actor: User) -> tuple[User, str]:
    return rotate_key(catalog, name, actor=actor)


def allowed_actions(user: User) -> list[str]:
    return sorted(action for action, roles in ROLE_PERMISSIONS.items() if user.role in roles)


# audit --------------------------------------------------------------------------------------------


def audit_entries(catalog: Catalog, **filters: Any) -> list[AuditEntry]:
    return AuditLog(catalog).entries(**filters)


def verify_audit(catalog: Catalog, anchor: tuple[int, str] | None) -> AuditVerification:
    return AuditLog(catalog).verify(anchor=anchor)


def export_audit(catalog: Catalog, *, after: int, actor: User) -> Iterator[str]:
    """The log as JSON Lines (the format of ``AuditLog.export_jsonl``), after auditing the export itself.

    The export's own entry is appended first, so the export ends with it; lines are produced page
    by page, so a long log is never held in memory.
    """
    log_ = AuditLog(catalog)
    record(catalog, GovernanceEvent("audit_export", {"after": after, "interface": "api"}), actor)

    def lines() -> Iterator[str]:
        last = after
        while True:
            page = log_.entries(after=last, limit=EXPORT_BATCH)
            if not page:
                return
            for entry in page:
                yield canonical_json(entry.to_dict()) + "\n"
            last = page[-1].seq

    return lines()
