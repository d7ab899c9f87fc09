"""Ingestion orchestration: a pool of worker processes, one writer (this process), resumable.

Why this shape: detection and embedding are CPU-bound, so they run in one process per core; the
catalog has a single writer, so the parent commits each image with its faces in one transaction
and then adds its vectors to the index. The index is saved every few seconds and at the end; after
a crash the library catches up the index from the catalog on open. Sources already in the catalog
are skipped before they are read, and the same bytes are never stored twice in a collection, so a
re-run after ``kill -9`` resumes: nothing indexed twice, nothing lost.
"""

from __future__ import annotations

import logging
import multiprocessing
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field

from facesearch.ingest.sources import Source
from facesearch.ingest.worker import ItemResult, Worker, WorkerSettings, init_worker, run_chunk

log = logging.getLogger(__name__)

SAVE_EVERY_SECONDS = 30.0


@dataclass
class IngestReport:
    """The outcome of one ``index`` run."""

    collection: str
    total: int = 0
    indexed: int = 0
    faces: int = 0
    low_quality_faces: int = 0  # detected but below --min-quality, not indexed
    opted_out_faces: int = 0  # faces of people who opted out: never stored
    duplicates: int = 0
    already_indexed: int = 0
    rejected: list[tuple[str, str, str]] = field(default_factory=list)
    seconds: float = 0.0

    def to_dict(self) -> dict:
        return {
            "collection": self.collection,
            "total": self.total,
            "indexed": self.indexed,
            "faces": self.faces,
            "low_quality_faces": self.low_quality_faces,
            "opted_out_faces": self.opted_out_faces,
            "duplicates": self.duplicates,
            "already_indexed": self.already_indexed,
            "rejected": [{"source": s, "code": c, "message": m} for s, c, m in self.rejected],
            "seconds": round(self.seconds, 3),
        }


ProgressCallback = Callable[[str, int, IngestReport], None]
"""Called as ``(event, count, report)`` with event "start" (count = sources to do) or "advance"."""


class IngestRun:
    """Runs one ingestion for a library; ``store`` commits a batch of results (one transaction: a commit
    per photo would cap a fast engine), ``checkpoint`` saves the index."""

    def __init__(
        self,
        settings: WorkerSettings,
        store: Callable[[list[ItemResult]], list[tuple[int, list[int]] | None]],
        checkpoint: Callable[[], None],
        workers: int,
        chunk_size: int = 8,
    ) -> None:
        self.settings = settings
        self.store = store
        self.checkpoint = checkpoint
        self.workers = max(1, workers)
        self.chunk_size = max(1, chunk_size)

    def run(
        self,
        collection_id: int,
        report: IngestReport,
        sources: Sequence[Source],
        progress: ProgressCallback | None,
    ) -> IngestReport:
        started = time.monotonic()
        if progress:
            progress("start", len(sources), report)
        last_save = time.monotonic()

        def handle(results: list[ItemResult]) -> None:
            nonlocal last_save
            for result, stored in zip(results, self.store(results), strict=True):
                self._record(result, stored, report)
            if progress:
                progress("advance", len(results), report)
            if time.monotonic() - last_save > SAVE_EVERY_SECONDS:
                self.checkpoint()
                last_save = time.monotonic()

        try:
            self.produce(collection_id, sources, handle)
        finally:
            self.checkpoint()
            report.seconds = time.monotonic() - started
        return report

    def produce(
        self, collection_id: int, sources: Sequence[Source], handle: Callable[[list[ItemResult]], None]
    ) -> None:
        """Turn ``sources`` into results and pass each batch to ``handle`` (the writer), in order.

        Other engines (ingest/ray_engine.py) override only this, so that every engine stores, counts
        and checkpoints through the same ``handle``.
        """
        if self.workers == 1:
            worker = Worker(self.settings)
            for chunk in chunks(sources, self.chunk_size):
                handle(worker.process(collection_id, chunk))
        else:
            self._run_pool(collection_id, sources, handle)

    def _record(self, result: ItemResult, stored: tuple[int, list[int]] | None, report: IngestReport) -> None:
        if result.status == "indexed":
            if stored is None:
                report.duplicates += 1
            else:
                report.indexed += 1
                report.faces += len(stored[1])
                report.low_quality_faces += result.low_quality_faces
                report.opted_out_faces += result.opted_out_faces
        elif result.status == "duplicate":
            report.duplicates += 1
        else:
            report.rejected.append((result.source.location, result.code, result.message))

    def _run_pool(
        self, collection_id: int, sources: Sequence[Source], handle: Callable[[list[ItemResult]], None]
    ) -> None:
        """Keep every worker busy with a bounded queue; survive a worker process dying."""
        todo: deque[list[Source]] = deque(chunks(sources, self.chunk_size))
        while todo:
            crashed = self._pool_pass(collection_id, todo, handle)
            if crashed:
                # A chunk killed its process (a native crash on one photo). Retry its photos one by
                # one in a fresh pool; a photo that kills a process on its own is rejected.
                chunk = crashed
                if len(chunk) == 1:
                    handle(
                        [
                            ItemResult(
                                chunk[0],
                                "rejected",
                                "worker_crashed",
                                "processing this photo crashed a worker",
                            )
                        ]
                    )
                else:
                    todo.extendleft([[s] for s in reversed(chunk)])

    def _pool_pass(
        self, collection_id: int, todo: deque[list[Source]], handle: Callable[[list[ItemResult]], None]
    ) -> list[Source] | None:
        context = multiprocessing.get_context("spawn")
        in_flight: deque[tuple[Future, list[Source]]] = deque()
        with ProcessPoolExecutor(
            self.workers, mp_context=context, initializer=init_worker, initargs=(self.settings,)
        ) as pool:
            try:
                while todo or in_flight:
                    while todo and len(in_flight) < self.workers * 3:
                        chunk = todo.popleft()
                        in_flight.append((pool.submit(run_chunk, collection_id, chunk), chunk))
                    future, chunk = in_flight.popleft()
                    try:
                        results = future.result()
                    except BrokenProcessPool:
                        for _, other in reversed(in_flight):
                            todo.appendleft(other)
                        return chunk
                    handle(results)
            except BaseException:
                for future, _ in in_flight:
                    future.cancel()
                raise
        return None


def chunks(items: Sequence[Source], size: int) -> Iterator[list[Source]]:
    for start in range(0, len(items), size):
        yield list(items[start : start + size])
