"""Detectors by name: ``"hog"`` (dlib's HOG frontal detector) or ``"cnn"`` (dlib's CNN (MMOD) detector
run by ONNX Runtime). Both satisfy :class:`~facesearch.models.detect.base.FaceDetector`.

The CNN module is imported, and its weights converted to ONNX, only when a CNN detector is asked for:
never at import time.
"""

from __future__ import annotations

from pathlib import Path

from facesearch.errors import ModelError
from facesearch.models.detect.base import DetectorSettings, FaceDetector
from facesearch.models.detect.hog import HogFaceDetector

DETECTOR_KINDS = ("hog", "cnn")
# What looks again where HOG almost found a face (LibraryConfig.detector_near_misses; issue 16).
NEAR_MISS_CHECKS = ("none", "cnn")


def create_detector(
    kind: str,
    settings: DetectorSettings | None = None,
    *,
    cache_dir: Path | None = None,
    threads: int = 0,
    near_misses: str = "none",
) -> FaceDetector:
    """The detector called ``kind``: ``"hog"`` (dlib's HOG, the default) or ``"cnn"`` (dlib's MMOD CNN via ONNX).

    ``cache_dir`` (a library's models folder) keeps the CNN's ONNX conversion and the HOG model on disk;
    without it they are built in memory. ``threads`` is ONNX Runtime's thread count (0: all cores).
    ``near_misses="cnn"`` (issue 16) has dlib's CNN look again at crops around HOG's near misses
    (models/detect/near_miss.py); it changes nothing for the CNN detector, which has no near misses.
    """
    if near_misses not in NEAR_MISS_CHECKS:
        choices = ", ".join(repr(k) for k in NEAR_MISS_CHECKS)
        raise ModelError(f"unknown near-miss check {near_misses!r}: choose one of {choices}", code="bad_detector")
    if kind == "hog" and near_misses == "cnn":
        from facesearch.models.detect.near_miss import NearMissDetector

        return NearMissDetector(settings, cache_dir=cache_dir, threads=threads)
    if kind == "hog":
        return HogFaceDetector(settings, cache_dir=cache_dir)
    if kind == "cnn":
        from facesearch.models.detect.cnn import CnnFaceDetector

        return CnnFaceDetector(settings, cache_dir=cache_dir, threads=threads)
    choices = ", ".join(repr(k) for k in DETECTOR_KINDS)
    raise ModelError(f"unknown face detector {kind!r}: choose one of {choices}", code="bad_detector")
