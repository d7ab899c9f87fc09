"""Which embedding recipe verifies best? Flip averaging, alignment padding, upsampling, fallback.

Runs the 10-fold LFW protocol (facesearch.eval) on a pairs file for several recipes in one pass:
each image is detected once per upsampling setting, chips are cut at each padding, and every chip
is embedded plain and mirrored, so recipes differ only in what they change.

    .venv/bin/python -m bench.accuracy.verify_variants            # lfw-dev pairsDevTrain
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np

from bench.datasets import dev_pairs
from facesearch.eval.metrics import kfold_accuracy, tar_at_far
from facesearch.eval.verify import central_face, centre_box
from facesearch.media.decode import decode_image
from facesearch.models.align import face_chip
from facesearch.models.detect.base import Detection, DetectorSettings
from facesearch.models.detect.hog import HogFaceDetector
from facesearch.models.embed.factory import create_embedder
from facesearch.models.pipeline import FacePipeline

PADDINGS = (0.25, 0.35)
UPSAMPLES = (0, 1)


def main() -> None:
    argparse.ArgumentParser(description=__doc__.splitlines()[0]).parse_args()  # no options: --help only
    pairs = dev_pairs()
    paths = sorted({p for pair in pairs for p in (pair.a, pair.b)})
    embedder = create_embedder("onnx", Path(tempfile.mkdtemp()))
    vectors: dict[tuple, dict[Path, np.ndarray | None]] = {}
    no_face = {u: 0 for u in UPSAMPLES}
    for upsample in UPSAMPLES:
        pipeline = FacePipeline(HogFaceDetector(DetectorSettings(upsample=upsample)), embedder)
        for path in paths:
            rgb = decode_image(path.read_bytes()).rgb
            face = central_face(pipeline.find_faces(rgb), rgb.shape[1], rgb.shape[0])
            detected = face is not None
            if not detected:
                no_face[upsample] += 1
                face = pipeline.face_in_box(rgb, centre_box(rgb.shape[1], rgb.shape[0]))
            for padding in PADDINGS:
                chip = face_chip(rgb, Detection(face.box, face.landmarks, face.det_score), 150, padding)
                for flip in (False, True):
                    vec = embedder.embed(chip[None], flip=flip)[0]
                    vectors.setdefault((upsample, padding, flip, "centre"), {})[path] = vec
                    vectors.setdefault((upsample, padding, flip, "reject"), {})[path] = vec if detected else None
    same = np.array([p.same for p in pairs])
    folds = np.array([p.fold for p in pairs])
    print(
        f"{len(pairs)} pairs, {len(paths)} images; no face found: "
        + ", ".join(f"upsample {u}: {n}" for u, n in no_face.items())
    )
    print(
        f"{'upsample':>8s} {'padding':>7s} {'flip':>5s} {'no-face':>8s} {'accuracy':>14s} "
        f"{'TAR@1e-2':>9s} {'TAR@1e-3':>9s}"
    )
    for key, table in sorted(vectors.items()):
        scores = np.array(
            [
                float(table[p.a] @ table[p.b]) if table[p.a] is not None and table[p.b] is not None else -1.0
                for p in pairs
            ]
        )
        mean, std, _ = kfold_accuracy(scores, same, folds)
        upsample, padding, flip, fallback = key
        print(
            f"{upsample:8d} {padding:7.2f} {flip!s:>5s} {fallback:>8s} {mean * 100:8.2f} ± {std * 100:4.2f} "
            f"{tar_at_far(scores, same, 0.01) * 100:9.2f} {tar_at_far(scores, same, 0.001) * 100:9.2f}"
        )


if __name__ == "__main__":
    main()
