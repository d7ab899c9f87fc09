"""dlib's HOG frontal face detector: fast, and misses small, turned or badly lit faces that the CNN
detector finds at several times the cost (see ``bench/speed/detector.py``)."""

from __future__ import annotations

import logging
import os
import pickle
import tempfile
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from facesearch.models.detect.base import Detection, DetectorSettings, downscale
from facesearch.models.detect.landmarks import FivePointLandmarker

log = logging.getLogger(__name__)


class HogFaceDetector:
    """dlib's HOG + linear SVM frontal face detector with its 5-point shape predictor."""

    name = "dlib_hog_frontal"

    def __init__(self, settings: DetectorSettings | None = None, *, cache_dir: Path | None = None) -> None:
        """``cache_dir`` (a library's models folder) keeps dlib's model as a file that any process loads fast."""
        self.settings = settings or DetectorSettings()
        self._detector = frontal_face_detector(cache_dir)
        self._landmarks = FivePointLandmarker()

    def detect(self, rgb: np.ndarray) -> list[Detection]:
        """Detect every face in an RGB uint8 image, largest first."""
        work, scale = downscale(rgb, self.settings.working_size)
        return self._landmarks.detections(rgb, work, scale, self.scored_boxes(work, self.settings.min_score))

    def scored_boxes(self, work: np.ndarray, threshold: float) -> list[tuple[int, int, int, int, float]]:
        """HOG's windows scoring above ``threshold`` in ``work`` (already at the working size), as
        (left, top, right, bottom, score): below ``min_score`` they are near misses (models/detect/near_miss.py)."""
        rects, scores, _ = self._detector.run(work, self.settings.upsample, threshold)
        return [(r.left(), r.top(), r.right(), r.bottom(), float(s)) for r, s in zip(rects, scores, strict=True)]

    def landmarks_in_box(self, rgb: np.ndarray, box: tuple[int, int, int, int]) -> Detection:
        """Landmarks for a face assumed to be in ``box`` (a fallback when the detector finds none)."""
        return self._landmarks.in_box(rgb, box)


@lru_cache(maxsize=4)
def _frontal_face_detector_state(cache_dir: Path | None) -> bytes:
    """dlib's frontal face detector, serialised by dlib itself, once per process (and models folder).

    ``dlib.get_frontal_face_detector()`` rebuilds the model from dlib's embedded description: ~0.5 s of
    CPU for every pipeline a library, a server's pool or a test builds, and again in every worker process
    and command. Restoring the same model from its serialised state takes ~1 ms. With a ``cache_dir``,
    the model is also kept there in dlib's own file format (written once, atomically, owner-only like the
    ONNX conversions beside it; named by dlib's version), so that worker processes and later commands
    load it instead of rebuilding it. Only bytes made in this process are ever unpickled.
    """
    import dlib  # imported when a detector is built, not with the module

    if cache_dir is not None:
        path = cache_dir / f"dlib_frontal_face_detector-{dlib.__version__}.svm"
        try:
            if not path.is_file():
                _save(dlib.get_frontal_face_detector(), path)
            return pickle.dumps(dlib.fhog_object_detector(str(path)))
        except (OSError, RuntimeError) as error:  # unwritable folder, damaged file: build it in memory
            log.warning("cannot keep dlib's face detector in %s (%s): built in memory", cache_dir, error)
    return pickle.dumps(dlib.get_frontal_face_detector())


def _save(detector: Any, path: Path) -> None:
    """Write beside the target (created 0600 by mkstemp) then rename: no reader sees half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, partial = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        detector.save(partial)
        os.replace(partial, path)
    finally:
        Path(partial).unlink(missing_ok=True)


def frontal_face_detector(cache_dir: Path | None = None) -> Any:
    """A detector of its own (dlib's keeps scratch state between calls: one per pipeline, never shared)."""
    return pickle.loads(_frontal_face_detector_state(cache_dir))  # noqa: S301 - our own bytes, made by this process
