"""Decisions about a case's candidates, with a second pair of eyes (issue 13).

A reviewer records a decision about a candidate face that a search of the case showed:
``confirmed lead``, ``rejected`` or ``inconclusive``, with a note. A ``confirmed lead`` is only
*confirmed* once a different user, shown the probe and the candidate but not the first decision, has
independently decided ``confirmed lead`` too (a different second decision makes it ``disputed``).
Until then it is ``awaiting second review``, and its decision and note are shown to nobody but its
reviewer (and auditors, who cannot review): otherwise the second reviewer could read them from the
case's decision list. Roles that can read the audit log (admins, auditors) can read first decisions
there, so a second review must come from a user whose role cannot (an investigator, or the local
named through an API key). "Blind" means the second reviewer is shown neither the first decision, its
note nor its reviewer; that a second review is asked at all does say that a colleague proposed the
candidate as a lead, as in any two-person rule.

Every decision is a row of ``case_decisions`` and an audit entry (``decision``) holding everything
the row holds, so an auditor rebuilds a case's decisions from ``audit export`` alone.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select

from facesearch.governance.audit import AuditLog
from facesearch.governance.cases import Case, CaseError, get_case, open_case
from facesearch.governance.db import immediate
from facesearch.governance.errors import PermissionDenied
from facesearch.governance.events import DecisionEvent, record
from facesearch.governance.types import User, actor_name, allowed
from facesearch.store.catalog import Catalog
from facesearch.store.governance_schema import CaseRow, DecisionRow
from facesearch.store.schema import utcnow

CONFIRMED_LEAD, REJECTED, INCONCLUSIVE = "confirmed lead", "rejected", "inconclusive"
DECISIONS = (CONFIRMED_LEAD, REJECTED, INCONCLUSIVE)
AWAITING, CONFIRMED, DISPUTED = "awaiting second review", "confirmed", "disputed"
MAX_NOTE = 1000


@dataclass(frozen=True)
class Decision:
    """One decision as stored (``stage`` first or second)."""

    id: int
    case_id: str
    face_id: int
    search_seq: int | None
    stage: str
    first_id: int | None
    decision: str
    note: str
    reviewer: str
    at: datetime
    audit_seq: int

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _decision(row: DecisionRow, case_id: str) -> Decision:
    return Decision(
        row.id, case_id, row.face_id, row.search_seq, row.stage, row.first_id, row.decision, row.note,
        row.reviewer, row.at, row.audit_seq,
    )  # fmt: skip


def _check(decision: str, note: str) -> None:
    if decision not in DECISIONS:
        raise CaseError(f"unknown decision {decision!r}; one of: {', '.join(DECISIONS)}", "bad_decision")
    if not isinstance(note, str) or len(note) > MAX_NOTE or any(ord(c) < 32 and c not in "\n\t" for c in note):
        raise CaseError(f"the note must be text of at most {MAX_NOTE} characters", "bad_decision")


def shown_in(catalog: Catalog, case: Case, face_id: int, search_seq: int | None) -> dict[str, Any]:
    """The search of the case that showed ``face_id`` (the given one, else the latest): its seq, probe
    hash and the probe face's box; ``not_a_candidate`` if none did (a decision is about a candidate)."""
    for entry in reversed(AuditLog(catalog).entries(action="search", case_id=case.case_id, limit=None)):
        if search_seq is not None and entry.seq != search_seq:
            continue
        for face in entry.details.get("faces", []):
            if face_id in face.get("shown", []):
                return {
                    "search_seq": entry.seq,
                    "probe_sha256": entry.details.get("probe_sha256"),
                    "box": face["box"],
                    "probe_face": face.get("face"),  # its kept crop: GET /v1/cases/{id}/searches/{seq}/probe/{face}
                }
    where = f"search {search_seq}" if search_seq is not None else "any search"
    raise CaseError(f"face {face_id} was not shown by {where} of case {case.case_id!r}", "not_a_candidate")


def decide(
    catalog: Catalog,
    case_id: str,
    face_id: int,
    decision: str,
    note: str = "",
    *,
    search_seq: int | None = None,
    actor: str | User | None = None,
) -> Decision:
    """Record a first decision about a candidate of an open case. Audited."""
    _check(decision, note)
    case = open_case(catalog, case_id, actor, "decide about")
    seen = shown_in(catalog, case, face_id, search_seq)
    return _store(catalog, case, face_id, seen["search_seq"], "first", None, decision, note, actor)


def _store(
    catalog: Catalog, case: Case, face_id: int, search_seq: int | None, stage: str, first_id: int | None,
    decision: str, note: str, actor: str | User | None,
) -> Decision:  # fmt: skip
    with immediate(catalog) as s:
        case_row = s.scalar(select(CaseRow).where(CaseRow.case_id == case.case_id))
        assert case_row is not None  # open_case found it; cases are never deleted
        if case_row.status != "open":
            raise CaseError(f"case {case.case_id!r} is closed", "case_closed")
        row = DecisionRow(
            case_pk=case_row.id, face_id=face_id, search_seq=search_seq, stage=stage, first_id=first_id,
            decision=decision, note=note, reviewer=actor_name(actor), at=utcnow(), audit_seq=0,
        )  # fmt: skip
        s.add(row)
        s.flush()
        event = DecisionEvent(case.case_id, row.id, face_id, search_seq, stage, first_id, decision, note)
        row.audit_seq = record(catalog, event, actor, session=s).seq
        s.flush()
        return _decision(row, case.case_id)


def _rows(catalog: Catalog, case: Case) -> list[Decision]:
    with catalog.session() as s:
        case_pk = s.scalar(select(CaseRow.id).where(CaseRow.case_id == case.case_id))
        rows = s.scalars(select(DecisionRow).where(DecisionRow.case_pk == case_pk).order_by(DecisionRow.id))
        return [_decision(r, case.case_id) for r in rows]


def _current_firsts(rows: list[Decision]) -> dict[int, Decision]:
    """The latest first decision per face (a later one replaces an earlier one)."""
    return {r.face_id: r for r in rows if r.stage == "first"}


def _blind_to(user: str | User | None) -> bool:
    """Whether ``user`` could review blind: a user whose role cannot read the audit log (not the local
    operator, who owns the catalog's files, nor admins and auditors)."""
    return isinstance(user, User) and not allowed(user.role, "read_audit")


def second_review_tasks(catalog: Catalog, case_id: str, user: str | User | None) -> list[dict[str, Any]]:
    """The confirmed leads ``user`` may review blind: probe and candidate only, never the first decision."""
    case = open_case(catalog, case_id, user, "review for")
    if not _blind_to(user):
        return []
    rows = _rows(catalog, case)
    done = {r.first_id for r in rows if r.stage == "second"}
    me = actor_name(user)
    tasks = []
    for first in _current_firsts(rows).values():
        if first.decision == CONFIRMED_LEAD and first.id not in done and first.reviewer != me:
            seen = shown_in(catalog, case, first.face_id, first.search_seq)
            tasks.append({"task_id": first.id, "case_id": case.case_id, "face_id": first.face_id, **seen})
    return tasks


def second_review(
    catalog: Catalog, case_id: str, task_id: int, decision: str, note: str = "", *, actor: str | User | None = None
) -> Decision:
    """A second reviewer's own decision on a confirmed lead (``task_id``: the first decision). Audited.

    Refused for the first decision's own reviewer (``same_reviewer``), for a role that can read the
    first decision in the audit log (``forbidden``), and when the task was done or replaced.
    """
    _check(decision, note)
    case = open_case(catalog, case_id, actor, "review for")
    if not _blind_to(actor):
        raise PermissionDenied(
            f"{actor_name(actor)} can read the first decision in the audit log: not a blind reviewer"
        )
    rows = _rows(catalog, case)
    first = next((r for r in rows if r.id == task_id and r.stage == "first"), None)
    if first is None or _current_firsts(rows).get(first.face_id) != first or first.decision != CONFIRMED_LEAD:
        raise CaseError(f"no confirmed lead {task_id} awaits a second review in case {case.case_id!r}", "no_task")
    if first.reviewer == actor_name(actor):
        raise CaseError("the second reviewer must be a different user from the first", "same_reviewer")
    if any(r.stage == "second" and r.first_id == first.id for r in rows):
        raise CaseError(f"confirmed lead {task_id} has had its second review", "already_reviewed")
    return _store(catalog, case, first.face_id, first.search_seq, "second", first.id, decision, note, actor)


def case_decisions(catalog: Catalog, case_id: str, user: str | User | None = None) -> list[dict[str, Any]]:
    """Per candidate decided about: its current status and its decisions (who, when, what).

    A confirmed lead awaiting its second review shows its decision and note only to its reviewer and to
    auditors (see the module docstring); closed cases are listed as they were.
    """
    case = get_case(catalog, case_id, user)
    rows = _rows(catalog, case)
    me = actor_name(user) if user is not None else None
    reads_all = not _blind_to(user)  # who can read the audit log sees everything here too
    out = []
    for first in _current_firsts(rows).values():
        seconds = [r for r in rows if r.stage == "second" and r.first_id == first.id]
        if first.decision != CONFIRMED_LEAD:
            status = first.decision
        elif not seconds:
            status = AWAITING
        else:
            status = CONFIRMED if seconds[0].decision == CONFIRMED_LEAD else DISPUTED
        hidden = status == AWAITING and not reads_all and first.reviewer != me
        shown = [d.to_dict() for d in [first, *seconds]]
        if hidden:
            shown[0].update(decision=None, note=None, reviewer=None)
        out.append({"face_id": first.face_id, "search_seq": first.search_seq, "status": status, "decisions": shown})
    return out
