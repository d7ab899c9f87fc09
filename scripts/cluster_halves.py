"""``facesearch eval cluster`` on each half of a folder's people (issue 14: settings chosen on one half,
confirmed on the other), from the embeddings a full run cached (nothing embedded again).

The halves: a person is in half 0 when the CRC-32 of their folder name is even (the split
docs/accuracy.md uses). Every method and the incremental simulation run on each half exactly as
``facesearch eval cluster`` runs them (eval/cluster.evaluate). Prints one JSON object per half.

    PYTHONPATH=src:. .venv/bin/python -m scripts.cluster_halves --cache /tmp/cache/cluster-....npz \
        [--max-fmr 1e-4] [--batches 10]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from facesearch.eval.cluster import evaluate
from facesearch.eval.halves import half_of
from facesearch.eval.inputs import verify_operating_point


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cache", type=Path, required=True, help="a cluster-*.npz that eval cluster --cache wrote")
    parser.add_argument("--max-fmr", type=float, default=1e-4)
    parser.add_argument("--batches", type=int, default=10)
    args = parser.parse_args()
    data = np.load(args.cache)
    x, people = data["vectors"], data["people"]
    _, threshold, _ = verify_operating_point(None, "onnx", args.max_fmr)
    halves = np.array([half_of(str(p)) for p in people])
    for half in (0, 1):
        mask = halves == half
        report = evaluate(x[mask], people[mask], threshold, args.max_fmr, int(mask.sum()), {}, batches=args.batches)
        print(json.dumps({"half": half, **report.to_dict()}))


if __name__ == "__main__":
    main()
