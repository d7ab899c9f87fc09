"""Erasure: delete photos or faces on request, and give the requester a receipt.

``erase`` takes any mix of face ids, image ids, a source (path or URL) and a whole collection,
deletes them in one transaction together with its audit entry, then drops their vectors from the
index. Face ids erase single faces (other people in the same photo stay); the other criteria erase
whole images. Embeddings and thumbnails live in the face rows and go with them. In a SQLite catalog
deleted pages are zeroed (``secure_delete``) and the WAL is truncated; a PostgreSQL catalog gives no
such guarantee until VACUUM, and not fully even then (see removal.py).

The receipt lists what was erased: image ids, face ids, sources, photo SHA-256s and counts. What
goes is resolved by deletion_plan.py, the same resolution :func:`preview_erasure` shows beforehand.
An erasure that finds nothing raises ``NothingMatched``: no receipt for nothing, no audit entry
(issue 12 §7: a receipt for a typo'd path read as proof of an erasure that never happened). The audit entry
holds the receipt id, the reason, ids and counts but not the sources: the audit log is append-only
and never erased, so it must not keep the paths or URLs that were just erased.
"""

from __future__ import annotations

import json
import logging
import uuid
from dataclasses import asdict, dataclass, field
from typing import Any

from sqlalchemy import delete

from facesearch.errors import FaceSearchError
from facesearch.governance.audit import utc_iso
from facesearch.governance.deletion_plan import DeletionPlan, checked_plan, erasure_targets, preview_erasure
from facesearch.governance.events import GovernanceEvent, record
from facesearch.governance.types import User, actor_name
from facesearch.governance.writers import WriterSource, writer_of
from facesearch.store.deletion import Removed
from facesearch.store.governance_schema import ErasureRow
from facesearch.store.schema import CollectionRow, RejectionRow

__all__ = ["ErasureReceipt", "erase", "preview_erasure"]

log = logging.getLogger(__name__)

MAX_REASON = 1000


@dataclass
class ErasureReceipt:
    receipt_id: str
    at: str
    actor: str
    reason: str
    request: dict[str, Any]  # the criteria as given
    image_ids: list[int] = field(default_factory=list)  # images deleted whole
    face_ids: list[int] = field(default_factory=list)  # every face deleted (with embedding, thumbnail, vector)
    kept_image_ids: list[int] = field(default_factory=list)  # images that lost faces but keep other people's
    sources: list[str] = field(default_factory=list)
    image_sha256: list[str] = field(default_factory=list)
    rejections_removed: int = 0
    collection_dropped: str | None = None
    audit_sequence: int | None = None
    audit_hash: str | None = None

    @property
    def counts(self) -> dict[str, int]:
        return {"images": len(self.image_ids), "faces": len(self.face_ids), "rejections": self.rejections_removed}

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "counts": self.counts}

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)


def erase(
    library: WriterSource,
    *,
    face_ids: list[int] | None = None,
    image_ids: list[int] | None = None,
    source: str | None = None,
    collection: str | None = None,
    actor: str | User | None,
    reason: str,
    expected: DeletionPlan | None = None,
) -> ErasureReceipt:
    """Erase faces, images, a source and/or a collection (at least one); returns the receipt. Audited.

    ``collection`` erases every image in it and drops the collection with its rejections. ``source``
    is matched like ``Library.remove``: a local path resolved to an absolute one, a URL as given;
    rejections recorded for that source are erased too. ``expected``: the plan an operator confirmed
    (``preview_erasure``); if the library changed since, nothing is erased (``PlanChanged``).
    Nothing to erase is ``NothingMatched``.
    """
    if not any(x for x in (face_ids, image_ids, source, collection)):
        raise FaceSearchError("erase needs face_ids, image_ids, source or collection", code="bad_request")
    check_reason(reason)
    by = actor_name(actor)
    request = {
        "face_ids": sorted({int(i) for i in face_ids or []}),
        "image_ids": sorted({int(i) for i in image_ids or []}),
        "source": source,
        "collection": collection,
    }
    receipt = ErasureReceipt(uuid.uuid4().hex, utc_iso(), by, reason.strip(), request)
    writer = writer_of(library)
    catalog = writer.catalog
    with writer.deleting() as deletion:
        s = deletion.session
        targets = erasure_targets(
            s, face_ids=request["face_ids"], image_ids=request["image_ids"], source=source, collection=collection
        )
        checked_plan(s, targets, expected)
        deletion.images(targets.image_ids)
        deletion.faces(targets.face_ids)
        removed = deletion.removed
        collection_id = targets.collection_id
        if targets.rejection_sources:
            receipt.rejections_removed += _delete_rejections(s, RejectionRow.source.in_(targets.rejection_sources))
        if collection_id is not None:
            receipt.rejections_removed += _delete_rejections(s, RejectionRow.collection_id == collection_id)
            s.execute(delete(CollectionRow).where(CollectionRow.id == collection_id))
            receipt.collection_dropped = collection
        _fill(receipt, removed)
        entry = record(catalog, GovernanceEvent("erase", _audit_details(receipt)), by, session=s)
        s.add(ErasureRow(receipt_id=receipt.receipt_id, at=receipt.at, audit_seq=entry.seq))  # evidence: verify
    receipt.audit_sequence, receipt.audit_hash = entry.seq, entry.hash
    log.info("erasure %s: %d images, %d faces", receipt.receipt_id, len(receipt.image_ids), len(receipt.face_ids))
    return receipt


def check_reason(reason: object) -> str:
    """The reason an erasure states (kept in the audit log): 1 to MAX_REASON characters, not blank."""
    if not isinstance(reason, str) or not reason.strip() or len(reason) > MAX_REASON:
        raise FaceSearchError(f"erase needs a reason (1 to {MAX_REASON} characters)", code="bad_request")
    return reason.strip()


def _delete_rejections(session: Any, condition: Any) -> int:
    return int(session.execute(delete(RejectionRow).where(condition)).rowcount or 0)


def _fill(receipt: ErasureReceipt, removed: Removed) -> None:
    receipt.image_ids = sorted(removed.image_ids)
    receipt.face_ids = sorted(removed.face_ids)
    receipt.kept_image_ids = sorted(removed.kept_image_ids)
    receipt.sources = removed.sources
    receipt.image_sha256 = removed.image_sha256


def _audit_details(receipt: ErasureReceipt) -> dict[str, Any]:
    return {
        "receipt_id": receipt.receipt_id,
        "reason": receipt.reason,
        "image_ids": receipt.image_ids,
        "face_ids": receipt.face_ids,
        "kept_image_ids": receipt.kept_image_ids,
        "collection": receipt.collection_dropped,
        "counts": receipt.counts,
    }
