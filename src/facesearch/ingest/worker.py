"""The work done for each photo in a worker process: read, hash, decode, detect, align, embed.

Each worker builds its own pipeline once (dlib detector, ONNX Runtime session on one thread) and
processes chunks of sources; all faces of a chunk are embedded in one batch. Whatever goes wrong
with one photo becomes a rejection with a reason: the chunk and the batch go on.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from facesearch.errors import FaceSearchError
from facesearch.ingest.duplicates import DigestLookup
from facesearch.ingest.sources import Source
from facesearch.media.files import read_file
from facesearch.models.embed.factory import create_embedder
from facesearch.models.embed.info import DLIB_RESNET_KEY, OnnxModelSpec
from facesearch.models.pipeline import Face, build_pipeline
from facesearch.store.catalog import NewFace, NewImage

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class WorkerSettings:
    catalog_path: str  # the SQLite catalog file (ignored when catalog_url is set)
    models_dir: str
    backend: str = "onnx"
    model_spec: dict | None = None
    pipeline_options: dict = field(default_factory=dict)  # LibraryConfig.pipeline_options()
    max_pixels: int = 80_000_000
    max_download_bytes: int = 50 * 1024 * 1024
    fetch_timeout: float = 15.0
    allow_private_urls: bool = False
    embed_threads: int = 1
    min_quality: float = 0.0  # faces below this quality score are not indexed (counted in the report)
    device: str = "cpu"  # "cuda"...: the ResNet (and CNN detector) run by PyTorch there (models/pipeline.py)
    catalog_url: str | None = None  # a PostgreSQL catalog (no password in it: libpq reads the environment)
    model: str = DLIB_RESNET_KEY  # the built-in model when model_spec is None (issue 15: or its int8 quantisation)


@dataclass
class ItemResult:
    source: Source
    status: str  # "indexed", "duplicate" or "rejected"; "opted_out" once the writer refused every face
    code: str = ""
    message: str = ""
    image: NewImage | None = None
    faces: list[NewFace] = field(default_factory=list)
    low_quality_faces: int = 0  # detected but below the ingest's min_quality: not indexed
    opted_out_faces: int = 0  # faces of people who opted out: never stored


class SourceLoader:
    """Read, hash, skip bytes the collection already holds, decode: the first steps of every engine."""

    def __init__(self, settings: WorkerSettings) -> None:
        self.settings = settings
        self._known = DigestLookup(settings.catalog_path, settings.catalog_url)

    def load(self, collection_id: int, source: Source) -> tuple[ItemResult, np.ndarray | None]:
        """An "indexed" result holding the image's record and its decoded RGB, or a "duplicate" and None.

        Raises :class:`FaceSearchError` for a photo that cannot be read or decoded (a rejection).
        """
        # Imported here: Pillow (and httpx below) are not needed by whoever only opens a library.
        from facesearch.media.decode import decode_image, sha256_hex

        data, location = self._read(source)
        digest = sha256_hex(data)
        if self._already_indexed(collection_id, digest):
            return ItemResult(source, "duplicate", "duplicate", "same bytes already in this collection"), None
        decoded = decode_image(data, max_pixels=self.settings.max_pixels)
        image = NewImage(
            sha256=digest,
            source=source.location,
            source_kind=source.kind,
            page_url=source.page_url,
            meta=dict(source.meta, **({"fetched_url": location} if location != source.location else {})),
            format=decoded.format,
            width=decoded.width,
            height=decoded.height,
            size_bytes=len(data),
            exif_time=decoded.exif_time,
        )
        return ItemResult(source, "indexed", image=image), decoded.rgb

    def _read(self, source: Source) -> tuple[bytes, str]:
        if source.kind == "url":
            from facesearch.media.fetch import fetch_url

            fetched = fetch_url(
                source.location,
                timeout=self.settings.fetch_timeout,
                max_bytes=self.settings.max_download_bytes,
                allow_private=self.settings.allow_private_urls,
            )
            return fetched.data, fetched.url
        return read_file(Path(source.location), self.settings.max_download_bytes * 4), source.location

    def _already_indexed(self, collection_id: int, digest: str) -> bool:
        """Skip the costly detection for bytes already stored (read-only, never blocks the writer)."""
        return self._known.exists(collection_id, digest)


def rejection(source: Source, exc: BaseException) -> ItemResult:
    """What one photo's failure becomes: a rejection with a reason (never an exception for the batch)."""
    if isinstance(exc, FaceSearchError):
        return ItemResult(source, "rejected", exc.code, str(exc))
    log.error("unexpected failure on %s", source.location, exc_info=exc)
    return ItemResult(source, "rejected", "internal_error", f"{type(exc).__name__}: {exc}")


def keep_faces(result: ItemResult, faces: list[Face], min_quality: float) -> None:
    """Put a photo's embedded faces into its result, leaving out (and counting) those below ``min_quality``.

    Quality is final only once embedded (it includes the jittered views' stability).
    """
    kept = [face for face in faces if face.quality >= min_quality]
    result.low_quality_faces = len(faces) - len(kept)
    result.faces = [to_new_face(face) for face in kept]


class Worker(SourceLoader):
    """Holds one process's pipeline; ``process`` turns a chunk of sources into results."""

    def __init__(self, settings: WorkerSettings) -> None:
        super().__init__(settings)
        spec = OnnxModelSpec(**settings.model_spec) if settings.model_spec else None
        embedder = create_embedder(
            settings.backend,
            Path(settings.models_dir),
            spec,
            threads=settings.embed_threads,
            device=settings.device,
            model=settings.model,
        )
        self.pipeline = build_pipeline(
            embedder,
            cache_dir=Path(settings.models_dir),
            threads=settings.embed_threads,
            device=settings.device,
            **settings.pipeline_options,
        )

    def process(self, collection_id: int, sources: list[Source]) -> list[ItemResult]:
        if self.pipeline.detects_in_batches:
            return self._process_batched(collection_id, sources)
        results: list[ItemResult] = []
        pending: list[tuple[ItemResult, list[Face]]] = []
        for source in sources:  # one photo's pixels at a time
            try:
                result, rgb = self.load(collection_id, source)
                faces = self.pipeline.find_faces(rgb) if rgb is not None else []
            except Exception as exc:  # one bad photo must never stop the batch
                result, faces = rejection(source, exc), []
            results.append(result)
            if result.status == "indexed":
                pending.append((result, faces))
        self._embed(pending)
        return results

    def _process_batched(self, collection_id: int, sources: list[Source]) -> list[ItemResult]:
        """The chunk's photos decoded first, then detected together (the CNN on a GPU, e.g. in a Ray
        actor); if the batch fails as a whole, photo by photo, so a failure stays one photo's."""
        results: list[ItemResult] = []
        loaded: list[tuple[int, np.ndarray]] = []  # (position in results, pixels)
        for source in sources:
            try:
                result, rgb = self.load(collection_id, source)
            except Exception as exc:
                result, rgb = rejection(source, exc), None
            if rgb is not None:
                loaded.append((len(results), rgb))
            results.append(result)
        try:
            found = self.pipeline.find_faces_batch([rgb for _, rgb in loaded])
        except Exception:
            log.exception("detecting a batch of %d photos failed; retrying one photo at a time", len(loaded))
            found = []
            for position, rgb in loaded:
                try:
                    found.append(self.pipeline.find_faces(rgb))
                except Exception as exc:
                    results[position] = rejection(results[position].source, exc)
                    found.append([])
        pending = [(results[position], faces) for (position, _), faces in zip(loaded, found, strict=True)]
        self._embed([(result, faces) for result, faces in pending if result.status == "indexed"])
        return results

    def _embed(self, pending: list[tuple[ItemResult, list[Face]]]) -> None:
        """All faces of the chunk in one batch, then each photo keeps those of sufficient quality."""
        self.pipeline.embed_faces([face for _, faces in pending for face in faces])
        for result, faces in pending:
            keep_faces(result, faces, self.settings.min_quality)


def to_new_face(face: Face) -> NewFace:
    return NewFace(
        face_index=face.index,
        box=tuple(int(v) for v in face.box),  # type: ignore[arg-type]
        landmarks=[[round(float(x), 2), round(float(y), 2)] for x, y in face.landmarks],
        det_score=round(float(face.det_score), 4),
        quality=float(face.quality),
        embedding=face.embedding,  # type: ignore[arg-type]
        thumbnail=face.thumbnail,
    )


# Process-pool plumbing: one Worker per process, built by the pool's initializer.
_WORKER: Worker | None = None


def init_worker(settings: WorkerSettings) -> None:
    global _WORKER
    logging.basicConfig(level=logging.WARNING)
    _WORKER = Worker(settings)


def run_chunk(collection_id: int, sources: list[Source]) -> list[ItemResult]:
    if _WORKER is None:
        raise RuntimeError("worker process was not initialised")
    return _WORKER.process(collection_id, sources)
