"""Where the default threshold comes from: verification on lfw-dev pairsDevTrain.

Embeds both photos of each of the 2,200 pairs (1,100 same person, 1,100 different) with the
library's pipeline (largest face nearest the centre; a photo without a detected face scores 0),
then prints the best single-threshold accuracy and, for a few thresholds, accuracy, false match
rate (FMR) and false non-match rate (FNMR). Not cross-validated: issue 3's ``facesearch eval
verify`` does the full 10-fold protocol.

    .venv/bin/python -m bench.accuracy.threshold
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np

from bench.datasets import dev_pairs
from facesearch.config import DEFAULT_THRESHOLD, LibraryConfig
from facesearch.eval.verify import central_face
from facesearch.media.decode import decode_image
from facesearch.models.detect.hog import HogFaceDetector
from facesearch.models.embed.factory import create_embedder
from facesearch.models.pipeline import FacePipeline


def main() -> None:
    argparse.ArgumentParser(description=__doc__.splitlines()[0]).parse_args()  # no options: --help only
    pipeline = FacePipeline(
        HogFaceDetector(LibraryConfig().detector_settings()), create_embedder("onnx", Path(tempfile.mkdtemp()))
    )
    cache: dict[Path, np.ndarray | None] = {}

    def embedding(path: Path) -> np.ndarray | None:
        if path not in cache:
            rgb = decode_image(path.read_bytes()).rgb
            face = central_face(pipeline.find_faces(rgb), rgb.shape[1], rgb.shape[0])
            cache[path] = pipeline.embed_faces([face])[0].embedding if face else None
        return cache[path]

    pairs = dev_pairs()
    scores, same = [], []
    for pair in pairs:
        ea, eb = embedding(pair.a), embedding(pair.b)
        scores.append(float(ea @ eb) if ea is not None and eb is not None else 0.0)
        same.append(pair.same)
    s, y = np.array(scores), np.array(same)
    no_face = sum(v is None for v in cache.values())
    best_acc, best_t = max((float(np.mean((s >= t) == y)), float(t)) for t in np.unique(s))
    print(f"{len(pairs)} pairs, {len(cache)} photos, {no_face} without a detected face")
    print(f"best single threshold {best_t:.3f}: accuracy {best_acc:.4f} (chosen on the same pairs: optimistic)")
    print(f"{'threshold':>9s} {'accuracy':>9s} {'FMR':>8s} {'FNMR':>8s}")
    for t in sorted({0.90, 0.91, 0.92, DEFAULT_THRESHOLD, 0.93, 0.94}):
        mark = "  <- default" if t == DEFAULT_THRESHOLD else ""
        print(f"{t:9.3f} {np.mean((s >= t) == y):9.4f} {np.mean(s[~y] >= t):8.4f} {np.mean(s[y] < t):8.4f}{mark}")


if __name__ == "__main__":
    main()
