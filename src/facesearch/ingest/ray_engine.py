"""Distributed ingestion on a Ray cluster: the local engine's work per photo, on many machines.

What runs where. The driver (the process that calls ``Library.index``) expands the inputs, skips
sources already in the collection, and stays the only writer of the catalog and the vector index:
:class:`RayIngestRun` overrides only how results are produced, so storing, duplicate counting,
opt-out filtering, ``min_quality``, checkpoints, the audit entry and the report are the local
runner's own. Inside the cluster, a coordinator actor (ingest/ray_pass.py) runs Ray Data, which ships
batches of sources to a fixed pool of actors (:class:`facesearch.ingest.ray_actor.IngestActor`, one
face pipeline each) on every node; the results stream back to the driver in input order, a few
batches at a time, so its memory stays bounded and every run writes in the same order (the same
photo wins among identical copies, as with the local engine).

Workers read the photos themselves: local paths must be readable at the same path on every node
(a shared mount), URLs are fetched by the workers. A batch that kills its actor (a native crash on
one photo) is dropped by Ray Data; its photos are retried one by one, and a photo that still kills
an actor on its own is rejected as ``worker_crashed``, as the local runner does.
"""

from __future__ import annotations

import logging
import math
import os
import pickle
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from types import ModuleType
from typing import Any

import numpy as np
from sqlalchemy import select

from facesearch.errors import FaceSearchError
from facesearch.ingest.ray_actor import digest_table
from facesearch.ingest.ray_pass import PassCoordinator, PassPlan
from facesearch.ingest.runner import IngestRun
from facesearch.ingest.sources import Source
from facesearch.ingest.worker import ItemResult, WorkerSettings
from facesearch.store.catalog import Catalog
from facesearch.store.schema import ImageRow

log = logging.getLogger(__name__)

INSTALL_HINT = "pip install 'facesearch[ray]'"
CPU_BATCH = 8  # photos per batch: as the local runner's chunks (faces of a batch are embedded together)
GPU_BATCH = 32  # a GPU embeds larger batches better
CRASHED_BATCH_SHARE = 0.1  # beyond this share of batches lost, the cluster (not a photo) is at fault
SEGMENT = 50_000  # sources per pass: bounds what the coordinator holds; a pass restarts the actors
PULL_AHEAD = 4  # coordinator calls in flight: hides the round trip, bounds what waits for the writer


@dataclass(frozen=True)
class RayOptions:
    """Where and how wide to run. Every field has a default that fits the cluster it finds."""

    address: str | None = None  # ray://head:10001, head:6379 or "auto"; None: $RAY_ADDRESS, else start one here
    num_cpus: int | None = None  # for a runtime started here: default every core
    object_store_bytes: int | None = None  # for a runtime started here: default Ray's (30% of memory)
    actors: int | None = None  # default: as many as the cluster's CPUs (or GPUs, on a GPU device) allow
    cpus_per_actor: float = 1.0
    gpus_per_actor: float = 1.0  # on a GPU device; 0.5 puts two actors on each GPU
    batch_size: int = 0  # 0: CPU_BATCH, or GPU_BATCH when the device is a GPU


def import_ray() -> ModuleType:
    """Ray, or a clear error saying how to install it (it is an optional extra)."""
    try:
        import ray
        import ray.data  # noqa: F401  (Ray Data is in the extra; plain Ray lacks it)
    except ImportError as exc:
        raise FaceSearchError(
            f"the Ray engine needs Ray Data, an optional extra: {INSTALL_HINT} ({exc})", code="ray_missing"
        ) from exc
    return ray


@contextmanager
def ray_runtime(options: RayOptions) -> Iterator[ModuleType]:
    """Ray, connected: the caller's runtime if one is up, else a cluster's, else one started here.

    Whatever this starts or connects to it shuts down (disconnects) afterwards; a runtime the caller
    started is left running.
    """
    ray = import_ray()
    if ray.is_initialized():
        yield ray
        return
    address = options.address or os.environ.get("RAY_ADDRESS") or None
    quiet: dict[str, Any] = {"logging_level": logging.WARNING, "log_to_driver": False}
    try:
        if address:
            log.info("connecting to the Ray cluster at %s", address)
            ray.init(address=address, **quiet)
        else:
            num_cpus = options.num_cpus or os.cpu_count() or 1
            log.info("starting a Ray runtime here (%d CPUs)", num_cpus)
            ray.init(
                address="local",  # never a cluster named by a stray $RAY_ADDRESS: that path is above
                num_cpus=num_cpus,
                object_store_memory=options.object_store_bytes,
                include_dashboard=False,
                **quiet,
            )
    except (ConnectionError, RuntimeError, ValueError) as exc:
        raise FaceSearchError(
            f"cannot start or reach Ray ({address or 'local'}): {exc}", code="ray_unavailable"
        ) from exc
    try:
        yield ray
    finally:
        ray.shutdown()


def collection_digests(catalog: Catalog, collection_id: int) -> np.ndarray:
    """The digests already stored in a collection, for the actors' duplicate check (ray_actor.py)."""
    with catalog.session() as session:
        hexes = list(session.scalars(select(ImageRow.sha256).where(ImageRow.collection_id == collection_id)))
    return digest_table(hexes)


class RayIngestRun(IngestRun):
    """An :class:`IngestRun` whose results come from actors on a Ray cluster instead of local processes."""

    def __init__(
        self,
        settings: WorkerSettings,
        store: Callable[[list[ItemResult]], list[tuple[int, list[int]] | None]],
        checkpoint: Callable[[], None],
        options: RayOptions,
        known_digests: Callable[[], np.ndarray],
    ) -> None:
        on_gpu = settings.device != "cpu"
        batch = options.batch_size or (GPU_BATCH if on_gpu else CPU_BATCH)
        threads = max(1, int(options.cpus_per_actor))
        super().__init__(replace(settings, embed_threads=threads), store, checkpoint, options.actors or 1, batch)
        self.options = options
        self.known_digests = known_digests
        self.on_gpu = on_gpu

    def produce(
        self, collection_id: int, sources: Sequence[Source], handle: Callable[[list[ItemResult]], None]
    ) -> None:
        if not sources:
            return
        from facesearch._version import __version__

        with ray_runtime(self.options) as ray:
            actors = self._pool_size(ray, math.ceil(len(sources) / self.chunk_size))
            log.info("ingesting %d sources on %d Ray actors", len(sources), actors)
            for start in range(0, len(sources), SEGMENT):
                # The digests are read again for each segment, so the run's own photos are skipped early too.
                args = (self.settings, collection_id, self.known_digests(), __version__)
                positions = range(start, min(start + SEGMENT, len(sources)))
                self._segment(ray, args, sources, positions, actors, handle)

    def _segment(
        self,
        ray: ModuleType,
        args: tuple,
        sources: Sequence[Source],
        positions: Sequence[int],
        actors: int,
        handle: Callable[[list[ItemResult]], None],
    ) -> None:
        """A pass in chunks, then the photos lost with a crashed chunk one by one; those lost again are rejected."""
        chunks = math.ceil(len(positions) / self.chunk_size)
        tolerated = max(1, int(chunks * CRASHED_BATCH_SHARE))
        missing = self._pass(ray, args, sources, positions, self.chunk_size, min(actors, chunks), tolerated, handle)
        if missing and self.chunk_size > 1:
            log.warning("%d photos lost with their batch; retrying them one by one", len(missing))
            missing = self._pass(ray, args, sources, missing, 1, min(actors, len(missing)), -1, handle)
        if missing:
            handle(
                [
                    ItemResult(sources[p], "rejected", "worker_crashed", "processing this photo crashed a Ray worker")
                    for p in missing
                ]
            )

    def _pool_size(self, ray: ModuleType, batches: int) -> int:
        """The actors to start: what was asked, else what the cluster's resources hold, never idle ones."""
        if self.options.actors:
            return max(1, min(self.options.actors, batches))
        resources = ray.cluster_resources()
        if self.on_gpu:
            fit = int(resources.get("GPU", 0) // self.options.gpus_per_actor)
            if fit == 0:
                raise FaceSearchError(
                    f"device {self.settings.device!r} asks for GPUs and this Ray cluster has none", code="ray_no_gpu"
                )
        else:
            fit = int(resources.get("CPU", 1) // self.options.cpus_per_actor)
        return max(1, min(fit, batches))

    def _pass(
        self,
        ray: ModuleType,
        args: tuple,
        sources: Sequence[Source],
        positions: Sequence[int],
        batch_size: int,
        actors: int,
        tolerated: int,
        handle: Callable[[list[ItemResult]], None],
    ) -> list[int]:
        """Run ``positions`` through the actors, handing each chunk to the writer; return those lost."""
        plan = PassPlan(
            chunks=[
                pickle.dumps([(p, sources[p]) for p in positions[start : start + batch_size]])
                for start in range(0, len(positions), batch_size)
            ],
            actor_args=args,
            actors=actors,
            cpus_per_actor=self.options.cpus_per_actor,
            gpus_per_actor=self.options.gpus_per_actor if self.on_gpu else 0,
            tolerated_failures=tolerated,
        )
        coordinator = ray.remote(PassCoordinator).options(num_cpus=0, max_restarts=0).remote(plan)
        done: set[int] = set()
        try:
            for chunk in _pull(ray, coordinator):
                pairs: list[tuple[int, ItemResult]] = pickle.loads(chunk)
                done.update(position for position, _ in pairs)
                handle([result for _, result in pairs])
        finally:
            ray.kill(coordinator)
        return [p for p in positions if p not in done]


def _pull(ray: ModuleType, coordinator: Any) -> Iterator[bytes]:
    """The coordinator's chunks in order, with a few calls in flight to hide each call's round trip.

    An actor runs one caller's calls in the order they were made, so the chunks arrive in order.
    Ray's failures become one ``ray_failed`` error; the writer's own (in the caller) pass unwrapped.
    """
    in_flight: deque[Any] = deque(coordinator.next_chunks.remote() for _ in range(PULL_AHEAD))
    while in_flight:
        try:
            chunks = ray.get(in_flight.popleft())
        except Exception as exc:
            cause = getattr(exc, "cause", None) or exc  # a task's own exception, without Ray's traceback
            raise FaceSearchError(f"the Ray ingest failed: {type(cause).__name__}: {cause}", code="ray_failed") from exc
        if chunks is None:
            return
        in_flight.append(coordinator.next_chunks.remote())
        yield from chunks
