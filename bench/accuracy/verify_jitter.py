"""Does deterministic jitter help verification beyond flip averaging? (lfw-dev pairsDevTrain, 10-fold)

Jittered chips are cut from the original photo with the 5 landmarks shifted or scaled about their
centre, so every variant is real image content and the same on every run (dlib's own jitter is
random). Each recipe averages the raw descriptors of its variants (and their mirror images).

    .venv/bin/python -m bench.accuracy.verify_jitter
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

from bench.datasets import dev_pairs
from facesearch.eval.metrics import kfold_accuracy, tar_at_far
from facesearch.eval.verify import central_face, centre_box
from facesearch.media.decode import decode_image
from facesearch.models.align import face_chip
from facesearch.models.detect.base import Detection, DetectorSettings
from facesearch.models.detect.hog import HogFaceDetector
from facesearch.models.embed.base import l2_normalise
from facesearch.models.embed.factory import create_embedder
from facesearch.models.pipeline import FacePipeline

# name -> list of (dx, dy, scale) landmark perturbations; each is embedded with its mirror image too
RECIPES: dict[str, list[tuple[float, float, float]]] = {
    "flip": [(0, 0, 1.0)],
    "flip+shift2": [(0, 0, 1.0), (2, 0, 1.0), (-2, 0, 1.0), (0, 2, 1.0), (0, -2, 1.0)],
    "flip+scale": [(0, 0, 1.0), (0, 0, 0.96), (0, 0, 1.04)],
    "flip+shift2+scale": [
        (0, 0, 1.0),
        (2, 0, 1.0),
        (-2, 0, 1.0),
        (0, 2, 1.0),
        (0, -2, 1.0),
        (0, 0, 0.96),
        (0, 0, 1.04),
    ],
}


def perturbed(det: Detection, dx: float, dy: float, scale: float) -> Detection:
    centre = det.landmarks.mean(axis=0)
    points = (det.landmarks - centre) * scale + centre + np.array([dx, dy], np.float32)
    return Detection(det.box, points.astype(np.float32), det.score)


def main() -> None:
    argparse.ArgumentParser(description=__doc__.splitlines()[0]).parse_args()  # no options: --help only
    pairs = dev_pairs()
    paths = sorted({p for pair in pairs for p in (pair.a, pair.b)})
    embedder = create_embedder("onnx", Path(tempfile.mkdtemp()))
    pipeline = FacePipeline(HogFaceDetector(DetectorSettings(upsample=1)), embedder)
    variants = sorted({v for recipe in RECIPES.values() for v in recipe})
    raw: dict[Path, dict[tuple, np.ndarray]] = {}
    start = time.perf_counter()
    for path in paths:
        rgb = decode_image(path.read_bytes()).rgb
        face = central_face(pipeline.find_faces(rgb), rgb.shape[1], rgb.shape[0])
        if face is None:
            face = pipeline.face_in_box(rgb, centre_box(rgb.shape[1], rgb.shape[0]))
        det = Detection(face.box, face.landmarks, face.det_score)
        chips = np.stack([face_chip(rgb, perturbed(det, *v)) for v in variants])
        both = np.concatenate([chips, np.ascontiguousarray(chips[:, :, ::-1])])
        out = embedder._raw(both)
        raw[path] = {v: out[i] + out[i + len(variants)] for i, v in enumerate(variants)}
    print(f"{len(paths)} images embedded in {time.perf_counter() - start:.0f} s ({len(variants)} variants x 2)")
    same = np.array([p.same for p in pairs])
    folds = np.array([p.fold for p in pairs])
    for name, recipe in RECIPES.items():
        emb = {p: l2_normalise(sum(raw[p][v] for v in recipe)[None])[0] for p in paths}
        scores = np.array([float(emb[p.a] @ emb[p.b]) for p in pairs])
        mean, std, _ = kfold_accuracy(scores, same, folds)
        print(
            f"{name:20s} {len(recipe) * 2:3d} embeddings/face  accuracy {mean * 100:.2f} ± {std * 100:.2f}  "
            f"TAR@1e-2 {tar_at_far(scores, same, 0.01) * 100:.2f}  TAR@1e-3 {tar_at_far(scores, same, 0.001) * 100:.2f}"
        )


if __name__ == "__main__":
    main()
