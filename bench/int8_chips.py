"""Aligned lfw-dev face chips for the int8 embedder work (issue 15), cached outside the repository.

Why: quantising dlib's ResNet needs activation ranges measured on real aligned faces, and judging the
quantised model needs the same faces embedded by both models. Detecting and aligning is the slow part,
so it is done once here, exactly as the default recipe does (HOG, central face, the centre box when
HOG finds none, the plain chip plus the 4 chips shifted by the recipe's jitter) and kept as ``.npy``
files under ``FACESEARCH_INT8_CACHE`` (default /tmp/h-int8). Chips are photos of real people: they are
never written inside the project.

Two sets, disjoint in people:
- ``pairs``: every photo of lfw-dev's pairsDevTrain (the held-out verification set);
- ``calibration``: one photo each of people who appear in no pair (what the activation ranges come from).

    PYTHONPATH=src:. python -m bench.int8_chips [--calibration 400]
"""

from __future__ import annotations

import argparse
import logging
import os
from pathlib import Path

import numpy as np

from bench.datasets import dev_pairs, lfw_people
from facesearch.config import LibraryConfig
from facesearch.eval.verify import central_face, centre_box
from facesearch.media.decode import decode_image
from facesearch.models.detect.factory import create_detector
from facesearch.models.pipeline import align_face, jitter_shifts

log = logging.getLogger(__name__)

CHIP_SIZE = 150
CHIP_PADDING = 0.25


def cache_dir() -> Path:
    """Where chips are kept (never inside the project: they are faces of real people)."""
    return Path(os.environ.get("FACESEARCH_INT8_CACHE", "/tmp/h-int8"))


def pair_photos() -> list[Path]:
    """Every photo of pairsDevTrain, sorted."""
    return sorted({p for pair in dev_pairs() for p in (pair.a, pair.b)})


def calibration_photos(count: int) -> list[Path]:
    """The first photo of ``count`` people who are in no pairsDevTrain pair, spread over the alphabet."""
    paired = {p.parent.name for p in pair_photos()}
    people = [folder for folder in lfw_people() if folder.name not in paired]
    step = max(1, len(people) // count)
    photos = [sorted(folder.glob("*.jpg"))[0] for folder in people[::step]]
    return photos[:count]


def align_photos(photos: list[Path]) -> np.ndarray:
    """(N, 5, 150, 150, 3) uint8: each photo's central face, plain then the 4 recipe shifts."""
    jitter = LibraryConfig().jitter
    detector = create_detector("hog", LibraryConfig().detector_settings(), threads=1)
    out = np.zeros((len(photos), 1 + len(jitter_shifts(jitter)), CHIP_SIZE, CHIP_SIZE, 3), np.uint8)
    for i, path in enumerate(photos):
        rgb = decode_image(path.read_bytes()).rgb
        detections = detector.detect(rgb)
        height, width = rgb.shape[:2]
        if detections:
            faces = [align_face(rgb, j, det, CHIP_SIZE, CHIP_PADDING, jitter) for j, det in enumerate(detections)]
            face = central_face(faces, width, height)
        else:
            det = detector.landmarks_in_box(rgb, centre_box(width, height))
            face = align_face(rgb, 0, det, CHIP_SIZE, CHIP_PADDING, jitter)
        if face is None or face.shifted_chips is None:
            raise RuntimeError(f"no aligned face for {path}")
        out[i, 0] = face.chip
        out[i, 1:] = face.shifted_chips
        if i % 500 == 0:
            log.info("aligned %d / %d", i, len(photos))
    return out


def load(name: str) -> tuple[list[Path], np.ndarray]:
    """The photos and chips of set ``name`` (``pairs`` or ``calibration``), made by :func:`main` first."""
    folder = cache_dir()
    photos = [Path(line) for line in (folder / f"{name}.txt").read_text().splitlines()]
    return photos, np.load(folder / f"{name}.npy", mmap_mode="r")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calibration", type=int, default=400, help="calibration photos (people in no pair)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    folder = cache_dir()
    folder.mkdir(parents=True, exist_ok=True)
    for name, photos in (("calibration", calibration_photos(args.calibration)), ("pairs", pair_photos())):
        if (folder / f"{name}.npy").is_file():
            continue
        log.info("%s: %d photos", name, len(photos))
        chips = align_photos(photos)
        np.save(folder / f"{name}.npy", chips)
        (folder / f"{name}.txt").write_text("\n".join(str(p) for p in photos) + "\n")


if __name__ == "__main__":
    main()
