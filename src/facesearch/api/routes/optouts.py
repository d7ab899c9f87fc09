"""Opt-outs (admin): a person's photo removes their faces from the library and keeps them out.

Only the embedding of the photo's largest face and the photo's SHA-256 are kept; the photo itself
is read in memory and dropped. Searches never return an opted-out person, and a search whose probe
is an opted-out person returns no candidates for that face.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, File, Form, Path, UploadFile, status

from facesearch.api import service
from facesearch.api.auth import permission
from facesearch.api.deps import Host, Settings
from facesearch.api.models import ERROR_RESPONSES, MAX_ID, OptOutList, OptOutOut, OptOutReceiptOut
from facesearch.api.uploads import read_limited
from facesearch.governance import User

router = APIRouter(tags=["opt-outs"], responses=ERROR_RESPONSES)


@router.post(
    "/optouts",
    response_model=OptOutReceiptOut,
    status_code=status.HTTP_201_CREATED,
    summary="Register an opt-out from a photo; remove the person's faces",
)
def add_optout(
    photo: Annotated[UploadFile, File(description="a clear photo of the person (not stored)")],
    host: Host,
    settings: Settings,
    user: Annotated[User, permission("optout")],
    note: Annotated[str, Form(max_length=1000, description="e.g. the request's reference")] = "",
) -> OptOutReceiptOut:
    data = read_limited(photo.file, settings.max_upload_bytes, "the photo")
    with host.writing() as library:
        receipt = service.add_optout(library, data, note=note, actor=user)
    return OptOutReceiptOut.model_validate(receipt.to_dict())


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
