"""``POST /v1/verify``: are the largest faces of two photos the same person? (For a stated case and purpose.)"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, File, UploadFile

from facesearch.api import service
from facesearch.api.auth import permission
from facesearch.api.deps import Host, Settings
from facesearch.api.models import ERROR_RESPONSES, VerifyOut
from facesearch.api.routes.search import CaseId, LegalBasis, MaxFmr, Purpose
from facesearch.api.uploads import read_limited
from facesearch.governance import SearchPurpose, User
from facesearch.governance.purpose import clean_case_id

router = APIRouter(tags=["verify"], responses=ERROR_RESPONSES)


@router.post("/verify", response_model=VerifyOut, summary="Compare the largest faces of two photos")
def verify(
    a: Annotated[UploadFile, File(description="first photo (never stored)")],
    b: Annotated[UploadFile, File(description="second photo (never stored)")],
    case_id: CaseId,
    purpose: Purpose,
    host: Host,
    settings: Settings,
    user: Annotated[User, permission("verify")],
    legal_basis: LegalBasis = None,
    max_fmr: MaxFmr = None,
) -> VerifyOut:
    """``same_person`` is true (``label`` ``match``) when the calibrated false match rate of this one
    comparison is at most ``max_fmr``, else ``label`` is ``no match``; even a match is a lead for a person to
    confirm. Audited with both photos' SHA-256, the case and the purpose."""
    first = read_limited(a.file, settings.max_upload_bytes, "photo a")
    second = read_limited(b.file, settings.max_upload_bytes, "photo b")
    stated = SearchPurpose(case_id, purpose, legal_basis)
    with host.reading() as library:
        result = service.verify(library, first, second, purpose=stated, actor=user, max_fmr=max_fmr)
    a_sha, b_sha = result.photos_sha256
    extra = {"a_sha256": a_sha, "b_sha256": b_sha, "case_id": clean_case_id(stated.case_id)}
    return VerifyOut.model_validate({**result.to_dict(), **extra})
