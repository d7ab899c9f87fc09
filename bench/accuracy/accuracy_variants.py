"""Which embedding recipe and score normalisation work best? Scored from bench/accuracy/augment_cache.py's cache.

For each recipe (a set of augmentation variants, each with its mirror image, averaged) it reports
10-fold verification accuracy on pairsDevTrain and a 1:N identification with the same split as
``facesearch eval identify`` (seed 0): rank-1, and FNIR at FPIR 0.01 with s-norm re-ranking of the
top 50 cosine candidates. Everything is computed in memory from the cached descriptors, with the
central face of each photo only (the real command searches every face): a fast guide for choosing,
never the reported figure. Each figure is also given separately for two halves of the people
(split by a hash of the name), to show a choice holds on people it was not chosen on.

    .venv/bin/python -m bench.accuracy.accuracy_variants [--cache bench/out/augment-hog-up1.npz]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from bench.datasets import OUT, dev_pairs, lfw_images
from facesearch.eval.halves import half_of
from facesearch.eval.identify import split_people
from facesearch.eval.metrics import kfold_accuracy
from facesearch.search.normalize import CohortNormalizer

RECIPES: dict[str, list[int]] = {
    "plain": [0],
    "flip": [0],
    "flip+shift2": [0, 1, 2, 3, 4],
    "flip+shift4": [0, 5, 6, 7, 8],
    "flip+scale4": [0, 10, 11],
    "flip+scale8": [0, 9, 12],
    "flip+rot5": [0, 13, 14],
    "flip+shift2+scale4": [0, 1, 2, 3, 4, 10, 11],
    "flip+shift2+scale4+rot5": [0, 1, 2, 3, 4, 10, 11, 13, 14],
    "flip+all": list(range(15)),
}


def embeddings(raw: np.ndarray, variants: list[int], flip: bool) -> np.ndarray:
    sides = [0, 1] if flip else [0]
    total = raw[:, variants][:, :, sides].sum(axis=(1, 2))
    return total / np.linalg.norm(total, axis=1, keepdims=True)


def verify(emb: np.ndarray, index: dict[str, int], pairs: list, root: Path) -> tuple[float, float]:
    a = np.array([index[str(p.a.relative_to(root))] for p in pairs])
    b = np.array([index[str(p.b.relative_to(root))] for p in pairs])
    scores = np.einsum("ij,ij->i", emb[a], emb[b])
    mean, std, _ = kfold_accuracy(scores, np.array([p.same for p in pairs]), np.array([p.fold for p in pairs]))
    return mean, std


def identify(
    emb: np.ndarray,
    index: dict[str, int],
    root: Path,
    top: int = 100,
    depth: int = 50,
    probe_keep: np.ndarray | None = None,
) -> dict:
    """``probe_keep`` (per cached photo) refuses probes as a search-side quality gate would."""
    split = split_people(root, 0)
    ok = (lambda p: probe_keep[index[str(p.relative_to(root))]]) if probe_keep is not None else (lambda p: True)
    gallery = split.gallery
    mated = [p for p in split.mated if ok(p)]
    g = np.array([index[str(p.relative_to(root))] for p in gallery])
    m = np.array([index[str(p.relative_to(root))] for p in mated])
    n = np.array([index[str(p.relative_to(root))] for p in split.non_mated if ok(p)])
    gallery_people = np.array([p.parent.name for p in gallery])
    mated_people = np.array([p.parent.name for p in mated])
    rng = np.random.default_rng(0)
    cohort = emb[g][np.sort(rng.choice(len(g), size=min(2000, len(g)), replace=False))]
    norm = CohortNormalizer(cohort, top=top)
    mu_g, sd_g = norm.stats(emb[g])

    def ranked(probes: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        raw = emb[probes] @ emb[g].T
        cand = np.argsort(-raw, axis=1)[:, :depth]
        craw = np.take_along_axis(raw, cand, axis=1)
        mu_p, sd_p = norm.stats(emb[probes])
        snorm = ((craw - mu_p[:, None]) / sd_p[:, None] + (craw - mu_g[cand]) / sd_g[cand]) / 2
        order = np.argsort(-snorm, axis=1)
        return np.take_along_axis(cand, order, axis=1), np.take_along_axis(snorm, order, axis=1), cand, craw

    out = {}
    mated_ranked, non_mated_ranked = ranked(m), ranked(n)
    for name, use_snorm in (("cosine", False), ("snorm", True)):
        part = slice(0, 2) if use_snorm else slice(2, 4)
        mc, ms = mated_ranked[part]
        ns = non_mated_ranked[part][1]
        hit1 = gallery_people[mc[:, 0]] == mated_people
        mated_score = np.where(hit1, ms[:, 0], -np.inf)  # FNIR counts rank-1 hits above the threshold
        threshold = np.quantile(ns[:, 0], 0.99, method="higher")
        fnir = float(np.mean(mated_score <= threshold))
        halves = [float(np.mean(hit1[[half_of(p) == h for p in mated_people]])) for h in (0, 1)]
        out[name] = {"rank1": float(hit1.mean()), "fnir01": fnir, "rank1_halves": halves, "mated": len(m)}
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--raw", type=Path, default=None, help="descriptors to use instead of the cache's (.npy)")
    parser.add_argument("--cache", type=Path, default=OUT / "augment-hog-up1.npz")
    parser.add_argument("--recipes", nargs="*", default=list(RECIPES))
    parser.add_argument("--top", type=int, default=100)
    parser.add_argument("--quality", action="store_true", help="also: effect of a minimum face quality (flip)")
    args = parser.parse_args()
    data = np.load(args.cache)
    root = lfw_images()
    index = {str(p): i for i, p in enumerate(data["paths"])}
    pairs = dev_pairs()
    raw = np.load(args.raw) if args.raw else data["raw"]
    print(f"{len(index)} photos, {int((~data['found']).sum())} without a detected face (centre fallback)")
    for name in args.recipes:
        emb = embeddings(raw, RECIPES[name], flip=name != "plain")
        mean, std = verify(emb, index, pairs, root)
        ident = identify(emb, index, root, top=args.top)
        c, s = ident["cosine"], ident["snorm"]
        print(
            f"{name:26s} verify {mean * 100:.2f} ± {std * 100:.2f} | cosine rank-1 {c['rank1']:.4f} "
            f"FNIR {c['fnir01']:.4f} | snorm rank-1 {s['rank1']:.4f} FNIR {s['fnir01']:.4f} "
            f"halves {s['rank1_halves'][0]:.4f}/{s['rank1_halves'][1]:.4f}",
            flush=True,
        )
    if args.quality:
        quality_effect(raw, data["quality"], index, root)


def quality_effect(raw: np.ndarray, quality: np.ndarray, index: dict[str, int], root: Path) -> None:
    """What a minimum face quality does (flip + s-norm), at the quality quantiles of lfw-dev's photos.

    The gallery is kept whole and only probes below the quality are refused: on lfw-dev each person
    has one enrolled photo, so leaving gallery photos out at ingest (``--min-quality``) only makes
    those people unfindable; what the score can show is whether low-quality faces are the hard ones.
    """
    emb = embeddings(raw, [0], flip=True)
    for share in (0.0, 0.1, 0.2, 0.3):
        q = float(np.quantile(quality, share)) if share else 0.0
        kept = quality >= q
        gated = identify(emb, index, root, probe_keep=kept)["snorm"]
        print(
            f"drop the lowest {share:.0%} (quality < {q:.3f}): probe gate: rank-1 {gated['rank1']:.4f} "
            f"FNIR@FPIR0.01 {gated['fnir01']:.4f} on {gated['mated']} mated searches",
            flush=True,
        )


if __name__ == "__main__":
    main()
