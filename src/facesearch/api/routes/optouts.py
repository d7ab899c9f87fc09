"""Opt-outs (admin): photos of a person remove their faces from the library and keep them out.

Several photos catch more of the person's faces (send ``photo`` once per photo). Only the embedding
of each photo's largest face and each photo's SHA-256 are kept; the photos themselves are read in
memory and dropped. ``POST /optouts/preview`` shows what an opt-out would remove, changing nothing,
so that a person confirms it first (the web page does). Searches never return an opted-out person,
and a search whose probe is an opted-out person returns no candidates for that face.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, File, Form, Path, UploadFile, status

from facesearch.api import service
from facesearch.api.auth import permission
from facesearch.api.deps import Host, Settings
from facesearch.api.models import (
    ERROR_RESPONSES,
    MAX_ID,
    OptOutList,
    OptOutOut,
    OptOutPreviewOut,
    OptOutReceiptOut,
)
from facesearch.api.uploads import read_limited
from facesearch.governance import User

router = APIRouter(tags=["opt-outs"], responses=ERROR_RESPONSES)


PhotosField = Annotated[
    list[UploadFile], File(description="photos of the person, one field per photo (not stored; up to 20)")
]


def _read_photos(photos: list[UploadFile], limit: int) -> list[bytes]:
    return [read_limited(p.file, limit, f"photo {n}") for n, p in enumerate(photos, start=1)]


@router.post(
    "/optouts",
    response_model=OptOutReceiptOut,
    status_code=status.HTTP_201_CREATED,
    summary="Register an opt-out from photos of a person; remove the person's faces",
)
def add_optout(
    photo: PhotosField,
    host: Host,
    settings: Settings,
    user: Annotated[User, permission("optout")],
    note: Annotated[str, Form(max_length=1000, description="e.g. the request's reference")] = "",
) -> OptOutReceiptOut:
    data = _read_photos(photo, settings.max_upload_bytes)
    with host.writing() as library:
        receipt = service.add_optout(library, data, note=note, actor=user)
    return OptOutReceiptOut.model_validate(receipt.to_dict())


@router.post(
    "/optouts/preview",
    response_model=OptOutPreviewOut,
    summary="What an opt-out with these photos would remove (nothing is changed; audited)",
)
def preview_optout(
    photo: PhotosField,
    host: Host,
    settings: Settings,
    user: Annotated[User, permission("optout")],
) -> OptOutPreviewOut:
    data = _read_photos(photo, settings.max_upload_bytes)
    with host.reading() as library:
        preview = service.preview_optout(library, data, actor=user)
    return OptOutPreviewOut.model_validate(preview.to_dict())


@router.get("/optouts", response_model=OptOutList, summary="Registered opt-outs (no photos: there are none)")
def list_optouts(host: Host, user: Annotated[User, permission("optout")]) -> OptOutList:
    with host.reading() as library:
        registered = library.optouts.list_optouts()
    return OptOutList(optouts=[OptOutOut.model_validate(o) for o in registered])


@router.delete("/optouts/{optout_id}", status_code=status.HTTP_204_NO_CONTENT, summary="Delete an opt-out")
def delete_optout(
    optout_id: Annotated[int, Path(ge=1, le=MAX_ID)], host: Host, user: Annotated[User, permission("optout")]
) -> None:
    """The person may be indexed again from then on; faces the opt-out removed are not restored."""
    with host.writing() as library:
        library.optouts.remove_optout(optout_id, actor=user)
