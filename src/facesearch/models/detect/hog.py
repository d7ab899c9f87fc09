"""dlib's HOG frontal face detector: fast, and misses small, turned or badly lit faces that the CNN
detector finds at several times the cost (see ``bench/speed/detector.py``)."""

from __future__ import annotations

import pickle
from functools import lru_cache
from typing import Any

import numpy as np

from facesearch.models.detect.base import Detection, DetectorSettings, downscale
from facesearch.models.detect.landmarks import FivePointLandmarker


class HogFaceDetector:
    """dlib's HOG + linear SVM frontal face detector with its 5-point shape predictor."""

    name = "dlib_hog_frontal"

    def __init__(self, settings: DetectorSettings | None = None) -> None:
        self.settings = settings or DetectorSettings()
        self._detector = frontal_face_detector()
        self._landmarks = FivePointLandmarker()

    def detect(self, rgb: np.ndarray) -> list[Detection]:
        """Detect every face in an RGB uint8 image, largest first."""
        work, scale = downscale(rgb, self.settings.working_size)
        rects, scores, _ = self._detector.run(work, self.settings.upsample, self.settings.min_score)
        found = ((r.left(), r.top(), r.right(), r.bottom(), s) for r, s in zip(rects, scores, strict=True))
        return self._landmarks.detections(rgb, work, scale, found)

    def landmarks_in_box(self, rgb: np.ndarray, box: tuple[int, int, int, int]) -> Detection:
        """Landmarks for a face assumed to be in ``box`` (a fallback when the detector finds none)."""
        return self._landmarks.in_box(rgb, box)


@lru_cache(maxsize=1)
def _frontal_face_detector_state() -> bytes:
    """dlib's frontal face detector, serialised by dlib itself, once per process.

    ``dlib.get_frontal_face_detector()`` rebuilds the model from dlib's embedded description: ~0.5 s of
    CPU for every pipeline a library, a server's pool or a test builds. Restoring the same model from its
    serialised state takes ~1 ms. Only bytes made here, in this process, are ever restored.
    """
    import dlib  # imported when a detector is built, not with the module

    return pickle.dumps(dlib.get_frontal_face_detector())


def frontal_face_detector() -> Any:
    """A detector of its own (dlib's keeps scratch state between calls: one per pipeline, never shared)."""
    return pickle.loads(_frontal_face_detector_state())  # noqa: S301 - our own bytes, made by this process
