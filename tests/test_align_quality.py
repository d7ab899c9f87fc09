"""The quality score's sharpness term: its grey levels computed faster, the same numbers (issue 15)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from facesearch.media.decode import decode_image
from facesearch.models.align import face_chip, frontalness, grey_levels, quality_score
from facesearch.models.detect.base import Detection


def reference_quality(chip: np.ndarray, detection: Detection) -> float:
    """quality_score as it was written before issue 15 (numpy's channel mean)."""
    size = min(detection.box[2], detection.box[3])
    size_factor = float(np.clip((size - 40) / 80, 0.0, 1.0))
    gray = chip.astype(np.float32).mean(axis=2)
    lap = gray[1:-1, 1:-1] * 4 - gray[:-2, 1:-1] - gray[2:, 1:-1] - gray[1:-1, :-2] - gray[1:-1, 2:]
    sharp_factor = float(np.clip(lap.var() / 300.0, 0.0, 1.0))
    return round(size_factor * 0.3 + sharp_factor * 0.3 + frontalness(detection.landmarks) * 0.4, 4)


def test_grey_levels_are_the_channel_mean_to_the_bit(shared_data: Path) -> None:
    """Issue 15: the ingest now computes every chip's grey levels by adding its 3 planes; they must be numpy's
    ``mean(axis=2)`` exactly (every channel sum from 0 to 765 included), so quality scores do not move."""
    rng = np.random.default_rng(0)
    chips = [rng.integers(0, 256, size=(150, 150, 3), dtype=np.uint8) for _ in range(4)]
    k = np.arange(256, dtype=np.uint8)
    zeros, full = np.zeros(256, np.uint8), np.full(256, 255, np.uint8)
    sums = np.concatenate([np.stack(t, axis=1) for t in ((k, zeros, zeros), (full, k, zeros), (full, full, k))])
    chips.append(sums.reshape(1, -1, 3))
    photo = next((shared_data / "face_recognition_examples" / "by_identity").rglob("*.jpg"))
    rgb = decode_image(photo.read_bytes()).rgb
    chips.append(rgb)
    for chip in chips:
        ours = grey_levels(chip)
        assert ours.dtype == np.float32 and np.array_equal(ours, chip.astype(np.float32).mean(axis=2))
    landmarks = np.array([[60, 60], [50, 60], [90, 60], [100, 60], [75, 90]], np.float32)
    for box in ((20, 20, 110, 110), (10, 30, 60, 70)):
        detection = Detection(box=box, landmarks=landmarks, score=1.0)
        chip = face_chip(rgb, detection)
        assert quality_score(chip, detection) == reference_quality(chip, detection)
