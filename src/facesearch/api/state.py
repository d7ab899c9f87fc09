"""What the server holds between requests: its settings and the served :class:`Library`.

Concurrency, and why it is shaped like this:

- Searches, comparisons and reads of faces run concurrently (``reading``: the shared side of a
  readers-writer lock). Each search borrows a face pipeline of the library's pool (``search_workers``
  of them at most, built as demand appears), searches the vector index read-only, and appends its
  audit entry in its own transaction (serialised: SQLite's write lock, or an advisory lock on PostgreSQL).
- Changes to the served Library (erasure, opt-out, removal, reopening) take the exclusive side
  (``writing``): no search sees the vector index half-changed.
- Ingest jobs run in a background thread on a Library instance of their own (``Library.index`` can
  take minutes), so searches go on meanwhile. When a job saves the index file, the served Library is
  reopened before its next use: the index file's stamp (mtime, size) is compared on every access,
  which also picks up indexing done by the CLI in another process.
- Writes (erasure, opt-out, removal) and jobs exclude each other through ``_writes``, taken *before*
  the exclusive lock: a write waits for a running job without blocking searches, and gives up with
  :class:`~facesearch.api.errors.Busy` (409) after ``write_wait_seconds``.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from facesearch.api.errors import Busy
from facesearch.api.rwlock import ReadWriteLock
from facesearch.governance import ensure_governance_tables
from facesearch.library import Library
from facesearch.store.catalog import Catalog
from facesearch.store.uploaded_copies import HeldFiles

log = logging.getLogger(__name__)

MiB = 1024 * 1024


@dataclass(frozen=True)
class ApiSettings:
    """Limits and knobs of one server. ``max_request_bytes`` caps a whole request body (many files)."""

    library_path: Path
    rate_limit_per_minute: int = 120
    max_upload_bytes: int = 20 * MiB
    max_request_bytes: int = 100 * MiB
    ingest_workers: int | None = None  # worker processes per ingest job (None: one per core)
    write_wait_seconds: float = 60.0
    embedder: str = "onnx"
    search_workers: int = field(default_factory=lambda: default_search_workers())  # probes embedded at once


def default_search_workers() -> int:
    """One pipeline per two cores, at least one and at most four (bench/speed/load.py: docs/benchmarks.md)."""
    return max(1, min(4, (os.cpu_count() or 1) // 2))


class LibraryHost:
    """The served Library, reopened when its index file changed under it, behind the locks described above."""

    def __init__(self, settings: ApiSettings, held_uploads: HeldFiles | None = None) -> None:
        self.settings = settings
        self.held_uploads = held_uploads  # uploads pending jobs need: erasures must not delete them
        self.path = Path(settings.library_path)
        self._lock = ReadWriteLock()
        self._writes = threading.Lock()
        self._library = self._open(repair_index=True)
        ensure_governance_tables(self._library.catalog)
        self.max_pixels = self._library.config.max_pixels  # fixed per library: checked before saving uploads
        self._stamp = self._index_stamp()

    # access ---------------------------------------------------------------------------------------

    @property
    def catalog(self) -> Catalog:
        """The catalog, for reads and audit appends that do not touch the vector index (no lock needed)."""
        return self._library.catalog

    @contextmanager
    def reading(self) -> Iterator[Library]:
        """The served Library for a search, a comparison or a read of faces (many at once)."""
        if self._index_stamp() != self._stamp:
            with self._lock.write():
                self._refresh()
        with self._lock.read():
            yield self._library

    @contextmanager
    def writing(self) -> Iterator[Library]:
        """The served Library for a change, alone; waits for a running ingest job first (see the module doc)."""
        if not self._writes.acquire(timeout=self.settings.write_wait_seconds):
            raise Busy("an ingest job is running; try again when it has finished (GET /v1/jobs)")
        try:
            with self._lock.write():
                self._refresh()
                try:
                    yield self._library
                finally:
                    self._stamp = self._index_stamp()  # our own save is not a change made elsewhere
        finally:
            self._writes.release()

    @contextmanager
    def job(self) -> Iterator[None]:
        """Held by an ingest job for its whole run: no write of this server interleaves with it."""
        with self._writes:
            yield

    def close(self) -> None:
        with self._lock.write():
            self._library.close()

    # reopening ------------------------------------------------------------------------------------

    def _index_stamp(self) -> tuple[int, int] | None:
        try:
            stat = os.stat(self._library.live_index.path)
        except OSError:
            return None
        return stat.st_mtime_ns, stat.st_size

    def _refresh(self) -> None:
        """Reopen the served Library when another instance (an ingest job, the CLI) rewrote the index file.

        ``repair_index=False``: a writer in another process may be half-way through an ingest, and
        this reader must not rewrite the index under it; faces committed but not yet in the file
        appear at the writer's next checkpoint.
        """
        stamp = self._index_stamp()
        if stamp == self._stamp:
            return
        log.info("index file changed; reopening the library")
        fresh = self._open(repair_index=False)
        old, self._library, self._stamp = self._library, fresh, stamp
        old.close()

    def _open(self, repair_index: bool) -> Library:
        library = Library.open(self.path, create=False, embedder=self.settings.embedder, repair_index=repair_index)
        library.pipelines.size = self.settings.search_workers
        library.held_uploads = self.held_uploads
        return library
