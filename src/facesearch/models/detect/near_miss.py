"""Issue 16, faces the detector misses: HOG, with dlib's CNN looking again where HOG almost found a face.

HOG misses faces it scores just under its threshold: turned heads, and faces cut by the photo's edge
(its 80-pixel window cannot sit partly outside the photo). The CNN finds most of them, but costs 5-7x HOG
on a whole photo. HOG's own near misses say where to look: dlib's HOG reports every window above the
threshold it is given, at the same cost, so one HOG run at :data:`NEAR_MISS_SCORE` gives today's faces
(score >= the detector's ``min_score``) and the near misses. Where a near miss is no face already found,
the CNN looks at a crop around it (twice its size, so a face a little beside it is whole), and what the
CNN finds there is added. A photo without a near miss pays nothing; measured on lfw-dev, pascal, full-size and
negative photos in ``bench/accuracy/missed_faces.py`` (docs/accuracy.md "Detection").

Only where HOG found a face: a photo where it found none goes to the pipeline's fallback detector (the
CNN on the whole photo), which finds every face the crops would.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np

from facesearch.models.detect.base import Detection, DetectorSettings, FaceDetector, as_rgb, downscale
from facesearch.models.detect.hog import HogFaceDetector
from facesearch.models.detect.landmarks import FivePointLandmarker

#: HOG's threshold for a near miss (its faces are those >= the detector's min_score, 0 by default).
NEAR_MISS_SCORE = -0.5
#: The crop around a near miss reaches this share of its size beyond each of its sides (0.5: twice its size).
#: On 400 lfw photos a margin of 1 found 9 faces for 2.4 ms of CNN per photo, 0.5 found 7 for 1.3 ms, 0.25 found
#: 6 for 0.9 ms: 0.5 keeps issue 16's ingest cost within 5% (docs/accuracy.md "Detection").
CROP_MARGIN = 0.5

Box = tuple[float, float, float, float]  # left, top, right, bottom in the working image
Scored = tuple[float, float, float, float, float]  # a box and its detector's score


def same_face(a: Box, b: Box, iou: float = 0.3) -> bool:
    """Two boxes of one face: IoU >= ``iou``, or half the smaller inside the larger (HOG's and the CNN's
    boxes of one face differ in size and place)."""
    w = min(a[2], b[2]) - max(a[0], b[0])
    h = min(a[3], b[3]) - max(a[1], b[1])
    if w <= 0 or h <= 0:
        return False
    inter = w * h
    area_a, area_b = (a[2] - a[0]) * (a[3] - a[1]), (b[2] - b[0]) * (b[3] - b[1])
    return inter / (area_a + area_b - inter) >= iou or inter >= 0.5 * min(area_a, area_b)


class NearMissDetector:
    """dlib's HOG detector whose near misses dlib's CNN looks at again (crops only, and only when there are any)."""

    name = "dlib_hog_frontal+cnn_near_misses"

    def __init__(
        self,
        settings: DetectorSettings | None = None,
        *,
        cache_dir: Path | None = None,
        threads: int = 0,
        checker: Callable[[], FaceDetector] | None = None,
    ) -> None:
        """``checker`` builds the CNN detector (by default dlib's CNN via ONNX); it is built on the first near miss."""
        self.settings = settings or DetectorSettings()
        self.hog = HogFaceDetector(self.settings, cache_dir=cache_dir)
        self._landmarks = FivePointLandmarker()
        self._make_checker = checker or (lambda: _cnn(self.settings, cache_dir, threads))
        self._checker: FaceDetector | None = None
        self.crops_checked = 0  # how many crops the CNN has looked at (the cost: bench/accuracy/missed_faces.py)

    @property
    def checker(self) -> FaceDetector:
        if self._checker is None:
            self._checker = self._make_checker()
        return self._checker

    def detect(self, rgb: np.ndarray) -> list[Detection]:
        """Detect every face in an RGB uint8 image, largest first."""
        rgb = as_rgb(rgb)
        work, scale = downscale(rgb, self.settings.working_size)
        scored = self.hog.scored_boxes(work, min(NEAR_MISS_SCORE, self.settings.min_score))
        faces = [box for box in scored if box[4] >= self.settings.min_score]
        if not faces:
            return []  # the pipeline's fallback detector looks at the whole photo
        for near in scored:
            if near[4] < self.settings.min_score and not any(same_face(near[:4], f[:4]) for f in faces):
                for found in self._check(work, near[:4]):
                    if not any(same_face(found[:4], f[:4]) for f in faces):
                        faces.append(found)
        return self._landmarks.detections(rgb, work, scale, faces)

    def _check(self, work: np.ndarray, box: Box) -> list[Scored]:
        """The CNN's faces in a crop twice the near miss's size around it: (left, top, right, bottom, score)."""
        height, width = work.shape[:2]
        w, h = box[2] - box[0] + 1, box[3] - box[1] + 1  # dlib's rectangles include both edges
        x0, y0 = max(0, round(box[0] - CROP_MARGIN * w)), max(0, round(box[1] - CROP_MARGIN * h))
        x1, y1 = min(width, round(box[2] + CROP_MARGIN * w)), min(height, round(box[3] + CROP_MARGIN * h))
        self.crops_checked += 1
        found = self.checker.detect(np.ascontiguousarray(work[y0:y1, x0:x1]))
        return [
            (d.box[0] + x0, d.box[1] + y0, d.box[0] + d.box[2] + x0, d.box[1] + d.box[3] + y0, d.score) for d in found
        ]

    def landmarks_in_box(self, rgb: np.ndarray, box: tuple[int, int, int, int]) -> Detection:
        """Landmarks for a face assumed to be in ``box`` (a fallback when the detector finds none)."""
        return self.hog.landmarks_in_box(rgb, box)


def _cnn(settings: DetectorSettings, cache_dir: Path | None, threads: int) -> FaceDetector:
    from facesearch.models.detect.cnn import CnnFaceDetector

    return CnnFaceDetector(settings, cache_dir=cache_dir, threads=threads)
