"""Typed request and response bodies of the REST API (Pydantic), with stable field names.

Search and verify responses carry exactly the fields of :class:`~facesearch.search.results.SearchResult`
and :class:`~facesearch.search.results.VerifyResult` (the schema in docs/architecture.md), plus the
sequence number of the audit entry the request wrote; receipts carry the governance receipts' fields.
Fields may be added; existing names are never renamed.

Input bounds here are what keeps hostile input from reaching SQLite or NumPy as something they
cannot take (an id beyond 64 bits, NaN as a rate, a control character in a name).
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

MAX_ID = 2**62
NAME_PATTERN = r"^[^\x00-\x1f\x7f]+$"  # printable: no control characters
Id = Annotated[int, Field(ge=1, le=MAX_ID)]
Decision = Literal["confirmed", "rejected", "inconclusive"]
Role = Literal["admin", "ingester", "investigator", "auditor"]


class _Out(BaseModel):
    model_config = ConfigDict(from_attributes=True)


# errors -------------------------------------------------------------------------------------------


class ErrorBody(_Out):
    code: str = Field(description="stable, machine-readable: branch on this")
    message: str = Field(description="for people; may change")


class ErrorResponse(_Out):
    error: ErrorBody


ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorResponse, "description": text}
    for status, text in (
        (400, "malformed request (bad JSON, bad manifest)"),
        (401, "no API key, or an unknown or revoked one"),
        (403, "the key's role may not do this"),
        (404, "no such item"),
        (409, "conflicts with the current state"),
        (413, "upload or request too large"),
        (415, "not an image, or an unsupported format"),
        (422, "invalid input (purpose_required, too_many_pixels, no_face, ...)"),
        (429, "rate limit reached: see Retry-After"),
    )
}


# search and verify --------------------------------------------------------------------------------


class ImageRefOut(_Out):
    image_id: int
    path: str | None = Field(description="local file the photo was indexed from")
    source_url: str | None = Field(description="URL the photo was fetched from")
    page_url: str | None = Field(description="web page the photo came from, if known")
    sha256: str


class CandidateOut(_Out):
    rank: int
    similarity: float = Field(description="cosine similarity")
    score: float = Field(
        description="what ranks and is compared with the threshold: cosine, s-norm or snorm_cos (s-norm + 45 x cosine)"
    )
    fmr: float | None = Field(description="calibrated chance that a different person scores this high")
    fmr_upper_bound: bool
    expected_false_candidates: float | None = Field(description="fmr x gallery size")
    passes_threshold: bool
    label: Literal["match", "possible lead", "no match"] = Field(
        description="match: fmr x gallery size <= max_fpir; possible lead: fmr <= max_fmr per comparison, not a "
        "match in a gallery this size; no match: the rest (most likely different people). Never an identification"
    )
    face_id: int
    collection: str
    box: list[int]
    quality: float
    image: ImageRefOut


class ProbeFaceOut(_Out):
    face: int = Field(description="index of the face in the probe; send it as `face` to search only this one")
    box: list[int] = Field(description="[left, top, width, height]")
    det_score: float
    quality: float
    candidates: list[CandidateOut]


class SearchOut(_Out):
    faces: list[ProbeFaceOut] = Field(description="every face found in the probe (or only the one asked for)")
    threshold: float
    max_fmr: float | None
    calibration: str | None
    model: str
    gallery_size: int
    top_k: int
    collection: str | None
    probe_sha256: str = Field(description="of the probe photo (the first photo of a same-person probe)")
    probes_sha256: list[str] = Field(
        default_factory=list, description="every probe photo's SHA-256 (several: fused as one person)"
    )
    probe_size: list[int]
    score: str = Field(description="the kind of the candidates' scores: cosine, snorm or snorm_cos (issue 16)")
    case_id: str
    audit_sequence: int | None = Field(description="the audit entry this search wrote")
    max_fpir: float | None = Field(
        None, description="the chance accepted that a search for someone not in the gallery shows any match"
    )
    match_fmr: float | None = Field(
        None, description="the false match rate per comparison a match needs here: min(max_fmr, max_fpir / gallery)"
    )
    match_threshold: float | None = Field(None, description="the score a match needs (null: none can be a match)")
    match_unavailable: str | None = Field(None, description="why no result can be a match, and how to fix it")
    calibration_warning: str | None = Field(
        None, description="the calibration was found off by more than 2x on people it was not built from"
    )
    taken_after: str | None = Field(None, description="only photos taken from then (issue 13)")
    taken_before: str | None = Field(None, description="only photos taken before then (exclusive)")
    undated_excluded: int | None = Field(
        None, description="faces left out for having no date in their photo (null: no date range given)"
    )
    probe_face_id: int | None = Field(None, description="the indexed face searched with, instead of a photo")


class VerifyFaceOut(_Out):
    box: list[int]
    quality: float


class VerifyOut(_Out):
    same_person: bool
    similarity: float
    fmr: float | None
    fmr_upper_bound: bool
    label: Literal["match", "possible lead", "no match"] = Field(
        description="match: fmr <= max_fmr (1:1); no match: not the same person at this operating point; "
        "possible lead: an uncalibrated model's fallback threshold was reached"
    )
    threshold: float
    max_fmr: float | None
    calibration: str | None
    calibration_warning: str | None = None
    model: str
    faces: list[VerifyFaceOut]
    a_sha256: str
    b_sha256: str
    case_id: str
    audit_sequence: int | None


# faces and reviews --------------------------------------------------------------------------------


class FaceOut(_Out):
    face_id: int
    face_index: int = Field(description="index of the face within its photo")
    collection: str
    box: list[int]
    landmarks: list[list[float]]
    det_score: float
    quality: float
    image: ImageRefOut


class ReviewIn(BaseModel):
    case_id: str = Field(min_length=1, max_length=100, pattern=NAME_PATTERN)
    face_id: int = Field(ge=1, le=MAX_ID)
    decision: Decision = Field(description="what the reviewer concluded about this candidate")
    note: str = Field("", max_length=1000, description="kept in the audit log, which is never erased")


class ReviewOut(_Out):
    audit_sequence: int
    at: str
    reviewer: str
    case_id: str
    face_id: int
    decision: str
    note: str


class ReviewList(_Out):
    reviews: list[ReviewOut]
    next_after: int | None = Field(description="pass as `after` for the next page; null at the end")


# collections --------------------------------------------------------------------------------------


class CollectionOut(_Out):
    name: str
    images: int
    faces: int
    settings: dict[str, Any]


class CollectionList(_Out):
    collections: list[CollectionOut]
    images: int
    faces: int
    model: str
    warnings: list[str] = Field(
        default_factory=list, description="what an operator should know about this library on this server"
    )


class CollectionSettingsIn(BaseModel):
    require: list[Literal["legal_basis"]] = Field(
        default_factory=list, max_length=5, description="what searches of this collection must state"
    )
    retention_days: float | None = Field(
        None, gt=0, le=36_500, allow_inf_nan=False, description="purge photos indexed longer ago; null: keep"
    )


class CollectionIn(CollectionSettingsIn):
    name: str = Field(min_length=1, max_length=200, pattern=NAME_PATTERN)


# ingest and jobs ----------------------------------------------------------------------------------


class RejectedItem(_Out):
    source: str
    code: str
    message: str


class UploadedFile(_Out):
    name: str = Field(description="the client's file name, echoed back (never used as a path, never stored)")
    sha256: str
    bytes: int


class JobOut(_Out):
    id: str
    kind: Literal["upload", "manifest"]
    collection: str
    actor: str
    status: Literal["queued", "running", "done", "failed"]
    created_at: str
    started_at: str | None
    finished_at: str | None
    total: int = Field(description="items in the job (known once it starts)")
    done: int = Field(description="items processed so far")
    indexed: int
    faces: int
    duplicates: int
    already_indexed: int
    low_quality_faces: int
    rejected: list[RejectedItem]
    files: list[UploadedFile]
    error: ErrorBody | None


class JobList(_Out):
    jobs: list[JobOut]


# removal, erasure, opt-out ------------------------------------------------------------------------


class ErasureIn(BaseModel):
    face_ids: list[Id] = Field(default_factory=list, max_length=100_000)
    image_ids: list[Id] = Field(default_factory=list, max_length=100_000)
    source: str | None = Field(None, min_length=1, max_length=4000, description="a path or URL as indexed")
    reason: str = Field(min_length=1, max_length=1000, description="why (kept in the audit log)")


class ErasureReceiptOut(_Out):
    receipt_id: str
    at: str
    actor: str
    reason: str
    request: dict[str, Any]
    image_ids: list[int]
    face_ids: list[int]
    kept_image_ids: list[int]
    sources: list[str]
    image_sha256: list[str]
    rejections_removed: int
    collection_dropped: str | None
    audit_sequence: int | None
    audit_hash: str | None
    counts: dict[str, int]


class OptOutOut(_Out):
    id: int
    created_at: datetime
    created_by: str
    note: str
    photo_sha256: str


class OptOutList(_Out):
    optouts: list[OptOutOut]


class OptOutReceiptOut(_Out):
    receipt_id: str
    at: str
    actor: str
    optout_id: int | None
    photo_sha256: str | None
    optout_ids: list[int]
    photos_sha256: list[str]
    threshold: float
    threshold_source: str
    face_ids: list[int]
    image_ids: list[int]
    kept_image_ids: list[int]
    sources: list[str]
    audit_sequence: int | None
    warning: str | None


class OptOutPreviewImage(_Out):
    image_id: int
    source: str
    face_ids: list[int]
    deleted: bool = Field(description="true: no other face is left, the photo goes; false: only the person's faces")


class OptOutPreviewOut(_Out):
    photos_sha256: list[str]
    threshold: float
    threshold_source: str
    face_ids: list[int]
    image_ids: list[int]
    kept_image_ids: list[int]
    images: list[OptOutPreviewImage]
    warning: str | None = Field(description="set when nothing would be removed")


# audit --------------------------------------------------------------------------------------------


class AuditEntryOut(_Out):
    seq: int
    at: str
    actor: str
    action: str
    case_id: str | None
    purpose: str | None
    details: dict[str, Any]
    prev_hash: str
    hash: str


class AuditList(_Out):
    entries: list[AuditEntryOut]
    next_after: int | None = Field(description="pass as `after` for the next page; null at the end")


class AuditVerificationOut(_Out):
    ok: bool
    entries: int
    first_bad_sequence: int | None
    problem: str | None
    head_sequence: int | None
    head_hash: str | None


# users --------------------------------------------------------------------------------------------


class UserOut(_Out):
    name: str
    role: str
    key_id: str = Field(description="identifies the key (not secret); the key itself is never shown again")
    created_at: datetime
    created_by: str
    revoked_at: datetime | None
    active: bool


class UserList(_Out):
    users: list[UserOut]


class UserIn(BaseModel):
    name: str = Field(min_length=1, max_length=100)
    role: Role


class RoleIn(BaseModel):
    role: Role


class NewKeyOut(_Out):
    user: UserOut
    key: str = Field(description="the API key: shown this once, stored only as a hash")


class MeOut(_Out):
    name: str
    role: str
    actions: list[str] = Field(description="what this key may do")


class HealthOut(_Out):
    status: Literal["ok"]
