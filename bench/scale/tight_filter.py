"""A collection filter of a few thousand faces on the refined IVF: exact among the allowed rows vs the lists.

Up to ``EXACT_FILTER_LIMIT`` allowed ids, ``VectorIndex.search`` answers exactly among them (the float16 rows,
scanned by FAISS); past it, from the IVF lists with an id selector. This bench times both paths on the same
index and queries, alternating, and measures recall@10 against the exact top 10 among the allowed faces.
Random unit vectors (no faces): the lists' recall here is a floor (random data clusters badly), the times are
what matters; one query per call, one thread, CPU time.

    PYTHONPATH=src:. python -m bench.scale.tight_filter [--size 1000000] [--allowed 1000 20000]

Writes no files.
"""

from __future__ import annotations

import argparse
import time

import faiss
import numpy as np

from facesearch.store.vectors import faiss_index
from facesearch.store.vectors.faiss_index import AUTO_OPQ, VectorIndex


def unit(rows: np.ndarray) -> np.ndarray:
    return rows / np.linalg.norm(rows, axis=1, keepdims=True)


def timed(index: VectorIndex, queries: np.ndarray, allowed: np.ndarray) -> tuple[float, np.ndarray]:
    """Median CPU ms per query and the ids found, one query per call."""
    times, found = [], []
    for query in queries:
        start = time.process_time()
        _, ids = index.search(query[None], 10, allowed=allowed)
        times.append(time.process_time() - start)
        found.append(ids[0])
    return float(np.median(times) * 1000), np.array(found)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=1_000_000)
    parser.add_argument("--allowed", type=int, nargs="+", default=[1_000, 20_000])
    parser.add_argument("--queries", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    vectors = unit(rng.standard_normal((args.size, 128), dtype=np.float32))
    ids = np.arange(args.size, dtype=np.int64)
    index = VectorIndex(128, AUTO_OPQ)  # what a new library builds: the rotated refined IVF from 500k faces
    for start in range(0, args.size, 250_000):
        index.add(ids[start : start + 250_000], vectors[start : start + 250_000])
    print(f"{args.size:,} faces: {index.engine}", flush=True)
    faiss.omp_set_num_threads(1)
    queries = unit(
        vectors[rng.choice(args.size, args.queries, replace=False)]
        + 0.2 * rng.standard_normal((args.queries, 128), dtype=np.float32)
    )
    limit = faiss_index.EXACT_FILTER_LIMIT
    for size in args.allowed:
        allowed = np.sort(rng.choice(args.size, size, replace=False))
        truth = allowed[np.argsort(-(queries @ vectors[allowed].T), axis=1)[:, :10]]
        cells: dict[str, list[float]] = {"exact": [], "lists": []}
        recall = {}
        for _ in range(args.rounds):
            for path, setting in (("exact", max(limit, size)), ("lists", 0)):
                faiss_index.EXACT_FILTER_LIMIT = setting
                ms, found = timed(index, queries, allowed)
                cells[path].append(ms)
                recall[path] = np.mean([len(set(f) & set(t)) / 10 for f, t in zip(found, truth, strict=True)])
        faiss_index.EXACT_FILTER_LIMIT = limit
        exact, lists = min(cells["exact"]), min(cells["lists"])
        print(
            f"| {size:,} allowed | exact {exact:.2f} ms, recall {recall['exact']:.3f} | lists {lists:.2f} ms, "
            f"recall {recall['lists']:.3f} | exact / lists x{exact / lists:.2f} |",
            flush=True,
        )


if __name__ == "__main__":
    main()
