"""Issue 16: per-view descriptors of every lfw-dev photo's central face, cached for the fusion and ceiling benches.

The engine averages 10 views per face (the chip and 4 alignments shifted by 2.5 chip pixels, each also
mirrored) into one vector. Learned score fusion (bench/accuracy/fusion.py) needs what that average throws
away: each view's raw descriptor, so that a pair's view-vs-view cosines (their min, mean, spread) and a
face's plain~mirror agreement can be features. ``embed`` finds each photo's central face as a default
library does (HOG, upsample 1, CNN where HOG finds none; LFW's central box where neither finds one),
keeps the detector's score and the box's side, and stores the 10 raw descriptors (5 chips x plain /
mirrored) with the default model (int8). Verify photos first, so a partial cache already serves verify.

Descriptors of real people go to ``bench/out/`` only (ignored by git), never into the repository.

    nice -n 5 .venv/bin/python -m bench.accuracy.view_cache        # 9,525 photos, 21 min on the loaded shared machine
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

from bench.accuracy.probe_views import face_or_centre
from bench.datasets import OUT, dev_pairs, lfw_images
from facesearch.eval.identify import split_people

CACHE = OUT / "views-{model}.npz"
CHIPS = 5  # the default recipe's chips: plain + 4 shifts of 2.5 (models/pipeline.py jitter_shifts), each also mirrored


def photo_order() -> list[Path]:
    """Every lfw-dev photo once: verify photos, then the seed-0 identify split's gallery, non-mated, mated."""
    split = split_people(lfw_images(), 0)
    verify = sorted({p for pair in dev_pairs() for p in (pair.a, pair.b)})
    return list(dict.fromkeys([*verify, *split.gallery, *split.non_mated, *split.mated]))


def embed(model: str, out: Path, limit: int | None) -> None:
    from facesearch.media.decode import decode_image
    from facesearch.models.embed.factory import create_embedder
    from facesearch.models.pipeline import build_pipeline

    root = lfw_images()
    todo = photo_order()[:limit] if limit else photo_order()
    models = Path(tempfile.gettempdir()) / "facesearch-bench-cache"
    embedder = create_embedder("onnx", models, threads=1, model=model)
    pipeline = build_pipeline(embedder, detector_fallback="cnn", flip=True, jitter=2.5, cache_dir=models, threads=1)
    raw = np.zeros((len(todo), CHIPS, 2, 128), np.float32)  # (photo, chip, plain/mirror, dim)
    found = np.zeros(len(todo), bool)
    det_score = np.zeros(len(todo), np.float32)
    box = np.zeros(len(todo), np.float32)  # the face box's side in image pixels
    start = time.perf_counter()

    def save(upto: int) -> None:
        np.savez(
            out,
            paths=np.array([str(p.relative_to(root)) for p in todo[:upto]]),
            raw=raw[:upto],
            found=found[:upto],
            det_score=det_score[:upto],
            box=box[:upto],
            model=model,
        )

    for n, path in enumerate(todo):
        face, found[n] = face_or_centre(pipeline, decode_image(path.read_bytes()).rgb)
        chips = np.concatenate([face.chip[None], face.shifted_chips])
        raw[n, :, 0] = embedder._raw(chips)
        raw[n, :, 1] = embedder._raw(np.ascontiguousarray(chips[:, :, ::-1]))
        det_score[n] = face.det_score
        box[n] = float(np.sqrt(face.box[2] * face.box[3]))
        if (n + 1) % 500 == 0:
            save(n + 1)
            print(f"{n + 1}/{len(todo)} photos, {time.perf_counter() - start:.0f} s", flush=True)
    save(len(todo))
    print(f"{len(todo)} photos in {time.perf_counter() - start:.0f} s -> {out}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="dlib_resnet_v1_int8")
    parser.add_argument("--limit", type=int, default=None, help="only the first N photos (a quick check)")
    args = parser.parse_args()
    out = Path(str(CACHE).format(model=args.model))
    out.parent.mkdir(parents=True, exist_ok=True)
    embed(args.model, out, args.limit)


if __name__ == "__main__":
    main()
