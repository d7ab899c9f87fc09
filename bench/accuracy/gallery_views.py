"""Issue 15, fewer gallery views: does an ingested face need all 10 views (flip + 4 shifts of 2.5)?

The ResNet runs 10 times per face at ingest, about half a worker's time per photo (bench/speed/worker_profile.py).
This script caches, per lfw-dev photo, the raw int8 descriptors of the default recipe's 10 views of its
central face (found as the default library finds it: HOG, upsample 1, CNN where HOG finds none; chips cut by
models/align.face_chips exactly as ingest cuts them, each also mirrored), then scores, from the cache,
recipes that keep a subset of the 5 alignments, on both sides (a new library's gallery and its probes) or
on the gallery only (probes keep 10 views), on the photo sets of bench/accuracy/probe_views.py:

* verify: pairsDevTrain 10-fold accuracy, whole / half 0 / half 1 (a pair's half is its first person's), d';
* 1:N: the seed-0 split of ``facesearch eval identify``, s-norm as search does, rank-1 and FNIR at FPIR 0.01,
  whole / half 0 / half 1; mated searches a fixed sample (``--mated``), every non-mated search kept.

Central face only: a guide for choosing, not the real commands' figures. Descriptors of real people go to
``bench/out/`` only (ignored by git).

    nice -n 5 .venv/bin/python -m bench.accuracy.gallery_views embed
    .venv/bin/python -m bench.accuracy.gallery_views score
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

from bench.accuracy.probe_views import d_prime, face_or_centre, photo_sets, snorm_top1
from bench.datasets import OUT, dev_pairs, lfw_images
from facesearch.eval.halves import half_of
from facesearch.eval.identify import split_people
from facesearch.eval.metrics import kfold_accuracy
from facesearch.search.normalize import CohortNormalizer

CACHE = OUT / "gallery-views-int8.npz"
ALL = [0, 1, 2, 3, 4]  # plain, +x, -x, +y, -y (models/pipeline.py jitter_shifts order)
RECIPES: dict[str, list[int]] = {
    "10 views (today)": ALL,
    "8: 4 shifts, no plain": [1, 2, 3, 4],
    "6: plain + x shifts": [0, 1, 2],
    "6: plain + y shifts": [0, 3, 4],
    "4: x shifts only": [1, 2],
    "4: y shifts only": [3, 4],
    "2: plain (flip only)": [0],
}


def embed(mated_sample: int, out: Path, limit: int | None = None) -> None:
    """Cache the 10 raw views of every photo's central face (int8, one thread)."""
    from facesearch.media.decode import decode_image
    from facesearch.models.embed.factory import create_embedder
    from facesearch.models.embed.info import DLIB_RESNET_INT8_KEY
    from facesearch.models.pipeline import build_pipeline

    probes, gallery_only = photo_sets(mated_sample)
    root = lfw_images()
    cache_dir = Path(tempfile.gettempdir()) / "facesearch-bench-cache"
    embedder = create_embedder("onnx", cache_dir, threads=1, model=DLIB_RESNET_INT8_KEY)
    pipeline = build_pipeline(embedder, detector_fallback="cnn", flip=True, jitter=2.5, cache_dir=cache_dir, threads=1)
    todo = (probes + gallery_only)[:limit] if limit else probes + gallery_only
    raw = np.zeros((len(todo), len(ALL), 2, 128), np.float32)
    found = np.zeros(len(todo), bool)
    start = time.perf_counter()

    def save(upto: int) -> None:
        paths = np.array([str(p.relative_to(root)) for p in todo[:upto]])
        np.savez(out, paths=paths, raw=raw[:upto], found=found[:upto])

    for n, path in enumerate(todo):
        face, found[n] = face_or_centre(pipeline, decode_image(path.read_bytes()).rgb)
        chips = np.concatenate([face.chip[None], face.shifted_chips])
        both = embedder._raw(np.concatenate([chips, np.ascontiguousarray(chips[:, :, ::-1])]))
        raw[n, :, 0], raw[n, :, 1] = both[: len(ALL)], both[len(ALL) :]
        if (n + 1) % 500 == 0:
            save(n + 1)
            print(f"{n + 1}/{len(todo)} photos, {time.perf_counter() - start:.0f} s", flush=True)
    save(len(todo))
    print(f"{len(todo)} photos in {time.perf_counter() - start:.0f} s")


def vectors(raw: np.ndarray, variants: list[int]) -> np.ndarray:
    total = raw[:, variants].sum(axis=(1, 2))
    return total / np.linalg.norm(total, axis=1, keepdims=True)


def score(cache: Path, cohort_seeds: int = 1) -> None:
    data = np.load(cache)
    root = lfw_images()
    index = {p: i for i, p in enumerate(data["paths"])}
    raw = data["raw"]
    print(f"{len(index)} photos cached, {int((~data['found']).sum())} without a face found")

    def known(p: Path) -> bool:
        return str(p.relative_to(root)) in index

    def ix(p: Path) -> int:
        return index[str(p.relative_to(root))]

    pairs = [p for p in dev_pairs() if known(p.a) and known(p.b)]
    a, b = np.array([ix(p.a) for p in pairs]), np.array([ix(p.b) for p in pairs])
    same = np.array([p.same for p in pairs])
    folds = np.array([p.fold for p in pairs])
    pair_half = np.array([half_of(p.a.parent.name) for p in pairs])
    split = split_people(root, 0)
    gallery = [p for p in split.gallery if known(p)]
    g = np.array([ix(p) for p in gallery])
    gallery_people = np.array([p.parent.name for p in gallery])
    mated = [p for p in split.mated if known(p)]
    m, mated_people = np.array([ix(p) for p in mated]), np.array([p.parent.name for p in mated])
    non_mated = [p for p in split.non_mated if known(p)]
    n = np.array([ix(p) for p in non_mated])
    non_mated_half = np.array([half_of(p.parent.name) for p in non_mated])
    complete = len(gallery) == len(split.gallery)
    print(f"verify: {len(pairs)} pairs; 1:N: gallery {len(g)}/{len(split.gallery)}, {len(m)} mated, {len(n)} non-mated")
    cohorts = [
        np.sort(np.random.default_rng(seed).choice(len(g), size=min(2000, len(g)), replace=False))
        for seed in range(cohort_seeds)
    ]

    def ident(gal: np.ndarray, probe: np.ndarray, keep_m: np.ndarray, keep_n: np.ndarray) -> str:
        """rank-1 and FNIR @ FPIR 0.01; with several cohort draws (seeds), their mean and spread (the s-norm
        cohort's draw alone moves FNIR: docs/accuracy.md)."""
        if not complete:
            return "(gallery not cached yet)"
        figures = np.array([one_cohort(gal, probe, keep_m, keep_n, rows) for rows in cohorts])
        if len(figures) == 1:
            return f"{figures[0, 0]:.4f} {figures[0, 1]:.4f}"
        mean, spread = figures.mean(axis=0), figures.std(axis=0)
        return f"{mean[0]:.4f}±{spread[0]:.4f} {mean[1]:.4f}±{spread[1]:.4f}"

    def one_cohort(
        gal: np.ndarray, probe: np.ndarray, keep_m: np.ndarray, keep_n: np.ndarray, cohort_rows: np.ndarray
    ) -> tuple[float, float]:
        norm = CohortNormalizer(gal[g][cohort_rows], top=100)
        stats = norm.stats(gal[g])

        def top1(q: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
            return snorm_top1(norm, gal[g], stats, q)

        mc, ms = top1(probe[m[keep_m]])
        _, ns = top1(probe[n[keep_n]])
        hit = gallery_people[mc] == mated_people[keep_m]
        threshold = np.quantile(ns, 0.99, method="higher")
        fnir = float(np.mean(np.where(hit, ms, -np.inf) <= threshold))
        return float(hit.mean()), fnir

    def acc(scores: np.ndarray, keep: np.ndarray) -> str:
        mean, _, _ = kfold_accuracy(scores[keep], same[keep], folds[keep])
        return f"{mean * 100:.2f}"

    halves = [np.ones(len(pairs), bool), pair_half == 0, pair_half == 1]
    mh = [np.ones(len(m), bool)] + [np.array([half_of(p) == h for p in mated_people]) for h in (0, 1)]
    nh = [np.ones(len(n), bool)] + [non_mated_half == h for h in (0, 1)]
    full = vectors(raw, ALL)
    print("recipe | sides | verify whole / h0 / h1 | d' | 1:N rank-1 FNIR@0.01: whole | half 0 | half 1")
    for name, recipe in RECIPES.items():
        emb = vectors(raw, recipe)
        for sides, gal, probe in (("both", emb, emb), ("gallery", emb, full)):
            if sides == "gallery" and recipe == ALL:
                continue
            scores = np.einsum("ij,ij->i", probe[a], gal[b])
            verify = " / ".join(acc(scores, k) for k in halves)
            ranks = " | ".join(ident(gal, probe, km, kn) for km, kn in zip(mh, nh, strict=True))
            print(f"{name:24s} | {sides:7s} | {verify} | {d_prime(scores, same):.3f} | {ranks}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("step", choices=["embed", "score"])
    parser.add_argument("--mated", type=int, default=1500, help="mated searches sampled (seed 0) for 1:N")
    parser.add_argument("--cache", type=Path, default=CACHE)
    parser.add_argument("--limit", type=int, default=None, help="embed only this many photos (a smoke test)")
    parser.add_argument("--cohort-seeds", type=int, default=1, help="s-norm cohort draws to average 1:N over")
    args = parser.parse_args()
    args.cache.parent.mkdir(parents=True, exist_ok=True)
    if args.step == "embed":
        embed(args.mated, args.cache, args.limit)
    else:
        score(args.cache, args.cohort_seeds)


if __name__ == "__main__":
    main()
