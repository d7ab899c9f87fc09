"""Issue 16, probe-side views: are more views worth it for probes, while the gallery keeps its 10?

A search or verify embeds one or two photos, an ingest millions, so a probe can afford more views
than a gallery face. This script caches, per lfw-dev photo, the raw descriptors of many views of its
central face (found as the default library finds it: HOG, upsample 1, CNN where HOG finds none), each
view a chip cut by dlib with the 5 landmarks moved (shifts in chip pixels, as ``jitter`` does in
models/align.py; scales about the landmarks' centre) and its mirror image. Then it scores, from the
cache, recipes of views for the probe side against the gallery's recipe (flip + 4 shifts of 2.5 =
variants 0-4, the default):

* verify: pairsDevTrain 10-fold accuracy, gallery recipe on both sides (the default), the probe
  recipe on both sides (``facesearch verify`` of two uploaded photos) and asymmetric (first photo of
  each pair with probe views, second with gallery views: what a search against an index compares);
* 1:N: the split of ``facesearch eval identify`` seed 0, gallery embedded with the gallery recipe,
  probes with the probe recipe; s-norm against a cohort of gallery faces as search does (top 50
  cosine candidates re-ranked); rank-1 and FNIR at FPIR 0.01. To fit 2 shared cores, mated searches
  are a fixed random sample (``--mated``) of the 5,487; every non-mated search is kept.

Every figure is also given for each half of the people (CRC-32 of the name even / odd, as
bench/accuracy/accuracy_variants.py and docs/accuracy.md split them). Descriptors of real people go
to ``bench/out/`` only (ignored by git). Central face only: a guide, not the real commands' figures.

    nice -n 5 .venv/bin/python -m bench.accuracy.probe_views embed      # 41 min on one shared core
    .venv/bin/python -m bench.accuracy.probe_views score
"""

from __future__ import annotations

import argparse
import random
import tempfile
import time
from pathlib import Path

import numpy as np

from bench.datasets import OUT, dev_pairs, lfw_images
from facesearch.eval.halves import half_of
from facesearch.eval.identify import split_people
from facesearch.eval.metrics import kfold_accuracy
from facesearch.search.normalize import CohortNormalizer

# (dx, dy) in chip pixels and a scale about the landmarks' centre; 0-4 are the gallery's recipe
# (models/pipeline.py jitter_shifts(2.5), in that order).
VARIANTS: list[tuple[float, float, float]] = [
    (0, 0, 1.0),
    (2.5, 0, 1.0),
    (-2.5, 0, 1.0),
    (0, 2.5, 1.0),
    (0, -2.5, 1.0),
    (2.5, 2.5, 1.0),
    (-2.5, 2.5, 1.0),
    (2.5, -2.5, 1.0),
    (-2.5, -2.5, 1.0),
    (4, 0, 1.0),
    (-4, 0, 1.0),
    (0, 4, 1.0),
    (0, -4, 1.0),
    (4, 4, 1.0),
    (-4, 4, 1.0),
    (4, -4, 1.0),
    (-4, -4, 1.0),
    (0, 0, 0.95),
    (0, 0, 1.05),
]
GALLERY = [0, 1, 2, 3, 4]
PROBE_RECIPES: dict[str, list[int]] = {
    "gallery (10 views)": GALLERY,
    "+diag2.5 (18)": list(range(9)),
    "+shift4 axis (18)": GALLERY + [9, 10, 11, 12],
    "+shift4 8-dir (26)": GALLERY + list(range(9, 17)),
    "+scales (14)": GALLERY + [17, 18],
    "+diag2.5+shift4 axis (26)": list(range(13)),
    "+diag2.5+shift4 8-dir (34)": list(range(17)),
    "+diag2.5+scales (22)": list(range(9)) + [17, 18],
    "all (38)": list(range(19)),
}
CACHE = OUT / "probe-views.npz"


def photo_sets(mated_sample: int) -> tuple[list[Path], list[Path]]:
    """(photos needing every view, photos needing the gallery's views only), verify photos first."""
    root = lfw_images()
    verify = sorted({p for pair in dev_pairs() for p in (pair.a, pair.b)})
    split = split_people(root, 0)
    mated = random.Random(0).sample(split.mated, min(mated_sample, len(split.mated)))
    probes = list(dict.fromkeys([*verify, *split.non_mated, *sorted(mated)]))
    seen = set(probes)
    return probes, [p for p in split.gallery if p not in seen]


def face_or_centre(pipeline, rgb: np.ndarray):  # noqa: ANN001, ANN201 - a FacePipeline and its Face
    """The photo's central face and True, or the centre box's face and False where none is found: eval verify's
    rule, shared by the accuracy benches that cache one face per lfw-dev photo."""
    from facesearch.eval.verify import central_face, centre_box

    face = central_face(pipeline.find_faces(rgb), rgb.shape[1], rgb.shape[0])
    if face is not None:
        return face, True
    return pipeline.face_in_box(rgb, centre_box(rgb.shape[1], rgb.shape[0])), False


def snorm_top1(
    norm: CohortNormalizer, gallery: np.ndarray, stats: tuple[np.ndarray, np.ndarray], probe: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Each probe's best gallery row and its s-norm score, search's way: the 50 nearest by cosine re-ranked by
    the mean of the probe's and the candidate's z-scores against the cohort (``stats``: the gallery's)."""
    mu_g, sd_g = stats
    cos = probe @ gallery.T
    cand = np.argsort(-cos, axis=1)[:, :50]
    craw = np.take_along_axis(cos, cand, axis=1)
    mu_p, sd_p = norm.stats(probe)
    snorm = ((craw - mu_p[:, None]) / sd_p[:, None] + (craw - mu_g[cand]) / sd_g[cand]) / 2
    best = np.argmax(snorm, axis=1)
    return cand[np.arange(len(cand)), best], snorm[np.arange(len(cand)), best]


def chips_for(rgb: np.ndarray, face, variants: list[tuple[float, float, float]], size: int, padding: float):
    """The chips of ``variants`` for one face, cut exactly as models/align.py face_chips cuts its shifts."""
    import dlib

    from facesearch.models.align import _full_detection

    left, top, width, height = face.box
    rect = dlib.rectangle(left, top, left + width, top + height)
    base = _full_detection(rect, face.landmarks)
    px = dlib.get_face_chip_details(base, size=size, padding=padding).rect.width() / size  # image px per chip px
    centre = face.landmarks.mean(axis=0)
    shapes = dlib.full_object_detections()
    for dx, dy, scale in variants:
        points = (face.landmarks - centre) * scale + centre + np.array([dx, dy], np.float32) * px
        shapes.append(_full_detection(rect, points.astype(np.float32)))
    return np.stack(dlib.get_face_chips(rgb, shapes, size=size, padding=padding))


def embed(mated_sample: int, out: Path, limit: int | None = None) -> None:
    from facesearch.media.decode import decode_image
    from facesearch.models.embed.factory import create_embedder
    from facesearch.models.pipeline import build_pipeline

    probes, gallery_only = photo_sets(mated_sample)
    root = lfw_images()
    embedder = create_embedder("onnx", Path(tempfile.gettempdir()) / "facesearch-bench-cache", threads=1)
    pipeline = build_pipeline(embedder, detector_fallback="cnn", flip=True, jitter=2.5)
    todo = [(p, len(VARIANTS)) for p in probes] + [(p, len(GALLERY)) for p in gallery_only]
    todo = todo[:limit] if limit else todo
    raw = np.zeros((len(todo), len(VARIANTS), 2, 128), np.float32)
    found = np.zeros(len(todo), bool)
    start = time.perf_counter()

    def save(upto: int) -> None:
        np.savez(
            out,
            paths=np.array([str(p.relative_to(root)) for p, _ in todo[:upto]]),
            views=np.array([n for _, n in todo[:upto]]),
            raw=raw[:upto],
            found=found[:upto],
            variants=np.array(VARIANTS, np.float32),
        )

    for n, (path, count) in enumerate(todo):
        rgb = decode_image(path.read_bytes()).rgb
        face, found[n] = face_or_centre(pipeline, rgb)
        chips = chips_for(rgb, face, VARIANTS[:count], embedder.chip_size, embedder.chip_padding)
        both = embedder._raw(np.concatenate([chips, np.ascontiguousarray(chips[:, :, ::-1])]))
        raw[n, :count, 0], raw[n, :count, 1] = both[:count], both[count:]
        if (n + 1) % 500 == 0:
            save(n + 1)
            print(f"{n + 1}/{len(todo)} photos, {time.perf_counter() - start:.0f} s", flush=True)
    save(len(todo))
    took = time.perf_counter() - start
    print(f"{len(todo)} photos ({len(probes)} with all {len(VARIANTS)} variants) in {took:.0f} s")


def vectors(raw: np.ndarray, variants: list[int]) -> np.ndarray:
    total = raw[:, variants].sum(axis=(1, 2))
    return total / np.linalg.norm(total, axis=1, keepdims=True)


def score(cache: Path) -> None:
    data = np.load(cache)
    root = lfw_images()
    index = {p: i for i, p in enumerate(data["paths"])}
    views = data["views"]
    raw = data["raw"]
    full = views == len(VARIANTS)
    print(f"{len(index)} photos cached, {int(full.sum())} with every view, {int((~data['found']).sum())} no face")

    def ix(p: Path) -> int:
        return index[str(p.relative_to(root))]

    pairs = [p for p in dev_pairs() if str(p.a.relative_to(root)) in index and str(p.b.relative_to(root)) in index]
    a = np.array([ix(p.a) for p in pairs])
    b = np.array([ix(p.b) for p in pairs])
    same = np.array([p.same for p in pairs])
    folds = np.array([p.fold for p in pairs])
    pair_half = np.array([half_of(p.a.parent.name) for p in pairs])  # different pairs: half of the first person

    split = split_people(root, 0)
    g = np.array([ix(p) for p in split.gallery if str(p.relative_to(root)) in index])
    gallery_people = np.array([p.parent.name for p in split.gallery if str(p.relative_to(root)) in index])
    mated = [p for p in split.mated if str(p.relative_to(root)) in index and full[ix(p)]]
    m = np.array([ix(p) for p in mated])
    mated_people = np.array([p.parent.name for p in mated])
    non_mated = [p for p in split.non_mated if str(p.relative_to(root)) in index and full[ix(p)]]
    n = np.array([ix(p) for p in non_mated])
    non_mated_half = np.array([half_of(p.parent.name) for p in non_mated])
    print(f"verify: {len(pairs)} pairs; 1:N: gallery {len(g)}, {len(m)} mated, {len(n)} non-mated searches")
    gal = vectors(raw, GALLERY)
    rng = np.random.default_rng(0)
    if not len(g):
        g = np.array([0])  # a partial cache (the gallery comes last): verify only
    norm = CohortNormalizer(gal[g][np.sort(rng.choice(len(g), size=min(2000, len(g)), replace=False))], top=100)
    stats = norm.stats(gal[g])

    def top1(probe: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return snorm_top1(norm, gal[g], stats, probe)

    def acc(scores: np.ndarray, keep: np.ndarray) -> str:
        mean, std, _ = kfold_accuracy(scores[keep], same[keep], folds[keep])
        return f"{mean * 100:.2f}±{std * 100:.2f}"

    def ident(probe_emb: np.ndarray, keep_m: np.ndarray, keep_n: np.ndarray) -> str:
        if len(g) < len(split.gallery):
            return "(gallery not cached yet)"
        mc, ms = top1(probe_emb[m[keep_m]])
        _, ns = top1(probe_emb[n[keep_n]])
        hit = gallery_people[mc] == mated_people[keep_m]
        threshold = np.quantile(ns, 0.99, method="higher")
        fnir = float(np.mean(np.where(hit, ms, -np.inf) <= threshold))
        return f"r1 {hit.mean():.4f} FNIR {fnir:.4f}"

    halves = [np.ones(len(pairs), bool), pair_half == 0, pair_half == 1]
    mh = [np.ones(len(m), bool)] + [np.array([half_of(p) == h for p in mated_people]) for h in (0, 1)]
    nh = [np.ones(len(n), bool)] + [non_mated_half == h for h in (0, 1)]
    verify_rows, ident_rows = [], []
    for name, recipe in PROBE_RECIPES.items():
        emb = vectors(raw, recipe)
        sym = np.einsum("ij,ij->i", emb[a], emb[b])
        asym = np.einsum("ij,ij->i", emb[a], gal[b])
        both = (asym + np.einsum("ij,ij->i", gal[a], emb[b])) / 2
        cells = [
            " / ".join(acc(kind, k) for k in halves) + f" d' {d_prime(kind, same):.3f}" for kind in (sym, asym, both)
        ]
        verify_rows.append(name.ljust(28) + " | ".join(cells))
        ident_rows.append(name.ljust(28) + " | ".join(ident(emb, km, kn) for km, kn in zip(mh, nh, strict=True)))
    print("verify: 10-fold accuracy, whole / half 0 / half 1, and d' (whole)")
    print("recipe (probe views)".ljust(28) + "both sides probe views | probe vs gallery | probe vs gallery both ways")
    print("\n".join(verify_rows))
    print("1:N (s-norm, seed-0 split): rank-1 and FNIR at FPIR 0.01")
    print("recipe (probe views)".ljust(28) + "whole | half 0 | half 1")
    print("\n".join(ident_rows), flush=True)


def d_prime(scores: np.ndarray, same: np.ndarray) -> float:
    """Separation of genuine and impostor scores (a continuous figure where accuracy moves by whole pairs)."""
    g, i = scores[same], scores[~same]
    return float((g.mean() - i.mean()) / np.sqrt((g.var() + i.var()) / 2))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("step", choices=["embed", "score"])
    parser.add_argument("--mated", type=int, default=1500, help="mated searches sampled (seed 0) for 1:N")
    parser.add_argument("--cache", type=Path, default=CACHE)
    parser.add_argument("--limit", type=int, default=None, help="embed only this many photos (a smoke test)")
    args = parser.parse_args()
    args.cache.parent.mkdir(parents=True, exist_ok=True)
    if args.step == "embed":
        embed(args.mated, args.cache, args.limit)
    else:
        score(args.cache)


if __name__ == "__main__":
    main()
