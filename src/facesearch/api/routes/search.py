"""``POST /v1/search``: find indexed faces like the faces in a probe photo, for a stated case and purpose."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, File, Form, UploadFile

from facesearch.api import service
from facesearch.api.auth import permission
from facesearch.api.deps import Host, Settings
from facesearch.api.models import ERROR_RESPONSES, MAX_ID, NAME_PATTERN, SearchOut
from facesearch.api.uploads import read_limited
from facesearch.errors import FaceSearchError
from facesearch.governance import SearchPurpose, User
from facesearch.governance.purpose import clean_case_id
from facesearch.search.service import MAX_TOP_K

router = APIRouter(tags=["search"], responses=ERROR_RESPONSES)

# Shared with verify: the case and purpose every search and comparison states (recorded in the audit log).
CaseId = Annotated[str, Form(description="the case this search belongs to (1-100 characters)")]
Purpose = Annotated[
    str, Form(description="why this search is run (at least 10 letters, not a placeholder; at most 1000 characters)")
]
LegalBasis = Annotated[str | None, Form(description="required by collections that demand it")]
MaxFmr = Annotated[
    float | None,
    Form(gt=0.0, lt=1.0, allow_inf_nan=False, description="operating point (default: the library's, 1e-3)"),
]
MaxFpir = Annotated[
    float | None,
    Form(
        gt=0.0,
        lt=1.0,
        allow_inf_nan=False,
        description="the chance accepted that a search for someone not in the gallery labels anyone match "
        "(default: the library's, 0.01); sets the match threshold for the gallery searched",
    ),
]


@router.post("/search", response_model=SearchOut, summary="Search the library with a probe photo")
def search(
    case_id: CaseId,
    purpose: Purpose,
    host: Host,
    settings: Settings,
    user: Annotated[User, permission("search")],
    legal_basis: LegalBasis = None,
    face: Annotated[
        int | None, Form(ge=0, le=10_000, description="search only this face of the probe (default: every face)")
    ] = None,
    top_k: Annotated[int, Form(ge=1, le=MAX_TOP_K)] = 20,
    collection: Annotated[str | None, Form(min_length=1, max_length=200, pattern=NAME_PATTERN)] = None,
    max_fmr: MaxFmr = None,
    max_fpir: MaxFpir = None,
    same_person: Annotated[
        bool,
        Form(description="the probe photos show one person: their largest faces are fused into one probe face"),
    ] = False,
    probe: Annotated[
        list[UploadFile] | None,
        File(
            description="the probe photo (never stored; its SHA-256 is audited); several photos of one person "
            "with same_person=true. Required unless probe_face_id is given"
        ),
    ] = None,
    probe_face_id: Annotated[
        int | None,
        Form(ge=1, le=MAX_ID, description="search with this indexed face instead of a photo (issue 13)"),
    ] = None,
    taken_after: Annotated[
        str | None, Form(max_length=40, description="only photos taken on or after this date (YYYY-MM-DD)")
    ] = None,
    taken_before: Annotated[
        str | None, Form(max_length=40, description="only photos taken on or before this date (YYYY-MM-DD)")
    ] = None,
) -> SearchOut:
    """Returns every face found in the probe with its candidates (or only face ``face``): the client chooses.
    Candidates are leads for a person to review, labelled ``match`` only when the strangers expected to score
    as high in the gallery searched (fmr x gallery_size) are at most ``max_fpir``, ``possible lead`` when
    their false match rate per comparison is at most ``max_fmr``, ``no match`` otherwise; the response
    states the operating point (gallery_size, max_fpir, match_fmr, match_threshold). Opted-out people are
    never returned. The audit log records the actor, case, purpose, the probe's SHA-256 and the face ids
    shown: never the probe itself. Several ``probe`` files with ``same_person=true`` (issue 13) search as one
    person, their faces fused into one template; the audit entry lists every photo's SHA-256. Issue 13:
    ``taken_after``/``taken_before`` search only photos taken in that range (undated photos are left out and
    counted: ``undated_excluded``); ``probe_face_id`` searches with an indexed face instead of a photo."""
    data = [read_limited(p.file, settings.max_upload_bytes, f"probe photo {n}") for n, p in enumerate(probe or [], 1)]
    if not data and probe_face_id is None:
        raise FaceSearchError(
            "a search needs a probe photo (probe) or an indexed face (probe_face_id)", code="bad_request"
        )
    stated = SearchPurpose(case_id, purpose, legal_basis)
    with host.reading() as library:
        result = service.search(
            library,
            data if len(data) != 1 else data[0],  # several without same_person: refused by the search
            purpose=stated,
            actor=user,
            top_k=top_k,
            collection=collection,
            face=face,
            max_fmr=max_fmr,
            max_fpir=max_fpir,
            same_person=same_person,
            taken_after=taken_after,
            taken_before=taken_before,
            probe_face_id=probe_face_id,
        )
    return SearchOut.model_validate({**result.to_dict(), "case_id": clean_case_id(stated.case_id)})
