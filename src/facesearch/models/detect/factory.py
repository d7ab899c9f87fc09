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


def create_detector(
    kind: str, settings: DetectorSettings | None = None, *, cache_dir: Path | None = None, threads: int = 0
) -> FaceDetector:
    """The detector called ``kind``: ``"hog"`` (dlib's HOG, the default) or ``"cnn"`` (dlib's MMOD CNN via ONNX).

    ``cache_dir`` (a library's models folder) keeps the CNN's ONNX conversion and the HOG model on disk;
    without it they are built in memory. ``threads`` is ONNX Runtime's thread count (0: all cores).
    """
    if kind == "hog":
        return HogFaceDetector(settings, cache_dir=cache_dir)
    if kind == "cnn":
        from facesearch.models.detect.cnn import CnnFaceDetector

        return CnnFaceDetector(settings, cache_dir=cache_dir, threads=threads)
    choices = ", ".join(repr(k) for k in DETECTOR_KINDS)
    raise ModelError(f"unknown face detector {kind!r}: choose one of {choices}", code="bad_detector")
