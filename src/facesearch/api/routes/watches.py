"""Watchlists and alerts (issue 13): ``/v1/cases/{id}/watches``, ``/v1/watches/{id}``, ``/v1/alerts``.

Admins and investigators (``watch``) add, list and remove a case's watches and read its alerts; an
investigator only for the cases they work (governance/watches.py ``may_watch``: 403 ``forbidden``
for a named case, nothing listed otherwise). Auditors read alerts in the audit log (``watch_alert``);
ingesters upload photos without being told that anyone is watched for. The rules are governance's:
this module only maps them onto HTTP.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, File, Form, Path, Query, UploadFile, status
from pydantic import BaseModel, ConfigDict, Field

from facesearch.api.auth import permission
from facesearch.api.deps import Host, Settings
from facesearch.api.models import ERROR_RESPONSES, MAX_ID, NAME_PATTERN
from facesearch.api.uploads import read_limited
from facesearch.errors import FaceSearchError
from facesearch.governance import User
from facesearch.governance.watches import MAX_PHOTOS, Alert, Watch

router = APIRouter(tags=["watchlists"], responses=ERROR_RESPONSES)

CaseId = Annotated[str, Path(min_length=1, max_length=100, pattern=NAME_PATTERN)]


class WatchOut(BaseModel):
    id: int
    case_id: str
    label: str
    photos_sha256: list[str]
    expires_at: datetime
    webhook_url: str | None
    created_at: datetime
    created_by: str
    audit_seq: int
    removed_at: datetime | None
    removed_by: str | None
    status: str = Field(description="active, expired, removed or case closed")


class WatchList(BaseModel):
    watches: list[WatchOut]


class AlertOut(BaseModel):
    id: int
    watch_id: int
    case_id: str
    watch_label: str
    face_id: int
    image_id: int
    score: float
    fmr: float | None
    label: str = Field(description="match or possible lead, as a search for the watched person would label it")
    at: datetime
    audit_seq: int
    webhook_status: str | None = Field(description="null without a webhook; pending, delivered (HTTP n), failed: why")


class AlertList(BaseModel):
    alerts: list[AlertOut] = Field(description="newest first; only the cases you may see")
    unseen: int = Field(description="alerts newer than last_seen (for a badge)")
    last_seen: int = Field(description="the newest alert id you marked as seen (0: none)")


class SeenIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    up_to: int = Field(ge=0, le=MAX_ID, description="mark the alerts up to this id as seen")


class SeenOut(BaseModel):
    last_seen: int
    unseen: int


def _watch(watch: Watch) -> WatchOut:
    return WatchOut(**watch.to_dict())


def _alert(alert: Alert) -> AlertOut:
    return AlertOut(**alert.to_dict())


@router.post(
    "/cases/{case_id}/watches", response_model=WatchOut, status_code=status.HTTP_201_CREATED, summary="Add a watch"
)
def add_watch(
    case_id: CaseId,
    photo: Annotated[list[UploadFile], File(description=f"photos of the person (1-{MAX_PHOTOS}; never stored)")],
    expires: Annotated[str, Form(min_length=10, max_length=10, description="last day, YYYY-MM-DD (at most a year)")],
    host: Host,
    settings: Settings,
    user: Annotated[User, permission("watch")],
    label: Annotated[str, Form(max_length=200, pattern=NAME_PATTERN)] = "",
    webhook: Annotated[str | None, Form(max_length=2000, description="http(s) URL POSTed on each alert")] = None,
) -> WatchOut:
    """Watch for the person in ``photo`` (the largest face of each, fused) for an open case you work: every
    later ingest that stores a face of them raises an alert. Refused for an opted-out person. Audited."""
    if len(photo) > MAX_PHOTOS:
        raise FaceSearchError(f"at most {MAX_PHOTOS} photos per watch; got {len(photo)}", code="bad_request")
    data = [read_limited(p.file, settings.max_upload_bytes, f"photo {n}") for n, p in enumerate(photo, 1)]
    with host.reading() as library:
        watch = library.watches.add(case_id, data, expires=expires, label=label, webhook=webhook, actor=user)
    return _watch(watch)


@router.get("/cases/{case_id}/watches", response_model=WatchList, summary="A case's watches")
def case_watches(case_id: CaseId, host: Host, user: Annotated[User, permission("watch")]) -> WatchList:
    with host.reading() as library:
        return WatchList(watches=[_watch(w) for w in library.watches.list_watches(user, case_id)])


@router.delete("/watches/{watch_id}", response_model=WatchOut, summary="Stop a watch")
def remove_watch(
    watch_id: Annotated[int, Path(ge=1, le=MAX_ID)], host: Host, user: Annotated[User, permission("watch")]
) -> WatchOut:
    """The watch stops; its record stays (who removed it and when). Audited (``watch_remove``)."""
    with host.reading() as library:
        return _watch(library.watches.remove(watch_id, actor=user))


@router.get("/alerts", response_model=AlertList, summary="Alerts of the cases you may see")
def alerts(
    host: Host,
    user: Annotated[User, permission("watch")],
    case_id: Annotated[str | None, Query(min_length=1, max_length=100, pattern=NAME_PATTERN)] = None,
) -> AlertList:
    with host.reading() as library:
        found = library.watches.alerts(user, case_id)
        seen = library.watches.last_seen(user)
    return AlertList(alerts=[_alert(a) for a in found], unseen=sum(a.id > seen for a in found), last_seen=seen)


@router.post("/alerts/seen", response_model=SeenOut, summary="Mark alerts as seen")
def mark_seen(body: SeenIn, host: Host, user: Annotated[User, permission("watch")]) -> SeenOut:
    """For the badge: the alerts up to ``up_to`` no longer count as unseen for you (the mark never moves back)."""
    with host.reading() as library:
        seen = library.watches.mark_seen(user, body.up_to)
        found = library.watches.alerts(user)
    return SeenOut(last_seen=seen, unseen=sum(a.id > seen for a in found))
