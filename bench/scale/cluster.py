"""Clustering at scale (issue 14): real lfw-dev faces mixed with synthetic distractors, time and memory.

The real faces (one-face photos, embedded once by ``facesearch eval cluster --cache bench/out``, or any
``.npz`` with ``vectors`` and ``people``) keep their truth; the distractors (facesearch/eval/distractors.py:
a Gaussian fitted to the real faces, its spread calibrated so that distractor pairs match real
different-person pairs at the 99.9th percentile) are each a person of their own. Reported per size:
seconds, peak memory (ru_maxrss), quality on the real faces (pairwise / BCubed, as eval cluster), how
many real persons absorbed a distractor, the largest person found. A method that chains shows it here:
as the archive grows, false links multiply (f * n^2 / 2) and single linkage joins strangers.

    PYTHONPATH=src:. .venv/bin/python -m bench.scale.cluster --real bench/out/cluster-....npz \
        --sizes 10000 100000 [--single-linkage] [--max-fmr 1e-4]

Each size runs in its own process (``--one``) so that peak memory is that size's alone.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from facesearch.eval import distractors
from facesearch.eval.cluster import bcubed, pairwise
from facesearch.people.clustering import cluster
from facesearch.search.calibration import default_calibration

SEED = 7
PERCENTILE = 99.9


def workload(real: Path, size: int) -> tuple[np.ndarray, np.ndarray]:
    """The real faces then ``size - len(real)`` distractors; truth: the person, or a unique id."""
    data = np.load(real)
    vectors, people = data["vectors"].astype(np.float32), data["people"].astype(str)
    rng = np.random.default_rng(SEED)
    fit = distractors.fit_gaussian(vectors)
    impostors = distractors.different_person_similarities(vectors, people, 400_000, rng)
    scale = distractors.calibrate_scale(fit, float(np.percentile(impostors, PERCENTILE)), PERCENTILE, rng)
    extra = max(0, size - len(vectors))
    x = np.empty((len(vectors) + extra, vectors.shape[1]), dtype=np.float32)
    x[: len(vectors)] = vectors
    distractors.sample(fit, extra, scale, rng, out=x[len(vectors) :])
    truth = np.concatenate([people, np.array([f"~{i}" for i in range(extra)])])
    return x, truth


def run_one(real: Path, size: int, threshold: float, support: float) -> dict:
    x, truth = workload(real, size)
    started = time.perf_counter()
    labels = cluster(x, threshold, support=support, average=None if support else -1.0)
    seconds = time.perf_counter() - started
    n_real = int(np.sum(~np.char.startswith(truth, "~")))
    real_labels = labels[:n_real]
    absorbed = len(np.intersect1d(real_labels, labels[n_real:]))
    return {
        "faces": int(len(x)),
        "real_faces": n_real,
        "method": "facesearch" if support else "single_linkage",
        "threshold": round(threshold, 5),
        "seconds": round(seconds, 1),
        "peak_rss_gb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, 2),
        "real_pairwise": {k: round(v, 4) for k, v in pairwise(truth[:n_real], real_labels).items()},
        "real_bcubed": {k: round(v, 4) for k, v in bcubed(truth[:n_real], real_labels).items()},
        "all_pairwise_precision": round(pairwise(truth, labels)["precision"], 4),
        "persons_with_distractors": int(absorbed),
        "largest_person": int(np.bincount(labels).max()),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--real", type=Path, required=True, help=".npz with vectors and people (real faces)")
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--max-fmr", type=float, default=1e-4)
    parser.add_argument(
        "--model", default="dlib_resnet_v1+flip+jitter2.5", help="calibration to take the threshold from"
    )
    parser.add_argument("--single-linkage", action="store_true", help="also run single linkage (support 0)")
    parser.add_argument("--one", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--support", type=float, default=0.5, help=argparse.SUPPRESS)
    args = parser.parse_args()
    calibration = default_calibration(args.model)
    if calibration is None or calibration.table("cosine") is None:
        sys.exit(f"no shipped calibration for {args.model}")
    threshold = calibration.table("cosine").threshold_for(args.max_fmr)  # type: ignore[union-attr]
    if args.one:
        print(json.dumps(run_one(args.real, args.sizes[0], threshold, args.support)))
        return
    supports = [0.5, 0.0] if args.single_linkage else [0.5]
    for size in args.sizes:
        for support in supports:
            command = [sys.executable, "-m", "bench.scale.cluster", "--one", "--real", str(args.real)]
            command += ["--sizes", str(size), "--max-fmr", str(args.max_fmr), "--model", args.model]
            command += ["--support", str(support)]
            out = subprocess.run(command, check=True, capture_output=True, text=True).stdout
            print(out.strip().splitlines()[-1], flush=True)


if __name__ == "__main__":
    main()
