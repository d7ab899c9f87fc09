"""dlib's 5-point shape predictor, shared by every detector: dlib trained it on both the HOG and the
CNN detector's boxes, so landmarks (and the chips aligned from them) agree whichever found the face."""

from __future__ import annotations

from collections.abc import Iterable
from functools import lru_cache
from typing import Any

import numpy as np

from facesearch.models.detect.base import Detection, clip_box
from facesearch.models.weights import DLIB_SHAPE_5, dlib_model_path


@lru_cache(maxsize=4)
def shape_predictor(path: str) -> Any:
    """dlib's shape predictor in ``path``, loaded once per process and shared by every landmarker.

    Loading it costs ~50 ms of CPU, and a library builds four (HOG and CNN detectors, for search and for
    ingest); a test run builds hundreds. Sharing is safe: dlib documents a ``shape_predictor`` as usable
    from several threads at once without synchronisation (its prediction is const).
    """
    import dlib

    return dlib.shape_predictor(path)


class FivePointLandmarker:
    """dlib's 5-point shape predictor: eyes' corners and the base of the nose, for alignment."""

    def __init__(self) -> None:
        import dlib  # imported when the predictor is built, not with the module

        self._dlib = dlib
        self._shape = shape_predictor(str(dlib_model_path(DLIB_SHAPE_5)))

    def points(self, rgb: np.ndarray, left: int, top: int, right: int, bottom: int) -> np.ndarray:
        """The 5 landmarks (x, y) for the face in dlib rectangle (left, top, right, bottom), float32."""
        shape = self._shape(rgb, self._dlib.rectangle(int(left), int(top), int(right), int(bottom)))
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
