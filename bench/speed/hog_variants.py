"""Issue 15, faster detection: cheaper ways to run dlib's HOG, each against today's detector in the same run.

Today's detector (models/detect/hog.py) runs HOG with one upsampling at a working size of 1600; the
upsampled pyramid levels are ~3/4 of its time and are what finds 40-80 px faces. Each variant is judged on
what must not drop: lfw-dev faces found (a seeded sample, and how many of today's faces it finds again, IoU
>= 0.5), recall on dlib's pascal boxes and false faces on the negatives (facesearch.eval.detect, the code of
`facesearch eval detect`). Times are CPU time of this process (process_time: the machine is shared, wall
time would measure the neighbours), detection only.

    PYTHONPATH=src:. python -m bench.speed.hog_variants [--lfw 400]

Writes no files.
"""

from __future__ import annotations

import argparse
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache

import dlib
import numpy as np
from PIL import Image

from bench.datasets import data_dir, lfw_photos, pascal_dir
from facesearch.eval.detect import evaluate_boxes, evaluate_negatives, iou_matrix
from facesearch.media.decode import decode_image
from facesearch.models.detect.base import DetectorSettings, downscale

Box = tuple[float, float, float, float]
Variant = Callable[[np.ndarray], list[Box]]  # a working-size image -> boxes (left, top, width, height)


@lru_cache(maxsize=1)
def frontal() -> dlib.fhog_object_detector:
    return dlib.get_frontal_face_detector()  # built on first use, not when the module is imported


def hog(image: np.ndarray, upsample: int, threshold: float = 0.0) -> list[Box]:
    rects, _, _ = frontal().run(image, upsample, threshold)
    return [(r.left(), r.top(), r.width(), r.height()) for r in rects]


def gray(rgb: np.ndarray) -> np.ndarray:
    return np.asarray(Image.fromarray(rgb).convert("L"))


def upsampled_by_pil(rgb: np.ndarray) -> list[Box]:
    """Upsample 2x with PIL (bilinear) and scan without dlib's own upsampling; boxes mapped back."""
    big = np.asarray(Image.fromarray(rgb).resize((rgb.shape[1] * 2, rgb.shape[0] * 2), Image.Resampling.BILINEAR))
    return [((left + 0.5) / 2 - 0.5, (top + 0.5) / 2 - 0.5, w / 2, h / 2) for left, top, w, h in hog(big, 0)]


VARIANTS: dict[str, Variant] = {
    "today: HOG, upsample 1": lambda rgb: hog(rgb, 1),
    "upsample 0": lambda rgb: hog(rgb, 0),
    "upsample 1 only where upsample 0 finds none": lambda rgb: hog(rgb, 0) or hog(rgb, 1),
    "grayscale, upsample 1": lambda rgb: hog(gray(rgb), 1),
    "grayscale, upsample 1, threshold -0.3": lambda rgb: hog(gray(rgb), 1, -0.3),
    "PIL 2x upsample, then upsample 0": upsampled_by_pil,
}


@dataclass
class Found:
    box: Box


class Timed:
    """A detector for facesearch.eval.detect: the working size of today's detector, CPU time summed."""

    def __init__(self, name: str, variant: Variant) -> None:
        self.name, self.variant, self.cpu_s = name, variant, 0.0

    def detect(self, rgb: np.ndarray) -> list[Found]:
        start = time.process_time()
        work, scale = downscale(rgb, DetectorSettings().working_size)
        boxes = self.variant(work)
        self.cpu_s += time.process_time() - start
        return [Found((b[0] / scale, b[1] / scale, b[2] / scale, b[3] / scale)) for b in boxes]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lfw", type=int, default=400, help="lfw-dev photos (random, seed 0)")
    args = parser.parse_args()
    paths = lfw_photos()
    random.Random(0).shuffle(paths)
    lfw = [decode_image(p.read_bytes()).rgb for p in paths[: args.lfw]]
    print(f"{len(lfw)} lfw-dev photos (seed 0); pascal boxes; negatives. CPU ms per photo, detection only")
    print(
        f"{'variant':44s} {'lfw ms':>7s} {'x':>6s} {'faces':>6s} {'kept':>8s} {'pascal ms':>9s} {'recall':>7s} "
        f"{'pascal false':>12s} {'negatives false':>15s}"
    )
    today: list[list[Box]] = []
    base_ms = 0.0
    for name, variant in VARIANTS.items():
        detector = Timed(name, variant)
        found = [[f.box for f in detector.detect(rgb)] for rgb in lfw]
        lfw_ms = 1000 * detector.cpu_s / len(lfw)
        if not today:
            today, base_ms = found, lfw_ms
        kept = sum(
            int((iou_matrix(a, b) >= 0.5).any(axis=1).sum()) for a, b in zip(today, found, strict=True) if a and b
        )
        detector.cpu_s = 0.0
        boxes = evaluate_boxes(detector, pascal_dir() / "face_boxes.csv", pascal_dir())
        pascal_ms = 1000 * detector.cpu_s / boxes.images
        negatives = evaluate_negatives(detector, data_dir() / "negatives")
        print(
            f"{name:44s} {lfw_ms:7.1f} {lfw_ms / base_ms:6.2f} {sum(map(len, found)):6d} "
            f"{kept:4d}/{sum(map(len, today)):<3d} {pascal_ms:9.1f} {boxes.true_positives:3d}/{boxes.truth:<3d} "
            f"{boxes.false_positives:12d} {negatives.false_faces:15d}"
        )


if __name__ == "__main__":
    main()
