"""Retention: a collection may keep photos for a limited time, then they are purged.

A collection's settings JSON may hold ``retention_days``; :func:`purge_expired` deletes the images
of such collections that were *indexed* more than that many days ago (``ImageRow.ingested_at``, in
UTC: the time the library began holding the photo, not when it was taken), with their faces,
embeddings, thumbnails and vectors, and the collection's rejection records older than that. Run it
from a daily job; every run is audited, even one that purges nothing, so the log shows the policy
being applied. A purged file still in an indexed folder comes back if that folder is indexed again:
retention governs what the library holds, not the sources.

The audit log itself is never purged (it holds ids, counts and hashes, not photos).
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import delete, select

from facesearch.errors import FaceSearchError
from facesearch.governance.audit import utc_iso
from facesearch.governance.db import immediate, update_collection_settings
from facesearch.governance.events import GovernanceEvent, record
from facesearch.governance.types import User, actor_name
from facesearch.governance.writers import WriterSource, writer_of
from facesearch.store.catalog import Catalog
from facesearch.store.schema import CollectionRow, ImageRow, RejectionRow

log = logging.getLogger(__name__)

MAX_RETENTION_DAYS = 36_500


@dataclass
class CollectionPurge:
    collection: str
    retention_days: float
    cutoff: str  # images indexed before this (UTC) were purged
    image_ids: list[int] = field(default_factory=list)
    face_ids: list[int] = field(default_factory=list)
    sources: list[str] = field(default_factory=list)
    rejections_removed: int = 0


@dataclass
class RetentionReceipt:
    at: str
    now: str
    actor: str
    collections: list[CollectionPurge] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)  # collection -> why its setting was not applied
    audit_sequence: int | None = None

    @property
    def image_ids(self) -> list[int]:
        return sorted(i for c in self.collections for i in c.image_ids)

    @property
    def face_ids(self) -> list[int]:
        return sorted(i for c in self.collections for i in c.face_ids)

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "images": len(self.image_ids), "faces": len(self.face_ids)}


def _days(value: Any) -> float:
    """A valid retention period in days, or ValueError (bools and non-positive numbers are refused)."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value <= MAX_RETENTION_DAYS:
        raise ValueError(f"retention_days must be a number of days from 1 to {MAX_RETENTION_DAYS}; got {value!r}")
    return float(value)


def set_retention(catalog: Catalog, collection: str, days: float | None, *, actor: str | User | None = None) -> dict:
    """Set (or with None, clear) a collection's retention period in days. Audited."""
    if days is not None:
        try:
            days = _days(days)
        except ValueError as exc:
            raise FaceSearchError(str(exc), code="bad_request") from exc
    with immediate(catalog) as s:
        settings = update_collection_settings(s, collection, {"retention_days": days})
        record(
            catalog,
            GovernanceEvent("collection_retention", {"collection": collection, "retention_days": days}),
            actor_name(actor),
            session=s,
        )
    return settings


def purge_expired(
    library: WriterSource, now: datetime | None = None, *, actor: str | User | None = None
) -> RetentionReceipt:
    """Delete images held longer than their collection's ``retention_days``; returns a receipt. Audited.

    ``now`` (default: the current time; naive means UTC) is there for tests and for re-running a
    missed purge as of a given day.
    """
    now = now or datetime.now(UTC)
    now_utc = (now if now.tzinfo else now.replace(tzinfo=UTC)).astimezone(UTC).replace(tzinfo=None)
    by = actor_name(actor)
    receipt = RetentionReceipt(at=utc_iso(), now=utc_iso(now_utc), actor=by)
    writer = writer_of(library)
    with writer.deleting() as deletion:
        s = deletion.session
        for row in s.scalars(select(CollectionRow).order_by(CollectionRow.name)).all():
            value = (row.settings or {}).get("retention_days")
            if value is None:
                continue
            try:
                days = _days(value)
            except ValueError as exc:
                log.error("collection %s: %s; not purged", row.name, exc)
                receipt.skipped[row.name] = str(exc)
                continue
            cutoff = now_utc - timedelta(days=days)
            expired = s.scalars(
                select(ImageRow.id).where(ImageRow.collection_id == row.id, ImageRow.ingested_at < cutoff)
            ).all()
            removed = deletion.images(expired)
            rejections = s.execute(
                delete(RejectionRow).where(RejectionRow.collection_id == row.id, RejectionRow.at < cutoff)
            ).rowcount
            receipt.collections.append(
                CollectionPurge(
                    row.name,
                    days,
                    utc_iso(cutoff),
                    removed.image_ids,
                    removed.face_ids,
                    removed.sources,
                    int(rejections or 0),
                )
            )
        entry = record(writer.catalog, GovernanceEvent("retention_purge", _audit_details(receipt)), by, session=s)
    receipt.audit_sequence = entry.seq
    log.info("retention purge: %d images, %d faces", len(receipt.image_ids), len(receipt.face_ids))
    return receipt


def _audit_details(receipt: RetentionReceipt) -> dict[str, Any]:
    return {
        "now": receipt.now,
        "collections": [
            {
                "collection": c.collection,
                "retention_days": c.retention_days,
                "cutoff": c.cutoff,
                "image_ids": c.image_ids,
                "face_ids": c.face_ids,
                "rejections_removed": c.rejections_removed,
            }
            for c in receipt.collections
        ],
        "skipped": receipt.skipped,
    }
