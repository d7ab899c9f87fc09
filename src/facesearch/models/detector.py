"""Face detection and 5-point landmarks: dlib's HOG frontal detector, or its CNN (MMOD) detector run by ONNX Runtime.

Both detectors satisfy :class:`FaceDetector`; :func:`create_detector` picks one by name. HOG is fast
and misses small, turned or badly lit faces; the CNN finds many more of those at several times the
cost (see ``bench/detector_speed.py``). Both feed their boxes to the same 5-point shape predictor,
which dlib trained to work with either detector's boxes.

Large photos are downscaled to a working size before detection: detection cost grows with the pixel
count, and faces in a 1600-pixel image are still far larger than the 80-pixel detection window.
Boxes and landmarks are returned in the coordinates of the image that was passed in.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np

from facesearch.errors import ModelError
from facesearch.models.weights import DLIB_SHAPE_5, dlib_model_path

log = logging.getLogger(__name__)

DETECTOR_KINDS = ("hog", "cnn")


@dataclass(frozen=True)
class Detection:
    """One detected face: box (left, top, width, height), 5 landmarks (x, y) and detector score."""

    box: tuple[int, int, int, int]
    landmarks: np.ndarray  # shape (5, 2), float32, in input-image pixels
    score: float


@dataclass(frozen=True)
class DetectorSettings:
    """How hard to look for faces. Upsampling finds smaller faces at about 3-4x the cost per step.

    ``min_score`` is the detector's threshold on its own score scale (dlib's ``adjust_threshold``);
    0 is dlib's default for both detectors.
    """

    upsample: int = 1
    working_size: int = 1600
    min_score: float = 0.0


@runtime_checkable
class FaceDetector(Protocol):
    """What the pipeline needs from a detector: faces (largest first) and landmarks for a known box."""

    name: str
    settings: DetectorSettings

    def detect(self, rgb: np.ndarray) -> list[Detection]:
        """Detect every face in an RGB uint8 image, largest first."""
        ...

    def landmarks_in_box(self, rgb: np.ndarray, box: tuple[int, int, int, int]) -> Detection:
        """Landmarks for a face assumed to be in ``box`` (a fallback when the detector finds none)."""
        ...


class FivePointLandmarker:
    """dlib's 5-point shape predictor: eyes' corners and the base of the nose, for alignment."""

    def __init__(self) -> None:
        import dlib  # here, not at the top: importing the library (e.g. `facesearch stats`) needs no model

        self._shape = dlib.shape_predictor(str(dlib_model_path(DLIB_SHAPE_5)))
        self._rectangle = dlib.rectangle

    def points(self, rgb: np.ndarray, left: int, top: int, right: int, bottom: int) -> np.ndarray:
        """The 5 landmarks (x, y) for the face in dlib rectangle (left, top, right, bottom), float32."""
        shape = self._shape(rgb, self._rectangle(int(left), int(top), int(right), int(bottom)))
        return np.array([[p.x, p.y] for p in shape.parts()], dtype=np.float32)

    def in_box(self, rgb: np.ndarray, box: tuple[int, int, int, int]) -> Detection:
        left, top, width, height = box
        return Detection(box=box, landmarks=self.points(rgb, left, top, left + width, top + height), score=0.0)

    def detections(
        self, rgb: np.ndarray, work: np.ndarray, scale: float, found: Iterable[tuple[int, int, int, int, float]]
    ) -> list[Detection]:
        """Landmark each (left, top, right, bottom, score) box found in ``work`` (``rgb`` shrunk by
        ``scale``) and map it back to ``rgb``; boxes are clipped to the image, largest first."""
        out: list[Detection] = []
        for left, top, right, bottom, score in found:
            points = self.points(work, left, top, right, bottom) / scale
            x0, y0, x1, y1 = left / scale, top / scale, right / scale, bottom / scale
            box = clip_box(x0, y0, x1 - x0, y1 - y0, rgb.shape[1], rgb.shape[0])
            if box[2] > 0 and box[3] > 0:
                out.append(Detection(box=box, landmarks=points, score=float(score)))
        out.sort(key=lambda d: d.box[2] * d.box[3], reverse=True)
        return out


class HogFaceDetector:
    """dlib's HOG + linear SVM frontal face detector with its 5-point shape predictor."""

    name = "dlib_hog_frontal"

    def __init__(self, settings: DetectorSettings | None = None) -> None:
        import dlib

        self.settings = settings or DetectorSettings()
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


def create_detector(
    kind: str, settings: DetectorSettings | None = None, *, cache_dir: Path | None = None, threads: int = 0
) -> FaceDetector:
    """The detector called ``kind``: ``"hog"`` (dlib's HOG, the default) or ``"cnn"`` (dlib's MMOD CNN via ONNX).

    ``cache_dir`` (a library's models folder) keeps the CNN's ONNX conversion on disk; without it the
    small model is converted in memory. ``threads`` is ONNX Runtime's thread count (0: all cores).
    """
    if kind == "hog":
        return HogFaceDetector(settings)
    if kind == "cnn":
        from facesearch.models.cnn_detector import CnnFaceDetector

        return CnnFaceDetector(settings, cache_dir=cache_dir, threads=threads)
    choices = ", ".join(repr(k) for k in DETECTOR_KINDS)
    raise ModelError(f"unknown face detector {kind!r}: choose one of {choices}", code="bad_detector")


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
