"""A search of a large gallery with a few opted-out faces: excluded as such vs an "allowed" list of all others.

Before stop 25 the search service turned opted-out faces into an allowed-id list of every other face of the
gallery (``np.setdiff1d`` of all live ids), so one opt-out made every search sort the whole gallery's ids and
search through a bitmap filter. Now the exclusions reach the vector store as their own argument (an id
selector over the few excluded ids). This bench times, on the same index and queries, alternating: the
unfiltered search (the floor), the old way (list, then search) and the new way; one query per call, one thread,
CPU time; random unit vectors in what ``auto-opq`` builds.

    PYTHONPATH=src:. python -m bench.scale.optout_search [--size 2000000] [--excluded 40]

Writes no files.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

import faiss
import numpy as np

from facesearch.store.live_index import live_ids
from facesearch.store.vectors.faiss_index import AUTO_OPQ, VectorIndex


def per_query_ms(search: Callable[[np.ndarray], np.ndarray], queries: np.ndarray) -> tuple[float, np.ndarray]:
    """Median CPU ms of ``search`` per query, and the ids it found."""
    times, found = [], []
    for query in queries:
        start = time.process_time()
        found.append(search(query[None])[0])
        times.append(time.process_time() - start)
    return float(np.median(times) * 1000), np.array(found)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=2_000_000)
    parser.add_argument("--excluded", type=int, default=40, help="opted-out faces (a few people's photos)")
    parser.add_argument("--queries", type=int, default=30)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    vectors = rng.standard_normal((args.size, 128), dtype=np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    ids = np.arange(args.size, dtype=np.int64)
    index = VectorIndex(128, AUTO_OPQ)
    for start in range(0, args.size, 500_000):
        index.add(ids[start : start + 500_000], vectors[start : start + 500_000])
    faiss.omp_set_num_threads(1)
    queries = vectors[rng.choice(args.size, args.queries, replace=False)]
    excluded = np.sort(rng.choice(args.size, args.excluded, replace=False))
    excluded[: min(len(excluded), len(queries))] = np.sort(  # some probes' own faces are opted out
        np.searchsorted(ids, (queries[: len(excluded)] @ vectors.T).argmax(axis=1))
    )[: min(len(excluded), len(queries))]
    ways: dict[str, Callable[[np.ndarray], np.ndarray]] = {
        "no opt-out (floor)": lambda q: index.search(q, 10)[1],
        "old: allowed = every other id": lambda q: index.search(q, 10, allowed=np.setdiff1d(live_ids(index), excluded))[
            1
        ],
        "new: excluded ids": lambda q: index.search(q, 10, excluded=excluded)[1],
    }
    print(f"{args.size:,} faces ({index.engine}), {len(excluded)} excluded, {len(queries)} queries", flush=True)
    best: dict[str, float] = {}
    found: dict[str, np.ndarray] = {}
    for order in (list(ways), list(ways)[::-1]):
        for name in order:
            ms, found[name] = per_query_ms(ways[name], queries)
            best[name] = min(best.get(name, ms), ms)
    same = (found["old: allowed = every other id"] == found["new: excluded ids"]).mean()
    for name in ways:
        print(f"| {name} | {best[name]:.2f} ms CPU | x{best[name] / best['no opt-out (floor)']:.2f} of the floor |")
    print(
        f"excluded ids returned: old {np.isin(found['old: allowed = every other id'], excluded).sum()}, "
        f"new {np.isin(found['new: excluded ids'], excluded).sum()}; same ids old vs new: {same:.3f}"
    )


if __name__ == "__main__":
    main()
