"""Cases and the decisions about their candidates (issue 13), under ``/v1/cases``.

Investigators and admins open and close cases (``open_case``); investigators see the cases they
work, admins and auditors every case (``read_cases``). Decisions and blind second reviews need
``review``. The rules themselves are governance's (governance/cases.py, governance/decisions.py):
this module only maps them onto HTTP.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, File, Path, Query, Response, UploadFile, status
from pydantic import BaseModel, ConfigDict, Field

from facesearch.api.auth import permission
from facesearch.api.deps import Host, Settings
from facesearch.api.models import ERROR_RESPONSES, MAX_ID, NAME_PATTERN
from facesearch.api.uploads import read_limited
from facesearch.governance import AuditLog, User
from facesearch.governance.case_report import MEDIA_TYPES, export_report, verify_report
from facesearch.governance.cases import Case, close_case, create_case, get_case, list_cases, may_see
from facesearch.governance.decisions import case_decisions, decide, second_review, second_review_tasks
from facesearch.governance.errors import PermissionDenied
from facesearch.governance.probe_crops import view_probe_crop

router = APIRouter(tags=["cases"], responses=ERROR_RESPONSES)

CaseId = Annotated[str, Path(min_length=1, max_length=100, pattern=NAME_PATTERN)]
DecisionText = Literal["confirmed lead", "rejected", "inconclusive"]


class CaseIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    case_id: str = Field(min_length=1, max_length=100, pattern=NAME_PATTERN)
    purpose: str = Field(min_length=1, max_length=1000)
    legal_basis: str | None = Field(None, max_length=500)
    users: list[str] = Field(default_factory=list, max_length=100, description="users working it (you are added)")


class CaseOut(BaseModel):
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


class CaseList(BaseModel):
    cases: list[CaseOut]


class CaseDetail(BaseModel):
    case: CaseOut
    searches: list[dict[str, Any]] = Field(description="the case's searches, from the audit log")
    decisions: list[dict[str, Any]]


class DecisionIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    face_id: int = Field(ge=1, le=MAX_ID)
    decision: DecisionText
    note: str = Field("", max_length=1000, description="kept on the server and in the audit log")
    search_seq: int | None = Field(None, ge=1, le=MAX_ID, description="the search that showed the face")


class SecondReviewIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    decision: DecisionText
    note: str = Field("", max_length=1000)


class DecisionOut(BaseModel):
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


class DecisionList(BaseModel):
    candidates: list[dict[str, Any]] = Field(description="per candidate: its status and decisions")


class TaskList(BaseModel):
    tasks: list[dict[str, Any]] = Field(description="probe and candidate of each lead to review; no first decision")


class ReportVerdict(BaseModel):
    valid: bool
    sha256: str
    size: int
    problem: str | None = None
    case_id: str | None = None
    format: str | None = None
    exported_by: str | None = None
    exported_at: str | None = None
    audit_seq: int | None = Field(None, description="the case_report entry holding the file's SHA-256")
    chain_head: dict[str, Any] | None = Field(None, description="the audit chain head the report states")
    chain: dict[str, Any] | None = Field(None, description="the audit log's verification")


def _out(case: Case) -> CaseOut:
    return CaseOut(**case.to_dict())


@router.post("/cases", response_model=CaseOut, status_code=status.HTTP_201_CREATED, summary="Open a case")
def open_a_case(body: CaseIn, host: Host, user: Annotated[User, permission("open_case")]) -> CaseOut:
    """Once a library has a case, every search must name an open case of it. Audited (``case_create``)."""
    case = create_case(
        host.catalog, body.case_id, body.purpose, legal_basis=body.legal_basis, users=body.users, actor=user
    )
    return _out(case)


@router.get("/cases", response_model=CaseList, summary="The cases you may see")
def cases(host: Host, user: Annotated[User, permission("read_cases")]) -> CaseList:
    return CaseList(cases=[_out(c) for c in list_cases(host.catalog, user)])


@router.get("/cases/{case_id}", response_model=CaseDetail, summary="A case, its searches and decisions")
def case_detail(case_id: CaseId, host: Host, user: Annotated[User, permission("read_cases")]) -> CaseDetail:
    case = get_case(host.catalog, case_id, user)
    entries = AuditLog(host.catalog).entries(action="search", case_id=case.case_id, limit=None)
    searches = [
        {
            "audit_sequence": e.seq,
            "at": e.at,
            "actor": e.actor,
            "probe_sha256": e.details.get("probe_sha256"),
            "shown": sum(len(f.get("shown", [])) for f in e.details.get("faces", [])),  # the web's case page
            "probe_faces": [f.get("face") for f in e.details.get("faces", [])],  # their crops: .../probe/{face}
        }
        for e in entries
    ]
    decisions = case_decisions(host.catalog, case.case_id, user)
    return CaseDetail(case=_out(case), searches=searches, decisions=decisions)


@router.post("/cases/{case_id}/close", response_model=CaseOut, summary="Close a case for good")
def close(case_id: CaseId, host: Host, user: Annotated[User, permission("open_case")]) -> CaseOut:
    """Afterwards no search, verify or decision may name it. Audited (``case_close``)."""
    return _out(close_case(host.catalog, case_id, actor=user))


@router.get("/cases/{case_id}/decisions", response_model=DecisionList, summary="The case's decisions")
def decisions(case_id: CaseId, host: Host, user: Annotated[User, permission("read_cases")]) -> DecisionList:
    """A confirmed lead awaiting its second review hides its decision, note and reviewer from reviewers."""
    return DecisionList(candidates=case_decisions(host.catalog, case_id, user))


@router.post(
    "/cases/{case_id}/decisions",
    response_model=DecisionOut,
    status_code=status.HTTP_201_CREATED,
    summary="Decide about a candidate",
)
def add_decision(
    case_id: CaseId, body: DecisionIn, host: Host, user: Annotated[User, permission("review")]
) -> DecisionOut:
    """About a face a search of this case showed. A ``confirmed lead`` then awaits a blind second review."""
    made = decide(host.catalog, case_id, body.face_id, body.decision, body.note, search_seq=body.search_seq, actor=user)
    return DecisionOut(**made.to_dict())


@router.get("/cases/{case_id}/second-reviews", response_model=TaskList, summary="Leads awaiting your blind review")
def tasks(case_id: CaseId, host: Host, user: Annotated[User, permission("review")]) -> TaskList:
    """Each with the probe (its SHA-256 and face box, the search's sequence) and the candidate's face id only."""
    return TaskList(tasks=second_review_tasks(host.catalog, case_id, user))


@router.post(
    "/cases/{case_id}/second-reviews/{task_id}",
    response_model=DecisionOut,
    status_code=status.HTTP_201_CREATED,
    summary="Your own decision on a lead",
)
def add_second_review(
    case_id: CaseId,
    task_id: Annotated[int, Path(ge=1, le=MAX_ID)],
    body: SecondReviewIn,
    host: Host,
    user: Annotated[User, permission("review")],
) -> DecisionOut:
    """Refused to the lead's first reviewer (``same_reviewer``) and to roles that read the audit log."""
    made = second_review(host.catalog, case_id, task_id, body.decision, body.note, actor=user)
    return DecisionOut(**made.to_dict())


@router.get(
    "/cases/{case_id}/report",
    response_class=Response,
    summary="Download the case's report (HTML or JSON)",
    responses={200: {"content": {"text/html": {}, "application/json": {}}}},
)
def report(
    case_id: CaseId,
    host: Host,
    user: Annotated[User, permission("read_cases")],
    format: Annotated[Literal["html", "json"], Query(description="html: printable, self-contained")] = "html",  # noqa: A002
) -> Response:
    """Issue 13: the case record, its searches (probe crop, operating point, calibration source), reviewed
    candidates with crops, sources, dates, fmr, labels and decisions, and the audit chain head. It holds
    biometric crops: only users who may see the case get it, and each download is audited
    (``case_report``, with the file's SHA-256: ``POST /v1/cases/verify-report`` checks it)."""
    made = export_report(host.catalog, host.path, case_id, format, actor=user)
    name = "".join(ch if ch.isalnum() or ch in "-_" else "_" for ch in made.case_id)
    headers = {
        "Content-Disposition": f'attachment; filename="case-{name}-report-{made.audit_seq}.{format}"',
        "X-Report-SHA256": made.sha256,
        "X-Audit-Sequence": str(made.audit_seq),
    }
    return Response(made.data, media_type=MEDIA_TYPES[format], headers=headers)


@router.get(
    "/cases/{case_id}/searches/{search_seq}/probe/{face}",
    response_class=Response,
    summary="The kept crop of a case search's probe face",
    responses={200: {"content": {"image/jpeg": {}}}},
)
def probe_crop(
    case_id: CaseId,
    search_seq: Annotated[int, Path(ge=1, le=MAX_ID, description="the search's audit sequence number")],
    face: Annotated[int, Path(ge=0, le=1000, description="the probe face's number in that search")],
    host: Host,
    user: Annotated[User, permission("read_cases")],
) -> Response:
    """Issue 13: what the probe face looked like (a thumbnail, never the probe photo), so that a blind second
    reviewer sees the probe beside the candidate. Only for users who may see the case (403); 404 when no crop
    was kept. Each look is audited (``probe_view``)."""
    data = view_probe_crop(host.catalog, host.path, case_id, search_seq, face, user)
    return Response(data, media_type="image/jpeg", headers={"Cache-Control": "no-store"})


@router.post("/cases/verify-report", response_model=ReportVerdict, summary="Check a report against the audit log")
def check_report(
    file: Annotated[UploadFile, File(description="a report made by GET /v1/cases/{id}/report or the CLI")],
    host: Host,
    settings: Settings,
    user: Annotated[User, permission("read_cases")],
) -> ReportVerdict:
    """``valid`` when a ``case_report`` entry holds the file's SHA-256 and the audit chain verifies up to
    the head the report states; otherwise ``problem`` says why (one byte changed, never logged, chain
    broken). Only users who may see the report's case are told whose report it is."""
    verdict = verify_report(host.catalog, read_limited(file.file, settings.max_upload_bytes, "the report"))
    if verdict.get("case_id") is not None and not may_see(get_case(host.catalog, verdict["case_id"]), user):
        raise PermissionDenied(f"{user.name} does not work case {verdict['case_id']!r}")
    return ReportVerdict(**verdict)
