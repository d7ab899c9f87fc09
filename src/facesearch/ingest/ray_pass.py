"""One pass of sources through the actor pool, run by a coordinator actor inside the Ray cluster.

Why a coordinator: Ray Data's streaming executor needs a process that is part of the cluster, and
it does not run over Ray Client (``ray://``), yet the driver that writes the library may sit outside
the cluster. So a small actor (no CPU reserved) builds and iterates the dataset, and the driver pulls
the chunks it yields, in order, one call at a time. The driver's memory stays bounded by the calls it
keeps in flight; the coordinator's by Ray Data's own backpressure. Every address (a runtime started
on this machine, ``head:6379`` or ``ray://head:10001``) takes this same path.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from facesearch.ingest.ray_actor import IngestActor

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PassPlan:
    """What one pass runs: the chunks (one pickled list of ``(position, Source)`` each) and the pool."""

    chunks: list[bytes]
    actor_args: tuple  # IngestActor's constructor arguments
    actors: int
    cpus_per_actor: float
    gpus_per_actor: float
    tolerated_failures: int  # chunks Ray Data may drop (their actor crashed twice); -1: any number


class PassCoordinator:
    """Builds the Ray Data pipeline of a :class:`PassPlan` and yields its result chunks on request."""

    def __init__(self, plan: PassPlan) -> None:
        import ray.data

        logging.getLogger("ray.data").setLevel(logging.WARNING)  # no INFO line per execution
        logging.getLogger("ray.data._internal.progress").setLevel(logging.ERROR)  # nor "progress bars disabled"
        with warnings.catch_warnings():
            # Copying the DataContext reads its deprecated fields; Ray 2.60 has no named parameter yet
            # for max_restarts and max_task_retries below (the pinned version keeps them working).
            warnings.filterwarnings("ignore", category=DeprecationWarning, module="ray")
            warnings.filterwarnings("ignore", message="`ray_remote_args` is deprecated")
            # One chunk per block and per task, so that Ray never bundles two chunks into one task.
            rows = [{"chunk": chunk} for chunk in plan.chunks]
            dataset = ray.data.from_items(rows, override_num_blocks=len(rows))
            context = dataset.context  # this dataset's own copy of the settings
            context.execution_options.preserve_order = True  # the writer sees the input order
            context.max_errored_blocks = plan.tolerated_failures
            context.enable_progress_bars = False
            context.print_on_execution_start = False
            mapped = dataset.map_batches(
                IngestActor,
                fn_constructor_args=plan.actor_args,
                batch_size=1,
                batch_format="numpy",
                # One chunk at a time per actor: a photo that kills its actor takes no queued chunk down
                # with it (a chunk takes seconds, so the actor waits only for the next one to arrive).
                compute=ray.data.ActorPoolStrategy(size=plan.actors, max_tasks_in_flight_per_actor=1),
                num_cpus=plan.cpus_per_actor,
                num_gpus=plan.gpus_per_actor,
                max_restarts=-1,  # a crashed actor is replaced...
                max_task_retries=1,  # ...its chunk tried once more, then dropped (Ray Data's default: forever)
            )
        self._batches: Iterator[dict[str, Any]] = iter(mapped.iter_batches(batch_size=None, batch_format="numpy"))
        self._done = False

    def next_chunks(self) -> list[bytes] | None:
        """The next result chunks (pickled lists of ``(position, ItemResult)``), or None at the end."""
        if self._done:
            return None
        try:
            batch = next(self._batches)
        except StopIteration:
            self._done = True
            return None
        return list(batch["chunk"])
