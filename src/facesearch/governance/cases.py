"""Cases as first-class records (issue 13): who works a case, for what, and whether it is still open.

A case has an id (normalised as every case id is: governance/purpose.py ``clean_case_id``; compared
NFKC and case-folded, so "C-1" and "c-1" are one case), a purpose (checked as a search's is), an
optional legal basis, the users working it, and who created and closed it and when. Creating and
closing are audited (``case_create``, ``case_close``), in the transaction that writes the row.

The rule for searches (:func:`bind_search`): a library without cases keeps ad-hoc case ids, as
before issue 13. Once a library holds one case, every search and verify must name a case of it, and
an open one: an unknown id is refused (``no_case``), a closed one too (``case_closed``). Why this
rule: if unknown ids were still accepted, a closed case could be sidestepped by searching under any
other id; a per-library switch would be one more setting to forget. The search is recorded under
the case's own spelling of its id, so the log groups every search of a case under one id.

An API user who is neither an admin nor among the case's users may not search for it, see it or
decide about its candidates (``forbidden``); auditors read every case. The local operator (CLI and
Python, an actor given as a string) owns the library's files and acts as its admin.

Decisions about candidates are in governance/decisions.py.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import asdict, dataclass, replace
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from facesearch.governance.db import immediate
from facesearch.governance.errors import GovernanceError, PermissionDenied, PurposeRequired
from facesearch.governance.events import CaseEvent, record
from facesearch.governance.purpose import PLACEHOLDER_WORDS, clean_case_id, validate_purpose
from facesearch.governance.types import SearchPurpose, User, actor_name
from facesearch.governance.users import get_user
from facesearch.store.catalog import Catalog
from facesearch.store.governance_schema import CaseRow
from facesearch.store.schema import utcnow

__all__ = ["Case", "CaseError", "bind_search", "close_case", "create_case", "get_case", "list_cases", "may_see"]

OPEN, CLOSED = "open", "closed"
READ_ALL_ROLES = frozenset({"admin", "auditor"})


class CaseError(GovernanceError):
    """A case cannot be created, found or used: ``case_exists``, ``no_case``, ``case_closed``."""

    code = "case_error"

    def __init__(self, message: str, code: str) -> None:
        super().__init__(message, code=code)


@dataclass(frozen=True)
class Case:
    """A case as callers see it."""

    case_id: str
    purpose: str
    legal_basis: str | None
    status: str
    users: list[str]
    created_at: datetime
    created_by: str
    closed_at: datetime | None
    closed_by: str | None
    audit_seq: int

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_row(cls, row: CaseRow) -> Case:
        return cls(
            row.case_id,
            row.purpose,
            row.legal_basis,
            row.status,
            list(row.users or []),
            row.created_at,
            row.created_by,
            row.closed_at,
            row.closed_by,
            row.audit_seq,
        )


def case_key(case_id: str) -> str:
    """The id as compared: cleaned, then NFKC and case-folded ("C-1" and "c-1" are one case)."""
    return unicodedata.normalize("NFKC", clean_case_id(case_id)).casefold()


def _row(session: Session, case_id: str) -> CaseRow:
    row = session.scalar(select(CaseRow).where(CaseRow.case_key == case_key(case_id)))
    if row is None:
        raise CaseError(f"no case {clean_case_id(case_id)!r}: create it first (facesearch case create)", "no_case")
    return row


def _check_case_id(case_id: str) -> None:
    """A new case's id must name something: a letter or digit, and not a placeholder ("test", "n/a", "xxx")."""
    words = re.findall(r"[^\W_]+", case_id.lower())
    if not words or all(w in PLACEHOLDER_WORDS for w in words):
        raise PurposeRequired(
            f"the case id {case_id!r} names no case: use the case number of your file", code="invalid_purpose"
        )


def may_see(case: Case, user: str | User | None) -> bool:
    """Whether ``user`` may see the case: the local operator, admins and auditors always; others if they work it."""
    if user is None or isinstance(user, str):
        return True
    return user.role in READ_ALL_ROLES or user.name in case.users


def _check_member(case: Case, user: str | User | None, what: str) -> None:
    if not may_see(case, user):
        raise PermissionDenied(f"{actor_name(user)} does not work case {case.case_id!r} and may not {what} it")


def create_case(
    catalog: Catalog,
    case_id: str,
    purpose: str,
    *,
    legal_basis: str | None = None,
    users: list[str] | None = None,
    actor: str | User | None = None,
) -> Case:
    """Create an open case; the users named must exist (an API user creating it works it too). Audited."""
    stated = validate_purpose(SearchPurpose(case_id, purpose, legal_basis))
    _check_case_id(stated.case_id)
    names = sorted(
        {get_user(catalog, n).name for n in users or []} | ({actor.name} if isinstance(actor, User) else set())
    )
    with immediate(catalog) as s:
        if s.scalar(select(CaseRow).where(CaseRow.case_key == case_key(stated.case_id))) is not None:
            raise CaseError(f"case {stated.case_id!r} exists already", "case_exists")
        facts = {"purpose": stated.purpose, "legal_basis": stated.legal_basis, "users": sorted(names)}
        entry = record(catalog, CaseEvent("case_create", stated.case_id, facts), actor, session=s)
        row = CaseRow(
            case_id=stated.case_id,
            case_key=case_key(stated.case_id),
            purpose=stated.purpose,
            legal_basis=stated.legal_basis,
            status=OPEN,
            users=sorted(names),
            created_at=utcnow(),
            created_by=entry.actor,
            audit_seq=entry.seq,
        )
        s.add(row)
        s.flush()
        return Case.from_row(row)


def get_case(catalog: Catalog, case_id: str, user: str | User | None = None) -> Case:
    """The case (``no_case`` if there is none; ``forbidden`` if ``user`` may not see it)."""
    with catalog.session() as s:
        case = Case.from_row(_row(s, case_id))
    _check_member(case, user, "see")
    return case


def list_cases(catalog: Catalog, user: str | User | None = None, status: str | None = None) -> list[Case]:
    """The cases ``user`` may see, oldest first (``status``: only open or closed ones)."""
    with catalog.session() as s:
        cases = [Case.from_row(r) for r in s.scalars(select(CaseRow).order_by(CaseRow.id))]
    return [c for c in cases if may_see(c, user) and status in (None, c.status)]


def close_case(catalog: Catalog, case_id: str, *, actor: str | User | None = None) -> Case:
    """Close an open case: no search, verify or decision may name it afterwards. Audited."""
    with immediate(catalog) as s:
        row = _row(s, case_id)
        _check_member(Case.from_row(row), actor, "close")
        if row.status == CLOSED:
            raise CaseError(f"case {row.case_id!r} was closed by {row.closed_by} at {row.closed_at}", "case_closed")
        entry = record(
            catalog, CaseEvent("case_close", row.case_id, {"users": list(row.users or [])}), actor, session=s
        )
        row.status, row.closed_at, row.closed_by = CLOSED, utcnow(), entry.actor
        s.flush()
        return Case.from_row(row)


def open_case(catalog: Catalog, case_id: str, user: str | User | None, what: str) -> Case:
    """The case, if it is open and ``user`` works it; else ``no_case``, ``case_closed`` or ``forbidden``."""
    case = get_case(catalog, case_id)
    _check_member(case, user, what)
    if case.status != OPEN:
        raise CaseError(f"case {case.case_id!r} is closed ({case.closed_by}, {case.closed_at}): nothing new may be "
                        f"added to it", "case_closed")  # fmt: skip
    return case


def bind_search(catalog: Catalog, purpose: SearchPurpose, actor: str | User | None) -> SearchPurpose:
    """The (validated) purpose of a search or verify, bound to its case: see the module's rule.

    Returns the purpose with the case's own spelling of its id.
    """
    with catalog.session() as s:
        if not s.scalar(select(func.count()).select_from(CaseRow)):
            return purpose  # a library without cases: ad-hoc case ids, as before issue 13
    case = open_case(catalog, purpose.case_id, actor, "search for")
    return replace(purpose, case_id=case.case_id)
