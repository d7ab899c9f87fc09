"""Detector speed and yield: dlib's HOG vs dlib's CNN (MMOD) through our ONNX rebuild vs dlib's own CNN.

Why: the CNN finds faces HOG misses but costs more; this shows how much more on the machine at hand,
and how many faces each finds on dlib's annotated pascal group photos. Photos come from
../shared/data (or FACESEARCH_DATA): LFW 250x250 images, and the full-size group photos
(pascal, bald_guys, face_recognition's multi-face photos) shrunk to the detector's working size.
Times are detection only (no landmarks), with the same upsampling for all three, best of
``--repeats`` runs after a warm-up (dlib's CNN: one run, it is slow). Writes no files.

    .venv/bin/python -m bench.speed.detector [--lfw 20] [--repeats 3] [--upsample 1] [--no-dlib-cnn]
"""

from __future__ import annotations

import argparse
import os
import random
import time
from collections.abc import Callable
from pathlib import Path

import dlib
import numpy as np
from PIL import Image

from bench.datasets import examples_dir, lfw_photos, pascal_boxes, pascal_dir
from facesearch.models.detect.base import DetectorSettings, downscale
from facesearch.models.detect.cnn import CnnFaceDetector
from facesearch.models.weights import DLIB_MMOD, dlib_model_path

Detect = Callable[[np.ndarray], int]  # returns the number of faces found


def load_rgb(path: Path, working_size: int) -> np.ndarray:
    with Image.open(path) as image:
        return downscale(np.asarray(image.convert("RGB"), dtype=np.uint8), working_size)[0]


def detectors(upsample: int, with_dlib_cnn: bool) -> dict[str, Detect]:
    hog = dlib.get_frontal_face_detector()
    onnx_all = CnnFaceDetector(DetectorSettings(upsample=upsample))
    onnx_one = CnnFaceDetector(DetectorSettings(upsample=upsample), threads=1)
    found: dict[str, Detect] = {
        "hog": lambda rgb: len(hog.run(rgb, upsample, 0.0)[0]),
        "cnn-onnx": lambda rgb: len(onnx_all.mmod_boxes(rgb, upsample)),
        "cnn-onnx-1thread": lambda rgb: len(onnx_one.mmod_boxes(rgb, upsample)),
    }
    if with_dlib_cnn:
        mmod = dlib.cnn_face_detection_model_v1(str(dlib_model_path(DLIB_MMOD)))
        found["cnn-dlib"] = lambda rgb: len(mmod(rgb, upsample))
    return found


def ms_per_image(detect: Detect, images: list[np.ndarray], repeats: int) -> tuple[float, list[int]]:
    """Best of ``repeats`` passes (after one warm-up image) in ms per image, and the faces per image."""
    detect(images[0])
    best = float("inf")
    counts: list[int] = []
    for _ in range(repeats):
        start = time.perf_counter()
        counts = [detect(rgb) for rgb in images]
        best = min(best, time.perf_counter() - start)
    return 1000.0 * best / len(images), counts


def report(title: str, images: list[np.ndarray], found: dict[str, Detect], repeats: int) -> dict[str, list[int]]:
    pixels = np.mean([rgb.shape[0] * rgb.shape[1] for rgb in images]) / 1e6
    print(f"\n{title}: {len(images)} images, mean {pixels:.2f} Mpixel")
    timings: dict[str, float] = {}
    counts: dict[str, list[int]] = {}
    for name, detect in found.items():
        timings[name], counts[name] = ms_per_image(detect, images, 1 if name == "cnn-dlib" else repeats)
        print(f"  {name:18s} {timings[name]:9.1f} ms/image   faces {sum(counts[name])}")
    hog = timings["hog"]
    for name in ("cnn-onnx", "cnn-onnx-1thread", "cnn-dlib"):
        if name in timings:
            print(f"  {name} / hog: x{timings[name] / hog:.2f}", end="")
            if "cnn-dlib" in timings and name != "cnn-dlib":
                print(f"   cnn-dlib / {name}: x{timings['cnn-dlib'] / timings[name]:.2f}", end="")
            print()
    return counts


def pascal_yield(names: list[str], counts: dict[str, list[int]]) -> None:
    rows = pascal_boxes()
    print("\nfaces found on the pascal group photos vs annotated (ignore=0):")
    print(f"  {'photo':18s} {'annotated':>9s} " + " ".join(f"{n:>16s}" for n in counts))
    totals = {n: 0 for n in counts}
    annotated_total = 0
    for i, name in enumerate(names):
        annotated = sum(1 for r in rows if r["file"] == name and r["ignore"] == "0")
        annotated_total += annotated
        for n in counts:
            totals[n] += counts[n][i]
        print(f"  {name:18s} {annotated:9d} " + " ".join(f"{counts[n][i]:16d}" for n in counts))
    print(f"  {'total':18s} {annotated_total:9d} " + " ".join(f"{totals[n]:16d}" for n in counts))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lfw", type=int, default=20, help="LFW images (random, fixed seed)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--upsample", type=int, default=DetectorSettings().upsample)
    parser.add_argument("--working-size", type=int, default=DetectorSettings().working_size)
    parser.add_argument("--no-dlib-cnn", action="store_true", help="skip dlib's own CNN (slow on a CPU)")
    args = parser.parse_args()

    found = detectors(args.upsample, not args.no_dlib_cnn)
    print(f"upsample {args.upsample}, working size {args.working_size}, {os.cpu_count()} cores")
    print("hog and cnn-dlib run on one core; cnn-onnx uses every core, cnn-onnx-1thread one")

    lfw_paths = lfw_photos()
    random.Random(0).shuffle(lfw_paths)
    lfw = [load_rgb(p, args.working_size) for p in lfw_paths[: args.lfw]]
    report("LFW 250x250", lfw, found, args.repeats)

    pascal_root = pascal_dir()
    pascal_names = sorted({r["file"] for r in pascal_boxes()})
    pascal = [load_rgb(pascal_root / name, args.working_size) for name in pascal_names]
    counts = report("pascal group photos (about 500x375)", pascal, found, args.repeats)
    pascal_yield(pascal_names, counts)

    large_paths = [pascal_root / "bald_guys.jpg"]
    large_paths += sorted((examples_dir() / "multi_face").glob("*.jpg"))
    large = [load_rgb(p, args.working_size) for p in large_paths]
    sizes = ", ".join(f"{p.name} {rgb.shape[1]}x{rgb.shape[0]}" for p, rgb in zip(large_paths, large, strict=True))
    counts = report(f"full-size photos ({sizes})", large, found, 1)
    for i, path in enumerate(large_paths):
        print(f"  {path.name}: " + ", ".join(f"{n} {counts[n][i]}" for n in counts))


if __name__ == "__main__":
    main()
