"""dlib's HOG frontal face detector: fast, and misses small, turned or badly lit faces that the CNN
detector finds at several times the cost (see ``bench/speed/detector.py``)."""

from __future__ import annotations

import numpy as np

from facesearch.models.detect.base import Detection, DetectorSettings, downscale
from facesearch.models.detect.landmarks import FivePointLandmarker


class HogFaceDetector:
    """dlib's HOG + linear SVM frontal face detector with its 5-point shape predictor."""

    name = "dlib_hog_frontal"

    def __init__(self, settings: DetectorSettings | None = None) -> None:
        self.settings = settings or DetectorSettings()
        import dlib  # imported when a detector is built, not with the module

        self._detector = dlib.get_frontal_face_detector()
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
