"""The CPU side of the batched engine (ingest/batched_engine.py): one state per worker process.

Each worker process reads, hashes, decodes, detects on the CPU (HOG) and aligns its own photos. A
photo whose detector runs on the device (the CNN) waits here, full image and working copy, while the
engine batches its working copy with other photos' on the device; its score map comes back to this
same process to become boxes, landmarks and aligned chips. So each photo's pixels cross to the
engine once (the working copy) and the chips once; the embedding happens in the engine.

The steps and their order are the pipeline's own (models/pipeline.py): the primary detector, then the
fallback detector on photos where it found no face, then landmarks and alignment with the same code.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from facesearch.ingest.sources import Source
from facesearch.ingest.worker import ItemResult, SourceLoader, WorkerSettings, rejection
from facesearch.models.convert.mmod_settings import MmodSettings
from facesearch.models.detect.base import DetectorSettings, FaceDetector, downscale
from facesearch.models.detect.factory import create_detector
from facesearch.models.detect.landmarks import FivePointLandmarker
from facesearch.models.detect.mmod_boxes import ScoreCells, boxes_from_cells
from facesearch.models.detect.mmod_pyramid import TiledPyramid
from facesearch.models.pipeline import Face, align_face

log = logging.getLogger(__name__)

DEVICE_DETECTOR = "cnn"  # the detector kind the engine runs on its device; "hog" stays on the CPU


@dataclass(frozen=True)
class PrepSettings:
    """What a worker process needs besides the ingest's settings (picklable, holds no model)."""

    worker: WorkerSettings
    chip_size: int  # the embedder's, read in the engine
    chip_padding: float
    mmod: MmodSettings | None  # the device detector's output geometry, when a photo may need it


@dataclass
class Prepared:
    """One photo after a worker's step: finished (``faces`` set, maybe empty) or waiting for the device."""

    seq: int
    result: ItemResult
    faces: list[Face] | None = None  # aligned, not embedded; None while waiting for the device
    work: np.ndarray | None = None  # the working copy to run the device detector on
    held_bytes: int = 0  # what holding this photo for the device costs (here and in the engine)


@dataclass
class _Held:
    result: ItemResult
    rgb: np.ndarray
    work: np.ndarray
    scale: float
    stage: int  # index in the detector chain of the device stage it waits for


@dataclass
class PrepWorker:
    """One process's state: its detectors and the photos waiting for their score maps."""

    settings: PrepSettings
    loader: SourceLoader = field(init=False)
    chain: list[str] = field(init=False)
    held: dict[int, _Held] = field(default_factory=dict)

    def __post_init__(self) -> None:
        options = self.settings.worker.pipeline_options
        self.detector_settings: DetectorSettings = options.get("detector_settings") or DetectorSettings()
        primary = options.get("detector_kind", "hog")
        fallback = options.get("detector_fallback", "none")
        self.chain = [primary] + ([fallback] if fallback not in ("none", "", primary) else [])
        self.jitter = float(options.get("jitter", 0.0))
        self.jitter_axes = str(options.get("jitter_axes", "xy"))  # aligned as the library's pipeline does
        self.loader = SourceLoader(self.settings.worker)
        models_dir = Path(self.settings.worker.models_dir)
        self.cpu_detectors: dict[str, FaceDetector] = {
            kind: create_detector(
                kind,
                self.detector_settings,
                cache_dir=models_dir,
                threads=1,
                near_misses=options.get("detector_near_misses", "none"),
            )
            for kind in self.chain
            if kind != DEVICE_DETECTOR
        }
        self.landmarker = FivePointLandmarker()

    def prepare(self, collection_id: int, items: list[tuple[int, Source]]) -> list[Prepared]:
        """Read, decode and (on the CPU) detect and align each photo, or hold it for the device."""
        out = []
        for seq, source in items:
            try:
                result, rgb = self.loader.load(collection_id, source)
                if rgb is None:
                    out.append(Prepared(seq, result, faces=[]))
                else:
                    work, scale = downscale(rgb, self.detector_settings.working_size)
                    out.append(self._advance(seq, result, rgb, work, scale, 0))
            except Exception as exc:  # one bad photo must never stop the batch
                out.append(Prepared(seq, rejection(source, exc), faces=[]))
        return out

    def finish(self, found_cells: list[tuple[int, ScoreCells]], tiles: TiledPyramid) -> list[Prepared]:
        """The device's cells above the threshold -> boxes (dlib's decoding and suppression), landmarks,
        aligned faces; or, where none is found, the next detector's turn."""
        if self.settings.mmod is None:
            raise RuntimeError("this worker was not told the device detector's geometry")
        out = []
        for seq, cells in found_cells:
            held = self.held.pop(seq)
            try:
                boxes = boxes_from_cells(cells, tiles, self.settings.mmod, self.detector_settings.upsample)
                found = [(b.left, b.top, b.right, b.bottom, b.score) for b in boxes]
                detections = self.landmarker.detections(held.rgb, held.work, held.scale, found)
                if detections:
                    out.append(Prepared(seq, held.result, faces=self._faces(held.rgb, detections)))
                else:
                    out.append(self._advance(seq, held.result, held.rgb, held.work, held.scale, held.stage + 1))
            except Exception as exc:
                out.append(Prepared(seq, rejection(held.result.source, exc), faces=[]))
        return out

    def _advance(
        self, seq: int, result: ItemResult, rgb: np.ndarray, work: np.ndarray, scale: float, stage: int
    ) -> Prepared:
        """Run the detector chain from ``stage``: CPU detectors here, a device one by waiting for it."""
        for index in range(stage, len(self.chain)):
            kind = self.chain[index]
            if kind == DEVICE_DETECTOR:
                self.held[seq] = _Held(result, rgb, work, scale, index)
                held = rgb.nbytes + 2 * work.nbytes if work is not rgb else 2 * rgb.nbytes
                return Prepared(seq, result, work=work, held_bytes=held)
            detections = self.cpu_detectors[kind].detect(rgb)
            if detections:
                return Prepared(seq, result, faces=self._faces(rgb, detections))
        return Prepared(seq, result, faces=[])

    def _faces(self, rgb: np.ndarray, detections: list) -> list[Face]:
        return [
            align_face(rgb, i, det, self.settings.chip_size, self.settings.chip_padding, self.jitter, self.jitter_axes)
            for i, det in enumerate(detections)
        ]


# Process plumbing: each worker process of the engine holds one PrepWorker (one process per executor).
_PREP: PrepWorker | None = None


def init_prep(settings: PrepSettings) -> None:
    """A worker process's start-up (run through ingest/runner.py's ``start_process``, which keeps its error)."""
    global _PREP
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    logging.basicConfig(level=logging.WARNING)
    _PREP = PrepWorker(settings)


def _worker() -> PrepWorker:
    if _PREP is None:
        raise RuntimeError("batched-ingest worker process was not initialised")
    return _PREP


def prepare_items(collection_id: int, items: list[tuple[int, Source]]) -> list[Prepared]:
    return _worker().prepare(collection_id, items)


def finish_items(found_cells: list[tuple[int, ScoreCells]], tiles: TiledPyramid) -> list[Prepared]:
    return _worker().finish(found_cells, tiles)
