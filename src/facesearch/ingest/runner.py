"""Ingestion orchestration: a pool of worker processes, one writer (this process), resumable.

Why this shape: detection and embedding are CPU-bound, so they run in one process per core; the
catalog has a single writer, so the parent commits each image with its faces in one transaction
and then adds its vectors to the index. The index is saved every few seconds and at the end; after
a crash the library catches up the index from the catalog on open. Sources already in the catalog
are skipped before they are read, and the same bytes are never stored twice in a collection, so a
re-run after ``kill -9`` resumes: nothing indexed twice, nothing lost.

A worker process that dies while starting (loading its models; killed, or out of memory) held no
photo yet: the pool is started again and no photo is blamed. Photos are handed out only once every
process of the pool is up, so a death after that is a death on a chunk (whose photos are retried one
by one). A start-up that fails with an error (a model that cannot be read) raises that error, once,
rather than looking like a crash; one that keeps dying ends the run as ``worker_crashed``.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from typing import Any

from facesearch.errors import FaceSearchError
from facesearch.ingest.lifeline import die_with_parent
from facesearch.ingest.sources import Source
from facesearch.ingest.worker import ItemResult, Worker, WorkerSettings, init_worker, run_chunk

log = logging.getLogger(__name__)

SAVE_EVERY_SECONDS = 30.0
CHUNK_SIZE = 8  # photos handed to a worker process at a time
START_DEATHS_TO_FAIL = 3  # worker processes dying while starting, in a row, before the run gives up

Initializer = tuple[Callable[..., None], tuple[Any, ...]]
"""A pool process's start-up: a picklable function and its arguments (it loads the models)."""


@dataclass
class IngestReport:
    """The outcome of one ``index`` run."""

    collection: str
    total: int = 0
    indexed: int = 0
    faces: int = 0
    low_quality_faces: int = 0  # detected but below --min-quality, not indexed
    opted_out_faces: int = 0  # faces of people who opted out: never stored
    opted_out_photos: int = 0  # photos with only opted-out people in them: not stored at all
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
            "opted_out_photos": self.opted_out_photos,
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
        chunk_size: int = CHUNK_SIZE,
    ) -> None:
        self.settings = settings
        self.store = store
        self.checkpoint = checkpoint
        self.workers = max(1, workers)
        self.chunk_size = max(1, chunk_size)
        self.start_deaths = 0  # pool processes that died while starting, in a row

    def _worker_initializer(self) -> Initializer:
        """What each pool process runs before its first chunk (a method so that a test can hold a
        process inside its start-up, to kill it there: tests/test_ingest.py)."""
        return init_worker, (self.settings,)

    def _start_died(self, cause: BaseException) -> None:
        """Count a process that died while starting; after START_DEATHS_TO_FAIL in a row, end the run."""
        self.start_deaths += 1
        if self.start_deaths >= START_DEATHS_TO_FAIL:
            raise start_deaths_error(self.start_deaths) from cause
        log.warning("an ingest worker process died while starting; starting the pool again")

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
        elif result.status == "opted_out":
            report.opted_out_photos += 1
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
            if crashed is _NOT_STARTED:
                continue  # a process died while starting: nothing was handed out, a fresh pool takes over
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
        """One pool's life: started, then fed until done or until a process dies under a chunk (returned)."""
        context = multiprocessing.get_context("spawn")
        in_flight: deque[tuple[Future, list[Source]]] = deque()
        everyone = context.Barrier(self.workers)  # each start-up ping waits for all: one per process
        with ProcessPoolExecutor(
            self.workers,
            mp_context=context,
            initializer=start_process,
            initargs=(*self._worker_initializer(), everyone),
        ) as pool:
            if not self._pool_started(pool, everyone):
                return _NOT_STARTED
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

    @staticmethod
    def _stop_starting_pool(pool: ProcessPoolExecutor, everyone: Any) -> None:
        """Release the processes waiting at the start-up barrier and kill them: the pool starts again."""
        everyone.abort()
        for process in _processes(pool):
            process.kill()

    def _pool_started(self, pool: ProcessPoolExecutor, everyone: Any) -> bool:
        """Wait until every process of a new pool is up with its models; False if one died meanwhile.

        A start-up error raised in a process (not a death) is raised here.

        The executor alone does not always notice: a process killed just as the executor spawns it
        may never be among the processes its manager thread watches (CPython 3.11 re-reads that list
        only when woken), and the others then wait at the start-up barrier for ever. So the processes
        are checked here too; on a death the barrier is broken and the pool's processes are killed,
        which the executor does notice, and the pool is started again.
        """
        try:
            # The executor spawns a process per submit: one killed meanwhile breaks the pool under the
            # next submit (BrokenProcessPool, or OSError from the closed queue in CPython 3.11, or ValueError
            # "bad value(s) in fds_to_keep" when the closed queue's descriptor number is reused while the
            # next process is spawned: seen 2 times in 19 runs of the kill test under load, issue 11).
            pings = [pool.submit(process_started) for _ in range(self.workers)]
        except (BrokenProcessPool, OSError, ValueError) as exc:
            self._stop_starting_pool(pool, everyone)
            self._start_died(exc)
            return False
        while wait(pings, timeout=START_CHECK_S).not_done:
            if any(process.exitcode is not None for process in _processes(pool)):
                self._stop_starting_pool(pool, everyone)
                wait(pings, timeout=60)  # the executor sees its processes gone and fails the pings
                self._start_died(BrokenProcessPool("an ingest worker process died while starting"))
                return False
        died: BrokenProcessPool | None = None
        for ping in pings:
            try:
                ping.result()
            except BrokenProcessPool as exc:
                died = exc
            except threading.BrokenBarrierError:
                pass  # another process's start-up failed: its own error is raised
        if died is not None:
            self._stop_starting_pool(pool, everyone)  # CPython 3.11 leaves the others at the barrier
            self._start_died(died)
            return False
        self.start_deaths = 0
        return True


def _processes(pool: ProcessPoolExecutor) -> list[Any]:
    """The pool's processes (the executor keeps them private; read, never changed, here)."""
    return list((getattr(pool, "_processes", None) or {}).values())


START_CHECK_S = 0.5  # how often a starting pool's processes are checked for one that died
_NOT_STARTED: list[Source] = []  # _pool_pass's answer when a process died while starting


def start_deaths_error(deaths: int) -> FaceSearchError:
    """The run's end when worker processes keep dying before they hold any photo."""
    return FaceSearchError(
        f"ingest worker processes died {deaths} times in a row while starting (loading their models), "
        "before holding any photo: is the machine out of memory?",
        code="worker_crashed",
    )


# Start-up plumbing of the engines' pool processes (here and in ingest/batched_engine.py).
_START_ERROR: BaseException | None = None
_EVERYONE: Any = None  # the pool's barrier (multiprocessing.Barrier), when pings must wait for every process


def start_process(initializer: Callable[..., None], initargs: tuple[Any, ...], everyone: Any = None) -> None:
    """A pool process's initializer: the engine's start-up, its error kept for :func:`process_started`.

    Why: an initializer that raises makes the process exit, which the parent cannot tell from a
    crash (BrokenProcessPool); kept, the error reaches the parent as itself.
    """
    global _START_ERROR, _EVERYONE
    _EVERYONE = everyone
    die_with_parent()  # a parent killed by SIGKILL leaves no worker behind (issue 12 §5)
    try:
        initializer(*initargs)
    except Exception as exc:
        _START_ERROR = exc


def process_started() -> int:
    """The ping a new process answers once started (with every other process of its pool, given a
    barrier); raises the error its start-up failed with."""
    if _START_ERROR is not None:
        if _EVERYONE is not None:
            _EVERYONE.abort()  # the others' pings stop waiting for this one
        raise _START_ERROR
    if _EVERYONE is not None:
        _EVERYONE.wait()
    return os.getpid()


def chunks(items: Sequence[Source], size: int) -> Iterator[list[Source]]:
    for start in range(0, len(items), size):
        yield list(items[start : start + size])
