"""Reviews: a person marks a candidate face as reviewed for a case, with a decision; kept in the audit log.

Deprecated (issue 13): decisions belong to a case, with a blind second review
(``/v1/cases/{id}/decisions``, governance/decisions.py); the web app no longer calls these routes. They
stay for existing API clients and are marked deprecated in the OpenAPI document.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, status

from facesearch.api import service
from facesearch.api.auth import permission
from facesearch.api.deps import Host
from facesearch.api.models import ERROR_RESPONSES, MAX_ID, NAME_PATTERN, ReviewIn, ReviewList, ReviewOut
from facesearch.governance import AuditEntry, User

router = APIRouter(tags=["reviews"], responses=ERROR_RESPONSES)


def _out(entry: AuditEntry) -> ReviewOut:
    return ReviewOut(
        audit_sequence=entry.seq,
        at=entry.at,
        reviewer=entry.actor,
        case_id=entry.case_id or "",
        face_id=int(entry.details.get("face_id", 0)),
        decision=str(entry.details.get("decision", "")),
        note=str(entry.details.get("note", "")),
    )


@router.post(
    "/reviews",
    response_model=ReviewOut,
    status_code=status.HTTP_201_CREATED,
    summary="Record a review",
    deprecated=True,
)
def add_review(body: ReviewIn, host: Host, user: Annotated[User, permission("review")]) -> ReviewOut:
    """The review is an audit entry (action ``review``): it cannot be edited or deleted afterwards."""
    entry = service.review(
        host.catalog, case_id=body.case_id, face_id=body.face_id, decision=body.decision, note=body.note, actor=user
    )
    return _out(entry)


@router.get("/reviews", response_model=ReviewList, summary="The reviews recorded for a case", deprecated=True)
def list_reviews(
    case_id: Annotated[str, Query(min_length=1, max_length=100, pattern=NAME_PATTERN)],
    host: Host,
    user: Annotated[User, permission("review")],
    after: Annotated[int | None, Query(ge=0, le=MAX_ID, description="audit sequence to continue after")] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> ReviewList:
    entries = service.reviews(host.catalog, case_id, after=after, limit=limit)
    return ReviewList(reviews=[_out(e) for e in entries], next_after=entries[-1].seq if len(entries) == limit else None)
