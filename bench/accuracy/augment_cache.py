"""Embed every lfw-dev photo under many deterministic augmentations, once, for accuracy experiments.

Each photo's central face is found with the library's detector (centre-box fallback when none), then
cut out as several chips: the 5 landmarks shifted, scaled or rotated about their centre (real image
content, the same on every run) and each chip's mirror image. The raw (unnormalised) descriptors go
to ``bench/out/augment-<detector>.npz`` (ignored by git: embeddings of real people are never
committed), so that bench/accuracy/accuracy_variants.py can score any combination of variants on verification
and 1:N identification in seconds instead of re-embedding.

    .venv/bin/python -m bench.accuracy.augment_cache [--detector hog] [--workers 2]
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import tempfile
import time
from pathlib import Path

import numpy as np

from bench.datasets import OUT, lfw_images

# (dx, dy, scale, degrees) perturbations of the landmarks about their centre; index 0 is the plain chip.
VARIANTS: list[tuple[float, float, float, float]] = [
    (0, 0, 1.0, 0),
    (2, 0, 1.0, 0),
    (-2, 0, 1.0, 0),
    (0, 2, 1.0, 0),
    (0, -2, 1.0, 0),
    (4, 0, 1.0, 0),
    (-4, 0, 1.0, 0),
    (0, 4, 1.0, 0),
    (0, -4, 1.0, 0),
    (0, 0, 0.92, 0),
    (0, 0, 0.96, 0),
    (0, 0, 1.04, 0),
    (0, 0, 1.08, 0),
    (0, 0, 1.0, 5),
    (0, 0, 1.0, -5),
]


def perturb(landmarks: np.ndarray, dx: float, dy: float, scale: float, degrees: float) -> np.ndarray:
    centre = landmarks.mean(axis=0)
    theta = np.deg2rad(degrees)
    rot = np.array([[np.cos(theta), -np.sin(theta)], [np.sin(theta), np.cos(theta)]], np.float32)
    return ((landmarks - centre) @ rot.T * scale + centre + np.array([dx, dy], np.float32)).astype(np.float32)


def work(args: tuple[list[str], str, int]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    paths, detector_kind, upsample = args
    from facesearch.eval.verify import central_face, centre_box
    from facesearch.media.decode import decode_image
    from facesearch.models.align import face_chip
    from facesearch.models.detect.base import Detection, DetectorSettings
    from facesearch.models.detect.hog import HogFaceDetector
    from facesearch.models.embed.factory import create_embedder
    from facesearch.models.pipeline import FacePipeline

    settings = DetectorSettings(upsample=upsample)
    if detector_kind == "hog":
        detector = HogFaceDetector(settings)
    else:
        from facesearch.models.detect.factory import create_detector

        detector = create_detector(detector_kind, settings)
    embedder = create_embedder("onnx", Path(tempfile.gettempdir()) / "facesearch-bench-cache", threads=1)
    pipeline = FacePipeline(detector, embedder)
    out = np.zeros((len(paths), len(VARIANTS), 2, 128), np.float32)
    found = np.zeros(len(paths), bool)
    quality = np.zeros(len(paths), np.float32)
    for n, path in enumerate(paths):
        rgb = decode_image(Path(path).read_bytes()).rgb
        face = central_face(pipeline.find_faces(rgb), rgb.shape[1], rgb.shape[0])
        found[n] = face is not None
        if face is None:
            face = pipeline.face_in_box(rgb, centre_box(rgb.shape[1], rgb.shape[0]))
        quality[n] = face.quality
        chips = []
        for variant in VARIANTS:
            det = Detection(face.box, perturb(face.landmarks, *variant), face.det_score)
            chips.append(face_chip(rgb, det))
        chips_arr = np.stack(chips)
        both = np.concatenate([chips_arr, np.ascontiguousarray(chips_arr[:, :, ::-1])])
        raw = embedder._raw(both)
        out[n, :, 0] = raw[: len(VARIANTS)]
        out[n, :, 1] = raw[len(VARIANTS) :]
    return out, found, quality


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--detector", default="hog")
    parser.add_argument("--upsample", type=int, default=1)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    images = lfw_images()
    paths = sorted(str(p) for p in images.glob("*/*.jpg"))
    chunks = [paths[i : i + 100] for i in range(0, len(paths), 100)]
    start = time.perf_counter()
    parts = []
    with mp.get_context("spawn").Pool(args.workers) as pool:
        for n, part in enumerate(pool.imap(work, [(c, args.detector, args.upsample) for c in chunks]), 1):
            parts.append(part)
            if n % 10 == 0:
                print(f"{n * 100}/{len(paths)} photos, {time.perf_counter() - start:.0f} s", flush=True)
    out = OUT / f"augment-{args.detector}-up{args.upsample}.npz"
    out.parent.mkdir(parents=True, exist_ok=True)
    np.savez(
        out,
        paths=np.array([str(Path(p).relative_to(images)) for p in paths]),
        raw=np.concatenate([p[0] for p in parts]),
        found=np.concatenate([p[1] for p in parts]),
        quality=np.concatenate([p[2] for p in parts]),
        variants=np.array(VARIANTS, np.float32),
    )
    print(f"{len(paths)} photos x {len(VARIANTS)} variants x 2 in {time.perf_counter() - start:.0f} s -> {out}")


if __name__ == "__main__":
    main()
