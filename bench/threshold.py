"""Where the default threshold comes from: verification on lfw-dev pairsDevTrain.

Embeds both photos of each of the 2,200 pairs (1,100 same person, 1,100 different) with the
library's pipeline (largest face nearest the centre; a photo without a detected face scores 0),
then prints the best single-threshold accuracy and, for a few thresholds, accuracy, false match
rate (FMR) and false non-match rate (FNMR). Not cross-validated: issue 3's ``facesearch eval
verify`` does the full 10-fold protocol.

    .venv/bin/python bench/threshold.py
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from embedder_speed import data_dir  # noqa: E402

from facesearch.config import DEFAULT_THRESHOLD, LibraryConfig  # noqa: E402
from facesearch.ingest.decode import decode_image  # noqa: E402
from facesearch.models.detector import HogFaceDetector  # noqa: E402
from facesearch.models.embedder import create_embedder  # noqa: E402
from facesearch.models.pipeline import FacePipeline  # noqa: E402


def read_pairs(path: Path) -> list[tuple[str, int, str, int, bool]]:
    lines = path.read_text().splitlines()
    count = int(lines[0].split()[0])
    pairs = []
    for line in lines[1 : 2 * count + 1]:
        parts = line.split()
        if len(parts) == 3:
            pairs.append((parts[0], int(parts[1]), parts[0], int(parts[2]), True))
        else:
            pairs.append((parts[0], int(parts[1]), parts[2], int(parts[3]), False))
    return pairs


def main() -> None:
    root = data_dir() / "lfw-dev"
    pipeline = FacePipeline(
        HogFaceDetector(LibraryConfig().detector_settings()), create_embedder("onnx", Path(tempfile.mkdtemp()))
    )
    cache: dict[tuple[str, int], np.ndarray | None] = {}

    def embedding(name: str, number: int) -> np.ndarray | None:
        if (name, number) not in cache:
            rgb = decode_image((root / "images" / name / f"{name}_{number:04d}.jpg").read_bytes()).rgb
            faces = pipeline.find_faces(rgb)
            centre = np.array(rgb.shape[1::-1]) / 2
            face = min(
                faces,
                key=lambda f: float(np.sum((np.array(f.box[:2]) + np.array(f.box[2:]) / 2 - centre) ** 2)),
                default=None,
            )
            cache[(name, number)] = pipeline.embed_faces([face])[0].embedding if face else None
        return cache[(name, number)]

    pairs = read_pairs(root / "pairsDevTrain.txt")
    scores, same = [], []
    for a, i, b, j, is_same in pairs:
        ea, eb = embedding(a, i), embedding(b, j)
        scores.append(float(ea @ eb) if ea is not None and eb is not None else 0.0)
        same.append(is_same)
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
