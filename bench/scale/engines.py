"""Scale benchmark: 1M and 10M faces on each vector engine available here.

Galleries are built as in bench/scale/search.py: the real lfw-dev face embeddings of a facesearch library
(the mated identities: each query's other photos stay in the gallery) plus synthetic distractors drawn
from a Gaussian fitted to the real embeddings, its covariance scaled so that distractor pairs score
like real different-person pairs (facesearch/eval/distractors.py; the check is printed). Queries are real faces
held out of the gallery. Ground truth is exact top-10 by brute force over the float32 gallery.

For each size and engine it reports:

* build time, memory (RSS growth) and disk (saved index / database) per face;
* single-query p50/p99 latency and recall@10 over a sweep of the engine's search breadth, and the
  operating point: the fastest setting with recall@10 >= 0.99;
* filtered-search latency at that point, with a filter allowing 10% of the faces (a collection),
  and a check that every result is allowed;
* delete cost: removing 1,000 faces (time), and a check that none of them is returned afterwards.

Engines (``--engines``): ``hnsw`` (FAISS HNSW32, the library's default past 100k faces; 1M only by
default: a 10M graph needs ~8 GB and over an hour to build on 2 cores), ``ivf-sq8`` and ``ivf-fp16``
(FAISS IVF with 8-bit or 16-bit scalar codes: the compressed engines, ``index_engine`` ``IVF<n>,SQ8``
or ``IVF<n>,SQfp16``), ``milvus`` (Milvus Lite through facesearch's MilvusIndex; 1M only by default:
it inserts ~1k rows per request and searches FLAT), ``ivf-pqfs`` (issue 15: the refined fast-scan IVF,
``IVF<n>[_HNSW32],PQ64x4fsr,Refine(SQfp16)``, lists for the size as ``auto-ivfpq`` builds them:
store/vectors/refined.py), ``ivf-opq`` (issue 15, fourth pass: the same lists behind an OPQ rotation, codes
without residuals, ``OPQ64,IVF<n>,PQ64x4fs,Refine(SQfp16)``, as ``auto-opq`` builds them), and the graphs
over compressed codes of ``GRAPHS`` (issue 15, third pass: FAISS factory strings such as
``HNSW16,SQ8,Refine(SQfp16)``, swept over efSearch; bench only, not library engines).

Latency is wall-clock per query and, beside it, the search thread's CPU time: on a shared machine the
wall clock also counts time the thread waited for a core, the CPU time only what the search cost.

    .venv/bin/python -m bench.scale.engines                              # 1M and 10M (about an hour on 2 cores)
    .venv/bin/python -m bench.scale.engines --sizes 100000 --queries 100 # a quick look
    .venv/bin/python -m bench.scale.engines --sizes 10000000 --engines ivf-fp16,ivf-pqfs  # issue 15's run
    .venv/bin/python -m bench.scale.engines --sizes 1000000 --engines hnsw16-sq8,ivf-pqfs,ivf-fp16 --distractors people
    .venv/bin/python -m bench.scale.engines --sizes 1000000 --engines ivf-pqfs,ivf-opq  # fourth pass

Writes bench/out/scale.json. Real embeddings stay in memory; nothing about real people is written.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import tempfile
import time
from pathlib import Path

import faiss
import numpy as np

from bench.datasets import LFW_LIBRARY, OUT, library_faces
from bench.scale import search as base  # the galleries, distractors and timing helpers
from facesearch.store.vectors.faiss_index import VectorIndex, id_selector, refined_engine
from facesearch.store.vectors.hnsw import HNSW_EF_CONSTRUCTION

K = 10
TARGET_RECALL = 0.99
DELETED = 1_000
FILTER_SHARE = 0.10
SWEEPS = {
    "hnsw": ("ef_search", [128, 256, 512, 1024, 2048]),
    "ivf-sq8": ("nprobe", [32, 64, 128, 256, 512, 1024, 2048]),
    "ivf-fp16": ("nprobe", [32, 64, 128, 256, 512, 1024, 2048, 4096]),
    "ivf-pqfs": ("nprobe", [64, 128, 256, 320, 384, 512, 1024, 1536, 2048]),
    "ivf-opq": ("nprobe", [64, 128, 256, 320, 384, 512, 1024, 1536, 2048]),
    "milvus": (None, [0]),  # Milvus Lite searches FLAT (exact): nothing to sweep
}
# Issue 15, third pass: graphs over compressed codes, as FAISS factory strings (L2 on unit vectors ranks as inner
# product; FAISS's HNSW over PQ is L2-only), each with how many candidates per result its refinement re-ranks.
# HNSW<M>_PQ64 was left out: FAISS builds it by decoding a code per distance (30k faces not built in 4.5 min here).
GRAPHS = {
    "hnsw32-sq8": ("HNSW32,SQ8,Refine(SQfp16)", 4),  # 10M: 128 + 256 (links) + 256 (fp16) B a face: ~6.4 GB
    "hnsw16-sq8": ("HNSW16,SQ8,Refine(SQfp16)", 4),  # 10M: 128 + 128 + 256 B a face: ~5.1 GB
    "hnsw16-sq8-only": ("HNSW16,SQ8", 1),  # 10M: 128 + 128 B a face: ~2.6 GB, no refinement
}
SWEEPS.update({name: ("ef_search", [32, 64, 128, 256, 512, 1024, 2048, 4096]) for name in GRAPHS})
# hnsw: a 10M graph needs ~8 GB and over an hour to build on 2 cores; milvus: Lite inserts ~1k rows a
# request and searches FLAT; ivf-sq8: its 8-bit codes cap recall@10 below 0.99 already at 1M (see docs).
LIMITS = {"hnsw": 1_000_000, "milvus": 1_000_000, "ivf-sq8": 1_000_000}


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--library", type=Path, default=LFW_LIBRARY, help="facesearch library with LFW faces")
    parser.add_argument("--sizes", default="1000000,10000000")
    parser.add_argument("--engines", default="hnsw,ivf-sq8,ivf-fp16,ivf-pqfs,milvus")
    parser.add_argument("--queries", type=int, default=300)
    parser.add_argument("--no-limits", action="store_true", help="run every engine at every size")
    parser.add_argument("--seed", type=int, default=1234)
    parser.add_argument("--build-threads", type=int, default=os.cpu_count() or 1)
    base.add_distractor_arguments(parser)
    parser.add_argument("--output", type=Path, default=OUT / "scale.json")
    return parser.parse_args()


def ivf_engine(n: int, codec: str) -> str:
    """~4 sqrt(n) lists as a power of two, at most 8192 (k-means on 2 cores); an HNSW coarse quantiser
    past 4096 lists, so adding 10M faces does not scan every centroid."""
    nlist = min(8192, 1 << int(round(np.log2(4 * np.sqrt(n)))))
    return f"IVF{nlist}_HNSW32,{codec}" if nlist > 4096 else f"IVF{nlist},{codec}"


def exact_top_k(
    vectors: np.ndarray, ids: np.ndarray, queries: np.ndarray, allowed: np.ndarray | None = None
) -> np.ndarray:
    """The ids of the exact top-K per query: FAISS brute force over the gallery (or the allowed part of it)."""
    rows = np.arange(len(ids)) if allowed is None else np.flatnonzero(np.isin(ids, allowed))
    flat = faiss.IndexFlatIP(vectors.shape[1])
    for start in range(0, len(rows), 1_000_000):  # copied a million rows at a time
        flat.add(np.ascontiguousarray(vectors[rows[start : start + 1_000_000]]))
    _, found = flat.search(np.ascontiguousarray(queries, dtype=np.float32), K)
    return ids[rows[found]]


def exact_top_k_numpy(
    vectors: np.ndarray, ids: np.ndarray, queries: np.ndarray, allowed: np.ndarray | None = None
) -> np.ndarray:
    """Brute force in chunks with NumPy (no copy of the gallery): the reference exact_top_k is checked against."""
    best_scores = np.full((len(queries), K), -np.inf, np.float32)
    best_ids = np.full((len(queries), K), -1, np.int64)
    mask = None if allowed is None else np.isin(ids, allowed)
    for start in range(0, len(ids), 1_000_000):
        stop = start + 1_000_000
        sims = queries @ vectors[start:stop].T
        if mask is not None:
            sims[:, ~mask[start:stop]] = -np.inf
        scores = np.concatenate([best_scores, sims], axis=1)
        chunk_ids = np.concatenate([best_ids, np.broadcast_to(ids[start:stop], sims.shape)], axis=1)
        top = np.argpartition(-scores, K - 1, axis=1)[:, :K]
        best_scores = np.take_along_axis(scores, top, axis=1)
        best_ids = np.take_along_axis(chunk_ids, top, axis=1)
    order = np.argsort(-best_scores, axis=1)
    return np.take_along_axis(best_ids, order, axis=1)


# engines ----------------------------------------------------------------------------------------


class Engine:
    """One engine under test: build, set the search breadth, search, remove, measure its files."""

    def __init__(self, name: str, n: int, dim: int, folder: Path) -> None:
        self.name = name
        self.folder = folder
        if name == "hnsw":
            self.store = VectorIndex(dim, "HNSW32")
        elif name == "ivf-sq8":
            self.store = VectorIndex(dim, ivf_engine(n, "SQ8"))
        elif name == "ivf-fp16":
            self.store = VectorIndex(dim, ivf_engine(n, "SQfp16"))
        elif name == "ivf-pqfs":
            self.store = VectorIndex(dim, refined_engine(n))
        elif name == "ivf-opq":
            self.store = VectorIndex(dim, refined_engine(n, rotated=True))
        elif name in GRAPHS:
            self.store = GraphStore(dim, *GRAPHS[name])
        elif name == "milvus":
            from facesearch.store.vectors.milvus_index import MilvusIndex, MilvusSettings

            self.store = MilvusIndex.create(MilvusSettings(uri=str(folder / "vectors.milvus.db")), dim)
        else:
            raise SystemExit(f"unknown engine {name!r}")

    def add(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        for start in range(0, len(ids), 500_000):  # in pieces, as an ingest adds them
            self.store.add(ids[start : start + 500_000], vectors[start : start + 500_000])
        self.store.save(self.folder / "index.faiss" if self.name != "milvus" else self.folder / "vectors.milvus.json")

    def set_breadth(self, value: int) -> None:
        knob = SWEEPS[self.name][0]
        if knob:
            setattr(self.store, knob, value)

    def disk_bytes(self) -> int:
        return sum(p.stat().st_size for p in self.folder.rglob("*") if p.is_file())

    def close(self) -> None:
        if self.name == "milvus":
            self.store.close()

    @property
    def description(self) -> str:
        return self.store.engine if self.name != "milvus" else f"Milvus Lite {self.store.index_type}"


class GraphStore:
    """A raw FAISS graph index over compressed codes (``GRAPHS``) with the bench engines' interface: ids mapped to
    row numbers here (FAISS's IndexIDMap would not translate the selector it hands a refinement's base index),
    filters and removals as id selectors over rows, as ``VectorIndex`` builds them for its engines."""

    def __init__(self, dim: int, spec: str, k_factor: int) -> None:
        self.spec, self.k_factor = spec, k_factor
        self.index = faiss.index_factory(dim, spec, faiss.METRIC_L2)
        self.graph = faiss.downcast_index(self.index.base_index if k_factor > 1 else self.index)
        self.graph.hnsw.efConstruction = HNSW_EF_CONSTRUCTION
        self.ef_search = 64
        self.ids = np.zeros(0, np.int64)
        self.row_of = np.zeros(0, np.int64)
        self.dead = np.zeros(0, np.int64)
        self.live = np.zeros(0, np.int64)

    @property
    def engine(self) -> str:
        return self.spec + (f" (k x {self.k_factor})" if self.k_factor > 1 else "")

    def add(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        if not self.index.is_trained:  # SQ8 ranges from a sample of the first batch
            self.index.train(np.ascontiguousarray(vectors[:100_000]))
        self.index.add(np.ascontiguousarray(vectors, dtype=np.float32))
        self.ids = np.concatenate([self.ids, ids.astype(np.int64)])
        self.row_of = np.full(int(self.ids.max()) + 1, -1, np.int64)
        self.row_of[self.ids] = np.arange(len(self.ids))
        self.live = np.setdiff1d(np.arange(len(self.ids)), self.dead)

    def save(self, path: Path) -> None:
        faiss.write_index(self.index, str(path))
        np.save(path.with_suffix(".ids.npy"), self.ids)

    def search(self, queries: np.ndarray, k: int, allowed: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        params = faiss.SearchParametersHNSW()
        params.efSearch = self.ef_search
        rows = None
        if allowed is not None:
            rows = self.row_of[allowed[allowed < len(self.row_of)]]
            rows = rows[rows >= 0]
        if len(self.dead):
            rows = self.live if rows is None else np.setdiff1d(rows, self.dead)
        if rows is not None:
            params.sel = selector = id_selector(np.ascontiguousarray(rows, dtype=np.int64))
            params.keep_alive = selector
        if self.k_factor > 1:
            outer = faiss.IndexRefineSearchParameters()
            outer.k_factor = self.k_factor
            outer.base_index_params = params
            outer.keep_alive = params
            params = outer
        distances, found = self.index.search(np.ascontiguousarray(queries, dtype=np.float32), k, params=params)
        return 1 - distances / 2, np.where(found >= 0, self.ids[np.maximum(found, 0)], -1)

    def remove(self, ids: np.ndarray) -> int:
        """Tombstones (HNSW cannot delete in place), excluded from every later search."""
        rows = self.row_of[ids[ids < len(self.row_of)]]
        self.dead = np.union1d(self.dead, rows[rows >= 0])
        self.live = np.setdiff1d(np.arange(len(self.ids)), self.dead)  # once, not on every search
        return int((rows >= 0).sum())


def single_queries(
    store: object, queries: np.ndarray, allowed: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """One query per call on one thread (as a user's search runs): wall-clock and thread-CPU latencies in ms
    and the top-K ids."""
    faiss.omp_set_num_threads(1)
    for q in queries[:10]:
        store.search(q[None, :], K, allowed=allowed)  # type: ignore[attr-defined]
    latencies = np.empty((len(queries), 2))
    found = np.empty((len(queries), K), np.int64)
    for row, q in enumerate(queries):
        cpu, start = time.thread_time(), time.perf_counter()
        _, ids = store.search(q[None, :], K, allowed=allowed)  # type: ignore[attr-defined]
        latencies[row] = (time.perf_counter() - start) * 1000, (time.thread_time() - cpu) * 1000
        found[row] = ids[0]
    return latencies, found


def latency_cells(latencies: np.ndarray) -> dict:
    """p50/p99 of the wall clock and of the search thread's CPU time."""
    cpu = latencies[:, 1]
    return {
        **base.latency_row(latencies[:, 0]),
        "cpu_p50_ms": float(np.percentile(cpu, 50)),
        "cpu_p99_ms": float(np.percentile(cpu, 99)),
    }


def widen_for_filter(engine: Engine, start: int, queries: np.ndarray, truth: dict) -> list[dict]:
    """A graph keeps only allowed nodes in its beam, so a 10% filter loses recall at the unfiltered efSearch:
    the wider settings it needs, up to recall@10 >= 0.99 or the end of the sweep (issue 15, third pass)."""
    steps = []
    for value in [v for v in SWEEPS[engine.name][1] if v > start]:
        engine.set_breadth(value)
        latencies, found = single_queries(engine.store, queries, allowed=truth["allowed"])
        recall = base.recall_at_k(found, truth["filtered"])
        steps.append({"breadth": value, **latency_cells(latencies), "recall_at_10": round(recall, 4)})
        print(
            f"    filtered at {value}: p50 {steps[-1]['p50_ms']:.2f} ms (CPU {steps[-1]['cpu_p50_ms']:.2f}), "
            f"recall@10 {recall:.4f}",
            flush=True,
        )
        if recall >= TARGET_RECALL:
            break
    engine.set_breadth(start)
    return steps


def bench_engine(
    name: str, ids: np.ndarray, vectors: np.ndarray, queries: np.ndarray, truth: dict, args: argparse.Namespace
) -> dict:
    n = len(ids)
    with tempfile.TemporaryDirectory(prefix="facesearch-scale-") as tmp:  # outside the project tree
        faiss.omp_set_num_threads(args.build_threads)
        before = base.rss_bytes()
        start = time.perf_counter()
        engine = Engine(name, n, vectors.shape[1], Path(tmp))
        engine.add(ids, vectors)
        build_s = time.perf_counter() - start
        row: dict = {
            "engine": engine.description,
            "faces": n,
            "build_s": round(build_s, 1),
            "rss_bytes_per_face": round((base.rss_bytes() - before) / n, 1),
            "disk_bytes_per_face": round(engine.disk_bytes() / n, 1),
            "sweep": [],
        }
        print(
            f"  {name}: {row['engine']} built in {build_s:.0f} s; {row['rss_bytes_per_face']:.0f} B/face RSS, "
            f"{row['disk_bytes_per_face']:.0f} B/face on disk",
            flush=True,
        )
        knob, values = SWEEPS[name]
        point = None
        for value in values:
            engine.set_breadth(value)
            latencies, found = single_queries(engine.store, queries)
            recall = base.recall_at_k(found, truth["all"])
            step = {"breadth": value, **latency_cells(latencies), "recall_at_10": round(recall, 4)}
            row["sweep"].append(step)
            print(
                f"    {knob or 'exact'}={value}: p50 {step['p50_ms']:.2f} ms, p99 {step['p99_ms']:.2f} ms "
                f"(CPU {step['cpu_p50_ms']:.2f} / {step['cpu_p99_ms']:.2f}), recall@10 {recall:.4f}",
                flush=True,
            )
            if recall >= TARGET_RECALL:
                point = step
                break
        row["operating_point"] = point
        if point is not None:
            engine.set_breadth(point["breadth"])
        latencies, found = single_queries(engine.store, queries, allowed=truth["allowed"])
        row["filtered"] = {
            "allowed_share": FILTER_SHARE,
            **latency_cells(latencies),
            "all_results_allowed": bool(np.isin(found[found >= 0], truth["allowed"]).all()),
            "recall_at_10": round(base.recall_at_k(found, truth["filtered"]), 4),
        }
        if name in GRAPHS and point is not None:
            row["filtered_sweep"] = widen_for_filter(engine, point["breadth"], queries, truth)
        doomed = np.random.default_rng(args.seed).choice(ids, DELETED, replace=False)
        doomed = np.unique(np.concatenate([doomed, truth["all"][:, 0]]))  # every query's top hit goes too
        start = time.perf_counter()
        removed = engine.store.remove(doomed)
        delete_s = time.perf_counter() - start
        _, after = single_queries(engine.store, queries)
        row["delete"] = {
            "faces": int(len(doomed)),
            "removed": int(removed),
            "seconds": round(delete_s, 3),
            "none_returned_after": bool(not np.isin(after, doomed).any()),
        }
        print(
            f"    filtered ({FILTER_SHARE:.0%} allowed): p50 {row['filtered']['p50_ms']:.2f} ms "
            f"(CPU {row['filtered']['cpu_p50_ms']:.2f}), recall@10 "
            f"{row['filtered']['recall_at_10']:.4f}; delete {len(doomed)} faces: {delete_s:.2f} s, "
            f"gone from results: {row['delete']['none_returned_after']}",
            flush=True,
        )
        engine.close()
        shutil.rmtree(tmp, ignore_errors=True)
    return row


def main() -> None:
    args = parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    engines = [e.strip() for e in args.engines.split(",") if e.strip()]
    rng = np.random.default_rng(args.seed)
    real = library_faces(args.library)  # make_workload reads args.queries, match_percentile, cov_scale
    workload, check = base.make_workload(real, args, max(sizes), rng)
    base.print_check(check)
    report: dict = {"check": check, "queries": int(len(workload.queries)), "machine_cpus": os.cpu_count(), "sizes": {}}
    for n in sizes:
        ids, vectors = workload.ids[:n], workload.vectors[:n]
        print(f"\n{n:,} faces ({workload.n_real:,} real + {n - min(n, workload.n_real):,} distractors)", flush=True)
        faiss.omp_set_num_threads(args.build_threads)
        allowed = np.sort(np.random.default_rng(args.seed + 1).choice(ids, int(n * FILTER_SHARE), replace=False))
        start = time.perf_counter()
        truth = {
            "all": exact_top_k(vectors, ids, workload.queries),
            "filtered": exact_top_k(vectors, ids, workload.queries, allowed),
            "allowed": allowed,
        }
        print(f"  exact ground truth: {time.perf_counter() - start:.0f} s", flush=True)
        rows = {}
        for name in engines:
            if not args.no_limits and n > LIMITS.get(name, n):
                rows[name] = {"skipped": f"not run above {LIMITS[name]:,} faces (see the module docstring)"}
                print(f"  {name}: skipped ({rows[name]['skipped']})")
                continue
            try:
                rows[name] = bench_engine(name, ids, vectors, workload.queries, truth, args)
            except ImportError as exc:
                rows[name] = {"skipped": f"not installed: {exc}"}
                print(f"  {name}: skipped ({rows[name]['skipped']})", flush=True)
        report["sizes"][str(n)] = rows
        args.output.parent.mkdir(parents=True, exist_ok=True)
        args.output.write_text(json.dumps(report, indent=2, default=float) + "\n")
    print(f"\nwrote {args.output}")


if __name__ == "__main__":
    main()
