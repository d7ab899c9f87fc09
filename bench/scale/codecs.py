"""Issue 15: which fast-scan codes and re-rank factor the refined IVF should use, on the engines bench's workload.

Raw FAISS indexes (no library around them) on the same gallery generator as bench/scale/engines.py (real
faces of a library + matched Gaussian distractors, the same seed, held-out real queries, exact ground
truth): for each candidate, the nprobe sweep up to recall@10 >= 0.99, p50/p99 of one query per call on
one thread (wall and thread CPU), filtered (10% allowed) at that point, and resident memory per face.
Candidates are ``IVF<n>,<codes>`` lists (L2, as store/vectors/refined.py trains them) whose best
``k x factor`` hits are re-ranked by inner product on float16 rows, as the engine re-ranks them.

Rotations (issue 15, fourth pass): a candidate may start with a FAISS pre-transform, ``OPQ<m>_128`` (a
rotation learnt so that PQ's sub-quantisers fit: FAISS trains it for 8-bit sub-quantisers on the raw
vectors) or ``PCAR128`` (principal axes, then a random rotation that spreads their variance over the
sub-vectors). Two variants are this bench's own: ``OPQ<m>x4_128`` learns the rotation for the 4-bit
sub-quantisers the fast-scan codes use, and ``OPQ<m>x4r_128`` learns it on the residuals to the coarse
lists, which is what ``PQ…fsr`` codes encode (raw vectors and residuals spread differently). The lists are
trained and searched in the rotated space (a rotation keeps L2 distances, so k-means finds the same lists
up to its randomness); the ids the index returns are re-ranked on the float16 rows of the original
vectors, so the rotation only changes which candidates reach the re-rank.

    PYTHONPATH=src:. nice -n 5 .venv/bin/python -m bench.scale.codecs --library LIBRARY --size 1000000

Writes bench/out/codecs.json. Real embeddings stay in memory; nothing about real people is written.
"""

from __future__ import annotations

import argparse
import json
import re
import time
from dataclasses import dataclass
from fractions import Fraction
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
    # 9-: rotations before the codes (issue 15, fourth pass), most promising first: run beside index 0
    ("OPQ64x4_128,IVF{n},PQ64x4fs", 32),  # no residuals: 2.3 ns a code against 4.0, no per-list tables
    ("OPQ32x4r_128,IVF{n},PQ32x4fsr", 64),  # half the code
    ("OPQ64x4r_128,IVF{n},PQ64x4fsr", 16),  # today's codes, rotated
    ("PCAR128,IVF{n},PQ32x4fsr", 64),
    ("OPQ32x4_128,IVF{n},PQ32x4fs", 64),
    ("PCAR128,IVF{n},PQ64x4fs", 32),
    ("OPQ64x4_128,IVF{n},PQ64x4fs", 16),
    ("OPQ32_128,IVF{n},PQ32x4fsr", 64),  # FAISS's own OPQ (rotation learnt for 8-bit sub-quantisers)
    ("OPQ64_128,IVF{n},PQ64x4fs", 32),
    ("OPQ32_128,IVF{n},PQ32x4fsr", 32),
    ("OPQ32_128,IVF{n},PQ32x4fs", 64),
    ("OPQ64_128,IVF{n},PQ64x4fsr", 16),
    # 21-: the same codes without a rotation (controls for the rows above)
    ("IVF{n},PQ64x4fs", 16),
    ("IVF{n},PQ64x4fs", 32),
    ("IVF{n},PQ32x4fs", 64),
    ("OPQ32x4_128,IVF{n},PQ32x4fs", 32),  # 24: the rotated half code with today's re-rank depth x 2
    ("OPQ32x4_128,IVF{n},PQ32x4fs", 128),  # 25: the half code, re-ranked deeper (10M: memory-bound scans)
]
# this bench's own OPQ: the rotation learnt for 4-bit sub-quantisers, on raw vectors or (r) on residuals
_OPQ4 = re.compile(r"^OPQ(\d+)x4(r?)_(\d+),")
# OPQ's alternating training (a PQ, then the rotation, niter times) on fewer points and rounds than FAISS's
# defaults (65,536 and 50): at those, FAISS's 8-bit OPQ took ~800 s of CPU here, the 4-bit ~140 s
OPQ_TRAIN_POINTS, OPQ_NITER = 16_384, 25
SHARES = [1 / 32, 1 / 16, 1 / 8, 3 / 16, 1 / 4, 3 / 8, 1 / 2]


class Candidate:
    """Fast-scan lists for candidates, float16 rows for the exact re-ranking (ids = row numbers here)."""

    def __init__(self, spec: str, factor: int, vectors: np.ndarray) -> None:
        self.spec, self.factor = spec, factor
        opq4 = _OPQ4.match(spec)
        factory = _OPQ4.sub(lambda m: f"OPQ{m.group(1)}_{m.group(3)},", spec)
        self.index = faiss.index_factory(vectors.shape[1], factory, faiss.METRIC_L2)
        self.ivf = faiss.extract_index_ivf(self.index)
        rows = np.random.default_rng(0).choice(len(vectors), min(len(vectors), 64 * self.ivf.nlist), replace=False)
        sample = np.ascontiguousarray(vectors[np.sort(rows)])
        if spec.startswith("OPQ"):
            opq = faiss.downcast_VectorTransform(faiss.downcast_index(self.index).chain.at(0))
            opq.niter, opq.max_train_points = OPQ_NITER, OPQ_TRAIN_POINTS
        if opq4:
            self._train_opq4(sample, int(opq4.group(1)), residuals=bool(opq4.group(2)))
        self.index.train(sample)
        for start in range(0, len(vectors), 500_000):
            self.index.add(vectors[start : start + 500_000])
        self.rows = vectors.astype(np.float16)
        self.rabitq = "RaBitQ" in spec
        self.nprobe = 1

    def _train_opq4(self, sample: np.ndarray, m: int, residuals: bool) -> None:
        """Train the OPQ rotation for ``m`` 4-bit sub-quantisers before the rest of the index; with
        ``residuals``, on the sample less its nearest coarse centroid, and those centroids (rotated)
        become the lists, so that the codes' residuals are the ones the rotation was learnt on."""
        chain = faiss.downcast_index(self.index).chain
        opq = faiss.downcast_VectorTransform(chain.at(0))
        self._pq4 = faiss.ProductQuantizer(sample.shape[1], m, 4)  # OPQMatrix.pq is borrowed: keep it alive
        opq.pq = self._pq4
        if not residuals:
            opq.train(sample)  # OPQMatrix.train samples max_train_points of them
            return
        kmeans = faiss.Kmeans(sample.shape[1], self.ivf.nlist, niter=10, seed=1234)
        kmeans.train(sample)
        _, assign = kmeans.index.search(sample, 1)
        opq.train(np.ascontiguousarray(sample - kmeans.centroids[assign[:, 0]]))
        # a trained quantiser holding nlist centroids is kept by IndexIVF.train: the rotated centroids
        self.ivf.quantizer.add(opq.apply(kmeans.centroids))

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
    parser.add_argument(
        "--shares",
        default="",
        help="comma-separated shares of the lists to probe, e.g. 1/4,5/16,3/8 (default: 1/32 to 1/2, to recall 0.99)",
    )
    parser.add_argument(
        "--all-shares",
        action="store_true",
        help="measure every share, filtered too, rather than stopping at recall 0.99 (for equal-nprobe comparisons)",
    )
    parser.add_argument(
        "--interleave",
        action="store_true",
        help="build every candidate first, then measure them in turn at each share (filtered too), --rounds times",
    )
    parser.add_argument("--rounds", type=int, default=3)
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
    shares = [float(Fraction(x)) for x in args.shares.split(",")] if args.shares else SHARES
    specs = [(spec.format(n=nlist, n4=4 * nlist), factor) for spec, factor in picked]
    data = Data(queries, truth, allowed, truth_filtered)
    if args.interleave:
        report = interleaved(specs, vectors, data, shares, args.rounds)
        write(args, check, report)
        return
    report: list[dict] = []
    for spec, factor in specs:
        cand, row = build(spec, factor, vectors)
        for share in shares:
            step = measure(cand, share, data, filtered=args.all_shares)
            row["sweep"].append(step)
            if step["recall_at_10"] >= TARGET_RECALL:
                if "filtered" not in step:
                    step["filtered"] = measure_filtered(cand, data)
                row.setdefault("filtered", {"nprobe": cand.nprobe, **step["filtered"]})
                if not args.all_shares:
                    break
        report.append(row)
        del cand
        write(args, check, report)


@dataclass
class Data:
    """The queries, their exact top-10 ids, the allowed rows of the filtered searches and their top-10."""

    queries: np.ndarray
    truth: np.ndarray
    allowed: np.ndarray
    truth_filtered: np.ndarray


def build(spec: str, factor: int, vectors: np.ndarray) -> tuple[Candidate, dict]:
    """A candidate built on both cores, and its report row (build time, resident memory per face)."""
    faiss.omp_set_num_threads(2)
    before, start = base.rss_bytes(), time.perf_counter()
    cand = Candidate(spec, factor, vectors)
    row: dict = {
        "index": f"{spec} + re-rank k x {factor}",
        "build_s": round(time.perf_counter() - start, 1),
        "rss_bytes_per_face": round((base.rss_bytes() - before) / len(vectors), 1),
        "sweep": [],
    }
    print(f"{row['index']}: built in {row['build_s']} s, {row['rss_bytes_per_face']} B/face", flush=True)
    return cand, row


def measure(cand: Candidate, share: float, data: Data, filtered: bool) -> dict:
    """Latency and recall@10 at ``share`` of the lists (and filtered, if asked), one query per call."""
    cand.nprobe = max(1, int(cand.ivf.nlist * share))
    latencies, found = single_queries(cand, data.queries)
    recall = base.recall_at_k(found, data.truth)
    step = {"nprobe": cand.nprobe, **latency_cells(latencies), "recall_at_10": round(recall, 4)}
    print(
        f"  {cand.spec} k x {cand.factor}, nprobe {cand.nprobe}: p50 {step['p50_ms']:.2f} / p99 {step['p99_ms']:.2f}"
        f" ms (CPU {step['cpu_p50_ms']:.2f} / {step['cpu_p99_ms']:.2f}), recall@10 {recall:.4f}",
        flush=True,
    )
    if filtered:
        step["filtered"] = measure_filtered(cand, data)
    return step


def measure_filtered(cand: Candidate, data: Data) -> dict:
    """Latency and recall@10 with 10% of the faces allowed, at the candidate's current nprobe."""
    latencies, found = single_queries(cand, data.queries, data.allowed)
    cells = {**latency_cells(latencies), "recall_at_10": round(base.recall_at_k(found, data.truth_filtered), 4)}
    print(
        f"    filtered: p50 {cells['p50_ms']:.2f} ms (CPU {cells['cpu_p50_ms']:.2f}),"
        f" recall@10 {cells['recall_at_10']:.4f}",
        flush=True,
    )
    return cells


def interleaved(
    specs: list[tuple[str, int]], vectors: np.ndarray, data: Data, shares: list[float], rounds: int
) -> list:
    """Build every candidate first, then measure them in turn at each share, ``rounds`` times: on a shared
    machine whose load drifts, candidates measured minutes apart are not comparable (the same index gave
    1.54 and 2.61 ms of CPU at nprobe 256 in two runs ten minutes apart), candidates measured in one round are."""
    built = [build(spec, factor, vectors) for spec, factor in specs]
    for round_ in range(rounds):
        print(f"round {round_ + 1} of {rounds}", flush=True)
        for share in shares:
            for cand, row in built:
                row["sweep"].append({"round": round_ + 1, **measure(cand, share, data, filtered=True)})
    return [row for _, row in built]


def write(args: argparse.Namespace, check: dict, report: list[dict]) -> None:
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps({"size": args.size, "k": K, "check": check, "rows": report}, indent=2) + "\n")


if __name__ == "__main__":
    main()
