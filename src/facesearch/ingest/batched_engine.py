"""The batched engine: one process runs the networks on its device in large batches, CPU workers do the rest.

Why: a GPU embeds tens of thousands of faces a second, but only in batches of thousands, and one
process should own it (a CUDA context per worker process wastes the card's memory and serialises
anyway). So ``facesearch index --engine batched --device cuda`` (the default engine on a GPU) splits
the local engine's per-photo work:

- worker processes (ingest/batched_prep.py, one per CPU core but one) read, hash, skip known bytes,
  decode, shrink to the working size, run CPU detectors (HOG), landmark and align;
- this process batches the working copies of same-size photos through the CNN face detector on the
  device (``TorchBatchDetector``), sends each photo's cells above the threshold back to the worker
  holding that photo, and embeds the aligned faces of many photos in one batch (``embed_faces``, the
  pipeline's own recipe: flip, jitter and its axes, stability);
- it is also the writer, on a thread of its own (:class:`WriterThread`: the device's waits and
  SQLite's steps release the GIL, so writing overlaps the device work): results reach the same
  ``handle`` as every engine's (ingest/runner.py), in input order, so storing, duplicates, opt-outs,
  ``min_quality``, checkpoints and the report are the local engine's own. The faces and embeddings
  are the local engine's too (tests/test_batched_ingest.py).

A worker process that dies (a native crash on one photo) loses the photos it held: they are tried
again one at a time in a fresh process, and a photo that keeps killing processes is rejected as
``worker_crashed``, as the local engine does. A process that dies while starting (loading its
models; killed, or out of memory) holds no photo, because photos go only to processes that answered
their start-up ping: it is replaced, no photo is blamed, and the run ends as ``worker_crashed`` only
when a slot's processes keep dying before they start.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import queue
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from facesearch.errors import FaceSearchError
from facesearch.ingest.batched_prep import (
    DEVICE_DETECTOR,
    Prepared,
    PrepSettings,
    finish_items,
    init_prep,
    prepare_items,
)
from facesearch.ingest.runner import (
    START_DEATHS_TO_FAIL,
    IngestRun,
    Initializer,
    process_started,
    start_deaths_error,
    start_process,
)
from facesearch.ingest.sources import Source
from facesearch.ingest.worker import ItemResult, WorkerSettings, keep_faces, rejection
from facesearch.models.detect.mmod_boxes import ScoreCells
from facesearch.models.embed.base import Embedder
from facesearch.models.embed.factory import create_embedder
from facesearch.models.embed.info import OnnxModelSpec
from facesearch.models.pipeline import Face, embed_faces
from facesearch.models.runtime import torch_part

log = logging.getLogger(__name__)

CRASHES_TO_REJECT = 3  # a photo in a process that died is retried alone; one that keeps killing them is rejected


@dataclass(frozen=True)
class BatchSizes:
    """How much the device gets at once; the defaults fit one GPU (a CPU device gets smaller ones)."""

    chunk: int = 16  # photos per worker task
    detect: int = 128  # same-size working copies per detector batch
    embed: int = 2048  # faces per embedding batch
    write: int = 64  # photos per catalog transaction (bench/speed/writer.py: x7.8 the photos/s of one per photo)
    open_photos: int = 0  # photos read but not yet written (bounds memory); 0: from the others
    held_bytes: int = 4 * 2**30  # pixels held for the device, all processes together (big photos weigh more)

    @classmethod
    def for_device(cls, device: str) -> BatchSizes:
        return cls() if device != "cpu" else cls(chunk=8, detect=8, embed=256, write=16, held_bytes=2**30)

    def open_limit(self, workers: int) -> int:
        return self.open_photos or max(4 * self.detect, 3 * workers * self.chunk, self.embed)


@dataclass
class _Item:
    seq: int
    source: Source
    crashes: int = 0  # worker processes that died holding it (then it is retried alone)
    held_bytes: int = 0  # its pixels held for the device (in its worker and here)
    finished: bool = False
    owner: tuple[int, int] | None = None  # (worker slot, generation) holding its pixels
    result: ItemResult | None = None  # set once finished (and embedded)


@dataclass
class _Slot:
    """One worker process (an executor of one process, so that a task goes to the process holding its photos)."""

    executor: ProcessPoolExecutor
    generation: int = 0
    busy: int = 0  # tasks in flight
    starting: Future | None = None  # its start-up ping, until the process is up with its models
    start_deaths: int = 0  # this slot's processes that died while starting, in a row


@dataclass
class _State:
    items: dict[int, _Item] = field(default_factory=dict)
    todo: deque[list[int]] = field(default_factory=deque)  # runs of seqs to prepare
    futures: dict[Future, tuple[str, int, int, list[int]]] = field(default_factory=dict)  # kind, slot, gen, seqs
    waiting: dict[tuple[int, int], list[tuple[int, np.ndarray]]] = field(default_factory=dict)  # shape -> photos
    to_embed: list[tuple[int, list[Face]]] = field(default_factory=list)
    faces_to_embed: int = 0
    open: int = 0  # prepared or in flight, not yet finished
    held_bytes: int = 0  # pixels held for the device, all photos together
    emitted: int = 0  # items passed to the writer, in order


class BatchedIngestRun(IngestRun):
    """Local ingestion with the networks batched on one device (see the module's docstring)."""

    def __init__(
        self,
        settings: WorkerSettings,
        store: Callable[[list[ItemResult]], list[tuple[int, list[int]] | None]],
        checkpoint: Callable[[], None],
        workers: int,
        *,
        dtype: str = "float32",
        sizes: BatchSizes | None = None,
    ) -> None:
        super().__init__(settings, store, checkpoint, workers)
        self.dtype = dtype
        self.sizes = sizes or BatchSizes.for_device(settings.device)
        options = settings.pipeline_options
        kinds = {options.get("detector_kind", "hog"), options.get("detector_fallback", "none")}
        self.device_detects = DEVICE_DETECTOR in kinds
        self.flip = bool(options.get("flip", False))
        self.jitter = float(options.get("jitter", 0.0))
        self.jitter_axes = str(options.get("jitter_axes", "xy"))  # the library's recipe (config.py JITTER_AXES)
        self.timings = {"detect_s": 0.0, "embed_s": 0.0, "wait_s": 0.0}

    # ------------------------------------------------------------------ models on the device

    def _models(self) -> tuple[Embedder, Any]:
        settings = self.settings
        spec = OnnxModelSpec(**settings.model_spec) if settings.model_spec else None
        embedder = create_embedder(
            settings.backend,
            Path(settings.models_dir),
            spec,
            threads=0,
            device=settings.device,
            dtype=self.dtype,
            model=settings.model,
        )
        detector = None
        if self.device_detects:
            module = torch_part("detect.torch_batch", settings.device)
            if settings.device.startswith("cuda"):
                # Photos come in few sizes once shrunk to the working size (an LFW folder: one), so
                # cuDNN's one-off search for each size's fastest kernels pays for itself.
                import torch

                torch.backends.cudnn.benchmark = True
            detector = module.TorchBatchDetector(
                settings.pipeline_options.get("detector_settings"),
                device=settings.device,
                dtype="float32",  # the CPU's boxes exactly (tests/test_torch_parity.py)
                batch_size=self.sizes.detect,
                landmarks=False,
            )
        return embedder, detector

    # ------------------------------------------------------------------ the loop

    def produce(
        self, collection_id: int, sources: Sequence[Source], handle: Callable[[list[ItemResult]], None]
    ) -> None:
        if not sources:
            return
        embedder, detector = self._models()
        prep = PrepSettings(
            worker=self.settings,
            chip_size=embedder.chip_size,
            chip_padding=embedder.chip_padding,
            mmod=detector.mmod if detector is not None else None,
        )
        self._prep = prep
        state = _State()
        for seq, source in enumerate(sources):
            state.items[seq] = _Item(seq, source)
        chunk = self.sizes.chunk
        state.todo.extend(list(range(i, min(i + chunk, len(sources)))) for i in range(0, len(sources), chunk))
        slots = [self._new_slot(prep) for _ in range(self.workers)]
        try:
            # Every process up with its models before the clock starts (a set-up error fails here, once).
            while starting := [slot.starting for slot in slots if slot.starting is not None]:
                wait(starting, return_when=FIRST_COMPLETED)
                self._check_started(slots)
            begun = time.perf_counter()
            writer = WriterThread(handle)
            try:
                self._loop(collection_id, state, slots, embedder, detector, writer.put)
            except BaseException:
                writer.close(quiet=True)  # joined before the caller's final checkpoint, error or not
                raise
            writer.close()
            self.timings["loop_s"] = time.perf_counter() - begun
            self.timings["write_s"] = writer.busy_s
            log.info(
                "batched ingest of %d photos on %s: %.1f s; main thread: detect %.1f s, embed %.1f s, "
                "waiting for workers %.1f s, the rest (collecting, dispatching) %.1f s; writer thread busy %.1f s",
                len(sources),
                self.settings.device,
                self.timings["loop_s"],
                self.timings["detect_s"],
                self.timings["embed_s"],
                self.timings["wait_s"],
                self.timings["loop_s"] - self.timings["detect_s"] - self.timings["embed_s"] - self.timings["wait_s"],
                self.timings["write_s"],
            )
        finally:
            for slot in slots:
                slot.executor.shutdown(wait=True, cancel_futures=True)

    def _worker_initializer(self, prep: PrepSettings) -> Initializer:
        """What each worker process runs first (a method so that a test can hold a process inside its
        start-up, to kill it there: tests/test_batched_ingest.py)."""
        return init_prep, (prep,)

    def _new_slot(self, prep: PrepSettings, generation: int = 0, start_deaths: int = 0) -> _Slot:
        """A new worker process, pinged at once: it gets photos only once the ping is answered."""
        context = multiprocessing.get_context("spawn")  # never fork a process holding a CUDA context
        initializer, initargs = self._worker_initializer(prep)
        executor = ProcessPoolExecutor(
            1, mp_context=context, initializer=start_process, initargs=(initializer, initargs)
        )
        return _Slot(executor, generation, starting=executor.submit(process_started), start_deaths=start_deaths)

    def _check_started(self, slots: list[_Slot]) -> None:
        """Note the processes that finished starting; replace one that died while starting (it held no
        photo: nothing to retry). A start-up error raised in a process is raised here."""
        for index, slot in enumerate(slots):
            if slot.starting is None or not slot.starting.done():
                continue
            try:
                slot.starting.result()
            except BrokenProcessPool as exc:
                deaths = slot.start_deaths + 1
                if deaths >= START_DEATHS_TO_FAIL:
                    raise start_deaths_error(deaths) from exc
                log.warning("a batched-ingest worker process died while starting; starting another")
                slot.executor.shutdown(wait=False, cancel_futures=True)
                slots[index] = self._new_slot(self._prep, slot.generation + 1, deaths)
            else:
                slot.starting, slot.start_deaths = None, 0

    def _loop(
        self,
        collection_id: int,
        state: _State,
        slots: list[_Slot],
        embedder: Embedder,
        detector: Any,
        handle: Callable[[list[ItemResult]], None],
    ) -> None:
        limit = self.sizes.open_limit(len(slots))
        total = len(state.items)
        while state.emitted < total:
            self._submit_prepares(collection_id, state, slots, limit)
            self._collect(state, slots)
            draining = not state.futures
            # Short of room: send partial batches to the device, so that room is freed and workers stay fed.
            pressed = state.open >= 0.75 * limit or state.held_bytes >= 0.75 * self.sizes.held_bytes
            if detector is not None:
                self._detect(state, slots, detector, flush=draining, pressed=pressed)
            if state.faces_to_embed >= self.sizes.embed or ((draining or pressed) and state.to_embed):
                self._embed(state, embedder)
            self._emit(state, handle)
            pending = [*state.futures, *(slot.starting for slot in slots if slot.starting is not None)]
            if pending and not any(f.done() for f in pending):
                started = time.perf_counter()
                wait(pending, timeout=1.0, return_when=FIRST_COMPLETED)
                self.timings["wait_s"] += time.perf_counter() - started
            elif not state.futures and not state.todo and state.emitted < total and not self._has_work(state):
                stuck = [(i.seq, i.owner, i.finished, i.result and i.result.status) for i in state.items.values()][:5]
                raise FaceSearchError(
                    f"batched ingest stalled with photos unaccounted for: {stuck}", code="internal_error"
                )

    def _has_work(self, state: _State) -> bool:
        return bool(state.to_embed or any(state.waiting.values()) or state.todo)

    def _submit_prepares(self, collection_id: int, state: _State, slots: list[_Slot], limit: int) -> None:
        per_slot = 2  # tasks queued per process: one running, one ready
        while state.todo and state.open < limit and state.held_bytes < self.sizes.held_bytes:
            started = [i for i, slot in enumerate(slots) if slot.starting is None]  # a starting one gets none
            if not started:
                return
            index = min(started, key=lambda i: slots[i].busy)
            slot = slots[index]
            if slot.busy >= per_slot:
                return
            seqs = state.todo.popleft()
            items = [(seq, state.items[seq].source) for seq in seqs]
            try:
                future = slot.executor.submit(prepare_items, collection_id, items)
            except BrokenProcessPool:  # it died idle: replace it and go on
                state.todo.appendleft(seqs)
                self._worker_died(state, slots, index, slot.generation)
                continue
            for seq in seqs:
                state.items[seq].owner = (index, slot.generation)
            state.futures[future] = ("prepare", index, slot.generation, seqs)
            slot.busy += 1
            state.open += len(seqs)

    def _collect(self, state: _State, slots: list[_Slot]) -> None:
        self._check_started(slots)
        for future in [f for f in state.futures if f.done()]:
            _, index, generation, _ = state.futures.pop(future)
            slot = slots[index]
            if slot.generation == generation:
                slot.busy -= 1
            try:
                prepared = future.result()
            except BrokenProcessPool:
                self._worker_died(state, slots, index, generation)
                continue
            for item in prepared:
                self._take(state, item)

    def _take(self, state: _State, prepared: Prepared) -> None:
        """A worker's answer for one photo: waiting for the device, finished with faces, or done."""
        if prepared.faces is None:
            if prepared.work is None:
                raise FaceSearchError("a worker returned a photo with neither faces nor pixels", code="internal_error")
            state.waiting.setdefault(prepared.work.shape[:2], []).append((prepared.seq, prepared.work))
            state.items[prepared.seq].held_bytes = prepared.held_bytes
            state.held_bytes += prepared.held_bytes
            return
        self._release(state, state.items[prepared.seq])  # back from the device's detector, or never held
        if prepared.faces and prepared.result.status == "indexed":
            state.to_embed.append((prepared.seq, prepared.faces))
            state.faces_to_embed += len(prepared.faces)
            state.items[prepared.seq].result = prepared.result  # finished once embedded (see _embed)
            state.items[prepared.seq].owner = None
        else:
            self._finish(state, prepared.seq, prepared.result)

    @staticmethod
    def _release(state: _State, item: _Item) -> None:
        state.held_bytes -= item.held_bytes
        item.held_bytes = 0

    def _finish(self, state: _State, seq: int, result: ItemResult) -> None:
        item = state.items[seq]
        item.result, item.owner, item.finished = result, None, True
        state.open -= 1

    def _worker_died(self, state: _State, slots: list[_Slot], index: int, generation: int) -> None:
        """Replace a dead worker process; try its photos again one by one (rejected after CRASHES_TO_REJECT)."""
        slot = slots[index]
        if slot.generation == generation:
            log.warning("a batched-ingest worker process died; retrying its photos one by one")
            slot.executor.shutdown(wait=False, cancel_futures=True)
            slots[index] = self._new_slot(self._prep, generation + 1)
        lost = [item for item in state.items.values() if item.owner == (index, generation) and not item.finished]
        lost_seqs = {item.seq for item in lost}
        for shape, photos in list(state.waiting.items()):
            state.waiting[shape] = [(seq, work) for seq, work in photos if seq not in lost_seqs]
        for item in sorted(lost, key=lambda i: i.seq, reverse=True):
            self._release(state, item)
            item.owner = None
            item.crashes += 1
            if item.crashes >= CRASHES_TO_REJECT:
                message = "processing this photo crashed a worker"
                self._finish(state, item.seq, ItemResult(item.source, "rejected", "worker_crashed", message))
            else:
                state.open -= 1
                state.todo.appendleft([item.seq])

    def _detect(self, state: _State, slots: list[_Slot], detector: Any, *, flush: bool, pressed: bool) -> None:
        """Full batches of one size to the device; partial ones too when draining or short of room."""
        for shape in sorted(state.waiting, key=lambda s: -len(state.waiting[s])):
            photos = state.waiting[shape]
            while len(photos) >= self.sizes.detect or (photos and (flush or pressed)):
                batch, photos = photos[: self.sizes.detect], photos[self.sizes.detect :]
                state.waiting[shape] = photos
                self._detect_batch(state, slots, detector, batch)
                pressed = False  # one partial batch frees room; the loop comes back for more
            if not photos:
                del state.waiting[shape]

    def _detect_batch(
        self, state: _State, slots: list[_Slot], detector: Any, batch: list[tuple[int, np.ndarray]]
    ) -> None:
        """One batch through the device; each photo's cells above the threshold go to the process holding it."""
        started = time.perf_counter()
        images, settings = np.stack([work for _, work in batch]), detector.settings
        found, tiles = detector.score_cells(images, settings.upsample, settings.min_score)
        self.timings["detect_s"] += time.perf_counter() - started
        by_owner: dict[tuple[int, int], list[tuple[int, ScoreCells]]] = {}
        for (seq, _), cells in zip(batch, found, strict=True):
            owner = state.items[seq].owner
            if owner is not None:
                by_owner.setdefault(owner, []).append((seq, cells))
        for (index, generation), cells_of in by_owner.items():
            slot = slots[index]
            if slot.generation != generation:
                continue  # that process died: its photos are being retried
            try:
                future = slot.executor.submit(finish_items, cells_of, tiles)
            except BrokenProcessPool:  # it died holding these photos: they start again elsewhere
                self._worker_died(state, slots, index, generation)
                continue
            state.futures[future] = ("finish", index, generation, [seq for seq, _ in cells_of])
            slot.busy += 1

    def _embed(self, state: _State, embedder: Embedder) -> None:
        started = time.perf_counter()
        batch, state.to_embed, state.faces_to_embed = state.to_embed, [], 0
        try:
            every = [face for _, faces in batch for face in faces]
            embed_faces(embedder, every, flip=self.flip, jitter=self.jitter, jitter_axes=self.jitter_axes)
        except Exception:
            # A batch failing as a whole (out of device memory, say) is retried photo by photo, so one
            # photo's failure stays that photo's rejection.
            log.exception("embedding a batch of %d photos failed; retrying one photo at a time", len(batch))
            for seq, faces in batch:
                self._embed_one(state, embedder, seq, faces)
        else:
            for seq, faces in batch:
                self._keep(state, seq, faces)
        self.timings["embed_s"] += time.perf_counter() - started

    def _embed_one(self, state: _State, embedder: Embedder, seq: int, faces: list[Face]) -> None:
        item = state.items[seq]
        try:
            embed_faces(embedder, faces, flip=self.flip, jitter=self.jitter, jitter_axes=self.jitter_axes)
        except Exception as exc:
            self._finish(state, seq, rejection(item.source, exc))
        else:
            self._keep(state, seq, faces)

    def _keep(self, state: _State, seq: int, faces: list[Face]) -> None:
        result = state.items[seq].result
        if result is None:
            raise FaceSearchError("an embedded photo lost its record", code="internal_error")
        keep_faces(result, faces, self.settings.min_quality)
        self._finish(state, seq, result)

    def _emit(self, state: _State, handle: Callable[[list[ItemResult]], None]) -> None:
        """Pass finished photos to the writer in input order (the same photo wins among copies as locally)."""
        ready: list[ItemResult] = []
        while state.emitted in state.items:  # emitted items leave the map: memory stays bounded
            item = state.items[state.emitted]
            if not item.finished or item.result is None:
                break
            ready.append(item.result)
            del state.items[state.emitted]
            state.emitted += 1
            if len(ready) >= self.sizes.write:
                handle(ready)
                ready = []
        if ready:
            handle(ready)


class WriterThread:
    """Runs the writer (``handle``) on its own thread, batches in the order given.

    Why: the engine's process also drives the device, and a GPU's work and the catalog's transactions
    both release the GIL while they wait, so they overlap on two threads where one thread would
    serialise them. Only this thread touches the catalog and the index during the run. The queue is
    bounded (backpressure); a failure in the writer is raised in the engine at its next ``put`` (the
    writer then drains the queue without writing) and again at ``close``.
    """

    def __init__(self, handle: Callable[[list[ItemResult]], None], depth: int = 8) -> None:
        self._handle = handle
        self._queue: queue.Queue[list[ItemResult] | None] = queue.Queue(maxsize=depth)
        self.error: BaseException | None = None
        self.busy_s = 0.0  # time spent writing
        self._thread = threading.Thread(target=self._run, name="facesearch-ingest-writer", daemon=True)
        self._thread.start()

    def put(self, results: list[ItemResult]) -> None:
        self._raise_error()
        self._queue.put(results)

    def close(self, quiet: bool = False) -> None:
        """Wait until everything given is written; raise the writer's failure unless ``quiet``."""
        self._queue.put(None)
        self._thread.join()
        if not quiet:
            self._raise_error()

    def _raise_error(self) -> None:
        if self.error is not None:
            raise self.error

    def _run(self) -> None:
        while (results := self._queue.get()) is not None:
            if self.error is None:
                started = time.perf_counter()
                try:
                    self._handle(results)
                except BaseException as exc:  # handed to the engine's thread, which raises it
                    self.error = exc
                self.busy_s += time.perf_counter() - started


def default_workers() -> int:
    """One CPU core is the writer's and the device's; the rest prepare photos."""
    return max(1, (os.cpu_count() or 2) - 1)
