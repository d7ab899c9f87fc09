"""People in the archive (issue 14): ``/v1/people``.

Admins and investigators (``people``) cluster, read and correct persons; every request states a case and
a purpose like a search (query parameters on reads, the JSON body on changes; 422 without them, 404/409/403
for an unknown, closed or not-worked case once the library has cases), and each is an audit entry. A
person's representative face is served as a face view (``face_view``, like ``GET /v1/faces/{id}/thumbnail``).
Switching grouping off for a collection is an admin's act (``manage_collections``). The rules are
people/registry.py's: this module only maps them onto HTTP.
"""

from __future__ import annotations

import csv
import io
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query, Response
from pydantic import BaseModel, ConfigDict, Field

from facesearch.api.auth import permission
from facesearch.api.deps import Host
from facesearch.api.models import ERROR_RESPONSES, MAX_ID, NAME_PATTERN
from facesearch.governance import SearchPurpose, User
from facesearch.people.views import Person

router = APIRouter(tags=["people"], responses=ERROR_RESPONSES)

PersonId = Annotated[int, Path(ge=1, le=MAX_ID)]
CaseQuery = Annotated[
    str, Query(min_length=1, max_length=100, pattern=NAME_PATTERN, description="the case this is for (audited)")
]
PurposeQuery = Annotated[
    str, Query(min_length=1, max_length=1000, description="why: as for a search (at least 10 letters; audited)")
]
LegalBasisQuery = Annotated[str | None, Query(max_length=500, description="when a collection demands one")]


def _stated(case_id: CaseQuery, purpose: PurposeQuery, legal_basis: LegalBasisQuery = None) -> SearchPurpose:
    return SearchPurpose(case_id, purpose, legal_basis)


Stated = Annotated[SearchPurpose, Depends(_stated)]
Allowed = Annotated[User, permission("people")]


class StatedIn(BaseModel):
    """What every change states, as a search does."""

    model_config = ConfigDict(extra="forbid")
    case_id: str = Field(min_length=1, max_length=100, pattern=NAME_PATTERN)
    purpose: str = Field(min_length=1, max_length=1000)
    legal_basis: str | None = Field(default=None, max_length=500)

    def stated(self) -> SearchPurpose:
        return SearchPurpose(self.case_id, self.purpose, self.legal_basis)


class ClusterIn(StatedIn):
    max_fmr: float | None = Field(default=None, gt=0, lt=1, description="default 1e-4")


class NameIn(StatedIn):
    name: str | None = Field(default=None, max_length=200, description='null or "" clears it')


class HideIn(StatedIn):
    hidden: bool = True


class MergeIn(StatedIn):
    other: int = Field(ge=1, le=MAX_ID, description="the person merged into this one (it disappears)")
    dry_run: bool = False


class SplitIn(StatedIn):
    face_ids: list[int] = Field(min_length=1, max_length=10_000, description="faces moved out into a new person")
    dry_run: bool = False


class NotThisPersonIn(StatedIn):
    face_id: int = Field(ge=1, le=MAX_ID)


class CollectionIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    enabled: bool


class PersonFaceOut(BaseModel):
    face_id: int
    image_id: int
    image_path: str | None
    how: str = Field(description="auto (clustering) or manual (a merge or split)")
    quality: float


class PersonOut(BaseModel):
    id: int
    name: str | None
    hidden: bool
    face_count: int
    photo_count: int
    representative_face_id: int
    created_at: datetime
    updated_at: datetime
    faces: list[PersonFaceOut] | None = Field(default=None, description="GET /v1/people/{id} only")


class PersonList(BaseModel):
    persons: list[PersonOut] = Field(description="most faces first")


class ClusterOut(BaseModel):
    faces: int
    persons: int
    kept: int
    new: int
    gone: int
    threshold: float
    max_fmr: float | None
    calibration: str | None
    audit_sequence: int


class ChangeOut(BaseModel):
    """What a correction did (the fields that apply), or would do with ``dry_run``."""

    dry_run: bool = False
    person_id: int | None = None
    new_person_id: int | None = None
    into: int | None = None
    merged: int | None = None
    face_id: int | None = None
    faces_moved: int | list[int] | None = None
    faces_left: int | None = None
    name: str | None = None
    hidden: bool | None = None
    audit_sequence: int | None = None


def _person(person: Person) -> PersonOut:
    return PersonOut(**person.to_dict())


@router.get("/people", response_model=PersonList, summary="The persons found in the library")
def list_people(stated: Stated, host: Host, user: Allowed, include_hidden: bool = False) -> PersonList:
    with host.reading() as library:
        found = library.people.list_persons(purpose=stated, actor=user, include_hidden=include_hidden)
    return PersonList(persons=[_person(p) for p in found])


@router.post("/people/cluster", response_model=ClusterOut, summary="Group every face into persons (again)")
def cluster(body: ClusterIn, host: Host, user: Allowed) -> ClusterOut:
    """Keeps names, hidden persons and corrections; later ingests are assigned incrementally. Audited."""
    with host.reading() as library:
        return ClusterOut(**library.people.cluster(purpose=body.stated(), actor=user, max_fmr=body.max_fmr))


@router.get(
    "/people/export",
    response_class=Response,
    responses={200: {"content": {"text/csv": {}}, "description": "face_id,image_path,person_id"}},
    summary="Every grouped face as CSV",
)
def export(stated: Stated, host: Host, user: Allowed, include_hidden: bool = False) -> Response:
    with host.reading() as library:
        rows = library.people.export(purpose=stated, actor=user, include_hidden=include_hidden)
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["face_id", "image_path", "person_id"])
    writer.writerows(rows)
    return Response(out.getvalue(), media_type="text/csv", headers={"Cache-Control": "private, no-store"})


@router.post("/people/not-this-person", response_model=ChangeOut, summary="A face is not its person")
def not_this_person(body: NotThisPersonIn, host: Host, user: Allowed) -> ChangeOut:
    """The face leaves its person for good (no re-cluster or ingest puts it back there). Audited."""
    with host.reading() as library:
        return ChangeOut(**library.people.not_this_person(body.face_id, purpose=body.stated(), actor=user))


@router.put(
    "/people/collections/{name}",
    summary="Switch people grouping on or off for a collection",
)
def switch_collection(
    name: Annotated[str, Path(min_length=1, max_length=200, pattern=NAME_PATTERN)],
    body: CollectionIn,
    host: Host,
    user: Annotated[User, permission("manage_collections")],
) -> dict:
    """Off: the collection's faces leave their persons now and are never clustered or shown. Audited."""
    with host.reading() as library:
        return library.people.set_collection(name, body.enabled, actor=user)


@router.get("/people/{person_id}", response_model=PersonOut, summary="A person and its faces")
def show(person_id: PersonId, stated: Stated, host: Host, user: Allowed) -> PersonOut:
    with host.reading() as library:
        return _person(library.people.show(person_id, purpose=stated, actor=user))


@router.get(
    "/people/{person_id}/thumbnail",
    response_class=Response,
    responses={200: {"content": {"image/jpeg": {}}, "description": "the representative face's thumbnail"}},
    summary="A person's representative face (JPEG)",
)
def thumbnail(person_id: PersonId, stated: Stated, host: Host, user: Allowed) -> Response:
    """A face view of the person's best face: bound and audited as ``GET /v1/faces/{id}/thumbnail`` is."""
    with host.reading() as library:
        row = library.people.thumbnail(person_id, purpose=stated, actor=user)
    return Response(row.thumbnail, media_type="image/jpeg", headers={"Cache-Control": "private, no-store"})


@router.post("/people/{person_id}/name", response_model=ChangeOut, summary="Name a person")
def name(person_id: PersonId, body: NameIn, host: Host, user: Allowed) -> ChangeOut:
    with host.reading() as library:
        seq = library.people.name(person_id, body.name, purpose=body.stated(), actor=user)
    return ChangeOut(person_id=person_id, name=body.name or None, audit_sequence=seq)


@router.post("/people/{person_id}/hide", response_model=ChangeOut, summary="Hide a person (or show it again)")
def hide(person_id: PersonId, body: HideIn, host: Host, user: Allowed) -> ChangeOut:
    with host.reading() as library:
        seq = library.people.hide(person_id, body.hidden, purpose=body.stated(), actor=user)
    return ChangeOut(person_id=person_id, hidden=body.hidden, audit_sequence=seq)


@router.post("/people/{person_id}/merge", response_model=ChangeOut, summary="Merge another person into this one")
def merge(person_id: PersonId, body: MergeIn, host: Host, user: Allowed) -> ChangeOut:
    """``dry_run``: what would happen, nothing changed. 409 ``conflict`` when a split or a mark keeps them apart."""
    with host.reading() as library:
        plan = library.people.plan_merge(person_id, body.other, purpose=body.stated(), actor=user)
        if body.dry_run:
            return ChangeOut(dry_run=True, **plan)
        done = library.people.merge(person_id, body.other, purpose=body.stated(), actor=user)
    return ChangeOut(**plan, audit_sequence=done["audit_sequence"])


@router.post("/people/{person_id}/split", response_model=ChangeOut, summary="Move faces out into a new person")
def split(person_id: PersonId, body: SplitIn, host: Host, user: Allowed) -> ChangeOut:
    """``dry_run``: what would happen, nothing changed. The two persons are kept apart from now on."""
    with host.reading() as library:
        plan = library.people.plan_split(person_id, body.face_ids, purpose=body.stated(), actor=user)
        if body.dry_run:
            return ChangeOut(dry_run=True, **plan)
        done = library.people.split(person_id, body.face_ids, purpose=body.stated(), actor=user)
    return ChangeOut(**plan, new_person_id=done["new_person_id"], audit_sequence=done["audit_sequence"])
