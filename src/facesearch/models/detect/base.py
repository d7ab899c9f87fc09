"""What every face detector gives and takes: :class:`Detection`, :class:`DetectorSettings`, the
:class:`FaceDetector` protocol, and the image helpers detectors share.

Large photos are downscaled to a working size before detection: detection cost grows with the pixel
count, and faces in a 1600-pixel image are still far larger than the 80-pixel detection window.
Boxes and landmarks are returned in the coordinates of the image that was passed in.

Plain values and numpy only: every detector module imports this one and it imports none of them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import numpy as np

from facesearch.errors import ImageRejected


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


def as_rgb(image: np.ndarray) -> np.ndarray:
    """An H x W x 3 uint8 array (grey images are repeated into three channels)."""
    if image.ndim == 2:
        image = np.repeat(image[:, :, None], 3, axis=2)
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ImageRejected(f"expected an RGB uint8 image (H, W, 3), got {image.dtype} {image.shape}")
    return np.ascontiguousarray(image)
