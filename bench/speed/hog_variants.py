"""Issue 15, faster detection: cheaper ways to run dlib's HOG, each against today's detector in the same run.

Today's detector (models/detect/hog.py) runs HOG with one upsampling at a working size of 1600; the
upsampled pyramid levels are ~3/4 of its time and are what finds 40-80 px faces. Each variant is judged on
what must not drop: lfw-dev faces found (a seeded sample, and how many of today's faces it finds again, IoU
>= 0.5), recall on dlib's pascal boxes and false faces on the negatives (facesearch.eval.detect, the code of
`facesearch eval detect`). Times are CPU time of this process (process_time: the machine is shared, wall
time would measure the neighbours), detection only.

    PYTHONPATH=src:. python -m bench.speed.hog_variants [--lfw 400] [--only TEXT ...]

The last variants split today's run exactly (see :func:`large_faces`): dlib's upsampled pyramid is rebuilt with
dlib's own resize and pyramid_down, its levels 4 and beyond (faces of ~74 px and more) are scanned alone and
give today's boxes and scores; the upsampled levels 0-3 (faces of ~37-70 px) then run only inside crops around
the candidates of a cheap small-face detector. OpenCV's Haar cascade is the only such detector with weights in
its wheel (opencv-python-headless < 5; OpenCV 5 dropped the cascades): those variants are skipped when cv2 is
not importable (measured with ``pip install --target /tmp/pkgs "opencv-python-headless<5"`` on PYTHONPATH).

Writes no files.
"""

from __future__ import annotations

import argparse
import math
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache

import dlib
import numpy as np
from PIL import Image

from bench.datasets import data_dir, examples_dir, lfw_photos, pascal_dir
from bench.speed import small_face_gate
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


#: dlib's pyramids: the 2x upsampling of ``run(image, 1)`` and the 5/6 steps of the HOG scanner.
PYR2, PYR6 = dlib.pyramid_down(2), dlib.pyramid_down(6)
#: Today's upsampled levels 0-3 give boxes up to 70 px wide (working image), level 4 and beyond from 74 px.
SPLIT_LEVEL, SMALL_BOX = 4, 72
#: The scanner's window in a level's own pixels (right - left): 72, or 80 where it reaches past the left or top edge.
WINDOW_SPANS = (72, 80)


def _preimages(value: int, levels: int) -> list[int]:
    """Integers ``c`` of a pyramid level that dlib's rect_up maps to ``value`` ``levels`` levels up."""
    guess = math.floor(PYR6.point_down(dlib.dpoint(value, value), levels).x)
    return [c for c in range(guess - 2, guess + 3) if PYR6.rect_up(dlib.rectangle(c, c, c, c), levels).left() == value]


def _today_rect(rect: dlib.rectangle) -> dlib.rectangle:
    """A box found in dlib's level-4 image, mapped exactly as today's run maps it (dlib rounds once, from the
    level's own pixels: mapping the already rounded box again is 1 px off on ~80% of photos)."""
    for level in range(30):
        edges = [_preimages(v, level) for v in (rect.left(), rect.top(), rect.right(), rect.bottom())]
        if all(edges):
            left, top, right, bottom = (e[0] for e in edges)
            if right - left in WINDOW_SPANS and bottom - top in WINDOW_SPANS:
                rect = PYR6.rect_up(dlib.rectangle(left, top, right, bottom), level + SPLIT_LEVEL)
                return PYR2.rect_down(rect)
    return PYR2.rect_down(PYR6.rect_up(rect, SPLIT_LEVEL))  # not seen on lfw-dev; 1 px off at worst


def large_faces(rgb: np.ndarray, threshold: float = 0.0) -> list[tuple[Box, float]]:
    """Today's boxes of ~74 px and more, exactly, without the upsampled levels 0-3 (~2/3 of today's time).

    dlib's ``run(image, 1)`` scans the pyramid of ``pyramid_up(image)`` (a bilinear resize) in steps of 5/6;
    rebuilding its level 4 with dlib's own functions and scanning that gives the same windows and scores."""
    height, width = rgb.shape[:2]
    up = PYR2.rect_up(dlib.rectangle(0, 0, width - 1, height - 1))
    level = dlib.resize_image(rgb, up.bottom() + 1, up.right() + 1)
    for _ in range(SPLIT_LEVEL):
        level = PYR6(level)
    rects, scores, _ = frontal().run(level, 0, threshold)
    found = []
    for rect, score in zip(rects, scores, strict=True):
        r = _today_rect(rect)
        found.append(((r.left(), r.top(), r.width(), r.height()), float(score)))
    return found


@lru_cache(maxsize=1)
def haar() -> object:
    import cv2  # optional: only these variants need it

    cv2.setNumThreads(1)  # one core per ingest worker
    return cv2.CascadeClassifier(cv2.data.haarcascades + "haarcascade_frontalface_default.xml")


def haar_candidates(rgb: np.ndarray, neighbours: int) -> list[Box]:
    """OpenCV's Haar cascade, tuned for recall: 24-96 px, scale step 1.1, ``neighbours`` 0 keeps every raw hit."""
    import cv2

    found = haar().detectMultiScale(
        cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY),
        scaleFactor=1.1,
        minNeighbors=neighbours,
        minSize=(24, 24),
        maxSize=(96, 96),
    )
    return [tuple(map(float, box)) for box in found]


def _overlaps(a: Box, b: Box) -> bool:
    return a[0] < b[0] + b[2] and b[0] < a[0] + a[2] and a[1] < b[1] + b[3] and b[1] < a[1] + a[3]


def _merged(crops: list[Box]) -> list[Box]:
    """Overlapping crops as one (their bounding box), until none overlap."""
    crops = list(crops)
    merged = True
    while merged:
        merged = False
        for i in range(len(crops)):
            for j in range(i + 1, len(crops)):
                if _overlaps(crops[i], crops[j]):
                    a, b = crops[i], crops.pop(j)
                    left, top = min(a[0], b[0]), min(a[1], b[1])
                    right, bottom = max(a[0] + a[2], b[0] + b[2]), max(a[1] + a[3], b[1] + b[3])
                    crops[i] = (left, top, right - left, bottom - top)
                    merged = True
                    break
            if merged:
                break
    return crops


#: The crop around a candidate: this many times its size, and at least CROP_MIN px a side (working image).
CROP_SCALE, CROP_MIN = 2.0, 96.0


def split_with_candidates(rgb: np.ndarray, propose: Callable[[np.ndarray], list[Box]]) -> list[Box]:
    """Today's large faces exactly, plus upsampled HOG in crops (CROP_SCALE times the candidate's size, at
    least CROP_MIN px) around the cheap detector's candidates that are no large face; what they add must be small."""
    large = large_faces(rgb)
    boxes = [box for box, _ in large]
    height, width = rgb.shape[:2]
    crops = []
    for x, y, w, h in propose(rgb):
        if any(_overlaps((x, y, w, h), b) and iou_matrix([(x, y, w, h)], [b])[0, 0] >= 0.3 for b in boxes):
            continue
        side = max(CROP_SCALE * max(w, h), CROP_MIN)
        cx, cy = x + w / 2, y + h / 2
        x0, y0 = max(0, round(cx - side / 2)), max(0, round(cy - side / 2))
        x1, y1 = min(width, round(cx + side / 2)), min(height, round(cy + side / 2))
        crops.append((float(x0), float(y0), float(x1 - x0), float(y1 - y0)))
    for x0, y0, w, h in _merged(crops):
        crop = np.ascontiguousarray(rgb[int(y0) : int(y0 + h), int(x0) : int(x0 + w)])
        for left, top, bw, bh in hog(crop, 1):
            box = (left + x0, top + y0, bw, bh)
            if bw < SMALL_BOX and not any(iou_matrix([box], [b])[0, 0] >= 0.3 for b in boxes):
                boxes.append(box)
    return boxes


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
    "exact split: levels 4+ only (no upsampled levels)": lambda rgb: [box for box, _ in large_faces(rgb)],
    "levels 4+, upsampled HOG around Haar (all raw hits)": lambda rgb: split_with_candidates(
        rgb, lambda image: haar_candidates(image, 0)
    ),
    "levels 4+, upsampled HOG around Haar (neighbours 1)": lambda rgb: split_with_candidates(
        rgb, lambda image: haar_candidates(image, 1)
    ),
    "levels 4+, upsampled HOG around MTCNN P+R (0.6, 0.7)": lambda rgb: split_with_candidates(
        rgb, lambda image: small_face_gate.candidates(image, 0.6, 0.7)
    ),
    "levels 4+, upsampled HOG around MTCNN P+R (0.5, 0.5)": lambda rgb: split_with_candidates(
        rgb, lambda image: small_face_gate.candidates(image, 0.5, 0.5)
    ),
}
NEEDS_CV2 = ("Haar",)
NEEDS_MTCNN = ("MTCNN",)


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


#: The widest window of the upsampled levels 0-3, in working-image pixels (80 level pixels at scale 2 x (5/6)^3).
SMALL_REACH = 70


def skippable_share(images: list[np.ndarray]) -> float:
    """The share of pixels that the upsampled levels could skip: those inside today's large faces (>= 74 px) but
    more than SMALL_REACH from their edges (a window of levels 0-3 reaching past a face's box must be scanned,
    a face beside it could be there). An upper bound on what "upsampled HOG only outside the faces" saves."""
    skippable = total = 0
    for rgb in images:
        work, _ = downscale(rgb, DetectorSettings().working_size)
        mask = np.zeros(work.shape[:2], dtype=bool)
        for left, top, width, height in hog(work, 1):
            if width >= SMALL_BOX:
                y0, y1 = max(0, top + SMALL_REACH), min(work.shape[0], top + height - SMALL_REACH)
                x0, x1 = max(0, left + SMALL_REACH), min(work.shape[1], left + width - SMALL_REACH)
                if y1 > y0 and x1 > x0:
                    mask[y0:y1, x0:x1] = True
        skippable, total = skippable + int(mask.sum()), total + mask.size
    return skippable / total


def _has_cv2() -> bool:
    try:
        import cv2  # noqa: F401
    except ImportError:
        return False
    return True


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lfw", type=int, default=400, help="lfw-dev photos (random, seed 0)")
    parser.add_argument("--only", nargs="*", default=[], help="run only the variants whose name holds one of these")
    args = parser.parse_args()
    names = [n for n in VARIANTS if not args.only or any(t in n for t in args.only)]
    if not _has_cv2():
        names = [n for n in names if not any(t in n for t in NEEDS_CV2)]
    if small_face_gate.weights_dir() is None:
        names = [n for n in names if not any(t in n for t in NEEDS_MTCNN)]
    names = [n for n in VARIANTS if n == next(iter(VARIANTS))] + [n for n in names if n != next(iter(VARIANTS))]
    paths = lfw_photos()
    random.Random(0).shuffle(paths)
    lfw = [decode_image(p.read_bytes()).rgb for p in paths[: args.lfw]]
    print(f"{len(lfw)} lfw-dev photos (seed 0); pascal boxes; negatives. CPU ms per photo, detection only")
    print(
        f"{'variant':52s} {'lfw ms':>7s} {'x':>6s} {'faces':>6s} {'kept':>9s} {'same box':>9s} {'pascal ms':>9s} "
        f"{'recall':>7s} {'pascal false':>12s} {'negatives false':>15s}"
    )
    for name in names:  # load models and convert nets once, outside the timed runs
        VARIANTS[name](lfw[0])
    today: list[list[Box]] = []
    base_ms = 0.0
    for name in names:
        detector = Timed(name, VARIANTS[name])
        found = [[f.box for f in detector.detect(rgb)] for rgb in lfw]
        lfw_ms = 1000 * detector.cpu_s / len(lfw)
        if not today:
            today, base_ms = found, lfw_ms
        kept = sum(
            int((iou_matrix(a, b) >= 0.5).any(axis=1).sum()) for a, b in zip(today, found, strict=True) if a and b
        )
        same = sum(
            len({tuple(map(round, x)) for x in a} & {tuple(map(round, x)) for x in b})
            for a, b in zip(today, found, strict=True)
        )
        detector.cpu_s = 0.0
        boxes = evaluate_boxes(detector, pascal_dir() / "face_boxes.csv", pascal_dir())
        pascal_ms = 1000 * detector.cpu_s / boxes.images
        negatives = evaluate_negatives(detector, data_dir() / "negatives")
        total = sum(map(len, today))
        print(
            f"{name:52s} {lfw_ms:7.1f} {lfw_ms / base_ms:6.2f} {sum(map(len, found)):6d} {kept:4d}/{total:<4d} "
            f"{same:4d}/{total:<4d} {pascal_ms:9.1f} {boxes.true_positives:3d}/{boxes.truth:<3d} "
            f"{boxes.false_positives:12d} {negatives.false_faces:15d}",
            flush=True,
        )
    gates: dict[str, Callable[[np.ndarray], list[Box]]] = {}
    if _has_cv2():
        gates["Haar, all raw hits"] = lambda rgb: haar_candidates(rgb, 0)
    if small_face_gate.weights_dir() is not None:
        gates["MTCNN P+R (0.6, 0.7)"] = lambda rgb: small_face_gate.candidates(rgb, 0.6, 0.7)
    for name, gate in gates.items():  # what a gate costs by itself, on the same photos
        gate(lfw[0])
        start = time.process_time()
        proposals = [gate(rgb) for rgb in lfw]
        cpu_ms = 1000 * (time.process_time() - start) / len(lfw)
        small = [[b for b in boxes if b[2] < SMALL_BOX] for boxes in today]  # today's faces of levels 0-3
        hit = sum(int((iou_matrix(s, p) >= 0.3).any(axis=1).sum()) for s, p in zip(small, proposals, strict=True) if p)
        print(
            f"gate alone: {name:24s} {cpu_ms:6.1f} ms per lfw photo, {sum(map(len, proposals)) / len(lfw):.2f} "
            f"candidates per photo, today's small faces proposed (IoU >= 0.3) {hit}/{sum(map(len, small))}"
        )
    full_size = [pascal_dir() / "bald_guys.jpg", *sorted((examples_dir() / "multi_face").glob("*.jpg"))]
    full_size += sorted((examples_dir() / "by_identity").glob("*/*.jpg"))
    sets = {
        "lfw-dev": lfw,
        "pascal": [decode_image(p.read_bytes()).rgb for p in sorted(pascal_dir().glob("*.jpg"))],
        "full-size": [decode_image(p.read_bytes()).rgb for p in full_size],
    }
    print("share of pixels the upsampled levels could skip inside today's large faces (upper bound):")
    for name, images in sets.items():
        print(f"  {name:10s} {len(images):4d} photos {100 * skippable_share(images):6.2f}%")


if __name__ == "__main__":
    main()
