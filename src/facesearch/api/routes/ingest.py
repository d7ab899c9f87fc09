"""Ingest: upload photos or a manifest into a collection; the work runs as a job polled at /v1/jobs/{id}."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, File, Form, Path, Response, UploadFile, status

from facesearch.api.auth import permission
from facesearch.api.deps import Host, Jobs, Settings, Uploads
from facesearch.api.manifest import parse_manifest, to_jsonl
from facesearch.api.models import ERROR_RESPONSES, NAME_PATTERN, JobList, JobOut
from facesearch.api.state import LibraryHost
from facesearch.api.uploads import CheckedPhoto, check_photo, read_limited
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
    """Every file is checked first (size: 413; not an image: 415; too many pixels or damaged: 422): one bad
    file and nothing is stored. Good files are kept as ``uploads/<sha256>.<ext>`` in the library folder;
    the client's file names are only echoed back. The collection must exist (404 ``no_collection``)."""
    _existing(host, collection)
    if not files:
        raise ImageRejected("no files were sent", code="empty_file")
    if len(files) > MAX_FILES:
        raise ImageRejected(f"at most {MAX_FILES} files per request", code="too_large")
    photos: list[CheckedPhoto] = []
    for number, upload in enumerate(files, start=1):
        what = f"file {number} ({(upload.filename or '')[:100]!r})"
        data = read_limited(upload.file, settings.max_upload_bytes, what)
        try:
            photos.append(check_photo(data, upload.filename, host.max_pixels))
        except ImageRejected as exc:
            raise ImageRejected(f"{what}: {exc.message}", code=exc.code) from exc
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
