"""Removal and erasure, each with a receipt: what was deleted, in ids, sources and hashes.

``DELETE /v1/images/{id}`` is the ingester's way to take back a photo indexed by mistake;
``POST /v1/erasures`` is the admin's answer to an erasure request (faces, images, a source). Both
delete in one transaction with their audit entry, zero the freed database pages, drop the vectors,
and delete the library's own copy of an uploaded photo once no image refers to it.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query

from facesearch.api import service
from facesearch.api.auth import permission
from facesearch.api.deps import Host
from facesearch.api.errors import NotFound
from facesearch.api.models import ERROR_RESPONSES, MAX_ID, ErasureIn, ErasureReceiptOut
from facesearch.governance import User
from facesearch.governance.deletion_plan import NothingMatched

router = APIRouter(tags=["removal"], responses=ERROR_RESPONSES)


@router.post("/erasures", response_model=ErasureReceiptOut, summary="Erase faces, images or a source; get a receipt")
def erase(body: ErasureIn, host: Host, user: Annotated[User, permission("erase")]) -> ErasureReceiptOut:
    """Face ids erase single faces (other people in the photo stay); image ids and a source erase whole photos.
    An erasure that finds nothing is 404 ``nothing_matched``: no receipt, nothing audited."""
    with host.writing() as library:
        receipt = service.erase_items(
            library,
            actor=user,
            reason=body.reason,
            face_ids=body.face_ids,
            image_ids=body.image_ids,
            source=body.source,
        )
    return ErasureReceiptOut.model_validate(receipt.to_dict())


@router.delete("/images/{image_id}", response_model=ErasureReceiptOut, summary="Remove one indexed photo")
def remove_image(
    image_id: Annotated[int, Path(ge=1, le=MAX_ID)],
    host: Host,
    user: Annotated[User, permission("remove")],
    reason: Annotated[str, Query(min_length=1, max_length=1000, description="kept in the audit log")] = "removed",
) -> ErasureReceiptOut:
    try:
        with host.writing() as library:
            receipt = service.erase_items(library, actor=user, reason=reason, image_ids=[image_id])
    except NothingMatched as exc:  # this route's resource is the image: 404 not_found, as it always said
        raise NotFound(f"no image {image_id}") from exc
    return ErasureReceiptOut.model_validate(receipt.to_dict())
