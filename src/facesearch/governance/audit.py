"""An append-only, tamper-evident audit log in the catalog database.

Every entry records who (actor), did what (action), for which case and purpose, with details as
canonical JSON (ids, counts and hashes: the SHA-256 of a probe, never the probe). Entries form a
hash chain: ``hash = SHA-256(prev_hash + canonical JSON of the entry's other fields)``, the first
entry linking to 64 zeros. Editing, deleting, inserting or reordering an entry breaks the chain at
that entry, and :meth:`AuditLog.verify` names the first bad sequence number.

The chain alone cannot reveal that its *last* entries were removed (the shortened chain is still
valid), so a one-row ``audit_head`` table holds the last sequence number, hash and count, written in
the same transaction as each entry. Whoever can rewrite the whole database file can still forge a
consistent history: that is why ``verify(anchor=...)`` accepts a (sequence, hash) pair recorded
elsewhere earlier (an exported head, a printout, another system), and why exports should leave the
machine regularly.

Appends are serialised across processes by SQLite's write lock (``BEGIN IMMEDIATE``) or, on a
PostgreSQL catalog, by a transaction-scoped advisory lock (see :func:`facesearch.governance.db.immediate`):
two appends can never take the same sequence number or link to the same previous entry.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

import numpy as np
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from facesearch.errors import FaceSearchError
from facesearch.governance.db import ensure_governance_tables, immediate
from facesearch.governance.errors import AuditError
from facesearch.governance.types import SearchPurpose, User, actor_name
from facesearch.store.catalog import Catalog
from facesearch.store.governance_schema import (
    AlertRow,
    AuditEntryRow,
    AuditHeadRow,
    CaseRow,
    DecisionRow,
    ErasureRow,
    OptOutRow,
    UserRow,
    WatchRow,
)
from facesearch.store.schema import ImageRow

log = logging.getLogger(__name__)

GENESIS_HASH = "0" * 64
MAX_DETAILS_BYTES = 1 << 20
MAX_ACTION = 50
MAX_CASE_ID = 100
MAX_PURPOSE = 1000
_BATCH = 5000
_HASH = re.compile(r"^[0-9a-f]{64}$")
# Rows that exist only because something was done, each naming the audit entry that recorded it
# (migration 0003): what the catalog proves the log must hold.
_EVIDENCE = (
    ("image", ImageRow),
    ("user", UserRow),
    ("opt-out", OptOutRow),
    ("erasure", ErasureRow),
    ("case", CaseRow),
    ("decision", DecisionRow),
    ("watch", WatchRow),
    ("alert", AlertRow),
)


# canonical form and hashing ------------------------------------------------------------------------


def _jsonable(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, set | frozenset):
        return sorted(value)
    raise TypeError(f"{type(value).__name__} cannot go into the audit log")


def canonical_json(value: Any) -> str:
    """One text per value: sorted keys, no spaces, UTF-8, no NaN. What is hashed is exactly this text."""
    try:
        return json.dumps(
            value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False, default=_jsonable
        )
    except (TypeError, ValueError) as exc:
        raise FaceSearchError(f"audit details are not plain JSON: {exc}", code="bad_request") from exc


def utc_iso(moment: datetime | None = None) -> str:
    """UTC time as ISO 8601 with microseconds and ``+00:00``: one fixed width, so text order is time order.

    A naive datetime is taken to be UTC already (the catalog stores naive UTC).
    """
    moment = moment or datetime.now(UTC)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).isoformat(timespec="microseconds")


def entry_hash(
    prev_hash: str,
    seq: int,
    at: str,
    actor: str,
    action: str,
    case_id: str | None,
    purpose: str | None,
    details: str,
) -> str:
    """SHA-256 (hex) of the previous hash followed by the canonical JSON of every other field."""
    body = canonical_json(
        {
            "seq": seq,
            "at": at,
            "actor": actor,
            "action": action,
            "case_id": case_id,
            "purpose": purpose,
            "details": details,
        }
    )
    return hashlib.sha256((prev_hash + body).encode()).hexdigest()


# results ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class AuditEntry:
    seq: int
    at: str
    actor: str
    action: str
    case_id: str | None
    purpose: str | None
    details: dict[str, Any]
    prev_hash: str
    hash: str

    @classmethod
    def from_row(cls, row: AuditEntryRow) -> AuditEntry:
        try:
            details = json.loads(row.details)
        except ValueError:
            details = {"unparseable": row.details}
        return cls(row.seq, row.at, row.actor, row.action, row.case_id, row.purpose, details, row.prev_hash, row.hash)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def computed_hash(self, details_text: str | None = None) -> str:
        text = canonical_json(self.details) if details_text is None else details_text
        return entry_hash(self.prev_hash, self.seq, self.at, self.actor, self.action, self.case_id, self.purpose, text)


@dataclass(frozen=True)
class AuditVerification:
    """The outcome of re-computing the chain. ``first_bad_sequence`` is None when ok (or when only
    the head row is gone); ``problem`` says what was found, in words."""

    ok: bool
    entries: int
    first_bad_sequence: int | None = None
    problem: str | None = None
    head_sequence: int | None = None
    head_hash: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class _Chain:
    """Walks entries in order and reports the first one that does not fit the chain."""

    def __init__(self, start_seq: int = 1, prev_hash: str | None = GENESIS_HASH) -> None:
        self.expected = start_seq
        self.prev_hash = prev_hash  # None: take the first entry's link on trust (a partial export)
        self.count = 0
        self.last_seq = start_seq - 1
        self.last_hash = prev_hash

    def feed(self, entry: AuditEntry, details_text: str | None = None) -> tuple[int, str] | None:
        if entry.seq > self.expected:
            missing = f"{self.expected}" if entry.seq == self.expected + 1 else f"{self.expected}-{entry.seq - 1}"
            return self.expected, f"entry {missing} is missing (the entry after {self.expected - 1} is {entry.seq})"
        if entry.seq < self.expected:
            return entry.seq, f"entry {entry.seq} is out of order or repeated (expected {self.expected})"
        if self.prev_hash is not None and entry.prev_hash != self.prev_hash:
            return entry.seq, f"entry {entry.seq} does not link to the entry before it (removed, inserted or moved)"
        if entry.computed_hash(details_text) != entry.hash:
            return entry.seq, f"entry {entry.seq} does not match its hash (edited)"
        self.count += 1
        self.expected = entry.seq + 1
        self.prev_hash = self.last_hash = entry.hash
        self.last_seq = entry.seq
        return None


# the log ------------------------------------------------------------------------------------------


class AuditLog:
    """The audit log of one catalog. Cheap to construct; holds no connection of its own."""

    def __init__(self, catalog: Catalog) -> None:
        self.catalog = catalog
        ensure_governance_tables(catalog)

    # writing --------------------------------------------------------------------------------------

    def append(
        self,
        actor: str | User | None,
        action: str,
        details: dict[str, Any] | None = None,
        case_id: str | None = None,
        purpose: str | SearchPurpose | None = None,
    ) -> AuditEntry:
        """Append one entry in its own transaction and return it (sequence number and hash included).

        ``actor`` is a :class:`User`, a name, or None for the local operating-system user
        (``cli:<user>``). ``purpose`` may be a :class:`SearchPurpose`: its case id and purpose fill
        those fields and its legal basis goes into the details.
        """
        with immediate(self.catalog) as session:
            return self.append_in(session, actor, action, details, case_id=case_id, purpose=purpose)

    def append_in(
        self,
        session: Session,
        actor: str | User | None,
        action: str,
        details: dict[str, Any] | None = None,
        *,
        case_id: str | None = None,
        purpose: str | SearchPurpose | None = None,
    ) -> AuditEntry:
        """Append inside a caller's transaction, so that a change and its audit entry commit together.

        The session must come from :func:`facesearch.governance.db.immediate` (which holds SQLite's
        write lock, or PostgreSQL's advisory lock, before its first read); otherwise two processes
        could link to the same head.
        """
        details = dict(details or {})
        if purpose is not None and not isinstance(purpose, str):
            case_id = case_id or purpose.case_id
            if purpose.legal_basis:
                details.setdefault("legal_basis", purpose.legal_basis)
            purpose = purpose.purpose
        actor_text = actor_name(actor)
        _check_field("action", action, MAX_ACTION, required=True)
        _check_field("case_id", case_id, MAX_CASE_ID)
        _check_field("purpose", purpose, MAX_PURPOSE)
        text = canonical_json(details)
        if len(text.encode()) > MAX_DETAILS_BYTES:
            raise FaceSearchError("audit details are larger than 1 MiB", code="bad_request")
        head = session.get(AuditHeadRow, 1)
        if head is None:
            if session.scalar(select(func.count()).select_from(AuditEntryRow)):
                raise AuditError("the audit log's head row is missing although entries exist: run audit verify")
            head = AuditHeadRow(id=1, seq=0, hash=GENESIS_HASH, count=0)
            session.add(head)
        seq, at = head.seq + 1, utc_iso()
        digest = entry_hash(head.hash, seq, at, actor_text, action, case_id, purpose, text)
        row = AuditEntryRow(
            seq=seq,
            at=at,
            actor=actor_text,
            action=action,
            case_id=case_id,
            purpose=purpose,
            details=text,
            prev_hash=head.hash,
            hash=digest,
        )
        session.add(row)
        head.seq, head.hash, head.count = seq, digest, head.count + 1
        session.flush()
        log.debug("audit %d: %s by %s", seq, action, actor_text)
        return AuditEntry(seq, at, actor_text, action, case_id, purpose, json.loads(text), row.prev_hash, digest)

    # reading --------------------------------------------------------------------------------------

    def head(self) -> tuple[int, str] | None:
        """(last sequence number, its hash) as recorded in the head row: keep it elsewhere as an anchor."""
        with self.catalog.session() as s:
            row = s.get(AuditHeadRow, 1)
            return (row.seq, row.hash) if row else None

    def entries(
        self,
        since: datetime | str | None = None,
        until: datetime | str | None = None,
        actor: str | None = None,
        action: str | None = None,
        case_id: str | None = None,
        limit: int | None = 1000,
        after: int | None = None,
    ) -> list[AuditEntry]:
        """Entries in sequence order, filtered: ``since`` <= time < ``until``; ``after`` a sequence number (paging)."""
        query = select(AuditEntryRow).order_by(AuditEntryRow.seq)
        if since is not None:
            query = query.where(AuditEntryRow.at >= _as_iso(since))
        if until is not None:
            query = query.where(AuditEntryRow.at < _as_iso(until))
        if actor is not None:
            query = query.where(AuditEntryRow.actor == actor)
        if action is not None:
            query = query.where(AuditEntryRow.action == action)
        if case_id is not None:
            query = query.where(AuditEntryRow.case_id == case_id)
        if after is not None:
            query = query.where(AuditEntryRow.seq > after)
        if limit is not None:
            query = query.limit(limit)
        with self.catalog.session() as s:
            return [AuditEntry.from_row(r) for r in s.scalars(query)]

    def _rows(self, after: int = 0) -> Iterator[AuditEntryRow]:
        """Every row from sequence ``after`` + 1 on, in sequence order, in batches (the log may be long)."""
        with self.catalog.session() as s:
            while True:
                rows = list(
                    s.scalars(
                        select(AuditEntryRow).where(AuditEntryRow.seq > after).order_by(AuditEntryRow.seq).limit(_BATCH)
                    )
                )
                if not rows:
                    return
                yield from rows
                after = rows[-1].seq

    # checking and exporting -----------------------------------------------------------------------

    def verify(self, anchor: tuple[int, str] | None = None) -> AuditVerification:
        """Recompute the whole chain and compare its end with the head row (and with ``anchor`` if given).

        Detects an edited entry (its hash), a deleted, inserted or moved entry (a sequence gap or a
        broken link), and a deleted or edited tail (the head row). ``anchor`` = (sequence, hash)
        recorded earlier outside this database: the entry with that sequence must still have that hash.
        """
        # Read before the chain: an entry is committed before the rows that name it, so every entry named
        # here is in the chain read next unless it was deleted (no false alarm from a concurrent ingest).
        evidence = self._evidence()
        with self.catalog.session() as s:
            head = s.get(AuditHeadRow, 1)
            head_seq, head_hash, head_count = (head.seq, head.hash, head.count) if head else (None, None, None)
        chain = _Chain()
        anchor_seen = False

        def result(ok: bool, bad: int | None = None, problem: str | None = None) -> AuditVerification:
            if not ok:
                log.warning("audit log verification failed: %s", problem)
            return AuditVerification(ok, chain.count, bad, problem, head_seq, head_hash)

        for row in self._rows():
            entry = AuditEntry.from_row(row)
            found = chain.feed(entry, row.details)
            if found is not None:
                return result(False, *found)
            if anchor is not None and entry.seq == anchor[0]:
                anchor_seen = True
                if entry.hash != anchor[1]:
                    return result(False, entry.seq, f"entry {entry.seq} differs from the anchor recorded earlier")
        if head_seq is None:
            if chain.count:
                return result(False, None, "the audit head row is missing (the log's end cannot be checked)")
        elif head_seq > chain.last_seq:
            first = chain.last_seq + 1
            span = f"{first}" if first == head_seq else f"{first}-{head_seq}"
            return result(False, first, f"entry {span} is missing from the end (the head records {head_seq})")
        elif head_seq < chain.last_seq:
            return result(False, head_seq + 1, f"entries after {head_seq} were added without updating the head")
        elif head_hash != chain.last_hash:
            return result(False, chain.last_seq, f"entry {chain.last_seq} differs from the hash the head records")
        elif head_count != chain.count:
            return result(False, None, f"the head counts {head_count} entries, the chain has {chain.count}")
        if anchor is not None and not anchor_seen:
            return result(False, anchor[0], f"entry {anchor[0]} (the anchor) is no longer in the log")
        problem = _missing_evidence(evidence, chain.count, chain.last_seq)
        if problem is not None:
            return result(False, problem[0], problem[1])
        return result(True)

    def _evidence(self) -> tuple[dict[str, int], tuple[int, str] | None]:
        """Rows per kind of evidence, and the highest audit entry any of them names (with its kind)."""
        counts: dict[str, int] = {}
        highest: tuple[int, str] | None = None
        with self.catalog.session() as s:
            for what, table in _EVIDENCE:
                count, top = s.execute(select(func.count(), func.max(table.audit_seq)).select_from(table)).one()
                if count:
                    counts[what] = int(count)
                if top is not None and (highest is None or int(top) > highest[0]):
                    highest = (int(top), what)
        return counts, highest

    def export_jsonl(self, dest: str | Path | IO[str], after: int = 0) -> int:
        """Write entries (from sequence ``after`` + 1) as JSON Lines, with their hashes; returns the count.

        An export carries its own proof: :func:`verify_jsonl` rechecks the chain without the database.
        """
        if isinstance(dest, str | Path):
            with open(dest, "w", encoding="utf-8") as handle:
                return self.export_jsonl(handle, after)
        count = 0
        for row in self._rows(after):
            dest.write(canonical_json(AuditEntry.from_row(row).to_dict()) + "\n")
            count += 1
        return count


def _missing_evidence(
    evidence: tuple[dict[str, int], tuple[int, str] | None], entries: int, last_seq: int
) -> tuple[int | None, str] | None:
    """What the catalog proves happened that the log no longer holds: (first missing entry, words), or None.

    Why: with the append-only triggers dropped, a whole log (head row included), or its tail with the
    head rewritten, can be deleted and still leave a valid chain. Images, users, opt-outs and erasures
    remain, and each names the entry that created it; rows made before migration 0003 name none, but
    still prove that the log cannot be empty.
    """
    counts, highest = evidence
    if entries == 0 and counts:
        held = ", ".join(f"{n} {what} row{'s' if n != 1 else ''}" for what, n in counts.items())
        return 1, f"the audit log is empty, but the catalog holds {held}: its entries were deleted"
    if highest is not None and highest[0] > last_seq:
        seq, what = highest
        span = f"{last_seq + 1}" if seq == last_seq + 1 else f"{last_seq + 1}-{seq}"
        return last_seq + 1, (
            f"entry {span} is missing: an {what} row names entry {seq}, but the log ends at {last_seq} "
            "(entries were deleted from the end)"
        )
    return None


def parse_anchor(text: str) -> tuple[int, str]:
    """``SEQ:HASH`` (as ``facesearch audit anchor`` prints it) as (sequence, hash); FaceSearchError if malformed."""
    seq_text, _, digest = (text or "").strip().partition(":")
    return check_anchor(seq_text, digest.lower())


def check_anchor(seq: int | str | None, digest: str | None) -> tuple[int, str]:
    """An anchor's two parts checked (a sequence number from 1, a SHA-256 in hex), whichever interface took
    them: the CLI's ``SEQ:HASH`` or the API's ``anchor_seq`` and ``anchor_hash``."""
    try:
        number = int(seq) if seq is not None and not isinstance(seq, bool) else 0
    except ValueError:
        number = 0
    if number < 1 or digest is None or not _HASH.match(digest):
        raise FaceSearchError(
            "an anchor is SEQ:HASH: the sequence number (from 1) and the 64 hex digits of its hash, as "
            "'facesearch audit anchor' prints them",
            code="bad_anchor",
        )
    return number, digest


def verify_jsonl(source: str | Path | Iterable[str]) -> AuditVerification:
    """Check the chain of an exported log (a file or its lines) without the database.

    An export that starts after sequence 1 is checked from its first entry on (its link backwards
    cannot be checked without the entries before it).
    """
    if isinstance(source, str | Path):
        with open(source, encoding="utf-8") as handle:
            return verify_jsonl(list(handle))
    chain: _Chain | None = None
    for number, line in enumerate(source, start=1):
        if not line.strip():
            continue
        try:
            entry = AuditEntry(**json.loads(line))
        except (ValueError, TypeError) as exc:
            return AuditVerification(False, chain.count if chain else 0, None, f"line {number} is not an entry: {exc}")
        if chain is None:
            chain = _Chain(entry.seq, GENESIS_HASH if entry.seq == 1 else None)
        found = chain.feed(entry)
        if found is not None:
            return AuditVerification(False, chain.count, *found)
    if chain is None:
        return AuditVerification(True, 0)
    return AuditVerification(True, chain.count, head_sequence=chain.last_seq, head_hash=chain.last_hash)


def _check_field(name: str, value: str | None, limit: int, required: bool = False) -> None:
    if value is None:
        if required:
            raise FaceSearchError(f"audit {name} is required", code="bad_request")
        return
    if not isinstance(value, str) or (required and not value.strip()) or len(value) > limit:
        raise FaceSearchError(f"audit {name} must be text of at most {limit} characters", code="bad_request")


def _as_iso(moment: datetime | str) -> str:
    return moment if isinstance(moment, str) else utc_iso(moment)


__all__ = [
    "GENESIS_HASH",
    "AuditEntry",
    "AuditLog",
    "AuditVerification",
    "canonical_json",
    "check_anchor",
    "entry_hash",
    "parse_anchor",
    "utc_iso",
    "verify_jsonl",
]
