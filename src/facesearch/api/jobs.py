"""Ingest jobs: queued by a request, run one at a time by a background thread, polled at /v1/jobs/{id}.

Why a thread and a table in memory: indexing takes seconds to hours, longer than a request should
wait, and ``Library.index`` already spreads the work over worker processes; one job at a time is
what the library's single-writer lock allows anyway. The table lives as long as the server (the
last :data:`MAX_KEPT` jobs); what outlives it is the audit log, where every job writes an
``ingest_start`` and an ``ingest_done`` entry (ids, hashes and counts; never paths or URLs, since
the audit log is never erased). A job that was queued or running when the server stopped is simply
run again by re-sending it: ingest is resumable and skips what is already indexed.
"""

from __future__ import annotations

import logging
import queue
import threading
import uuid
from collections import OrderedDict
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from facesearch.api.errors import NotFound
from facesearch.api.state import LibraryHost
from facesearch.api.uploads import UploadStore
from facesearch.errors import FaceSearchError
from facesearch.governance.audit import utc_iso
from facesearch.governance.events import IngestJobEvent, record
from facesearch.ingest.runner import IngestReport
from facesearch.library import Library

log = logging.getLogger(__name__)

MAX_KEPT = 1000
_COUNTS = ("indexed", "faces", "duplicates", "already_indexed", "low_quality_faces")


@dataclass
class Job:
    """One ingest job as the API shows it (see models.JobOut), plus what the runner needs to run it."""

    id: str
    kind: str  # "upload" or "manifest"
    collection: str
    actor: str
    created_at: str
    status: str = "queued"
    started_at: str | None = None
    finished_at: str | None = None
    total: int = 0
    done: int = 0
    indexed: int = 0
    faces: int = 0
    duplicates: int = 0
    already_indexed: int = 0
    low_quality_faces: int = 0
    rejected: list[dict[str, str]] = field(default_factory=list)
    files: list[dict[str, Any]] = field(default_factory=list)
    error: dict[str, str] | None = None
    # not shown:
    inputs: list[Path] = field(default_factory=list, repr=False)
    held: list[Path] = field(default_factory=list, repr=False)
    min_quality: float = 0.0
    audit: dict[str, Any] = field(default_factory=dict, repr=False)  # what the audit entries say about the input
    refused: list[dict[str, str]] = field(default_factory=list, repr=False)  # files refused before the job: stay listed

    def public(self) -> dict[str, Any]:
        data = asdict(self)
        for name in ("inputs", "held", "min_quality", "audit", "refused"):
            data.pop(name)
        return data


class JobRunner:
    """The job table and the thread that works through it."""

    def __init__(self, host: LibraryHost, uploads: UploadStore, workers: int | None = None) -> None:
        self.host = host
        self.uploads = uploads
        self.workers = workers
        self._jobs: OrderedDict[str, Job] = OrderedDict()
        self._lock = threading.Lock()
        self._queue: queue.Queue[Job | None] = queue.Queue()
        self._thread: threading.Thread | None = None

    # the table ------------------------------------------------------------------------------------

    def submit(
        self,
        *,
        kind: str,
        collection: str,
        actor: str,
        inputs: list[Path],
        held: list[Path],
        files: list[dict[str, Any]] | None = None,
        refused: list[dict[str, str]] | None = None,
        min_quality: float = 0.0,
        audit: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """Queue a job (its input files already saved and held) and return its public state. ``refused``: the
        files of the request that were refused before the job (listed first in its ``rejected``)."""
        job = Job(
            id=uuid.uuid4().hex,
            kind=kind,
            collection=collection,
            actor=actor,
            created_at=utc_iso(),
            files=list(files or []),
            rejected=list(refused or []),
            refused=list(refused or []),
            inputs=list(inputs),
            held=list(held),
            min_quality=min_quality,
            audit=dict(audit or {}),
        )
        with self._lock:
            self._jobs[job.id] = job
            while len(self._jobs) > MAX_KEPT:
                oldest = next(iter(self._jobs))
                if self._jobs[oldest].status in ("queued", "running"):
                    break
                self._jobs.pop(oldest)
            self._start()
            snapshot = job.public()
        self._queue.put(job)
        log.info("job %s queued: %s into %s by %s", job.id, kind, collection, actor)
        return snapshot

    def get(self, job_id: str) -> dict[str, Any]:
        with self._lock:
            job = self._jobs.get(job_id)
            if job is None:
                raise NotFound(f"no job {job_id!r} (jobs are kept in memory until the server restarts)")
            return job.public()

    def all(self) -> list[dict[str, Any]]:
        with self._lock:
            return [job.public() for job in reversed(self._jobs.values())]

    def close(self, timeout: float = 5.0) -> None:
        """Stop taking jobs; a running one finishes in the background (ingest resumes if cut short)."""
        if self._thread is not None:
            self._queue.put(None)
            self._thread.join(timeout)

    def _start(self) -> None:
        if self._thread is None or not self._thread.is_alive():
            self._thread = threading.Thread(target=self._loop, name="facesearch-ingest", daemon=True)
            self._thread.start()

    # running --------------------------------------------------------------------------------------

    def _loop(self) -> None:
        while True:
            job = self._queue.get()
            if job is None:
                return
            try:
                self._run(job)
            except Exception:  # the thread must survive any one job
                log.exception("job %s crashed", job.id)

    def _run(self, job: Job) -> None:
        with self.host.job():
            self._set(job, status="running", started_at=utc_iso())
            self._audit(job, "ingest_start", {"items": len(job.inputs), **job.audit})
            library: Library | None = None
            try:
                library = Library.open(self.host.path, create=False, embedder=self.host.settings.embedder)
                report = library.index(
                    job.inputs,
                    collection=job.collection,
                    workers=self.workers,
                    progress=lambda event, count, rep: self._progress(job, event, count, rep),
                    min_quality=job.min_quality,
                    actor=job.actor,
                )
                self._take(job, report)
                self._set(job, status="done")
            except FaceSearchError as exc:
                self._set(job, status="failed", error={"code": exc.code, "message": exc.message})
            except Exception:
                log.exception("job %s failed", job.id)
                self._set(job, status="failed", error={"code": "internal_error", "message": "see the server log"})
            finally:
                self._finish(job, library)

    def _finish(self, job: Job, library: Library | None) -> None:
        """Release and clean up the job's files, close its Library and audit the outcome, whatever happened."""
        try:
            self.uploads.release(job.held)
            catalog = library.catalog if library is not None else self.host.catalog
            self.uploads.discard_unreferenced(catalog, [str(p) for p in job.inputs])
            if job.kind == "manifest":
                for path in job.inputs:
                    path.unlink(missing_ok=True)  # its rows are in the catalog now; URLs are not kept twice
        finally:
            if library is not None:
                library.close()
            self._set(job, finished_at=utc_iso())
            outcome = {name: getattr(job, name) for name in ("status", "total", "rejected", *_COUNTS)}
            outcome["rejected"] = sorted({r["code"] for r in job.rejected})
            outcome["rejected_count"] = len(job.rejected)
            outcome["error"] = job.error["code"] if job.error else None
            self._audit(job, "ingest_done", outcome)
            log.info("job %s %s: %d indexed, %d rejected", job.id, job.status, job.indexed, len(job.rejected))

    def _audit(self, job: Job, action: str, details: dict[str, Any]) -> None:
        try:
            event = IngestJobEvent(action, job.id, job.kind, job.collection, details)
            record(self.host.catalog, event, job.actor)
        except FaceSearchError:
            log.exception("could not audit %s of job %s", action, job.id)

    def _progress(self, job: Job, event: str, count: int, report: IngestReport) -> None:
        with self._lock:
            if event == "start":
                job.total = report.total
                job.done = report.already_indexed
            else:
                job.done += count
        self._take(job, report)

    def _take(self, job: Job, report: IngestReport) -> None:
        with self._lock:
            job.total = report.total
            for name in _COUNTS:
                setattr(job, name, getattr(report, name))
            job.rejected = job.refused + [{"source": s, "code": c, "message": m} for s, c, m in report.rejected]

    def _set(self, job: Job, **changes: Any) -> None:
        with self._lock:
            for name, value in changes.items():
                setattr(job, name, value)
