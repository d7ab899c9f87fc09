"""The audit log: list with filters, verify the hash chain, export as JSON Lines (auditor, admin)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Query
from fastapi.responses import StreamingResponse

from facesearch.api import service
from facesearch.api.auth import permission
from facesearch.api.deps import Host
from facesearch.api.errors import ApiError
from facesearch.api.models import ERROR_RESPONSES, MAX_ID, AuditEntryOut, AuditList, AuditVerificationOut
from facesearch.governance import User
from facesearch.governance.audit import check_anchor, utc_iso

router = APIRouter(tags=["audit"], responses=ERROR_RESPONSES)

Seq = Annotated[int | None, Query(ge=0, le=MAX_ID, description="only entries after this sequence number")]
Text = Annotated[str | None, Query(min_length=1, max_length=200)]


def _iso(moment: datetime | None, name: str) -> str | None:
    """A bound as the log stores times (UTC ISO 8601); times without a zone are taken as UTC."""
    if moment is None:
        return None
    try:
        return utc_iso(moment)
    except (OverflowError, ValueError) as exc:
        raise ApiError(f"{name} is out of range", code="validation_error") from exc


@router.get("/audit", response_model=AuditList, summary="Audit entries, filtered, in sequence order")
def list_entries(
    host: Host,
    user: Annotated[User, permission("read_audit")],
    since: Annotated[datetime | None, Query(description="entries at or after this time")] = None,
    until: Annotated[datetime | None, Query(description="entries before this time")] = None,
    actor: Text = None,
    action: Annotated[str | None, Query(min_length=1, max_length=50)] = None,
    case_id: Annotated[str | None, Query(min_length=1, max_length=100)] = None,
    after: Seq = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> AuditList:
    entries = service.audit_entries(
        host.catalog,
        since=_iso(since, "since"),
        until=_iso(until, "until"),
        actor=actor,
        action=action,
        case_id=case_id,
        after=after,
        limit=limit,
    )
    return AuditList(
        entries=[AuditEntryOut.model_validate(e.to_dict()) for e in entries],
        next_after=entries[-1].seq if len(entries) == limit else None,
    )


@router.get("/audit/verify", response_model=AuditVerificationOut, summary="Recompute the hash chain")
def verify(
    host: Host,
    user: Annotated[User, permission("read_audit")],
    anchor_seq: Annotated[int | None, Query(ge=1, le=MAX_ID, description="a sequence number recorded earlier")] = None,
    anchor_hash: Annotated[str | None, Query(pattern=r"^[0-9a-f]{64}$", description="its hash, as recorded")] = None,
) -> AuditVerificationOut:
    """Detects edited, deleted, inserted or reordered entries and a cut-off tail; with an anchor kept outside
    this server, also a log rewritten as a whole up to that entry."""
    if (anchor_seq is None) != (anchor_hash is None):
        raise ApiError("give both anchor_seq and anchor_hash, or neither", code="validation_error")
    anchor = check_anchor(anchor_seq, anchor_hash) if anchor_seq is not None else None  # the CLI's check too
    return AuditVerificationOut.model_validate(service.verify_audit(host.catalog, anchor).to_dict())


@router.get(
    "/audit/export",
    response_class=StreamingResponse,
    responses={200: {"content": {"application/x-ndjson": {}}, "description": "one entry per line, hashes included"}},
    summary="Export the log as JSON Lines",
)
def export(host: Host, user: Annotated[User, permission("export_audit")], after: Seq = None) -> StreamingResponse:
    """Each line is an entry with its hash and its predecessor's: ``facesearch audit verify`` (or
    ``verify_jsonl``) re-checks an export without the database. The export itself is audited first."""
    lines = service.export_audit(host.catalog, after=after or 0, actor=user)
    return StreamingResponse(
        lines,
        media_type="application/x-ndjson",
        headers={"Content-Disposition": 'attachment; filename="facesearch-audit.jsonl"'},
    )
