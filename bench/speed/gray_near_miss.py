"""Issue 15, faster detection: HOG on a grey image inside the product's whole detection path, against today's.

``bench/speed/hog_variants.py`` measured HOG alone: grey input costs ~x0.73 but loses 7 of 435 lfw faces, and
the lower threshold that brings them back adds false faces. The product no longer runs HOG alone (issue 16):
HOG's near misses (scores -0.5..0) get a look from dlib's CNN on a crop, and photos where HOG finds no face go
to the CNN whole. This bench asks whether that path recovers what grey input loses, and at what cost:

* today: ``NearMissDetector`` (HOG on RGB, near misses from -0.5), then the CNN on photos without a face;
* grey, near misses from N: the same, with HOG run on the photo's luma (ITU-R 601 weights) and its near
  misses taken from the lower score N (more crops for the CNN).

Judged on what must not drop: lfw-dev faces found and today's faces found again (the same face: IoU >= 0.3 or
half the smaller box inside the other, ``near_miss.same_face``), recall and false faces on dlib's pascal boxes
(IoU >= 0.3, as ``facesearch eval detect``), false faces on the negatives. CPU ms per photo of this process
(process_time; the machine is shared), detection and the 5-point landmarks; every variant runs twice, in
opposite orders, and the lower time counts.

    PYTHONPATH=src:. python -m bench.speed.gray_near_miss [--lfw 1000] [--near -0.5 -0.7]

Writes no files.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from bench.accuracy.missed_faces import Photo, photo_sets
from bench.datasets import pascal_dir
from facesearch.eval.detect import DEFAULT_IOU, match_boxes, read_boxes
from facesearch.models.detect.base import Detection
from facesearch.models.detect.cnn import CnnFaceDetector
from facesearch.models.detect.hog import HogFaceDetector
from facesearch.models.detect.near_miss import NearMissDetector, same_face

Box = tuple[int, int, int, int]  # left, top, width, height (Detection.box)


def luma(rgb: np.ndarray) -> np.ndarray:
    """ITU-R 601 luma in integer arithmetic (weights 77/150/29 of 256): what dlib would see of a grey photo."""
    wide = rgb.astype(np.uint16)
    return ((wide[..., 0] * 77 + wide[..., 1] * 150 + wide[..., 2] * 29 + 128) >> 8).astype(np.uint8)


class GreyHog(HogFaceDetector):
    """HOG on the luma of the working image, its near misses from ``near`` (below the product's -0.5)."""

    def __init__(self, near: float) -> None:
        super().__init__()
        self.near = near

    def scored_boxes(self, work: np.ndarray, threshold: float) -> list[tuple[int, int, int, int, float]]:
        return super().scored_boxes(luma(work), min(threshold, self.near))


class WholePath:
    """The pipeline's detection: the near-miss detector, then the CNN on the whole photo if it found none."""

    def __init__(self, near: float | None, fallback: CnnFaceDetector) -> None:
        self.detector = NearMissDetector()
        if near is not None:
            self.detector.hog = GreyHog(near)
        self.fallback = fallback
        self.fallbacks = 0

    def detect(self, rgb: np.ndarray) -> list[Detection]:
        found = self.detector.detect(rgb)
        if not found:
            self.fallbacks += 1
            found = self.fallback.detect(rgb)
        return found


def corners(box: Box) -> tuple[float, float, float, float]:
    return box[0], box[1], box[0] + box[2], box[1] + box[3]


def unmatched(boxes: list[list[Box]], others: list[list[Box]]) -> int:
    """How many of ``boxes`` (per photo) are no face of ``others`` in the same photo."""
    return sum(
        not any(same_face(corners(a), corners(b)) for b in theirs)
        for mine, theirs in zip(boxes, others, strict=True)
        for a in mine
    )


def pascal_score(photos: list[Photo], found: list[list[Box]]) -> tuple[int, int, int]:
    """(faces found, faces drawn, false faces) on the pascal boxes, as ``facesearch eval detect`` counts."""
    truth: dict[str, list] = {}
    for box in read_boxes(pascal_dir() / "face_boxes.csv"):
        truth.setdefault(box.file, []).append(box)
    hits = drawn = false = 0
    for photo, boxes in zip(photos, found, strict=True):
        drawn_here = truth[photo.name]
        match = match_boxes(boxes, [t.box for t in drawn_here], [t.ignore for t in drawn_here], DEFAULT_IOU)
        hits, false = hits + match.true_positives, false + match.false_positives
        drawn += sum(not t.ignore for t in drawn_here)
    return hits, drawn, false


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lfw", type=int, default=1000, help="lfw-dev photos (random, seed 0)")
    parser.add_argument("--near", type=float, nargs="+", default=[-0.5, -0.7], help="grey HOG's near-miss scores")
    args = parser.parse_args()
    sets = photo_sets(args.lfw)
    fallback = CnnFaceDetector(threads=1)
    names = ["today (RGB)"] + [f"grey, near misses from {n:g}" for n in args.near]
    paths = {"today (RGB)": WholePath(None, fallback)} | {
        f"grey, near misses from {n:g}": WholePath(n, fallback) for n in args.near
    }
    found: dict[str, dict[str, list[list[Box]]]] = {name: {} for name in names}
    ms: dict[str, dict[str, float]] = {name: {} for name in names}
    for order in (names, names[::-1]):
        for group, photos in sets.items():
            for name in order:
                start = time.process_time()
                found[name][group] = [[d.box for d in paths[name].detect(p.rgb)] for p in photos]
                spent = (time.process_time() - start) * 1000 / len(photos)
                ms[name][group] = min(ms[name].get(group, spent), spent)
    today = found[names[0]]
    print(
        "| variant | lfw ms | vs today | lfw faces | today's kept | pascal ms | pascal recall | pascal false "
        "| negatives false | full-size + group faces | CNN crops / whole photos |"
    )
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for name in names:
        lfw = found[name]["lfw"]
        hits, drawn, false = pascal_score(sets["pascal"], found[name]["pascal"])
        kept = sum(map(len, today["lfw"])) - unmatched(today["lfw"], lfw)
        others = sum(len(b) for g in ("full-size", "group") for b in found[name][g])
        path = paths[name]
        print(
            f"| {name} | {ms[name]['lfw']:.1f} | x{ms[name]['lfw'] / ms[names[0]]['lfw']:.2f} | {sum(map(len, lfw))} "
            f"| {kept}/{sum(map(len, today['lfw']))} | {ms[name]['pascal']:.1f} | {hits}/{drawn} | {false} "
            f"| {sum(map(len, found[name]['negatives']))} | {others} "
            f"| {path.detector.crops_checked // 2} / {path.fallbacks // 2} |",  # two rounds
            flush=True,
        )


if __name__ == "__main__":
    main()
