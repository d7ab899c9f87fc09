"""Ingest: upload photos or a manifest into a collection; the work runs as a job polled at /v1/jobs/{id}."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, File, Form, Path, Response, UploadFile, status

from facesearch.api.auth import permission
from facesearch.api.deps import Host, Jobs, Settings, Uploads
from facesearch.api.errors import PayloadTooLarge
from facesearch.api.manifest import parse_manifest, to_jsonl
from facesearch.api.models import ERROR_RESPONSES, NAME_PATTERN, JobList, JobOut
from facesearch.api.state import LibraryHost
from facesearch.api.uploads import MAX_NAME_ECHO, CheckedPhoto, check_photo, read_limited
from facesearch.errors import ImageRejected, NoCollection
from facesearch.governance import User
from facesearch.media.decode import sha256_hex

router = APIRouter(tags=["ingest"], responses=ERROR_RESPONSES)

MAX_FILES = 500
CollectionField = Annotated[
    str,
    Form(min_length=1, max_length=200, pattern=NAME_PATTERN, description="must exist (an admin creates collections)"),
]
MinQuality = Annotated[
    float, Form(ge=0.0, le=1.0, allow_inf_nan=False, description="leave out faces below this quality (0..1)")
]


def _existing(host: LibraryHost, collection: str) -> None:
    """Refuse (404 ``no_collection``) before anything is read or stored: ingest never creates a collection."""
    if host.catalog.collection_id(collection, create=False) is None:
        raise NoCollection.named(collection)


def _accepted(response: Response, job: dict) -> JobOut:
    response.headers["Location"] = f"/v1/jobs/{job['id']}"
    return JobOut.model_validate(job)


def _check_all(
    files: list[UploadFile], max_bytes: int, max_pixels: int
) -> tuple[list[CheckedPhoto], list[dict[str, str]], ImageRejected | PayloadTooLarge | None]:
    """Read and decode every file (each within ``max_bytes``: a longer one is not read further). Returns the
    usable photos, the refused files as job ``rejected`` items (the client's name, echoed only; the code;
    why), and the first refusal as an error to raise when no file is usable."""
    photos: list[CheckedPhoto] = []
    refused: list[dict[str, str]] = []
    first: ImageRejected | PayloadTooLarge | None = None
    for number, upload in enumerate(files, start=1):
        name = (upload.filename or "")[:MAX_NAME_ECHO]
        what = f"file {number} ({name[:100]!r})"
        try:
            photos.append(check_photo(read_limited(upload.file, max_bytes, what), upload.filename, max_pixels))
        except PayloadTooLarge as exc:
            refused.append({"source": name or f"file {number}", "code": exc.code, "message": exc.message})
            first = first or exc
        except ImageRejected as exc:
            refused.append({"source": name or f"file {number}", "code": exc.code, "message": exc.message})
            first = first or ImageRejected(f"{what}: {exc.message}", code=exc.code)
    return photos, refused, first


@router.post(
    "/ingest/uploads",
    response_model=JobOut,
    status_code=status.HTTP_202_ACCEPTED,
    summary="Upload photos to index (a job)",
)
def upload(
    files: Annotated[list[UploadFile], File(description=f"the photos (at most {MAX_FILES} per request)")],
    response: Response,
    host: Host,
    settings: Settings,
    uploads: Uploads,
    jobs: Jobs,
    user: Annotated[User, permission("ingest")],
    collection: CollectionField = "default",
    min_quality: MinQuality = 0.0,
) -> JobOut:
    """Every file is checked before anything is stored (over the size limit: ``too_large``; not an image:
    ``not_an_image``; too many pixels or damaged: ``too_many_pixels``, ``truncated``...). A refused file is
    never stored; the good ones are indexed and the refused ones listed in the job's ``rejected`` with their
    codes, as the CLI does (issue 13: one unreadable file in an upload of eight refused all eight). When no
    file is usable the request fails with the first file's error (413, 415 or 422) and no job is made.
    Good files are kept as ``uploads/<sha256>.<ext>`` in the library folder; the client's file names are
    only echoed back. The collection must exist (404 ``no_collection``)."""
    _existing(host, collection)
    if not files:
        raise ImageRejected("no files were sent", code="empty_file")
    if len(files) > MAX_FILES:
        raise ImageRejected(f"at most {MAX_FILES} files per request", code="too_large")
    photos, refused, first_refusal = _check_all(files, settings.max_upload_bytes, host.max_pixels)
    if not photos and first_refusal is not None:
        raise first_refusal
    paths = [uploads.path_for(photo) for photo in photos]
    uploads.hold(paths)
    try:
        for photo in photos:
            uploads.store_photo(photo)
        job = jobs.submit(
            kind="upload",
            collection=collection,
            actor=user.name,
            inputs=list(dict.fromkeys(paths)),
            held=paths,
            files=[{"name": p.name, "sha256": p.sha256, "bytes": len(p.data)} for p in photos],
            refused=refused,
            min_quality=min_quality,
            audit={"sha256": sorted({p.sha256 for p in photos})},
        )
    except BaseException:
        uploads.release(paths)
        raise
    return _accepted(response, job)


@router.post(
    "/ingest/manifest",
    response_model=JobOut,
    status_code=status.HTTP_202_ACCEPTED,
    summary="Index the photos a manifest lists by URL (a job)",
)
def manifest(
    manifest: Annotated[UploadFile, File(description="CSV with a header row, or JSON Lines; rows need a 'url'")],
    response: Response,
    host: Host,
    settings: Settings,
    uploads: Uploads,
    jobs: Jobs,
    user: Annotated[User, permission("ingest")],
    collection: CollectionField = "default",
    min_quality: MinQuality = 0.0,
    format: Annotated[Literal["csv", "jsonl"] | None, Form(description="default: guessed from the content")] = None,
) -> JobOut:
    """Rows may not name local paths (422 ``path_not_allowed``). Private and loopback addresses are refused
    per row when fetched: such rows show up in the job's ``rejected`` list with their codes. The collection
    must exist (404 ``no_collection``)."""
    _existing(host, collection)
    data = read_limited(manifest.file, settings.max_upload_bytes, "the manifest")
    rows = parse_manifest(data, format)
    path = uploads.store_manifest(to_jsonl(rows))
    uploads.hold([path])
    try:
        job = jobs.submit(
            kind="manifest",
            collection=collection,
            actor=user.name,
            inputs=[path],
            held=[path],
            min_quality=min_quality,
            audit={"manifest_sha256": sha256_hex(data), "rows": len(rows)},
        )
    except BaseException:
        uploads.release([path])
        raise
    return _accepted(response, job)


@router.get("/jobs", response_model=JobList, summary="Ingest jobs, newest first")
def list_jobs(jobs: Jobs, user: Annotated[User, permission("ingest")]) -> JobList:
    return JobList.model_validate({"jobs": jobs.all()})


@router.get("/jobs/{job_id}", response_model=JobOut, summary="One ingest job: status, progress, rejected items")
def get_job(
    job_id: Annotated[str, Path(pattern=r"^[0-9a-f]{32}$")], jobs: Jobs, user: Annotated[User, permission("ingest")]
) -> JobOut:
    return JobOut.model_validate(jobs.get(job_id))
