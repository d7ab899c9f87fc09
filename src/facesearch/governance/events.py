"""Typed audit events, recorded through one function.

Every action the audit log keeps is a dataclass here: its fields are what the entry's details hold
(ids, counts, hashes; never a photo, an embedding, or the paths of erased photos), its ``action``
names it, and searches and comparisons carry the :class:`SearchPurpose` they were run for. Whoever
records an event calls :func:`record`; nobody assembles an entry's fields by hand, so two callers
of one action cannot disagree on what it holds, and a new kind of event is one class away.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any, ClassVar

from sqlalchemy.orm import Session

from facesearch.governance.audit import AuditEntry, AuditLog
from facesearch.governance.types import SearchPurpose, User
from facesearch.store.catalog import Catalog


@dataclass(frozen=True)
class AuditEvent:
    """An event of the audit log. ``action`` names it; :meth:`details` is the JSON the entry holds."""

    action: ClassVar[str] = ""
    _not_details: ClassVar[frozenset[str]] = frozenset({"stated", "case_id"})

    def details(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self) if f.name not in self._not_details}

    @property
    def purpose(self) -> SearchPurpose | None:
        return getattr(self, "stated", None)

    @property
    def case(self) -> str | None:
        return getattr(self, "case_id", None)


def record(catalog: Catalog, event: AuditEvent, actor: str | User | None, session: Session | None = None) -> AuditEntry:
    """Append ``event`` to the audit log: in its own transaction, or in ``session`` (a serialised
    transaction, store/transactions.py) so that a change and its entry commit together."""
    log = AuditLog(catalog)
    if session is None:
        return log.append(actor, event.action, event.details(), case_id=event.case, purpose=event.purpose)
    return log.append_in(session, actor, event.action, event.details(), case_id=event.case, purpose=event.purpose)


# searching ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SearchEvent(AuditEvent):
    """A search: the probe's hash and what was shown (per probe face: box, face ids in rank order, matches)."""

    action: ClassVar[str] = "search"
    stated: SearchPurpose
    probe_sha256: str
    collection: str | None
    top_k: int
    max_fmr: float | None
    threshold: float
    score: str
    model: str
    gallery_size: int
    faces: list[dict[str, Any]]
    max_fpir: float | None = None  # the 1:N operating point the labels were set at (search/labels.py)
    probes_sha256: list[str] | None = None  # every photo of a probe, several when fused as one person (issue 13)
    calibration: str | None = None  # where the labels' calibration came from (issue 13: the case report states it)
    # Issue 13: the date range searched and the undated faces it left out; the indexed face used as the probe
    # (probe_sha256 is then its photo's). Recorded only when used, so other searches' entries are unchanged.
    taken_after: str | None = None
    taken_before: str | None = None
    undated_excluded: int | None = None
    probe_face_id: int | None = None

    def details(self) -> dict[str, Any]:
        optional = ("taken_after", "taken_before", "undated_excluded", "probe_face_id")
        return {k: v for k, v in super().details().items() if k not in optional or v is not None}


@dataclass(frozen=True)
class VerifyEvent(AuditEvent):
    """A comparison of two photos: their hashes and the outcome."""

    action: ClassVar[str] = "verify"
    stated: SearchPurpose
    photos_sha256: list[str]
    same_person: bool
    similarity: float
    fmr: float | None


@dataclass(frozen=True)
class FaceViewEvent(AuditEvent):
    """An indexed face (its metadata or thumbnail) looked at for a case and a purpose."""

    action: ClassVar[str] = "face_view"
    stated: SearchPurpose
    face_id: int
    view: str


@dataclass(frozen=True)
class ProbeViewEvent(AuditEvent):
    """The kept crop of a case search's probe face looked at (issue 13: a blind second reviewer "sees the
    probe"): like a face view, a look at a face, audited; the search and probe face it belongs to."""

    action: ClassVar[str] = "probe_view"
    case_id: str
    search_seq: int
    face: int
    probe_sha256: str


@dataclass(frozen=True)
class ReviewEvent(AuditEvent):
    """A person's conclusion about a candidate face, for a case."""

    action: ClassVar[str] = "review"
    case_id: str
    face_id: int
    decision: str
    note: str


@dataclass(frozen=True)
class CaseEvent(AuditEvent):
    """A case created or closed (issue 13): ``kind`` is ``case_create`` or ``case_close``; ``facts`` what
    the case row holds then (purpose, legal basis, users), so the log alone tells the case's story."""

    kind: str
    case_id: str
    facts: dict[str, Any]

    KINDS: ClassVar[frozenset[str]] = frozenset({"case_create", "case_close"})

    def __post_init__(self) -> None:
        if self.kind not in self.KINDS:
            raise ValueError(f"unknown case event {self.kind!r}")

    @property
    def action(self) -> str:  # type: ignore[override]
        return self.kind

    def details(self) -> dict[str, Any]:
        return dict(self.facts)


@dataclass(frozen=True)
class DecisionEvent(AuditEvent):
    """A decision about a candidate face of a case (issue 13): ``stage`` ``first``, or ``second`` (a
    different user's blind decision on a confirmed lead, naming the first by ``first_id``).

    Everything a case's decisions are rebuilt from by an auditor who has only ``audit export``.
    """

    action: ClassVar[str] = "decision"
    case_id: str
    decision_id: int
    face_id: int
    search_seq: int | None
    stage: str
    first_id: int | None
    decision: str
    note: str


@dataclass(frozen=True)
class ReportEvent(AuditEvent):
    """A case report exported (issue 13): its format, the SHA-256 and size of its final bytes, and the
    chain head it states. A report holds biometric crops, so producing one is audited like a view; and
    ``case verify-report`` finds a report's entry by its SHA-256."""

    action: ClassVar[str] = "case_report"
    case_id: str
    format: str
    sha256: str
    size: int
    head_seq: int | None
    head_hash: str | None


# the library's contents -----------------------------------------------------------------------------


@dataclass(frozen=True)
class IngestStartEvent(AuditEvent):
    """An ingest about to store photos (collection, how many sources to read, the engine).

    Written before its first photo is committed; every image it stores carries this entry's sequence
    number, so photos left by an ingest killed midway still point to who added them and when.
    """

    action: ClassVar[str] = "ingest_begin"
    plan: dict[str, Any]

    def details(self) -> dict[str, Any]:
        return dict(self.plan)


@dataclass(frozen=True)
class IngestEvent(AuditEvent):
    """One ingest run's counts (the report without its rejected list: only its length); ``started``
    names its :class:`IngestStartEvent`."""

    action: ClassVar[str] = "ingest"
    report: dict[str, Any]

    def details(self) -> dict[str, Any]:
        return dict(self.report)


@dataclass(frozen=True)
class IngestJobEvent(AuditEvent):
    """A server's ingest job queued or finished (``stage``: "ingest_queued", "ingest_done", ...)."""

    stage: str
    job_id: str
    kind: str
    collection: str
    outcome: dict[str, Any] = field(default_factory=dict)

    @property
    def action(self) -> str:  # type: ignore[override]
        return self.stage

    def details(self) -> dict[str, Any]:
        return {"job_id": self.job_id, "kind": self.kind, "collection": self.collection, **self.outcome}


@dataclass(frozen=True)
class RemovalEvent(AuditEvent):
    """Photos removed by image id, source or collection (ids only)."""

    action: ClassVar[str] = "remove"
    images: list[int]
    faces: list[int]
    by: str


@dataclass(frozen=True)
class GovernanceEvent(AuditEvent):
    """Erasure, opt-out, retention, user and collection changes: ``kind`` is the action, ``facts`` its
    details as the governance module that ran it states them (ids and counts, never erased paths)."""

    kind: str
    facts: dict[str, Any]

    KINDS: ClassVar[frozenset[str]] = frozenset(
        {
            "erase",
            "optout_add",
            "optout_sweep",
            "optout_remove",
            "optout_preview",
            "retention_purge",
            "user_add",
            "user_revoke",
            "user_rotate_key",
            "user_role",
            "collection_create",
            "collection_require",
            "collection_retention",
            "audit_export",
        }
    )

    def __post_init__(self) -> None:
        if self.kind not in self.KINDS:
            raise ValueError(f"unknown governance event {self.kind!r}")

    @property
    def action(self) -> str:  # type: ignore[override]
        return self.kind

    def details(self) -> dict[str, Any]:
        return dict(self.facts)


@dataclass(frozen=True)
class UploadsSweptEvent(AuditEvent):
    """Uploaded files that no image row and no pending job referred to, deleted when a server started
    (what a server killed during an upload job leaves behind): how many, and the SHA-256 their names
    carry (never a path; job manifests and temporary files are only counted)."""

    action: ClassVar[str] = "uploads_swept"
    files: int
    sha256: list[str]


@dataclass(frozen=True)
class WatchEvent(AuditEvent):
    """A case's watchlist (issue 13): ``kind`` is ``watch_add``, ``watch_remove`` or ``watch_alert`` (a newly
    stored face matched the watched person); ``facts`` ids, hashes, scores and dates (never an embedding,
    a photo, a source path or a webhook's path), so an auditor rebuilds every watch and alert from the log."""

    kind: str
    case_id: str
    facts: dict[str, Any]

    KINDS: ClassVar[frozenset[str]] = frozenset({"watch_add", "watch_remove", "watch_alert"})

    def __post_init__(self) -> None:
        if self.kind not in self.KINDS:
            raise ValueError(f"unknown watch event {self.kind!r}")

    @property
    def action(self) -> str:  # type: ignore[override]
        return self.kind

    def details(self) -> dict[str, Any]:
        return dict(self.facts)


@dataclass(frozen=True)
class PeopleEvent(AuditEvent):
    """People in the archive (issue 14): grouping faces into persons is biometric processing of everyone in
    it, so each full clustering, incremental assignment, reading and correction is an entry. ``kind`` names
    it; ``stated`` the case and purpose (None only for ``people_assign``, which an ingest's writer runs);
    ``facts`` ids and counts (never a name a person was given before, an embedding or a photo)."""

    kind: str
    stated: SearchPurpose | None
    facts: dict[str, Any]

    KINDS: ClassVar[frozenset[str]] = frozenset(
        {
            "people_cluster",
            "people_assign",
            "people_read",
            "people_name",
            "people_merge",
            "people_split",
            "people_hide",
            "people_not_person",
            "people_collection",
        }
    )

    def __post_init__(self) -> None:
        if self.kind not in self.KINDS:
            raise ValueError(f"unknown people event {self.kind!r}")

    @property
    def action(self) -> str:  # type: ignore[override]
        return self.kind

    def details(self) -> dict[str, Any]:
        return dict(self.facts)
