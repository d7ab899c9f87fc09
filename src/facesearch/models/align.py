"""Alignment: turn a detection into an upright, scaled face chip, plus a thumbnail and a quality score.

Chips use dlib's own similarity alignment from the 5 landmarks (``get_face_chip``), so that the
converted ONNX network sees exactly the chips dlib's network was trained on.
"""

from __future__ import annotations

import io

import dlib
import numpy as np
from PIL import Image

from facesearch.models.detector import Detection


def face_chip(rgb: np.ndarray, detection: Detection, size: int = 150, padding: float = 0.25) -> np.ndarray:
    """Return the aligned ``size`` x ``size`` RGB chip of one detected face."""
    left, top, width, height = detection.box
    rect = dlib.rectangle(left, top, left + width, top + height)
    points = [dlib.point(round(float(x)), round(float(y))) for x, y in detection.landmarks]
    shape = dlib.full_object_detection(rect, points)
    return np.ascontiguousarray(dlib.get_face_chip(rgb, shape, size=size, padding=padding))


def thumbnail_jpeg(rgb: np.ndarray, box: tuple[int, int, int, int], size: int = 112) -> bytes:
    """A small JPEG of the face with some context, for result lists (never the whole photo)."""
    left, top, width, height = box
    margin = int(0.25 * max(width, height))
    img_h, img_w = rgb.shape[:2]
    crop = rgb[
        max(0, top - margin) : min(img_h, top + height + margin),
        max(0, left - margin) : min(img_w, left + width + margin),
    ]
    image = Image.fromarray(crop)
    image.thumbnail((size, size), Image.Resampling.LANCZOS)
    out = io.BytesIO()
    image.save(out, format="JPEG", quality=85)
    return out.getvalue()


def quality_score(chip: np.ndarray, detection: Detection) -> float:
    """A 0..1 score from face size, chip sharpness and frontal pose.

    Why: small, blurred or turned faces give embeddings that match strangers more often; the score
    lets an operator filter or rank them. Each factor saturates at a level where it stops mattering.
    """
    size = min(detection.box[2], detection.box[3])
    size_factor = float(np.clip((size - 40) / 80, 0.0, 1.0))
    gray = chip.astype(np.float32).mean(axis=2)
    lap = gray[1:-1, 1:-1] * 4 - gray[:-2, 1:-1] - gray[2:, 1:-1] - gray[1:-1, :-2] - gray[1:-1, 2:]
    sharp_factor = float(np.clip(lap.var() / 300.0, 0.0, 1.0))
    pose_factor = frontalness(detection.landmarks)
    return round(size_factor * 0.3 + sharp_factor * 0.3 + pose_factor * 0.4, 4)


def frontalness(landmarks: np.ndarray) -> float:
    """1.0 for a frontal face, falling towards 0 as the nose moves off the eyes' midline (yaw).

    dlib's 5 points: 0-1 one eye's corners, 2-3 the other eye's corners, 4 below the nose.
    """
    eye_a = landmarks[0:2].mean(axis=0)
    eye_b = landmarks[2:4].mean(axis=0)
    eye_dist = float(np.linalg.norm(eye_a - eye_b))
    if eye_dist < 1e-6:
        return 0.0
    mid = (eye_a + eye_b) / 2
    axis = (eye_b - eye_a) / eye_dist
    offset = abs(float(np.dot(landmarks[4] - mid, axis))) / eye_dist
    return float(np.clip(1.0 - offset * 2.5, 0.0, 1.0))
