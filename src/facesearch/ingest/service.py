"""Running one ingest into a library: the engine chosen, the sources expanded, every result written
through the library's single writer.

Every engine (local processes, batched on a device, Ray) hands its results to :meth:`Ingester.store`,
which records rejections and asks the writer to store the images: the writer screens out opted-out
people's faces and keeps the catalog and the vectors in step, whichever engine ran.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from dataclasses import replace
from pathlib import Path
from typing import Any

from facesearch.errors import FaceSearchError, NoCollection
from facesearch.ingest.runner import CHUNK_SIZE, IngestReport, IngestRun, ProgressCallback
from facesearch.ingest.sources import Source, check_inputs, expand
from facesearch.ingest.worker import ItemResult, WorkerSettings
from facesearch.recipe import LibraryRecipe
from facesearch.store.catalog import Catalog
from facesearch.store.writer import LibraryWriter

ENGINES = ("local", "batched", "ray")  # how an ingest runs: see Ingester.run
PRECISIONS = ("float32", "bfloat16", "float16")

# Records an ingest's opening audit entry (what it is about to do) and returns the entry's sequence
# number, which every image the ingest stores then carries. Given by the library: the ingest layer
# does not know the audit log.
AuditStart = Callable[[dict[str, Any]], int]


class Ingester:
    """Ingest for one library: ``settings`` says how workers rebuild its pipeline and read photos."""

    def __init__(self, catalog: Catalog, writer: LibraryWriter, recipe: LibraryRecipe) -> None:
        self.catalog = catalog
        self.writer = writer
        self.recipe = recipe

    def worker_settings(self, allow_private_urls: bool, workers: int | None) -> WorkerSettings:
        """What a worker process needs to read, decode, detect and embed as this library does."""
        config = self.recipe.config
        return WorkerSettings(
            catalog_path=str(self.catalog.path or ""),
            catalog_url=None if self.catalog.is_sqlite else self.catalog.url,
            models_dir=str(self.recipe.models_dir),
            backend=self.recipe.backend,
            model_spec=config.onnx_model,
            model=self.recipe.pipeline().model,
            pipeline_options=config.pipeline_options(),
            max_pixels=config.max_pixels,
            max_download_bytes=config.max_download_bytes,
            allow_private_urls=allow_private_urls,
            embed_threads=1 if (workers or os.cpu_count() or 1) > 1 else 0,
        )

    def store(
        self, collection_id: int, results: list[ItemResult], audit_seq: int | None = None
    ) -> list[tuple[int, list[int]] | None]:
        """Write one batch of results (the writer's lock must be held: :meth:`run` holds it).

        ``audit_seq``: the ingest's opening audit entry, recorded on every image stored.
        Returns, per result, (image id, face ids), or None (a rejection, or bytes already stored).
        """
        out: list[tuple[int, list[int]] | None] = [None] * len(results)
        adding: list[tuple[int, ItemResult]] = []
        for position, result in enumerate(results):
            if result.status == "rejected":
                self.writer.record_rejection(collection_id, result.source.location, result.code, result.message)
            elif result.status == "indexed" and result.image is not None:
                adding.append((position, result))
        batch = [(r.image, r.faces) for _, r in adding]
        stored = self.writer.store(collection_id, batch, audit_seq=audit_seq)  # type: ignore[arg-type]
        for (position, result), row in zip(adding, stored, strict=True):
            if row is not None:
                result.opted_out_faces = row.refused
                if row.image_id is None:  # every face was an opted-out person's: the photo was not stored
                    result.status = "opted_out"
                else:
                    out[position] = (row.image_id, row.face_ids)
        return out

    def run(
        self,
        inputs: Iterable[str | Path],
        *,
        audit_start: AuditStart,
        collection: str = "default",
        workers: int | None = None,
        allow_private_urls: bool = False,
        progress: ProgressCallback | None = None,
        min_quality: float = 0.0,
        engine: str = "local",
        ray_address: str | None = None,
        device: str = "cpu",
        precision: str = "float32",
    ) -> IngestReport:
        """Index files, folders, manifests and URLs into a collection, holding the write lock throughout.

        ``min_quality`` (0..1, see models/align.py quality_score) leaves out faces that are too small,
        blurred or turned to search reliably; they are counted in the report. ``engine="ray"`` detects
        and embeds on a Ray cluster (``ray_address``, else $RAY_ADDRESS, else a Ray runtime started on
        this machine; ``workers`` is then the number of actors). ``engine="batched"`` runs the networks
        in this process on ``device`` in large batches, in ``precision`` ("float32", "bfloat16",
        "float16"), while ``workers`` processes read, decode, detect on the CPU and align: the engine
        for a GPU, and the default when ``device`` is one ("cuda", "cuda:1"). Every engine writes
        through this process's single writer: the same results whichever ran.

        The collection must exist (:class:`NoCollection` otherwise: creating one is an admin's act,
        governance/collections.py). ``audit_start`` records the ingest's opening audit entry before
        the first photo is stored, and every stored image names that entry: an ingest killed midway
        leaves photos that point to an entry saying who added them and when (issue 12 §4).
        """
        engine = _checked(min_quality, engine, device, precision, ray_address)
        inputs = check_inputs(inputs)  # a missing path indexes nothing, not even a new collection
        with self.writer.locked():
            collection_id = self.catalog.collection_id(collection, create=False)
            if collection_id is None:
                raise NoCollection.named(collection)
            known = self.catalog.known_sources(collection_id)
            sources: list[Source] = []
            report = IngestReport(collection=collection)
            for source in expand(inputs):
                if source.location in known:
                    report.already_indexed += 1
                else:
                    known.add(source.location)
                    sources.append(source)
            report.total = len(sources) + report.already_indexed
            if workers is None and engine == "local":
                # One process per core, but never more processes than chunks of photos: starting one
                # (imports and models, ~2.4 s of CPU) costs more than reading a chunk (CHUNK_SIZE photos)
                # here, and a process beyond the chunks would only start and wait. Up to one chunk: this process.
                workers = min(os.cpu_count() or 1, max(1, -(-len(sources) // CHUNK_SIZE)))
            self.recipe.prepare()  # convert once, before the workers start
            settings = replace(
                self.worker_settings(allow_private_urls, workers), min_quality=min_quality, device=device
            )
            plan = {"collection": collection, "to_read": len(sources), "already_indexed": report.already_indexed}
            audit_seq = audit_start({**plan, "engine": engine})
            run = self._engine(engine, settings, collection_id, workers, ray_address, precision, audit_seq)
            return run.run(collection_id, report, sources, progress)

    def _engine(
        self,
        engine: str,
        settings: WorkerSettings,
        collection_id: int,
        workers: int | None,
        ray_address: str | None,
        precision: str,
        audit_seq: int,
    ) -> IngestRun:
        def store(results: list[ItemResult]) -> list[tuple[int, list[int]] | None]:
            return self.store(collection_id, results, audit_seq)

        if engine == "ray":
            from facesearch.ingest.ray_engine import RayIngestRun, RayOptions, collection_digests

            return RayIngestRun(
                settings,
                store=store,
                checkpoint=self.writer.save_index,
                options=RayOptions(address=ray_address, num_cpus=workers, actors=workers),
                known_digests=lambda: collection_digests(self.catalog, collection_id),
            )
        if engine == "batched":
            from facesearch.ingest.batched_engine import BatchedIngestRun, default_workers

            return BatchedIngestRun(
                settings,
                store=store,
                checkpoint=self.writer.save_index,
                workers=workers or default_workers(),
                dtype=precision,
            )
        return IngestRun(
            settings, store=store, checkpoint=self.writer.save_index, workers=workers or os.cpu_count() or 1
        )


def _checked(min_quality: float, engine: str, device: str, precision: str, ray_address: str | None) -> str:
    """The engine to run, after refusing option combinations that cannot work (clear errors, nothing run)."""
    if not 0.0 <= min_quality <= 1.0:
        raise FaceSearchError(f"min_quality must be between 0 and 1; got {min_quality}", code="bad_request")
    if engine not in ENGINES:
        choices = ", ".join(repr(e) for e in ENGINES)
        raise FaceSearchError(f"unknown engine {engine!r}: choose one of {choices}", code="bad_request")
    if engine == "local" and device != "cpu":
        engine = "batched"  # one process owns the GPU; see ingest/batched_engine.py
    if precision not in PRECISIONS:
        raise FaceSearchError(f"unknown precision {precision!r}: float32, bfloat16 or float16", code="bad_request")
    if precision != "float32" and (engine != "batched" or device == "cpu"):
        raise FaceSearchError("a precision other than float32 needs a GPU device (--device cuda)", code="bad_request")
    if ray_address and engine != "ray":
        raise FaceSearchError("a Ray address needs the ray engine (--engine ray)", code="bad_request")
    return engine
