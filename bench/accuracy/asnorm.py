"""Issue 16, normalisation computed once: s-norm vs AS-norm vs quality-aware variants, on cached descriptors.

Today's search (search/normalize.py) takes the top 50 cosine candidates and re-ranks them by s-norm:
each score in standard deviations above the mean of the top-100 scores of probe and candidate against
a cohort of 2,000 library faces, averaged over both sides. A gallery face's statistics depend only on
its vector and the cohort, so they could be computed once at ingest and stored (two floats per face);
then re-ranking could cover every top candidate, not only 50. This script measures whether that, or
an adaptive variant (AS-norm: top-k of the cohort with k 50/100/200) or a quality-aware one, is worth
building, before anything is built.

``embed`` caches, per lfw-dev photo, the embedding of its central face exactly as a default library
computes it (``build_pipeline``: HOG upsample 1, CNN where HOG finds none, flip + 4 shifts of 2.5 chip
pixels = 10 views averaged; the model given, int8 by default as for new libraries), with the face's
detector score, quality, jitter stability and box size. ``score`` computes, from the cache:

* verify: pairsDevTrain 10-fold accuracy (and d'), cosine or normalised against a cohort of 2,000
  faces drawn (seed 0) from the seed-0 identify gallery *with the pair's own people left out* (a
  cohort holding the compared person would pull their score down; a library's cohort holds the
  gallery, not the probe's other photos);
* 1:N: the split of ``facesearch eval identify`` seed 0 (central face only), rank-1 and FNIR at FPIR
  0.01, cohort of 2,000 gallery faces (seed 0) as search draws it.

Every figure is also given for each half of the people (CRC-32 of the name even / odd, as the other
scripts in bench/accuracy split them). Embeddings of real people go to ``bench/out/`` only (ignored
by git). A guide, not the real commands' figures.

    nice -n 5 .venv/bin/python -m bench.accuracy.asnorm embed     # all 9,525 photos, one core
    .venv/bin/python -m bench.accuracy.asnorm score
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from bench.accuracy.probe_views import d_prime, face_or_centre
from bench.datasets import OUT, dev_pairs, lfw_images
from facesearch.eval.halves import half_of
from facesearch.eval.identify import split_people
from facesearch.eval.metrics import kfold_accuracy
from facesearch.search.normalize import CohortNormalizer

CACHE = OUT / "asnorm-{model}.npz"


def photo_order() -> list[Path]:
    """Every lfw-dev photo once: verify photos, gallery, non-mated, then mated (a partial cache is still useful)."""
    root = lfw_images()
    split = split_people(root, 0)
    verify = sorted({p for pair in dev_pairs() for p in (pair.a, pair.b)})
    return list(dict.fromkeys([*verify, *split.gallery, *split.non_mated, *split.mated]))


def embed(model: str, out: Path, limit: int | None = None) -> None:
    from facesearch.media.decode import decode_image
    from facesearch.models.embed.factory import create_embedder
    from facesearch.models.pipeline import build_pipeline

    root = lfw_images()
    todo = photo_order()[:limit] if limit else photo_order()
    models = Path(tempfile.gettempdir()) / "facesearch-bench-cache"
    embedder = create_embedder("onnx", models, threads=1, model=model)
    pipeline = build_pipeline(embedder, detector_fallback="cnn", flip=True, jitter=2.5, cache_dir=models, threads=1)
    emb = np.zeros((len(todo), 128), np.float32)
    found = np.zeros(len(todo), bool)
    det_score = np.zeros(len(todo), np.float32)
    quality = np.zeros(len(todo), np.float32)
    stability = np.zeros(len(todo), np.float32)
    box = np.zeros(len(todo), np.float32)  # the face box's side in image pixels
    start = time.perf_counter()

    def save(upto: int) -> None:
        np.savez(
            out,
            paths=np.array([str(p.relative_to(root)) for p in todo[:upto]]),
            emb=emb[:upto],
            found=found[:upto],
            det_score=det_score[:upto],
            quality=quality[:upto],
            stability=stability[:upto],
            box=box[:upto],
            model=model,
        )

    for n, path in enumerate(todo):
        face, found[n] = face_or_centre(pipeline, decode_image(path.read_bytes()).rgb)
        face = pipeline.embed_faces([face])[0]
        emb[n] = face.embedding
        det_score[n], quality[n] = face.det_score, face.quality
        stability[n] = face.stability if face.stability is not None else np.nan
        box[n] = float(np.sqrt(face.box[2] * face.box[3]))
        if (n + 1) % 500 == 0:
            save(n + 1)
            print(f"{n + 1}/{len(todo)} photos, {time.perf_counter() - start:.0f} s", flush=True)
    save(len(todo))
    print(f"{len(todo)} photos in {time.perf_counter() - start:.0f} s -> {out}", flush=True)


# ---- scoring functions (pure: tested on synthetic vectors in tests/test_bench_asnorm.py) ------------------


def cohort_stats(vectors: np.ndarray, cohort: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Mean and spread of each vector's top-``k`` scores against ``cohort`` (self-matches left out).

    What a gallery face would store at ingest (two floats); ``k`` >= the cohort's size is plain s-norm
    (every cohort score), a smaller ``k`` the adaptive (AS-norm) variant search uses today with k = 100.
    """
    return CohortNormalizer(cohort, top=k).stats(vectors)


def snorm(raw: np.ndarray, mu_p: np.ndarray, sd_p: np.ndarray, mu_c: np.ndarray, sd_c: np.ndarray) -> np.ndarray:
    """Symmetric normalisation of raw scores (probes x candidates), each side's statistics broadcast."""
    return ((raw - mu_p[:, None]) / sd_p[:, None] + (raw - mu_c) / sd_c) / 2


def top1(scores: np.ndarray, raw: np.ndarray, depth: int | None) -> tuple[np.ndarray, np.ndarray]:
    """(index, score) of each probe's best candidate by ``scores`` among its ``depth`` best by ``raw``.

    ``depth`` None re-ranks every candidate (possible once each gallery face's statistics are stored).
    """
    rows = np.arange(len(raw))
    if depth is None or depth >= raw.shape[1]:
        best = np.argmax(scores, axis=1)
        return best, scores[rows, best]
    cand = np.argpartition(-raw, depth - 1, axis=1)[:, :depth]
    chosen = np.take_along_axis(scores, cand, axis=1)
    pick = np.argmax(chosen, axis=1)
    return cand[rows, pick], chosen[rows, pick]


def quality_term(q_probe: np.ndarray, q_gallery: np.ndarray, weight: float) -> np.ndarray:
    """``weight`` x the lower of the two faces' quality (z-scores): a pair's score moved by its weaker face."""
    return weight * np.minimum(q_probe[:, None], q_gallery[None, :])


def fnir_at_fpir(hit: np.ndarray, mated_score: np.ndarray, non_mated_score: np.ndarray, fpir: float = 0.01) -> float:
    """Share of mated searches whose top candidate is not the mate or is at or below the FPIR threshold."""
    threshold = np.quantile(non_mated_score, 1 - fpir, method="higher")
    return float(np.mean(~hit | (mated_score <= threshold)))


# ---- the measurement -----------------------------------------------------------------------------------

KS = (50, 100, 200, 2000)  # 2000: the whole cohort (plain s-norm)
QUALITY_WEIGHTS = (-0.5, -0.25, 0.25, 0.5)
# Per-face quality figures the cache holds: jitter stability (mean cosine of the 10 views with their
# average: how sure the model is) and the detector's score.
QUALITY_FEATURES = ("stability", "det_score")


def zscore(values: np.ndarray, reference: np.ndarray) -> np.ndarray:
    return (values - np.median(reference)) / max(float(np.std(reference)), 1e-6)


Cache = Any  # the loaded .npz (NumPy's NpzFile)
Known = Callable[[list[Path]], list[Path]]  # the photos of a list that the cache holds
Index = Callable[[list[Path]], np.ndarray]  # their rows in the cache


def score(cache: Path, distractor_counts: tuple[int, ...] = ()) -> None:
    data = np.load(cache)
    root = lfw_images()
    emb = data["emb"]
    index = {p: i for i, p in enumerate(data["paths"])}
    print(f"{cache.name}: {len(index)} photos ({data['model']}), {int((~data['found']).sum())} without a detected face")

    def known(paths: list[Path]) -> list[Path]:
        return [p for p in paths if str(p.relative_to(root)) in index]

    def ix(paths: list[Path]) -> np.ndarray:
        return np.array([index[str(p.relative_to(root))] for p in paths], dtype=int)

    rng = np.random.default_rng(0)
    verify_part(data, emb, known, ix, rng)
    identify_part(data, emb, known, ix)
    for count in distractor_counts:
        distractor_part(emb, known, ix, count)


def verify_part(data: Cache, emb: np.ndarray, known: Known, ix: Index, rng: np.random.Generator) -> None:
    root = lfw_images()
    pairs = [p for p in dev_pairs() if len(known([p.a, p.b])) == 2]
    a, b = ix([p.a for p in pairs]), ix([p.b for p in pairs])
    same = np.array([p.same for p in pairs])
    folds = np.array([p.fold for p in pairs])
    half = np.array([half_of(p.a.parent.name) for p in pairs])
    pair_people = {x.parent.name for p in pairs for x in (p.a, p.b)}
    others = [p for p in known(sorted(root.glob("*/*.jpg"))) if p.parent.name not in pair_people]
    cohort = emb[ix(others)][np.sort(rng.choice(len(others), size=min(2000, len(others)), replace=False))]
    print(f"\nverify: {len(pairs)} pairs; cohort {len(cohort)} photos of people in no pair (seed 0)")
    rows: list[tuple[str, np.ndarray]] = [("cosine", np.einsum("ij,ij->i", emb[a], emb[b]))]
    for k in KS:
        mu, sd = cohort_stats(emb, cohort, k)
        raw = np.einsum("ij,ij->i", emb[a], emb[b])
        s = ((raw - mu[a]) / sd[a] + (raw - mu[b]) / sd[b]) / 2
        rows.append((f"s-norm top-{k}" + (" (today)" if k == 100 else "") + (" = all" if k == 2000 else ""), s))
        if k == 100:
            base = s
            rows.append(("top-100, one side: probe (T-norm)", (raw - mu[a]) / sd[a]))
            rows.append(("top-100, one side: stored (Z-norm)", (raw - mu[b]) / sd[b]))
    for feature in QUALITY_FEATURES:
        zq = zscore(data[feature], data[feature][ix(others)])
        for w in QUALITY_WEIGHTS:
            rows.append((f"top-100 {w:+} x min {feature} z", base + w * np.minimum(zq[a], zq[b])))
    print("variant".ljust(40) + "10-fold accuracy whole / half 0 / half 1 | d'")
    for name, s in rows:
        cells = []
        for keep in (np.ones(len(pairs), bool), half == 0, half == 1):
            mean, std, _ = kfold_accuracy(s[keep], same[keep], folds[keep])
            cells.append(f"{mean * 100:.2f}")
        print(f"{name:40s}" + " / ".join(cells) + f" | {d_prime(s, same):.3f}", flush=True)


def identify_part(data: Cache, emb: np.ndarray, known: Known, ix: Index) -> None:
    root = lfw_images()
    split = split_people(root, 0)
    gallery, mated, non_mated = known(split.gallery), known(split.mated), known(split.non_mated)
    g, m, n = ix(gallery), ix(mated), ix(non_mated)
    gallery_people = np.array([p.parent.name for p in gallery])
    mated_people = np.array([p.parent.name for p in mated])
    mh = np.array([half_of(p) for p in mated_people])
    nh = np.array([half_of(p.parent.name) for p in non_mated])
    cohort_ix = np.sort(np.random.default_rng(0).choice(len(g), size=min(2000, len(g)), replace=False))
    cohort = emb[g][cohort_ix]
    print(f"\n1:N (seed-0 split, central): gallery {len(g)}, {len(m)} mated, {len(n)} non-mated, cohort {len(cohort)}")
    raw_m, raw_n = emb[m] @ emb[g].T, emb[n] @ emb[g].T

    outcomes: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}

    def report(name: str, s_m: np.ndarray, s_n: np.ndarray, depth: int | None) -> np.ndarray:
        """Print one row; returns the top candidate of every search (mated, then non-mated)."""
        best_m, score_m = top1(s_m, raw_m, depth)
        best_n, score_n = top1(s_n, raw_n, depth)
        hit = gallery_people[best_m] == mated_people
        cells_r, cells_f = [], []
        for keep_m, keep_n in ((mh >= 0, nh >= 0), (mh == 0, nh == 0), (mh == 1, nh == 1)):
            cells_r.append(f"{hit[keep_m].mean():.4f}")
            cells_f.append(f"{fnir_at_fpir(hit[keep_m], score_m[keep_m], score_n[keep_n]):.4f}")
        print(f"{name:56s}" + " / ".join(cells_r) + " | " + " / ".join(cells_f), flush=True)
        outcomes[name] = (hit, score_m, score_n)
        return np.concatenate([best_m, best_n])

    print("variant".ljust(56) + "rank-1 whole / h0 / h1 | FNIR @ FPIR 0.01 whole / h0 / h1")
    report("cosine", raw_m, raw_n, None)
    stats = {k: cohort_stats(emb[g], cohort, k) for k in KS}
    probe_m = {k: cohort_stats(emb[m], cohort, k) for k in KS}
    probe_n = {k: cohort_stats(emb[n], cohort, k) for k in KS}
    for k in KS:
        s_m = snorm(raw_m, *probe_m[k], *stats[k])
        s_n = snorm(raw_n, *probe_n[k], *stats[k])
        label = f"top-{k}" + (" = all" if k == 2000 else "")
        tops = []
        for depth in (50, 200, None):
            today = " (today)" if k == 100 and depth == 50 else ""
            tops.append(report(f"s-norm {label}, re-rank {depth or 'all'}{today}", s_m, s_n, depth))
        best = tops[2]
        raw_all = np.concatenate([raw_m, raw_n])
        depth_needed = np.sum(raw_all > raw_all[np.arange(len(best)), best][:, None], axis=1) + 1
        print(
            f"  (raw rank of the normalised top candidate: max {depth_needed.max()}, 99.9th percentile "
            f"{np.quantile(depth_needed, 0.999):.0f}; outside the raw top 50 in {int(np.sum(depth_needed > 50))} "
            f"of {len(best)} searches)"
        )
    # Stored statistics go stale: a face's were computed against the cohort its library had at ingest.
    # A stored statistic is only stable if a different cohort gives about the same: gallery side from
    # another cohort (seed 1; smaller ones with k scaled to keep the same top 5%), probe side as above.
    for size, k in ((2000, 100), (1000, 50), (500, 25)):
        other = emb[g][np.sort(np.random.default_rng(1).choice(len(g), size=min(size, len(g)), replace=False))]
        mu_g, sd_g = cohort_stats(emb[g], other, k)
        s_m = snorm(raw_m, *probe_m[100], mu_g, sd_g)
        s_n = snorm(raw_n, *probe_n[100], mu_g, sd_g)
        report(f"top-100, all; gallery: {size}-face cohort seed 1, top-{k}", s_m, s_n, None)
    mu_p, sd_p = probe_m[100]
    mu_q, sd_q = probe_n[100]
    report(
        "top-100, all, probe side only (T-norm)",
        (raw_m - mu_p[:, None]) / sd_p[:, None],
        (raw_n - mu_q[:, None]) / sd_q[:, None],
        None,
    )
    report(
        "top-100, all, gallery side only (Z-norm, stored)",
        (raw_m - stats[100][0]) / stats[100][1],
        (raw_n - stats[100][0]) / stats[100][1],
        None,
    )
    base_m = snorm(raw_m, *probe_m[100], *stats[100])
    base_n = snorm(raw_n, *probe_n[100], *stats[100])
    for feature in QUALITY_FEATURES:
        zq = zscore(data[feature], data[feature][g])
        for w in QUALITY_WEIGHTS:
            report(
                f"top-100, all, {w:+} x min {feature} z",
                base_m + quality_term(zq[m], zq[g], w),
                base_n + quality_term(zq[n], zq[g], w),
                None,
            )
    today = "s-norm top-100, re-rank 50 (today)"
    print(f"\nchange from '{today}', paired bootstrap over searches (1,000 resamples): 90% interval")
    for name, outcome in outcomes.items():
        if name != today:
            r1, fn = paired_bootstrap(outcomes[today], outcome)
            print(f"{name:56s}rank-1 {r1[0]:+.4f} .. {r1[1]:+.4f} | FNIR {fn[0]:+.4f} .. {fn[1]:+.4f}")


def paired_bootstrap(
    base: tuple[np.ndarray, np.ndarray, np.ndarray],
    other: tuple[np.ndarray, np.ndarray, np.ndarray],
    rounds: int = 1000,
) -> tuple[tuple[float, float], tuple[float, float]]:
    """90% intervals of (other - base) in rank-1 and in FNIR at FPIR 0.01, the same searches drawn for both:
    how much of a difference the choice of searches alone could make."""
    rng = np.random.default_rng(0)
    n_m, n_n = len(base[0]), len(base[2])
    d_rank, d_fnir = [], []
    for _ in range(rounds):
        i, j = rng.integers(0, n_m, n_m), rng.integers(0, n_n, n_n)
        d_rank.append(other[0][i].mean() - base[0][i].mean())
        d_fnir.append(
            fnir_at_fpir(other[0][i], other[1][i], other[2][j]) - fnir_at_fpir(base[0][i], base[1][i], base[2][j])
        )
    lo_r, hi_r = np.quantile(d_rank, [0.05, 0.95])
    lo_f, hi_f = np.quantile(d_fnir, [0.05, 0.95])
    return (float(lo_r), float(hi_r)), (float(lo_f), float(hi_f))


def distractor_part(emb: np.ndarray, known: Known, ix: Index, count: int) -> None:
    """Does re-ranking past the raw top 50 matter in a large gallery? The seed-0 gallery plus ``count``
    synthetic distractors (bench/scale/distractors.py: a Gaussian fitted to the gallery, scaled so that
    distractor pairs match real different-person pairs at the 99.9th percentile); the cohort (2,000,
    seed 0) drawn from the whole gallery as search draws it; today's top-100 statistics."""
    from bench.scale import distractors

    root = lfw_images()
    split = split_people(root, 0)
    gallery, mated, non_mated = known(split.gallery), known(split.mated), known(split.non_mated)
    g, m, n = ix(gallery), ix(mated), ix(non_mated)
    rng = np.random.default_rng(0)
    fit = distractors.fit_gaussian(emb[g])
    impostors = distractors.random_pair_similarities(emb[g], 400_000, rng)  # one photo per gallery person
    scale = distractors.calibrate_scale(fit, float(np.percentile(impostors, 99.9)), 99.9, rng)
    big = np.concatenate([emb[g], distractors.sample(fit, count, scale, rng)])
    people = np.array([p.parent.name for p in gallery] + [""] * count)
    cohort = big[np.sort(np.random.default_rng(0).choice(len(big), size=2000, replace=False))]
    # What each face would store at ingest, computed in slices (a 1M x 2,000 score matrix is 8 GB).
    parts = [cohort_stats(big[i : i + 50_000], cohort, 100) for i in range(0, len(big), 50_000)]
    mu_g, sd_g = np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])
    print(f"\n1:N with {count:,} synthetic distractors (gallery {len(big):,}; covariance scale {scale:.3f})")
    depths: tuple[int | None, ...] = (50, 200, 1000, None)
    results = {d: ([], []) for d in depths}  # (top index, top score) per search, mated then non-mated
    needed = []
    probes = np.concatenate([m, n])
    step = max(10, 50_000_000 // len(big))  # probes per slice: about 200 MB of raw scores
    for start in range(0, len(probes), step):
        chunk = emb[probes[start : start + step]]
        raw = chunk @ big.T
        s = snorm(raw, *cohort_stats(chunk, cohort, 100), mu_g, sd_g)
        for d in depths:
            best, value = top1(s, raw, d)
            results[d][0].append(best)
            results[d][1].append(value)
        best = results[None][0][-1]
        needed.append(np.sum(raw > raw[np.arange(len(best)), best][:, None], axis=1) + 1)
    mated_people = np.array([p.parent.name for p in mated])
    for d in depths:
        best, value = np.concatenate(results[d][0]), np.concatenate(results[d][1])
        hit = people[best[: len(m)]] == mated_people
        fnir = fnir_at_fpir(hit, value[: len(m)], value[len(m) :])
        print(f"s-norm top-100, re-rank {d or 'all'}: rank-1 {hit.mean():.4f} | FNIR @ FPIR 0.01 {fnir:.4f}")
    rank = np.concatenate(needed)
    changed = int(np.sum(np.concatenate(results[50][0])[: len(m)] != np.concatenate(results[None][0])[: len(m)]))
    print(
        f"  (raw rank of the normalised top candidate: max {rank.max()}, 99.9th percentile "
        f"{np.quantile(rank, 0.999):.0f}; outside the raw top 50 in {int(np.sum(rank > 50))}, top 200 in "
        f"{int(np.sum(rank > 200))} of {len(rank)} searches; mated searches whose top candidate changes from "
        f"depth 50 to all: {changed})",
        flush=True,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("step", choices=["embed", "score"])
    parser.add_argument("--model", default="dlib_resnet_v1_int8")
    parser.add_argument("--cache", type=Path, default=None, help="default bench/out/asnorm-<model>.npz")
    parser.add_argument("--distractors", type=int, nargs="*", default=[100_000], help="synthetic gallery sizes")
    parser.add_argument("--limit", type=int, default=None, help="embed only this many photos (a smoke test)")
    args = parser.parse_args()
    cache = args.cache or Path(str(CACHE).format(model=args.model))
    cache.parent.mkdir(parents=True, exist_ok=True)
    if args.step == "embed":
        embed(args.model, cache, args.limit)
    else:
        score(cache, tuple(args.distractors))


if __name__ == "__main__":
    main()
