"""The governance tables, declared on the catalog's own ``Base`` so they live in the catalog's database.

Their DDL (and the audit log's append-only triggers) is in the catalog's migrations
(store/migrations/versions/): a change here needs a new revision there.

Nothing here stores a secret or a photo: API keys are kept as salted scrypt hashes, opt-outs as one
embedding plus the SHA-256 of the photo it came from, audit entries as canonical JSON that holds
ids, counts and hashes (never a probe image or an embedding).
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, Float, ForeignKey, Index, LargeBinary, String, Table, Text
from sqlalchemy.orm import Mapped, mapped_column

from facesearch.store.schema import ID64, Base, utcnow


class UserRow(Base):
    """A person or service allowed to use the library, with one role and one API key (hashed)."""

    __tablename__ = "governance_users"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    # The name as compared (NFKC, case-folded; governance/users.py name_key): "Admin" and "admin" are
    # one name. Unique, so that two processes cannot add both. Migration 0004_users.
    name_key: Mapped[str] = mapped_column(String(120), unique=True)
    role: Mapped[str] = mapped_column(String(20))
    key_id: Mapped[str] = mapped_column(String(32), unique=True)  # not secret: finds the row for a key
    key_hash: Mapped[str] = mapped_column(String(300))  # "scrypt$n$r$p$salt$hash", base64 parts
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    created_by: Mapped[str] = mapped_column(String(200))
    revoked_at: Mapped[datetime | None] = mapped_column(default=None)
    audit_seq: Mapped[int | None] = mapped_column(ID64)  # the user_add entry (NULL: made before migration 0003)


class AuditEntryRow(Base):
    """One audit entry. ``hash`` = SHA-256(prev_hash + canonical JSON of the other fields)."""

    __tablename__ = "audit_log"
    __table_args__ = (
        Index("ix_audit_log_at", "at"),
        Index("ix_audit_log_actor", "actor"),
        Index("ix_audit_log_action", "action"),
        Index("ix_audit_log_case_id", "case_id"),
    )
    seq: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
    at: Mapped[str] = mapped_column(String(40))  # ISO 8601, UTC, microseconds: sorts as text
    actor: Mapped[str] = mapped_column(String(200))
    action: Mapped[str] = mapped_column(String(50))
    case_id: Mapped[str | None] = mapped_column(String(100))
    purpose: Mapped[str | None] = mapped_column(String(1000))
    details: Mapped[str] = mapped_column(Text)  # canonical JSON, hashed as this exact text
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64))


class AuditHeadRow(Base):
    """One row: the last sequence number and hash, written in the same transaction as each entry.

    The chain alone cannot show that its last entries were deleted; the head can.
    """

    __tablename__ = "audit_head"
    id: Mapped[int] = mapped_column(primary_key=True)  # always 1
    seq: Mapped[int]
    hash: Mapped[str] = mapped_column(String(64))
    count: Mapped[int]


class OptOutRow(Base):
    """A person who asked to be removed and kept out: one embedding, never the photo."""

    __tablename__ = "optouts"
    id: Mapped[int] = mapped_column(primary_key=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    created_by: Mapped[str] = mapped_column(String(200))
    note: Mapped[str] = mapped_column(String(1000), default="")
    photo_sha256: Mapped[str] = mapped_column(String(64))
    model_key: Mapped[str] = mapped_column(String(100))  # embeddings compare only within one recipe
    embedding: Mapped[bytes] = mapped_column(LargeBinary)
    audit_seq: Mapped[int | None] = mapped_column(ID64)  # the optout_add entry (NULL: made before migration 0003)


class ErasureRow(Base):
    """That an erasure happened, and which audit entry holds its receipt: ids only, never what was erased.

    Why kept: an erasure deletes the rows that pointed to earlier entries; this row keeps pointing to
    the erasure's own entry, so a log cut back to before the erasure fails verification.
    """

    __tablename__ = "erasures"
    id: Mapped[int] = mapped_column(primary_key=True)
    receipt_id: Mapped[str] = mapped_column(String(32), unique=True)
    at: Mapped[str] = mapped_column(String(40))
    audit_seq: Mapped[int] = mapped_column(ID64)


class CaseRow(Base):
    """A case (issue 13): what searches, verifies and decisions belong to; open until closed, then frozen.

    ``case_key`` is the id as compared (NFKC, case-folded; governance/cases.py): "C-1" and "c-1" are one
    case, under a unique constraint. Migration 0005_cases.
    """

    __tablename__ = "cases"
    id: Mapped[int] = mapped_column(primary_key=True)
    case_id: Mapped[str] = mapped_column(String(100))  # as stated, cleaned (governance/purpose.py clean_case_id)
    case_key: Mapped[str] = mapped_column(String(120), unique=True)
    purpose: Mapped[str] = mapped_column(String(1000))
    legal_basis: Mapped[str | None] = mapped_column(String(500), default=None)
    status: Mapped[str] = mapped_column(String(10), default="open")  # open | closed
    users: Mapped[list] = mapped_column(JSON, default=list)  # names of the users working it
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    created_by: Mapped[str] = mapped_column(String(200))
    closed_at: Mapped[datetime | None] = mapped_column(default=None)
    closed_by: Mapped[str | None] = mapped_column(String(200), default=None)
    audit_seq: Mapped[int] = mapped_column(ID64)  # the case_create entry


class DecisionRow(Base):
    """One person's decision about one candidate face of a case (issue 13), with its audit entry.

    ``stage`` is ``first`` (a reviewer's decision) or ``second`` (a different user's blind decision on
    a ``confirmed lead``, naming the first in ``first_id``). Face ids are kept as numbers only: an
    erased face leaves its decisions (and their audit entries) as they were.
    """

    __tablename__ = "case_decisions"
    __table_args__ = (Index("ix_case_decisions_case", "case_pk"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    case_pk: Mapped[int] = mapped_column(ForeignKey("cases.id"))
    face_id: Mapped[int] = mapped_column(ID64)
    search_seq: Mapped[int | None] = mapped_column(ID64, default=None)  # the search that showed the candidate
    stage: Mapped[str] = mapped_column(String(10))
    first_id: Mapped[int | None] = mapped_column(default=None)
    decision: Mapped[str] = mapped_column(String(20))
    note: Mapped[str] = mapped_column(String(1000), default="")
    reviewer: Mapped[str] = mapped_column(String(200))
    at: Mapped[datetime] = mapped_column(default=utcnow)
    audit_seq: Mapped[int] = mapped_column(ID64)  # the decision entry


class WatchRow(Base):
    """A case watching for one person (issue 13): the probe photos' embeddings, until ``expires_at``.

    ``embeddings`` holds one float32 vector per probe photo (``dim`` each, of the model ``model_key``);
    their L2-normalised mean is the template every newly stored face is compared with. A removed watch
    keeps its row (``removed_at``, ``removed_by``, ``removed_seq``) and stops. Migration 0006_watches.
    """

    __tablename__ = "watches"
    __table_args__ = (Index("ix_watches_case", "case_pk"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    case_pk: Mapped[int] = mapped_column(ForeignKey("cases.id"))
    label: Mapped[str] = mapped_column(String(200), default="")
    model_key: Mapped[str] = mapped_column(String(200))
    dim: Mapped[int] = mapped_column()
    embeddings: Mapped[bytes] = mapped_column(LargeBinary)
    photos_sha256: Mapped[list] = mapped_column(JSON, default=list)
    expires_at: Mapped[datetime] = mapped_column()
    webhook_url: Mapped[str | None] = mapped_column(String(2000), default=None)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    created_by: Mapped[str] = mapped_column(String(200))
    audit_seq: Mapped[int] = mapped_column(ID64)  # the watch_add entry
    removed_at: Mapped[datetime | None] = mapped_column(default=None)
    removed_by: Mapped[str | None] = mapped_column(String(200), default=None)
    removed_seq: Mapped[int | None] = mapped_column(ID64, default=None)  # the watch_remove entry


class AlertRow(Base):
    """A newly stored face that a watch's person matched at the search operating point (issue 13).

    Face and image ids are kept as numbers only (an erased face leaves its alert as it was, as
    decisions do). ``webhook_status``: None without a webhook, else ``pending``, ``delivered (HTTP n)``
    or ``failed: why``, set by the delivery thread. Migration 0006_watches.
    """

    __tablename__ = "alerts"
    __table_args__ = (Index("ix_alerts_case", "case_pk"), Index("ix_alerts_watch", "watch_id"))
    id: Mapped[int] = mapped_column(primary_key=True)
    watch_id: Mapped[int] = mapped_column(ForeignKey("watches.id"))
    case_pk: Mapped[int] = mapped_column(ForeignKey("cases.id"))
    face_id: Mapped[int] = mapped_column(ID64)
    image_id: Mapped[int] = mapped_column(ID64)
    score: Mapped[float] = mapped_column(Float)
    fmr: Mapped[float | None] = mapped_column(Float, default=None)
    label: Mapped[str] = mapped_column(String(20))
    at: Mapped[datetime] = mapped_column(default=utcnow)
    audit_seq: Mapped[int] = mapped_column(ID64)  # the watch_alert entry
    webhook_status: Mapped[str | None] = mapped_column(String(300), default=None)
    webhook_at: Mapped[datetime | None] = mapped_column(default=None)


class AlertMarkRow(Base):
    """Up to which alert a user has seen them (the web app's badge counts the alerts after it)."""

    __tablename__ = "alert_marks"
    user_key: Mapped[str] = mapped_column(String(200), primary_key=True)
    last_seen: Mapped[int] = mapped_column(default=0)
    at: Mapped[datetime] = mapped_column(default=utcnow)


def governance_tables() -> list[Table]:
    """The tables this module adds to the catalog (for ``create_all(tables=...)``)."""
    models = (UserRow, AuditEntryRow, AuditHeadRow, OptOutRow, ErasureRow, CaseRow, DecisionRow)
    models += (WatchRow, AlertRow, AlertMarkRow)  # type: ignore[assignment]
    return [m.__table__ for m in models]  # type: ignore[misc]
