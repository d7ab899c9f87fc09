"""Is the shipped calibration honest on people it was not built from? (Issue 12 §2.)

The calibration facesearch ships (search/default_calibration.json) is measured on every pair of
lfw-dev photos: it tells each search result how often a *different* person scores as high (its
false match rate, FMR). If those figures only hold for the people they were measured on, every
label built on them is wrong for everyone else. This script checks that: lfw-dev's people are
split in two halves by a fixed seed (a person's photos all go to one half); the tables are built
on one half exactly as ``facesearch calibrate`` builds them (eval/calibrate.py: cosine over every
pair, s-norm with a cohort disjoint from the compared people), and the thresholds they give for
FMR 1e-3, 1e-4 and 1e-5 are applied to every different-person pair of the other half. The ratio
measured / claimed is the honesty of the calibration for new people: 1 is exact, above 1 means
strangers score high more often than claimed. Both directions of the split are reported.

Embeddings are cached in bench/out/ (ignored by git: never commit embeddings of real people).

    .venv/bin/python -m bench.accuracy.heldout_calibration [--model M] [--jitter 0] [--jitter-axes y] [--limit N]
        [--workers 2] [--write]

Without --model it checks the model a new library gets (the int8 ResNet since issue 15; the checks recorded
before then, without --model, were of dlib_resnet_v1: give --model dlib_resnet_v1 to repeat them).
"""

from __future__ import annotations

import argparse
import json
import time
from importlib import resources
from pathlib import Path

import numpy as np

from bench.datasets import OUT, lfw_photos
from facesearch.eval.calibrate import MAX_COMPARISONS, _snorm_with_disjoint_cohort, comparison_scores
from facesearch.search.calibration import CHECKS_NAME, ScoreTable, default_calibration

TARGETS = (1e-3, 1e-4, 1e-5)
MIN_EXPECTED = 20  # false matches the claimed rate predicts in the other half: fewer, and a ratio is mostly noise
SEED = 12


def embed(
    photos: list[Path], jitter: float | None, workers: int, model: str | None = None, jitter_axes: str | None = None
) -> tuple[np.ndarray, np.ndarray, str]:
    """The central face's embedding of each photo (photos without a detected face left out, as in
    ``facesearch calibrate``), its person, and the recipe key; cached by recipe and photo list."""
    from facesearch.eval.inputs import eval_pipeline
    from facesearch.eval.verify import embed_images

    pipeline, key = eval_pipeline(None, "onnx", jitter=jitter, jitter_axes=jitter_axes, model=model)
    cache = OUT / f"heldout-{key}-{len(photos)}.npz"
    if cache.is_file():
        data = np.load(cache)
        return data["vectors"], data["people"], key
    started = time.monotonic()
    embeddings, no_face = embed_images(pipeline, photos, "reject", workers=workers)
    kept = [p for p in photos if embeddings[p] is not None]
    vectors = np.stack([embeddings[p] for p in kept]).astype(np.float32)
    people = np.array([p.parent.name for p in kept])
    OUT.mkdir(parents=True, exist_ok=True)
    np.savez(cache, vectors=vectors, people=people)
    print(
        f"embedded {len(photos)} photos ({no_face['count']} without a face) with {key} "
        f"in {time.monotonic() - started:.0f} s on {workers} worker(s); cached in {cache}"
    )
    return vectors, people, key


def split_people(people: np.ndarray, seed: int = SEED) -> np.ndarray:
    """A boolean mask: True for the photos of the people drawn into half A (half of the people)."""
    names = np.array(sorted(set(people.tolist())))
    rng = np.random.default_rng(seed)
    chosen = set(rng.permutation(names)[: len(names) // 2].tolist())
    return np.array([p in chosen for p in people.tolist()])


def half_scores(vectors: np.ndarray, people: np.ndarray) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Impostor and genuine scores of one half, per kind, computed as ``facesearch calibrate`` does."""
    scores = comparison_scores(vectors, people, None, MAX_COMPARISONS)
    scores |= _snorm_with_disjoint_cohort(vectors, people, MAX_COMPARISONS)
    return scores


def check(built: dict, measured: dict) -> list[dict]:
    """For each kind and target FMR: the threshold built on one half and the other half's impostor rate there."""
    rows = []
    for kind, (impostor, genuine) in built.items():
        if kind not in measured:
            continue
        table = ScoreTable.from_scores(kind, impostor, genuine)
        others = measured[kind][0]
        for target in TARGETS:
            if target < table.fmr[-1] or target * len(measured[kind][0]) < MIN_EXPECTED:
                continue  # the tables or the other half cannot resolve this rate: no ratio rather than noise
            threshold = table.threshold_for(target)
            false_matches = int(np.count_nonzero(others >= threshold))
            rate = false_matches / len(others)
            rows.append(
                {
                    "score": kind,
                    "claimed_fmr": target,
                    "threshold": round(threshold, 4),
                    "impostor_pairs": len(others),
                    "false_matches": false_matches,
                    "measured_fmr": float(f"{rate:.3g}"),
                    "ratio": round(rate / target, 2),
                }
            )
    return rows


def off_by(ratio: float) -> float:
    """How far a ratio is from 1, either way (0.5 and 2 are both 2x off; no false match at all is infinitely off)."""
    return float("inf") if ratio <= 0 else max(ratio, 1 / ratio)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jitter", type=float, default=None, help="embedding jitter [default: the library default]")
    parser.add_argument(
        "--jitter-axes", default=None, help="xy or y (issue 15: up/down shifts only) [default: the library default]"
    )
    parser.add_argument("--limit", type=int, default=None, help="use this many photos, spread over lfw-dev")
    parser.add_argument("--model", default=None, help="built-in model key [default: what a new library gets]")
    parser.add_argument("--workers", type=int, default=2, help="embedding worker processes")
    parser.add_argument("--json", type=Path, default=None, help="also write the rows here")
    parser.add_argument(
        "--write",
        action="store_true",
        help=f"record the result in src/facesearch/search/{CHECKS_NAME} for the shipped table of this recipe "
        "(results that use it then carry a calibration_warning when a ratio is off by more than 2x)",
    )
    args = parser.parse_args()
    vectors, people, key = embed(lfw_photos(args.limit), args.jitter, args.workers, args.model, args.jitter_axes)
    in_a = split_people(people)
    halves = {"A": (vectors[in_a], people[in_a]), "B": (vectors[~in_a], people[~in_a])}
    scores = {name: half_scores(*half) for name, half in halves.items()}
    print(f"recipe {key}: {len(people)} photos of {len(set(people.tolist()))} people")
    for name, (_, half_people) in halves.items():
        print(f"  half {name}: {len(half_people)} photos of {len(set(half_people.tolist()))} people")
    result = {"recipe": key, "photos": int(len(people)), "seed": SEED, "directions": {}}
    print(
        f"{'built':>5} {'tested':>6} {'score':>6} {'claimed':>8} {'threshold':>9} {'pairs':>10} "
        f"{'over':>6} {'measured':>9} {'ratio':>6}"
    )
    for built, tested in (("A", "B"), ("B", "A")):
        rows = check(scores[built], scores[tested])
        result["directions"][f"{built}->{tested}"] = rows
        for r in rows:
            print(
                f"{built:>5} {tested:>6} {r['score']:>6} {r['claimed_fmr']:>8g} {r['threshold']:>9.4f} "
                f"{r['impostor_pairs']:>10,} {r['false_matches']:>6} {r['measured_fmr']:>9.3g} {r['ratio']:>6.2f}"
            )
    ratios = [r["ratio"] for rows in result["directions"].values() for r in rows]
    if not ratios:
        raise SystemExit(f"too few photos: no rate has {MIN_EXPECTED} expected false matches in a half; use more")
    worst = max(off_by(ratio) for ratio in ratios)
    result["worst_off_by"] = worst
    print(f"worst ratio off by {worst:.2f}x ({'within' if worst <= 2 else 'BEYOND'} the 2x the labels accept)")
    if args.json:
        args.json.write_text(json.dumps(result, indent=1) + "\n")
    if args.write:
        record_check(result, args)


def record_check(result: dict, args: argparse.Namespace) -> None:
    """Keep the check beside the shipped tables: aggregate figures only (ratios, counts), never embeddings."""
    shipped = default_calibration(result["recipe"])
    if shipped is None:
        raise SystemExit(f"facesearch ships no calibration for {result['recipe']}: nothing to record the check for")
    command = "python -m bench.accuracy.heldout_calibration" + (f" --model {args.model}" if args.model else "")
    command += f" --jitter-axes {args.jitter_axes}" if args.jitter_axes else ""
    command += "".join(
        f" --{name} {value:g}" for name, value in (("jitter", args.jitter), ("limit", args.limit)) if value is not None
    )
    target = Path(str(resources.files("facesearch.search").joinpath(CHECKS_NAME)))
    # Every check made of a table is kept (a rerun of the same command replaces its own): a table is said
    # to hold on new people only while every check of it is within 2x.
    checks = [c for c in json.loads(target.read_text()) if (c["model"], c["command"]) != (result["recipe"], command)]
    checks.append(
        {
            "model": result["recipe"],
            "source": shipped.source,
            "command": command,
            "photos": result["photos"],
            "seed": result["seed"],
            "worst_off_by": round(result["worst_off_by"], 3),
            "ratios": {
                direction: {f"{r['score']}@{r['claimed_fmr']:g}": r["ratio"] for r in rows}
                for direction, rows in result["directions"].items()
            },
        }
    )
    target.write_text(json.dumps(checks, indent=1) + "\n")
    print(f"recorded in {target}")


if __name__ == "__main__":
    main()
