"""Issue 15: which fast-scan codes and re-rank factor the refined IVF should use, on the engines bench's workload.

Raw FAISS indexes (no library around them) on the same gallery generator as bench/scale/engines.py (real
faces of a library + matched Gaussian distractors, the same seed, held-out real queries, exact ground
truth): for each candidate, the nprobe sweep up to recall@10 >= 0.99, p50/p99 of one query per call on
one thread (wall and thread CPU), filtered (10% allowed) at that point, and resident memory per face.
Candidates are ``IVF<n>,<codes>`` lists (L2, as store/vectors/refined.py trains them) whose best
``k x factor`` hits are re-ranked by inner product on float16 rows, as the engine re-ranks them.

    PYTHONPATH=src:. nice -n 5 .venv/bin/python -m bench.scale.codecs --library LIBRARY --size 1000000

Writes bench/out/codecs.json. Real embeddings stay in memory; nothing about real people is written.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import faiss
import numpy as np

from bench.datasets import LFW_LIBRARY, OUT, library_faces
from bench.scale import search as base
from bench.scale.engines import FILTER_SHARE, TARGET_RECALL, K, exact_top_k, latency_cells, single_queries
from facesearch.store.vectors.faiss_index import id_selector

# (factory string of the lists and codes, re-rank factor); nprobe sweeps are shares of the lists
CANDIDATES = [
    ("IVF{n},PQ64x4fsr", 16),  # today's refined engine
    ("IVF{n},PQ32x4fsr", 32),
    ("IVF{n},PQ32x4fsr", 64),
    ("IVF{n},PQ16x4fsr", 64),
    ("IVF{n},RaBitQfs", 32),
    ("IVF{n4},PQ32x4fsr", 32),
    ("IVF{n4},PQ64x4fsr", 16),
    ("IVF{n},PQ64x4fsr", 32),
    ("IVF{n4},PQ64x4fsr", 32),
]
SHARES = [1 / 32, 1 / 16, 1 / 8, 3 / 16, 1 / 4, 3 / 8, 1 / 2]


class Candidate:
    """Fast-scan lists for candidates, float16 rows for the exact re-ranking (ids = row numbers here)."""

    def __init__(self, spec: str, factor: int, vectors: np.ndarray) -> None:
        self.spec, self.factor = spec, factor
        self.index = faiss.index_factory(vectors.shape[1], spec, faiss.METRIC_L2)
        self.ivf = faiss.extract_index_ivf(self.index)
        rows = np.random.default_rng(0).choice(len(vectors), min(len(vectors), 64 * self.ivf.nlist), replace=False)
        self.index.train(np.ascontiguousarray(vectors[np.sort(rows)]))
        for start in range(0, len(vectors), 500_000):
            self.index.add(vectors[start : start + 500_000])
        self.rows = vectors.astype(np.float16)
        self.rabitq = "RaBitQ" in spec
        self.nprobe = 1

    def search(self, queries: np.ndarray, k: int, allowed: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        params = faiss.IVFRaBitQSearchParameters() if self.rabitq else faiss.SearchParametersIVF()
        params.nprobe = self.nprobe
        if allowed is not None:
            params.sel = selector = id_selector(allowed)
            params.keep_alive = selector
        _, cand = self.index.search(queries, k * self.factor, params=params)
        cand = cand[0][cand[0] >= 0]
        sims = self.rows[cand].astype(np.float32) @ queries[0]
        top = np.argsort(-sims)[:k]
        found = np.full((1, k), -1, np.int64)
        found[0, : len(top)] = cand[top]
        return sims[top][None, :], found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--library", type=Path, default=LFW_LIBRARY)
    parser.add_argument("--size", type=int, default=1_000_000)
    parser.add_argument("--queries", type=int, default=300)
    parser.add_argument("--seed", type=int, default=1234)
    base.add_distractor_arguments(parser)
    parser.add_argument("--only", default="", help="comma-separated indexes into CANDIDATES")
    parser.add_argument("--output", type=Path, default=OUT / "codecs.json")
    args = parser.parse_args()
    real = library_faces(args.library)
    workload, check = base.make_workload(real, args, args.size, np.random.default_rng(args.seed))
    base.print_check(check)
    ids, vectors, queries = workload.ids, workload.vectors, workload.queries
    # the index numbers rows 0..n-1: ground truth and the filter in row numbers too
    rows = np.arange(len(ids), dtype=np.int64)
    allowed = np.sort(np.random.default_rng(args.seed + 1).choice(rows, int(len(ids) * FILTER_SHARE), replace=False))
    truth, truth_filtered = exact_top_k(vectors, rows, queries), exact_top_k(vectors, rows, queries, allowed)
    nlist = 1 << int(round(np.log2(args.size / 1000)))
    picked = [CANDIDATES[int(i)] for i in args.only.split(",")] if args.only else CANDIDATES
    report: list[dict] = []
    for spec, factor in picked:
        spec = spec.format(n=nlist, n4=4 * nlist)
        faiss.omp_set_num_threads(2)
        before, start = base.rss_bytes(), time.perf_counter()
        cand = Candidate(spec, factor, vectors)
        row: dict = {
            "index": f"{spec} + re-rank k x {factor}",
            "build_s": round(time.perf_counter() - start, 1),
            "rss_bytes_per_face": round((base.rss_bytes() - before) / len(ids), 1),
            "sweep": [],
        }
        print(f"{row['index']}: built in {row['build_s']} s, {row['rss_bytes_per_face']} B/face", flush=True)
        for share in SHARES:
            cand.nprobe = max(1, int(cand.ivf.nlist * share))
            latencies, found = single_queries(cand, queries)
            recall = base.recall_at_k(found, truth)
            step = {"nprobe": cand.nprobe, **latency_cells(latencies), "recall_at_10": round(recall, 4)}
            row["sweep"].append(step)
            print(
                f"  nprobe {cand.nprobe}: p50 {step['p50_ms']:.2f} / p99 {step['p99_ms']:.2f} ms "
                f"(CPU {step['cpu_p50_ms']:.2f} / {step['cpu_p99_ms']:.2f}), recall@10 {recall:.4f}",
                flush=True,
            )
            if recall >= TARGET_RECALL:
                latencies, found = single_queries(cand, queries, allowed)
                row["filtered"] = {**latency_cells(latencies), "recall_at_10": base.recall_at_k(found, truth_filtered)}
                print(
                    f"  filtered: p50 {row['filtered']['p50_ms']:.2f} ms (CPU {row['filtered']['cpu_p50_ms']:.2f}),"
                    f" recall@10 {row['filtered']['recall_at_10']:.4f}",
                    flush=True,
                )
                break
        report.append(row)
        del cand
        args.output.parent.mkdir(parents=True, exist_ok=True)
        args.output.write_text(json.dumps({"size": args.size, "k": K, "check": check, "rows": report}, indent=2) + "\n")


if __name__ == "__main__":
    main()
