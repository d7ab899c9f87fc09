"""Face detection and 5-point landmarks with dlib's HOG frontal detector.

Large photos are downscaled to a working size before detection: HOG cost grows with the pixel
count, and faces in a 1600-pixel image are still far larger than the 80-pixel detection window.
Boxes and landmarks are returned in the coordinates of the image that was passed in.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import dlib
import numpy as np

from facesearch.models.weights import DLIB_SHAPE_5, dlib_model_path

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Detection:
    """One detected face: box (left, top, width, height), 5 landmarks (x, y) and detector score."""

    box: tuple[int, int, int, int]
    landmarks: np.ndarray  # shape (5, 2), float32, in input-image pixels
    score: float


@dataclass(frozen=True)
class DetectorSettings:
    """How hard to look for faces. Upsampling finds smaller faces at about 3x the cost per step."""

    upsample: int = 1
    working_size: int = 1600
    min_score: float = 0.0


class HogFaceDetector:
    """dlib's HOG + linear SVM frontal face detector with its 5-point shape predictor."""

    name = "dlib_hog_frontal"

    def __init__(self, settings: DetectorSettings | None = None) -> None:
        self.settings = settings or DetectorSettings()
        self._detector = dlib.get_frontal_face_detector()
        self._shape = dlib.shape_predictor(str(dlib_model_path(DLIB_SHAPE_5)))

    def detect(self, rgb: np.ndarray) -> list[Detection]:
        """Detect every face in an RGB uint8 image, largest first."""
        work, scale = downscale(rgb, self.settings.working_size)
        rects, scores, _ = self._detector.run(work, self.settings.upsample, self.settings.min_score)
        found: list[Detection] = []
        for rect, score in zip(rects, scores, strict=True):
            shape = self._shape(work, rect)
            points = np.array([[p.x, p.y] for p in shape.parts()], dtype=np.float32) / scale
            left, top = rect.left() / scale, rect.top() / scale
            right, bottom = rect.right() / scale, rect.bottom() / scale
            box = clip_box(left, top, right - left, bottom - top, rgb.shape[1], rgb.shape[0])
            if box[2] > 0 and box[3] > 0:
                found.append(Detection(box=box, landmarks=points, score=float(score)))
        found.sort(key=lambda d: d.box[2] * d.box[3], reverse=True)
        return found

    def landmarks_in_box(self, rgb: np.ndarray, box: tuple[int, int, int, int]) -> Detection:
        """Landmarks for a face assumed to be in ``box`` (a fallback when the detector finds none)."""
        left, top, width, height = box
        rect = dlib.rectangle(left, top, left + width, top + height)
        shape = self._shape(rgb, rect)
        points = np.array([[p.x, p.y] for p in shape.parts()], dtype=np.float32)
        return Detection(box=box, landmarks=points, score=0.0)


def downscale(rgb: np.ndarray, working_size: int) -> tuple[np.ndarray, float]:
    """Shrink an image so that its longer side is at most ``working_size``; return it and the scale."""
    height, width = rgb.shape[:2]
    longest = max(height, width)
    if working_size <= 0 or longest <= working_size:
        return rgb, 1.0
    scale = working_size / longest
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    from PIL import Image

    small = np.asarray(Image.fromarray(rgb).resize(size, Image.Resampling.BILINEAR, reducing_gap=2.0))
    return np.ascontiguousarray(small), scale


def clip_box(left: float, top: float, width: float, height: float, img_w: int, img_h: int) -> tuple[int, ...]:
    """Round a box to whole pixels and clip it to the image (detections may overhang the edge)."""
    x0 = max(0, round(left))
    y0 = max(0, round(top))
    x1 = min(img_w, round(left + width))
    y1 = min(img_h, round(top + height))
    return (x0, y0, max(0, x1 - x0), max(0, y1 - y0))
