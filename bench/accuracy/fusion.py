"""Issue 16, learned score fusion: does a small model over per-pair features beat the plain score?

The engine scores a pair by the cosine of the two faces' averaged descriptors (verify) or by its s-norm
(search). Both throw away what the engine already has or can cheaply compute: the spread of the 10 x 10
view-vs-view cosines, how much each face's views agree (jitter stability, plain~mirror agreement), the
detector's score and the face's size, each face's cohort statistics, and (1:N) where a candidate stands
among the probe's others. This script fits a logistic regression (and, as a check of whether a more
flexible model finds more, a small gradient-boosted tree model) on such features and evaluates it
honestly, against the plain score in the same run:

* verify, pairsDevTrain: (a) inside the 10-fold protocol: fit on 9 folds, threshold chosen on the same
  9 folds' fused scores, tested on the 10th; (b) fit on one half of the people's pairs, tested on the
  other half (10-fold thresholds inside the tested half, as the plain score gets them);
* 1:N, the seed-0 split of ``eval identify`` within each half of the people (the half's gallery, its
  probes, its cohort, as ``eval identify --halves``; central face only): candidates are each search's
  50 best by cosine (search's re-rank depth); fit on half 0's searches, test on half 1's and the reverse.

Per-view descriptors come from bench/accuracy/view_cache.py (int8, default recipe); nothing here is
shipped or committed but aggregate figures.

    .venv/bin/python -m bench.accuracy.fusion            # a few minutes
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from bench.datasets import OUT, dev_pairs, lfw_images
from facesearch.eval.halves import HALVES, half_of, pairs_by_half
from facesearch.eval.identify import split_people
from facesearch.eval.lfw import Pair
from facesearch.eval.metrics import best_threshold, kfold_accuracy, roc_auc
from facesearch.search.normalize import CohortNormalizer

TOP = 100  # s-norm's top-k, as search (search/normalize.py)
COHORT = 2000
DEPTH = 50  # candidates re-ranked per search, as search (search/service.py RERANK_DEPTH)


def unit(vectors: np.ndarray) -> np.ndarray:
    return vectors / np.maximum(np.linalg.norm(vectors, axis=-1, keepdims=True), 1e-12)


@dataclass
class Faces:
    """Per-face figures of the cached photos (rows as in the cache)."""

    emb: np.ndarray  # (n, 128) the default recipe's embedding: the 10 views' raw sum, normalised
    views: np.ndarray  # (n, 10, 128) each view normalised
    stability: np.ndarray  # mean cosine of the views with their average (the engine's figure)
    mirror: np.ndarray  # mean cosine of each chip with its mirror image
    det_score: np.ndarray
    log_box: np.ndarray  # log of the box side in image pixels

    @classmethod
    def load(cls, data: np.lib.npyio.NpzFile) -> Faces:
        raw = data["raw"]  # (n, 5 chips, 2, 128)
        views = unit(raw.reshape(len(raw), -1, raw.shape[-1]))
        emb = unit(raw.sum(axis=(1, 2)))
        centre = unit(views.sum(axis=1))
        per_chip = unit(raw)
        return cls(
            emb=emb.astype(np.float32),
            views=views.astype(np.float32),
            stability=np.einsum("nvd,nd->nv", views, centre).mean(axis=1),
            mirror=np.einsum("ncd,ncd->nc", per_chip[:, :, 0], per_chip[:, :, 1]).mean(axis=1),
            det_score=data["det_score"],
            log_box=np.log(np.maximum(data["box"], 1.0)),
        )


def cohort_stats(emb: np.ndarray, cohort: np.ndarray, top: int = TOP) -> tuple[np.ndarray, np.ndarray]:
    """Mean and spread of each face's ``top`` best scores against the cohort: search's own statistics
    (search/normalize.py), so that the ``snorm`` feature is the score search ranks by."""
    return CohortNormalizer(cohort, top=min(top, len(cohort) - 1)).stats(emb)


def pair_features(f: Faces, a: np.ndarray, b: np.ndarray, mu: np.ndarray, sd: np.ndarray) -> dict[str, np.ndarray]:
    """Features of pairs (a[i], b[i]) (rows of ``f``): the scores, then view and quality cues."""
    cos = np.einsum("ij,ij->i", f.emb[a], f.emb[b])
    snorm = ((cos - mu[a]) / sd[a] + (cos - mu[b]) / sd[b]) / 2
    vv = np.concatenate(  # in chunks: 1:N has ~350,000 candidate pairs of 10 x 10 views
        [
            np.einsum("ivd,iwd->ivw", f.views[a[i : i + 20000]], f.views[b[i : i + 20000]]).reshape(-1, 100)
            for i in range(0, len(a), 20000)
        ]
    )
    return {
        "cos": cos,
        "snorm": snorm,
        "vv_min": vv.min(axis=1),
        "vv_mean": vv.mean(axis=1),
        "vv_max": vv.max(axis=1),
        "vv_std": vv.std(axis=1),
        "plain_cos": np.einsum("ij,ij->i", f.views[a, 0], f.views[b, 0]),
        "stab_min": np.minimum(f.stability[a], f.stability[b]),
        "stab_max": np.maximum(f.stability[a], f.stability[b]),
        "mirror_min": np.minimum(f.mirror[a], f.mirror[b]),
        "det_min": np.minimum(f.det_score[a], f.det_score[b]),
        "det_max": np.maximum(f.det_score[a], f.det_score[b]),
        "box_min": np.minimum(f.log_box[a], f.log_box[b]),
        "box_gap": np.abs(f.log_box[a] - f.log_box[b]),
        "mu_sum": mu[a] + mu[b],
        "sd_sum": sd[a] + sd[b],
    }


FEATURE_SETS: dict[str, list[str]] = {
    "cos + snorm": ["cos", "snorm"],
    "+ view-pair stats": ["cos", "snorm", "vv_min", "vv_mean", "vv_max", "vv_std", "plain_cos"],
    "+ quality": ["cos", "snorm", "stab_min", "stab_max", "mirror_min", "det_min", "det_max", "box_min", "box_gap"],
    "all": [
        "cos",
        "snorm",
        "vv_min",
        "vv_mean",
        "vv_max",
        "vv_std",
        "plain_cos",
        "stab_min",
        "stab_max",
        "mirror_min",
        "det_min",
        "det_max",
        "box_min",
        "box_gap",
        "mu_sum",
        "sd_sum",
    ],
}


def make_model(kind: str):  # noqa: ANN201 - a scikit-learn estimator
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    if kind == "logistic":
        return make_pipeline(StandardScaler(), LogisticRegression(C=1.0, max_iter=2000))
    return HistGradientBoostingClassifier(max_depth=3, max_iter=150, learning_rate=0.05, random_state=0)


def fit_score(kind: str, x_train: np.ndarray, y_train: np.ndarray, x_test: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Fit on the training rows; the fused score (log-odds, or probability for trees) of train and test rows."""
    model = make_model(kind).fit(x_train, y_train)
    if kind == "logistic":
        return model.decision_function(x_train), model.decision_function(x_test)
    return model.predict_proba(x_train)[:, 1], model.predict_proba(x_test)[:, 1]


def matrix(features: dict[str, np.ndarray], names: list[str]) -> np.ndarray:
    """One row per pair (or per search and candidate), one column per named feature."""
    return np.stack([features[n].reshape(-1) for n in names], axis=-1)


# ---- verify ------------------------------------------------------------------------------------------------


def verify(f: Faces, row: dict[Path, int], kinds: list[str]) -> None:
    root = lfw_images()
    pairs = [p for p in dev_pairs() if p.a in row and p.b in row]
    pair_people = {x.parent.name for p in pairs for x in (p.a, p.b)}
    others = [p for p, i in row.items() if p.parent.name not in pair_people]
    rng = np.random.default_rng(0)
    cohort = f.emb[[row[others[i]] for i in np.sort(rng.choice(len(others), min(COHORT, len(others)), False))]]
    mu, sd = cohort_stats(f.emb, cohort)
    print(f"\nverify: {len(pairs)} pairs of {root}; cohort {len(cohort)} photos of people in no pair (seed 0)")

    def arrays(chosen: list[Pair]) -> tuple[dict[str, np.ndarray], np.ndarray, np.ndarray]:
        a = np.array([row[p.a] for p in chosen])
        b = np.array([row[p.b] for p in chosen])
        return pair_features(f, a, b, mu, sd), np.array([p.same for p in chosen]), np.array([p.fold for p in chosen])

    feats, same, folds = arrays(pairs)
    by_half, cross = pairs_by_half(pairs)
    in_half = {
        h: np.array([half_of(p.a.parent.name) == h and half_of(p.b.parent.name) == h for p in pairs]) for h in HALVES
    }
    print(f"(a) 10-fold, fitted on 9 folds: accuracy % whole / half 0 / half 1 | AUC whole ({cross} pairs mix halves)")

    def line(name: str, s: np.ndarray, acc: float | None = None) -> None:
        cells = []
        for keep in (np.ones(len(pairs), bool), in_half[0], in_half[1]):
            mean = kfold_accuracy(s[keep], same[keep], folds[keep])[0] if acc is None or not keep.all() else acc
            cells.append(f"{100 * mean:.2f}")
        print(f"  {name:44s}" + " / ".join(cells) + f" | {roc_auc(s, same):.5f}", flush=True)

    line("cosine (eval verify)", feats["cos"])
    line("s-norm", feats["snorm"])
    for kind in kinds:
        for set_name, names in FEATURE_SETS.items():
            x = matrix(feats, names)
            oof = np.zeros(len(pairs))
            correct = []
            for fold in np.unique(folds):
                train, test = folds != fold, folds == fold
                s_train, s_test = fit_score(kind, x[train], same[train], x[test])
                threshold = best_threshold(s_train, same[train])
                correct.append(np.mean((s_test >= threshold) == same[test]))
                oof[test] = s_test
            line(f"{kind}: {set_name}", oof, float(np.mean(correct)))

    print("(b) fitted on one half's pairs, tested on the other's: tested half accuracy % | AUC | errors at 10-fold")
    halves = {h: arrays(by_half[h]) for h in HALVES}
    for test_half in HALVES:
        train_half = 1 - test_half
        tf, ts, tfold = halves[test_half]
        base = kfold_accuracy(tf["cos"], ts, tfold)[0]
        base_sn = kfold_accuracy(tf["snorm"], ts, tfold)[0]
        print(
            f"  test half {test_half} ({len(ts)} pairs): cosine {100 * base:.2f} | {roc_auc(tf['cos'], ts):.5f}; "
            f"s-norm {100 * base_sn:.2f} | {roc_auc(tf['snorm'], ts):.5f}"
        )
        for kind in kinds:
            for set_name, names in FEATURE_SETS.items():
                _, s = fit_score(kind, matrix(halves[train_half][0], names), halves[train_half][1], matrix(tf, names))
                acc = kfold_accuracy(s, ts, tfold)[0]
                print(
                    f"    {kind}: {set_name:28s}{100 * acc:.2f} | {roc_auc(s, ts):.5f} "
                    f"| {100 * (acc - base):+.2f} points vs cosine",
                    flush=True,
                )


# ---- 1:N ---------------------------------------------------------------------------------------------------


@dataclass
class Searches:
    """One half's searches: candidates' features (searches x DEPTH), which is the mate, and mated flags."""

    feats: dict[str, np.ndarray]  # each (searches, DEPTH)
    mate: np.ndarray  # (searches, DEPTH) bool
    mated: np.ndarray  # (searches,) bool: the probe's person is enrolled
    half: np.ndarray | None = None  # (searches,) the probe's half of the people


def half_searches(f: Faces, row: dict[Path, int], half: int | None) -> Searches:
    """The seed-0 split's searches within one half of the people (its gallery, probes and cohort), or of the
    whole gallery for ``half`` None."""
    split = split_people(lfw_images(), 0)
    gallery = [p for p in split.gallery if half in (None, half_of(p.parent.name)) and p in row]
    probes = [p for p in split.mated + split.non_mated if half in (None, half_of(p.parent.name)) and p in row]
    g = np.array([row[p] for p in gallery])
    q = np.array([row[p] for p in probes])
    g_people = np.array([p.parent.name for p in gallery])
    q_people = np.array([p.parent.name for p in probes])
    cohort = f.emb[g][np.sort(np.random.default_rng(0).choice(len(g), min(COHORT, len(g)), replace=False))]
    mu_g, sd_g = cohort_stats(f.emb[g], cohort)
    mu_q, sd_q = cohort_stats(f.emb[q], cohort)
    raw = f.emb[q] @ f.emb[g].T
    cand = np.argsort(-raw, axis=1)[:, :DEPTH]  # search's candidates: best by cosine
    n = len(q)
    a = np.repeat(np.arange(n), DEPTH)
    b = cand.reshape(-1)
    # row-index space: probes first, then gallery faces
    rows_q, rows_g = q, g
    mu = np.concatenate([mu_q, mu_g])
    sd = np.concatenate([sd_q, sd_g])
    sub = Faces(
        emb=np.concatenate([f.emb[rows_q], f.emb[rows_g]]),
        views=np.concatenate([f.views[rows_q], f.views[rows_g]]),
        stability=np.concatenate([f.stability[rows_q], f.stability[rows_g]]),
        mirror=np.concatenate([f.mirror[rows_q], f.mirror[rows_g]]),
        det_score=np.concatenate([f.det_score[rows_q], f.det_score[rows_g]]),
        log_box=np.concatenate([f.log_box[rows_q], f.log_box[rows_g]]),
    )
    feats = {k: v.reshape(n, DEPTH) for k, v in pair_features(sub, a, b + n, mu, sd).items()}
    cos = feats["cos"]
    feats["cos_rank"] = np.tile(np.arange(DEPTH, dtype=float), (n, 1))
    feats["cos_gap_best_other"] = cos - np.where(np.arange(DEPTH) == 0, cos[:, 1:2], cos[:, :1])
    sn = feats["snorm"]
    order = -np.sort(-sn, axis=1)
    feats["snorm_gap_best_other"] = sn - np.where(sn == order[:, :1], order[:, 1:2], order[:, :1])
    mate = g_people[cand] == q_people[:, None]
    mated = np.isin(q_people, g_people)
    name = "whole" if half is None else f"half {half}"
    print(f"  {name}: gallery {len(g)}, cohort {len(cohort)}, {mated.sum()} mated / {(~mated).sum()} non-mated")
    return Searches(feats=feats, mate=mate, mated=mated, half=np.array([half_of(p) for p in q_people]))


def subset(s: Searches, keep: np.ndarray) -> Searches:
    return Searches(feats={k: v[keep] for k, v in s.feats.items()}, mate=s.mate[keep], mated=s.mated[keep])


def bootstrap_change(s: Searches, base: np.ndarray, other: np.ndarray, rounds: int = 1000) -> tuple[list, list]:
    """90% intervals of (other - base) in rank-1 and FNIR @ FPIR 0.01 over resampled searches (the same draw
    for both scores, mated and non-mated searches drawn apart): how much the choice of searches could move."""
    rng = np.random.default_rng(0)
    mated, non = np.flatnonzero(s.mated), np.flatnonzero(~s.mated)
    d_r, d_f = [], []
    for _ in range(rounds):
        keep = np.concatenate([rng.choice(mated, len(mated)), rng.choice(non, len(non))])
        part = subset(s, keep)
        (r0, f0), (r1, f1) = outcome(part, base[keep]), outcome(part, other[keep])
        d_r.append(r1 - r0)
        d_f.append(f1 - f0)
    return list(np.quantile(d_r, [0.05, 0.95])), list(np.quantile(d_f, [0.05, 0.95]))


def outcome(s: Searches, score: np.ndarray) -> tuple[float, float]:
    """rank-1 and FNIR @ FPIR 0.01 of searches whose candidates are scored by ``score``."""
    best = np.argmax(score, axis=1)
    top = score[np.arange(len(score)), best]
    hit = s.mate[np.arange(len(score)), best][s.mated]
    threshold = np.quantile(top[~s.mated], 0.99, method="higher")
    return float(hit.mean()), float(np.mean(~hit | (top[s.mated] <= threshold)))


ID_SETS: dict[str, list[str]] = {
    **FEATURE_SETS,
    "all + list position": [*FEATURE_SETS["all"], "cos_rank", "cos_gap_best_other", "snorm_gap_best_other"],
}


def identify(f: Faces, row: dict[Path, int], kinds: list[str]) -> None:
    print("\n1:N, seed-0 split within each half (central face, 50 candidates by cosine, s-norm as search):")
    halves = {h: half_searches(f, row, h) for h in HALVES}
    whole = half_searches(f, row, None)
    print(
        "  variant (fitted on the other half)".ljust(48) + "rank-1 half 0 / half 1 | FNIR @ FPIR 0.01 half 0 / half 1"
    )

    def line(name: str, scores: dict[int, np.ndarray]) -> None:
        res = {h: outcome(halves[h], scores[h]) for h in HALVES}
        print(f"  {name:46s}{res[0][0]:.4f} / {res[1][0]:.4f} | {res[0][1]:.4f} / {res[1][1]:.4f}", flush=True)

    base = {h: halves[h].feats["snorm"] for h in HALVES}
    line("cosine", {h: halves[h].feats["cos"] for h in HALVES})
    line("s-norm (search today)", base)
    fused: dict[str, dict[int, np.ndarray]] = {}
    for kind in kinds:
        for set_name, names in ID_SETS.items():
            scores = {}
            for h in HALVES:
                train, test = halves[1 - h], halves[h]
                _, s = fit_score(kind, matrix(train.feats, names), train.mate.reshape(-1), matrix(test.feats, names))
                scores[h] = s.reshape(test.mate.shape)
            line(f"{kind}: {set_name}", scores)
            fused[f"{kind}: {set_name}"] = scores
    print("  change from s-norm, paired bootstrap of the searches (1,000 resamples), 90% interval, per tested half:")
    for name, scores in fused.items():
        cells = []
        for h in HALVES:
            (r_lo, r_hi), (f_lo, f_hi) = bootstrap_change(halves[h], base[h], scores[h])
            cells.append(f"h{h} rank-1 {r_lo:+.4f}..{r_hi:+.4f} FNIR {f_lo:+.4f}..{f_hi:+.4f}")
        print(f"  {name:36s}" + " | ".join(cells), flush=True)
    print("  logistic on cos + snorm, as one weight: fused ~ snorm + lambda x cos (lambda in s-norm units per cosine)")
    for h in HALVES:
        model = make_model("logistic").fit(matrix(halves[h].feats, ["cos", "snorm"]), halves[h].mate.reshape(-1))
        scaler, lr = model[0], model[-1]
        w = lr.coef_[0] / scaler.scale_
        print(f"    fitted on half {h}: lambda = {w[0] / w[1]:.2f}")
    print("  the whole gallery's searches (gallery 2,611, cohort 2,000), fitted on one half's own searches:")
    print("  variant".ljust(48) + "rank-1 whole / probes h0 / probes h1 | FNIR @ FPIR 0.01 whole / h0 / h1")
    parts = {"whole": np.ones(len(whole.mated), bool), "h0": whole.half == 0, "h1": whole.half == 1}

    def whole_line(name: str, score: np.ndarray) -> None:
        res = [outcome(subset(whole, keep), score[keep]) for keep in parts.values()]
        r = " / ".join(f"{x[0]:.4f}" for x in res)
        fn = " / ".join(f"{x[1]:.4f}" for x in res)
        print(f"  {name:46s}{r} | {fn}", flush=True)

    whole_line("s-norm (search today)", whole.feats["snorm"])
    for set_name in ("cos + snorm", "all"):
        names = ID_SETS[set_name]
        for h in HALVES:
            train = halves[h]
            _, s = fit_score("logistic", matrix(train.feats, names), train.mate.reshape(-1), matrix(whole.feats, names))
            whole_line(f"logistic: {set_name}, fitted on half {h}", s.reshape(whole.mate.shape))


LAMBDAS = (0.0, 10.0, 20.0, 30.0, 45.0, 60.0, 80.0, 120.0, 160.0, 240.0, 400.0, 1000.0)


def lambda_sweep(f: Faces, row: dict[Path, int]) -> None:
    """The two-feature fusion as the one coefficient a product would ship: ``snorm + lambda x cosine``, swept,
    on each half's own searches and the whole gallery's: how sensitive the gain is to the weight chosen."""
    print("\n1:N, snorm + lambda x cosine (lambda 0: search today), central faces, seed-0 split:")
    sets = {f"half {h}": half_searches(f, row, h) for h in HALVES}
    sets["whole"] = half_searches(f, row, None)
    print("  lambda".ljust(10) + " | ".join(f"{name}: rank-1 / FNIR @ FPIR 0.01" for name in sets))
    for lam in LAMBDAS:
        cells = []
        for s in sets.values():
            rank1, fnir = outcome(s, s.feats["snorm"] + lam * s.feats["cos"])
            cells.append(f"{rank1:.4f} / {fnir:.4f}")
        print(f"  {lam:<8g}" + " | ".join(cells), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="dlib_resnet_v1_int8")
    parser.add_argument("--kinds", nargs="+", default=["logistic", "trees"], choices=["logistic", "trees"])
    parser.add_argument("--part", choices=["verify", "identify", "both", "lambda"], default="both")
    args = parser.parse_args()
    data = np.load(OUT / f"views-{args.model}.npz")
    root = lfw_images()
    row = {root / p: i for i, p in enumerate(data["paths"])}
    faces = Faces.load(data)
    print(f"views-{args.model}.npz: {len(row)} photos, {int((~data['found']).sum())} without a detected face")
    if args.part in ("verify", "both"):
        verify(faces, row, args.kinds)
    if args.part in ("identify", "both"):
        identify(faces, row, args.kinds)
    if args.part == "lambda":
        lambda_sweep(faces, row)


if __name__ == "__main__":
    main()
