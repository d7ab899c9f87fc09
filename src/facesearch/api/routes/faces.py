"""Indexed faces: metadata and thumbnail, for reviewing candidates. Each view states its case and purpose
(and the legal basis the face's collection demands), like a search, and is audited.

Why audited: face ids are small integers, so without a record anyone allowed to search could page
through every thumbnail in the library without stating a case. With ``case_id`` required and each
view in the audit log, browsing outside a case is visible to the auditors.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query, Response

from facesearch.api import service
from facesearch.api.auth import permission
from facesearch.api.deps import Host
from facesearch.api.face_photo import face_photo
from facesearch.api.models import ERROR_RESPONSES, MAX_ID, NAME_PATTERN, FaceOut
from facesearch.governance import SearchPurpose, User
from facesearch.media.urls import shown_url, web_link

router = APIRouter(tags=["faces"], responses=ERROR_RESPONSES)

FaceId = Annotated[int, Path(ge=1, le=MAX_ID)]
CaseQuery = Annotated[
    str, Query(min_length=1, max_length=100, pattern=NAME_PATTERN, description="the case this view is for (audited)")
]
PurposeQuery = Annotated[
    str, Query(min_length=1, max_length=1000, description="why: as for a search (at least 10 letters; audited)")
]
LegalBasisQuery = Annotated[
    str | None, Query(max_length=500, description="required for a face of a collection that demands one")
]


def _stated(case_id: CaseQuery, purpose: PurposeQuery, legal_basis: LegalBasisQuery = None) -> SearchPurpose:
    """The query parameters every face view states, once for the three views."""
    return SearchPurpose(case_id, purpose, legal_basis)


Stated = Annotated[SearchPurpose, Depends(_stated)]


@router.get("/faces/{face_id}", response_model=FaceOut, summary="An indexed face: box, landmarks, quality, photo")
def face(
    face_id: FaceId,
    stated: Stated,
    host: Host,
    user: Annotated[User, permission("search")],
) -> FaceOut:
    """Bound like a search: case, purpose, and the legal basis the face's collection demands (else 422)."""
    with host.reading() as library:
        row = service.view_face(library, face_id, purpose=stated, actor=user, thumbnail=False)
    image = row.image
    return FaceOut(
        face_id=row.id,
        face_index=row.face_index,
        collection=image.collection.name,
        box=list(row.box),
        landmarks=[[float(x), float(y)] for x, y in row.landmarks],
        det_score=row.det_score,
        quality=row.quality,
        image={
            "image_id": image.id,
            "path": image.source if image.source_kind == "file" else None,
            "source_url": shown_url(image.source) if image.source_kind == "url" else None,
            "page_url": web_link(image.page_url),
            "sha256": image.sha256,
        },
    )


@router.get(
    "/faces/{face_id}/thumbnail",
    response_class=Response,
    responses={200: {"content": {"image/jpeg": {}}, "description": "a small JPEG of the face"}},
    summary="The face's thumbnail (JPEG)",
)
def thumbnail(
    face_id: FaceId,
    stated: Stated,
    host: Host,
    user: Annotated[User, permission("search")],
) -> Response:
    """Bound like a search: case, purpose, and the legal basis the face's collection demands (else 422)."""
    with host.reading() as library:
        row = service.view_face(library, face_id, purpose=stated, actor=user, thumbnail=True)
    return Response(row.thumbnail, media_type="image/jpeg", headers={"Cache-Control": "private, no-store"})


@router.get(
    "/faces/{face_id}/photo",
    response_class=Response,
    responses={
        200: {
            "content": {"image/jpeg": {}},
            "description": "the whole photo (JPEG, at most 1600 px a side, its own metadata dropped). Headers: "
            "X-Face-Box (left,top,width,height of the face in this JPEG), X-Photo-Size (width,height), "
            "X-Photo-Taken (EXIF date, ISO 8601; absent when the photo has none)",
        }
    },
    summary="The whole photo the face is in (JPEG)",
)
def photo(
    face_id: FaceId,
    stated: Stated,
    host: Host,
    user: Annotated[User, permission("search")],
) -> Response:
    """Issue 13: bound and audited like the thumbnail (a ``face_view`` entry with ``view: photo``). 404 for a
    photo fetched from a URL (not kept) or gone from its path; 409 ``source_changed`` when the file's bytes
    are no longer the ones indexed."""
    with host.reading() as library:
        shown = face_photo(library, face_id, purpose=stated, actor=user, max_pixels=host.max_pixels)
    headers = {
        "Cache-Control": "private, no-store",
        "X-Face-Box": ",".join(map(str, shown.box)),
        "X-Photo-Size": ",".join(map(str, shown.size)),
    }
    if shown.taken is not None:
        headers["X-Photo-Taken"] = shown.taken.isoformat()
    return Response(shown.jpeg, media_type="image/jpeg", headers=headers)
