"""Issue 15: do the distractors localise on an inverted file like real faces? Gaussian vs identity-structured.

At equal small size (the real lfw-dev faces of a library less the held-out queries), an exact-code IVF
(``IVF<nlist>,Flat``, inner product, so only the lists matter) is built over (a) the real faces, (b) as
many single-Gaussian distractors (facesearch.eval.distractors.sample, calibrated as the scale benches
calibrate them) and (c) as many identity-structured distractors (``sample_people``: person centres plus
within-person spread, calibrated the same way). Queries: one face of each of up to 300 people with 2+
faces, held out of the gallery (real), or 300 held-out draws of the same model. Reported: the lists
probed for recall@10 >= 0.99 and the same-/different-person pair percentiles of each.

    PYTHONPATH=src:. .venv/bin/python -m bench.scale.distractor_models --library LIBRARY

Prints a table and writes bench/out/distractor_models.json. Nothing about real people is written.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import faiss
import numpy as np

from bench.datasets import LFW_LIBRARY, OUT, library_faces
from bench.scale.engines import TARGET_RECALL, K, exact_top_k
from bench.scale.search import recall_at_k
from facesearch.eval import distractors


def lists_needed(gallery: np.ndarray, queries: np.ndarray, nlist: int) -> dict:
    """recall@10 per nprobe (powers of two) of an exact-code IVF, and the smallest nprobe reaching 0.99."""
    quantizer = faiss.IndexFlatIP(gallery.shape[1])
    index = faiss.IndexIVFFlat(quantizer, gallery.shape[1], nlist, faiss.METRIC_INNER_PRODUCT)
    index.train(gallery)
    index.add(gallery)
    rows = np.arange(len(gallery), dtype=np.int64)
    truth = exact_top_k(gallery, rows, queries)
    sweep, needed = {}, None
    nprobe = 1
    while nprobe <= nlist:
        index.nprobe = nprobe
        _, found = index.search(queries, K)
        sweep[nprobe] = round(recall_at_k(found, truth), 4)
        if needed is None and sweep[nprobe] >= TARGET_RECALL:
            needed = nprobe
        nprobe *= 2
    return {"nprobe_at_0.99": needed, "recall_by_nprobe": sweep}


def hold_out(
    vectors: np.ndarray, persons: np.ndarray, n: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """(gallery, queries): one face of each of up to n people with 2+ faces (or n random faces) held out."""
    names, counts = np.unique(persons[persons != ""], return_counts=True)
    eligible = rng.permutation(names[counts >= 2])[:n]
    if len(eligible):
        rows = np.array([rng.choice(np.flatnonzero(persons == name)) for name in eligible])
    else:
        rows = rng.choice(len(vectors), n, replace=False)
    keep = np.setdiff1d(np.arange(len(vectors)), rows)
    return np.ascontiguousarray(vectors[keep]), np.ascontiguousarray(vectors[rows])


def pair_stats(vectors: np.ndarray, persons: np.ndarray, rng: np.random.Generator) -> dict:
    """Genuine and impostor similarity percentiles (the genuine p1: how far apart one person's faces fall)."""
    same = distractors.same_person_similarities(persons, vectors, 100_000, rng)
    different = distractors.different_person_similarities(vectors, persons, 400_000, rng)
    genuine = {**distractors.summarize(same), "p1": float(np.percentile(same, 1))}
    return {"same_person": genuine, "different_person": distractors.summarize(different)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--library", type=Path, default=LFW_LIBRARY)
    parser.add_argument("--nlist", type=int, default=128)
    parser.add_argument("--queries", type=int, default=300)
    parser.add_argument("--seed", type=int, default=1234)
    parser.add_argument("--match-percentile", type=float, default=99.9)
    parser.add_argument("--output", type=Path, default=OUT / "distractor_models.json")
    args = parser.parse_args()
    rng = np.random.default_rng(args.seed)
    real = library_faces(args.library)
    n = len(real.vectors)
    impostors = distractors.different_person_similarities(real.vectors, real.persons, 400_000, rng)
    target = float(np.percentile(impostors, args.match_percentile))

    gaussian_fit = distractors.fit_gaussian(real.vectors)
    gaussian = distractors.sample(
        gaussian_fit, n, distractors.calibrate_scale(gaussian_fit, target, args.match_percentile, rng), rng
    )
    people_fit = distractors.fit_people(real.vectors, real.persons)
    people_scale = distractors.calibrate_people_scale(people_fit, target, args.match_percentile, rng)
    people, person = distractors.sample_people(people_fit, n, people_scale, rng)
    models = {
        "real lfw-dev faces": (real.vectors, real.persons),
        "Gaussian distractors": (gaussian, np.array([str(i) for i in range(n)])),
        "identity-structured distractors": (people, person.astype(str)),
    }
    report: dict = {"faces": n, "nlist": args.nlist, "target_p": args.match_percentile, "people_scale": people_scale}
    print(f"{n:,} faces each, IVF{args.nlist},Flat (inner product), {args.queries} held-out queries")
    print(f"{'model':<34}{'nprobe@0.99':>12}{'same p50':>10}{'same p1':>9}{'diff p50':>10}{'diff p99.9':>11}")
    for name, (vectors, persons) in models.items():
        gallery, queries = hold_out(vectors, persons, args.queries, np.random.default_rng(args.seed))
        row = {**lists_needed(gallery, queries, args.nlist)}
        if name == "Gaussian distractors":  # every draw its own "person": no same-person pairs
            sims = distractors.random_pair_similarities(vectors, 400_000, rng)
            stats: dict = {"different_person": distractors.summarize(sims)}
        else:
            stats = pair_stats(vectors, persons, rng)
        row.update(stats)
        same = stats.get("same_person")
        same_cells = f"{same['p50']:>10.4f}{same['p1']:>9.4f}" if same else f"{'-':>10}{'-':>9}"
        diff = stats["different_person"]
        print(f"{name:<34}{row['nprobe_at_0.99']!s:>12}{same_cells}{diff['p50']:>10.4f}{diff['p99.9']:>11.4f}")
        print("    recall by nprobe: " + ", ".join(f"{p}: {r:.3f}" for p, r in row["recall_by_nprobe"].items()))
        report[name] = row
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
