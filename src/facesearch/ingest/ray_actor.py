"""What runs on each Ray worker: one face pipeline per actor, fed batch after batch of sources.

Why an actor: loading the detector and the ResNet takes a second or two, so an actor loads them once
and keeps them, as a local worker process does. The work per photo is the local engine's own
(:class:`facesearch.ingest.worker.Worker`), so both engines give the same images, faces, embeddings
and rejections. This module imports no Ray: Ray Data only instantiates and calls :class:`IngestActor`.
"""

from __future__ import annotations

import logging
import os
import pickle
from dataclasses import replace
from pathlib import Path

import numpy as np

from facesearch.errors import FaceSearchError
from facesearch.ingest.worker import Worker, WorkerSettings

log = logging.getLogger(__name__)

NODE_MODELS_ENV = "FACESEARCH_MODELS_CACHE"


def digest_table(hex_digests: list[str]) -> np.ndarray:
    """The SHA-256 digests of a collection as a sorted array of 32-byte strings (32 MB a million).

    Why an array rather than a set: Ray ships it to every actor once and actors on one node share
    it read-only from the object store, where a Python set of strings would take ~4x the memory in
    every actor.
    """
    return np.array(sorted(bytes.fromhex(h) for h in hex_digests), dtype="S32")


class SnapshotWorker(Worker):
    """A :class:`Worker` that checks duplicates against digests sent by the driver, not the catalog file.

    Why: the catalog is on the driver's disk, which other nodes cannot read. Bytes stored before the
    run are skipped before detection, as the catalog check skips them; bytes first stored during the
    run are caught by the writer's unique constraint and counted as duplicates just the same.
    """

    def __init__(self, settings: WorkerSettings, known: np.ndarray) -> None:
        super().__init__(settings)
        self.known = known

    def _already_indexed(self, collection_id: int, digest: str) -> bool:
        # Through an S32 array like the table's (NumPy drops trailing NUL bytes on both sides alike).
        key = np.array([bytes.fromhex(digest)], dtype="S32")[0]
        at = int(np.searchsorted(self.known, key))
        return at < len(self.known) and bool(self.known[at] == key)


def node_settings(settings: WorkerSettings) -> WorkerSettings:
    """Settings for this node: its own model cache when the library's folder is not on this machine.

    The ONNX conversions are cached by the weights' hash, so a node-local cache (default
    ~/.cache/facesearch/models, or $FACESEARCH_MODELS_CACHE) converts the same files once per node.
    """
    if Path(settings.models_dir).is_dir():
        return settings
    cache = os.environ.get(NODE_MODELS_ENV) or str(Path.home() / ".cache" / "facesearch" / "models")
    log.info("library folder not on this node; caching converted models in %s", cache)
    return replace(settings, models_dir=cache)


class IngestActor:
    """A Ray Data actor: each row is one chunk of sources in, the chunk's results out.

    A row is a pickled list of ``(position, Source)`` and comes back as a pickled list of
    ``(position, ItemResult)``: a Source's free metadata and an ItemResult's embeddings and
    thumbnails fit no fixed Arrow schema, and pickle keeps them exact. One chunk per row (and per
    block) makes a chunk the unit that Ray schedules, retries and, after a crash, drops.
    """

    def __init__(self, settings: WorkerSettings, collection_id: int, known: np.ndarray, version: str) -> None:
        from facesearch._version import __version__

        if version != __version__:
            # A driver and workers of different versions could unpickle each other's records wrongly.
            raise FaceSearchError(
                f"facesearch {__version__} on this Ray node, {version} on the driver: install the same version",
                code="ray_version_mismatch",
            )
        logging.basicConfig(level=logging.WARNING)
        self.collection_id = collection_id
        self.worker = SnapshotWorker(node_settings(settings), known)

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, list[bytes]]:
        out: list[bytes] = []
        for chunk in batch["chunk"]:
            positions, sources = zip(*pickle.loads(chunk), strict=True)
            results = self.worker.process(self.collection_id, list(sources))
            out.append(pickle.dumps(list(zip(positions, results, strict=True)), protocol=pickle.HIGHEST_PROTOCOL))
        return {"chunk": out}
