"""Issue 16: the ceiling of augmentation. Can ANY number of views of this model reach 99.5% on pairsDevTrain?

dlib's author reports 99.38% on LFW with 100 random jitters per face (``compute_face_descriptor(...,
num_jitters=100)``); facesearch gets 99.32% (int8) with 10 deterministic views. ``embed`` cuts each
pairsDevTrain photo's central face as a default library does (HOG, CNN fallback, LFW's central box where
neither finds one), asks dlib for ``--jitters`` random jitters of its chip (``dlib.jitter_image``: what
``num_jitters`` does inside dlib: small random rotation, scale and shift, half of them mirrored) and runs
them through the model (the ONNX conversion of dlib's network, int8 by default: ~2x faster than float on
one core). It stores the running sums of the raw descriptors after 1, 2, 5, 10, 20, 50, ... jitters, so
one run gives the whole curve. ``score`` reports pairsDevTrain 10-fold accuracy, AUC and d' for each
number of jitters, alone and added to the default 10 views (bench/accuracy/view_cache.py), on the whole
and on each half of the people (``facesearch.eval.halves.pairs_by_half``, as ``eval verify --halves``).

Descriptors of real people stay in ``bench/out/`` (ignored by git).

    nice -n 5 .venv/bin/python -m bench.accuracy.jitter_ceiling embed --jitters 30   # 3,443 photos, 31 min
    .venv/bin/python -m bench.accuracy.jitter_ceiling score
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

from bench.accuracy.probe_views import d_prime
from bench.datasets import OUT, dev_pairs, lfw_images
from facesearch.eval.halves import HALVES, pairs_by_half
from facesearch.eval.lfw import Pair
from facesearch.eval.metrics import kfold_accuracy, roc_auc

CACHE = OUT / "jitter-{model}.npz"
CHECKPOINTS = (1, 2, 5, 10, 20, 30, 50, 75, 100)


def verify_photos() -> list[Path]:
    """pairsDevTrain's 3,443 photos, fold by fold (a partial cache then holds whole folds: see ``score``)."""
    photos: dict[Path, None] = {}
    for pair in sorted(dev_pairs(), key=lambda p: p.fold):
        photos.update({pair.a: None, pair.b: None})
    return list(photos)


def embed(model: str, jitters: int, out: Path) -> None:
    import dlib

    from facesearch.eval.verify import central_face, centre_box
    from facesearch.media.decode import decode_image
    from facesearch.models.embed.factory import create_embedder
    from facesearch.models.pipeline import build_pipeline

    root = lfw_images()
    todo = verify_photos()
    marks = [c for c in CHECKPOINTS if c <= jitters]
    models = Path(tempfile.gettempdir()) / "facesearch-bench-cache"
    embedder = create_embedder("onnx", models, threads=1, model=model)
    pipeline = build_pipeline(embedder, detector_fallback="cnn", flip=False, jitter=0, cache_dir=models, threads=1)
    sums = np.zeros((len(todo), len(marks), 128), np.float32)  # running sums of raw descriptors at each mark
    start = time.perf_counter()

    def save(upto: int) -> None:
        paths = np.array([str(p.relative_to(root)) for p in todo[:upto]])
        np.savez(out, paths=paths, sums=sums[:upto], marks=np.array(marks), model=model)

    for n, path in enumerate(todo):
        rgb = decode_image(path.read_bytes()).rgb
        face = central_face(pipeline.find_faces(rgb), rgb.shape[1], rgb.shape[0])
        if face is None:
            face = pipeline.face_in_box(rgb, centre_box(rgb.shape[1], rgb.shape[0]))
        chips = np.stack(dlib.jitter_image(face.chip, num_jitters=jitters))
        raw = embedder._raw_batched(chips, 64)
        running = np.cumsum(raw, axis=0)
        sums[n] = running[[m - 1 for m in marks]]
        if (n + 1) % 250 == 0:
            save(n + 1)
            print(f"{n + 1}/{len(todo)} photos, {time.perf_counter() - start:.0f} s", flush=True)
    save(len(todo))
    print(f"{len(todo)} photos x {jitters} jitters in {time.perf_counter() - start:.0f} s -> {out}", flush=True)


def unit(vectors: np.ndarray) -> np.ndarray:
    return vectors / np.maximum(np.linalg.norm(vectors, axis=-1, keepdims=True), 1e-12)


def pair_figures(pairs: list[Pair], vectors: dict[Path, np.ndarray]) -> tuple[float, float, float]:
    """10-fold accuracy (%), ROC AUC and d' of cosine scores over ``pairs``."""
    scores = np.array([float(vectors[p.a] @ vectors[p.b]) for p in pairs])
    same = np.array([p.same for p in pairs])
    folds = np.array([p.fold for p in pairs])
    return 100 * kfold_accuracy(scores, same, folds)[0], roc_auc(scores, same), d_prime(scores, same)


def score(model: str) -> None:
    root = lfw_images()
    data = np.load(Path(str(CACHE).format(model=model)))
    views = np.load(OUT / f"views-{model}.npz")
    paths = [root / p for p in data["paths"]]
    view_row = {root / p: i for i, p in enumerate(views["paths"])}
    default = np.stack([views["raw"][view_row[p]].sum(axis=(0, 1)) for p in paths])  # the 10 views' raw sum
    pairs = [p for p in dev_pairs() if p.a in view_row and p.b in view_row]
    known = set(paths)
    complete = [
        fold
        for fold in sorted({p.fold for p in pairs})
        if all(p.a in known and p.b in known for p in pairs if p.fold == fold)
    ]
    pairs = [p for p in pairs if p.fold in complete]  # whole folds only, so a partial cache is a fair subset
    by_half, cross = pairs_by_half(pairs)
    sets = {"whole": pairs, **{f"half {h}": by_half[h] for h in HALVES}}
    print(f"{model}: {len(paths)} photos, folds {complete}: {len(pairs)} pairs ({cross} mixing the halves: whole only)")
    print("recipe | " + " | ".join(f"{name}: acc / AUC / d'" for name in sets))

    def row(name: str, raw: np.ndarray) -> None:
        vectors = dict(zip(paths, unit(raw), strict=True))
        cells = [pair_figures(chosen, vectors) for chosen in sets.values()]
        print(f"{name} | " + " | ".join(f"{a:.2f} / {auc:.5f} / {d:.3f}" for a, auc, d in cells), flush=True)

    row("default 10 views", default)
    for k, mark in enumerate(data["marks"]):
        jit = data["sums"][:, k]
        row(f"{mark} dlib jitters", jit)
        # each jitter weighted like one of the 10 views: the raw sums are on the same scale
        row(f"10 views + {mark} jitters", default + jit)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("step", choices=["embed", "score"])
    parser.add_argument("--model", default="dlib_resnet_v1_int8")
    parser.add_argument("--jitters", type=int, default=30, help="random jitters per face (dlib's num_jitters)")
    args = parser.parse_args()
    out = Path(str(CACHE).format(model=args.model))
    out.parent.mkdir(parents=True, exist_ok=True)
    if args.step == "embed":
        embed(args.model, args.jitters, out)
    else:
        score(args.model)


if __name__ == "__main__":
    main()
