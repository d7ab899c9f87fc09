"""Issue 15: s-norm's cohort scores and BLAS threads: search latency p50/p99, idle and under load, per way
of computing them, all in one run.

Why: every search of a library of >= 500 faces normalises its scores against a cohort of 2,000 of the
library's faces (search/normalize.py): the probe's cohort scores (one 1x128 @ 128x2000 product; with
the candidates not yet cached, 51 rows). NumPy hands that product to OpenBLAS, which wakes its own
threads (two here). Alone that costs nothing; on a busy machine the caller waits until the woken
thread gets a core, and the search's tail latency grows. What is compared, interleaved in blocks so
that the machine's other load falls on every variant alike:

- ``today``: NumPy's matmul with OpenBLAS's default threads (the code as it was before issue 15).
- ``blas-1-scoped``: the same product inside ``threadpoolctl.threadpool_limits(1, "blas")`` per call, on
  the searching thread (process-global underneath: concurrent calls enter and leave it; with NumPy's
  OpenBLAS 0.3.31 a count set from a thread other than the main one was at times not applied at all).
- ``blas-1-process``: one BLAS thread for the whole process (``threadpool_limits(1, "blas")`` set once
  for the block), as a server could set at start.
- ``einsum``: ``np.einsum`` without ``optimize``: NumPy's own SIMD loops on the calling thread, no BLAS.
- ``faiss-1``: FAISS's exhaustive inner-product top-(100+1) search on one OpenMP thread (no BLAS below 20
  query rows), self-matches dropped.
- ``product``: ``CohortNormalizer.stats`` as the checkout has it (after issue 15: up to 64 rows scored by
  ``faiss.fvec_inner_products_ny`` row by row, SIMD on the calling thread, no BLAS, no OpenMP).

Levels (``--levels``), on the lfw-dev library that ``bench.speed.ingest`` leaves (``--library``; a
temporary copy is searched, so the audit entries of the ``search`` level do not land in it); probes are
real indexed faces of it:

- ``snorm``: ``normalize`` exactly as a search calls it (the probe's row, the 50 candidates' statistics
  from the per-face cache: the steady state of a server).
- ``cold``: the statistics of 51 rows (the probe and 50 candidates no search has met yet).
- ``search``: the real search path, ``Library.search(probe_face_id=...)`` (vector search, s-norm,
  labels, the audit entry in SQLite; no photo decoding or embedding, which would bury the difference
  under ~300 ms of detection), every candidate's statistics cached (a server's steady state).
- ``search-cold``: the same with the per-face cache emptied before each search: every search meets 50
  candidates no search has met, as in a large library.

Load: ``--load N`` busy processes (pure-Python loops) beside the benchmark, e.g. ``--load 0 3`` (idle,
then 3 busy processes on a 2-core machine). ``--threads``: concurrent callers in this process (a server
runs its searches in threads).

    .venv/bin/python -m bench.speed.snorm_threads                       # idle and 3 busy processes, 1 and 2 threads
    .venv/bin/python -m bench.speed.snorm_threads --levels snorm --rounds 20 --block 200

Writes bench/out/snorm_threads.json. Needs threadpoolctl for the ``blas-1-*`` variants (it comes with
SciPy and the ``eval`` extra's scikit-learn; facesearch itself does not use it).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import multiprocessing
import os
import platform
import shutil
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import faiss
import numpy as np
from threadpoolctl import threadpool_info, threadpool_limits

from bench.datasets import LFW_LIBRARY, OUT, require
from facesearch import Library
from facesearch.search.normalize import SELF_MATCH, CohortNormalizer
from facesearch.search.purposes import SearchPurpose

Stats = Callable[[CohortNormalizer, np.ndarray], tuple[np.ndarray, np.ndarray]]
PRODUCT_STATS = CohortNormalizer.stats  # as this checkout has it, taken before any variant is swapped in
PURPOSE = SearchPurpose("snorm-bench", "benchmark of s-norm under load")
LEVELS = ["snorm", "cold", "search", "search-cold"]
DEPTH = 50  # search/service.py RERANK_DEPTH: the raw candidates a search re-ranks


def numpy_blas_threads() -> int:
    """NumPy's own BLAS's thread count (FAISS brings a second OpenBLAS, run by OpenMP)."""
    blas = [i for i in threadpool_info() if i["user_api"] == "blas"]
    return next((i for i in blas if "numpy" in i["filepath"]), blas[0])["num_threads"]


START_BLAS_THREADS = numpy_blas_threads()


# the variants ------------------------------------------------------------------------------------


def top_stats(scores: np.ndarray, top: int) -> tuple[np.ndarray, np.ndarray]:
    """Mean and std of each row's ``top`` highest scores, self-matches left out (as search/normalize.py)."""
    scores[scores >= SELF_MATCH] = -np.inf
    best = -np.partition(-scores, top - 1, axis=1)[:, :top]
    return best.mean(axis=1), np.maximum(best.std(axis=1), 1e-6)


def stats_today(norm: CohortNormalizer, vectors: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return top_stats(np.atleast_2d(vectors).astype(np.float32) @ norm.cohort.T, norm.top)


def stats_blas_scoped(norm: CohortNormalizer, vectors: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    with threadpool_limits(1, user_api="blas"):
        scores = np.atleast_2d(vectors).astype(np.float32) @ norm.cohort.T
    return top_stats(scores, norm.top)


def stats_einsum(norm: CohortNormalizer, vectors: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return top_stats(np.einsum("ij,kj->ik", np.atleast_2d(vectors).astype(np.float32), norm.cohort), norm.top)


def stats_faiss(norm: CohortNormalizer, vectors: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    rows = np.ascontiguousarray(np.atleast_2d(vectors), dtype=np.float32)
    previous = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(1)
    try:
        best, _ = faiss.knn(rows, norm.cohort, norm.top + 1, metric=faiss.METRIC_INNER_PRODUCT)
    finally:
        faiss.omp_set_num_threads(previous)
    best = np.where(best >= SELF_MATCH, -np.inf, best)
    best = -np.sort(-best, axis=1)[:, : norm.top]  # a self-match sorts last and drops out
    return best.mean(axis=1), np.maximum(best.std(axis=1), 1e-6)


VARIANTS: dict[str, Stats] = {
    "today": stats_today,
    "blas-1-scoped": stats_blas_scoped,
    "blas-1-process": stats_today,  # with one BLAS thread for the whole block (see ``block_setting``)
    "einsum": stats_einsum,
    "faiss-1": stats_faiss,
    "product": PRODUCT_STATS,
}


@contextlib.contextmanager
def block_setting(variant: str) -> Iterator[None]:
    """The process-wide setting a variant runs under (only ``blas-1-process`` has one)."""
    if variant == "blas-1-process":
        with threadpool_limits(1, user_api="blas"):
            yield
    else:
        yield


@contextlib.contextmanager
def swapped_stats(stats: Stats) -> Iterator[None]:
    """``CohortNormalizer.stats`` replaced by a variant for the block (the search level's real path calls it)."""
    CohortNormalizer.stats = stats  # type: ignore[method-assign]
    try:
        yield
    finally:
        CohortNormalizer.stats = PRODUCT_STATS  # type: ignore[method-assign]


# the load ----------------------------------------------------------------------------------------


def _spin(stop: threading.Event, parent: int) -> None:
    while not stop.is_set() and os.getppid() == parent:  # stops too if the benchmark is killed
        sum(i * i for i in range(20_000))


@contextlib.contextmanager
def busy_processes(count: int) -> Iterator[None]:
    """``count`` processes spinning on the CPU beside the benchmark."""
    ctx = multiprocessing.get_context("spawn")
    stop = ctx.Event()
    procs = [ctx.Process(target=_spin, args=(stop, os.getpid()), daemon=True) for _ in range(count)]
    for p in procs:
        p.start()
    time.sleep(0.5 if count else 0)  # let them start spinning (a warm-up, not an ordering assumption)
    try:
        yield
    finally:
        stop.set()
        for p in procs:
            p.join(timeout=10)
            if p.is_alive():
                p.terminate()


# the levels --------------------------------------------------------------------------------------


class Workload:
    """The real library, its normaliser and probes; ``call(level, i)`` runs the i-th probe's operation once."""

    def __init__(self, folder: Path, probes: int) -> None:
        self.lib = Library.open(folder)
        norm = CohortNormalizer.from_catalog(self.lib.catalog)
        if norm is None:
            raise SystemExit(f"{folder} has fewer than 500 faces: s-norm does not run on it")
        self.norm = norm
        ids = self.lib.catalog.all_face_ids()
        self.face_ids = np.random.default_rng(1).choice(ids, size=min(probes, len(ids)), replace=False)
        self.probes = self.lib.catalog.embeddings_of(self.face_ids).astype(np.float32)
        raw, found = self.lib.searches.index.current.search(self.probes, DEPTH)
        self.raw = raw.astype(np.float64)
        self.cand_ids = found
        self.candidates = [self.lib.catalog.embeddings_of(row) for row in found]
        served = self.lib.searches.scoring.normalizer  # the normaliser the search level's searches use
        assert served is not None
        self.served = served
        for i in range(len(self.probes)):  # fill the per-face caches: a server's steady state
            self.norm.normalize(self.raw[i], self.probes[i], self.candidates[i], self.cand_ids[i])
            served.face_stats(self.cand_ids[i], self.candidates[i])

    def call(self, level: str, i: int) -> None:
        i %= len(self.probes)
        if level == "snorm":
            self.norm.normalize(self.raw[i], self.probes[i], self.candidates[i], self.cand_ids[i])
        elif level == "cold":
            self.norm.stats(np.vstack([self.probes[i][None], self.candidates[i]]))
        else:
            if level == "search-cold":  # as when a search meets faces no search has met (a large library)
                self.served._face_stats = {}
            self.lib.search(None, purpose=PURPOSE, probe_face_id=int(self.face_ids[i]), top_k=20)


def timed_block(work: Workload, level: str, threads: int, calls: int, start: int) -> list[float]:
    """``threads`` callers, each making ``calls`` calls back to back; every call's latency in ms."""
    out: list[list[float]] = [[] for _ in range(threads)]
    go = threading.Barrier(threads)

    def caller(n: int) -> None:
        go.wait()
        for c in range(calls):
            t0 = time.perf_counter()
            work.call(level, start + n * calls + c)
            out[n].append((time.perf_counter() - t0) * 1000.0)

    pool = [threading.Thread(target=caller, args=(n,)) for n in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    return [ms for lat in out for ms in lat]


def summary(latencies: list[float]) -> dict:
    lat = np.asarray(latencies)
    return {
        "calls": len(lat),
        "p50_ms": round(float(np.percentile(lat, 50)), 3),
        "p90_ms": round(float(np.percentile(lat, 90)), 3),
        "p99_ms": round(float(np.percentile(lat, 99)), 3),
        "max_ms": round(float(lat.max()), 3),
    }


def run_phase(work: Workload, level: str, variants: list[str], threads: int, rounds: int, block: int) -> dict:
    """Every variant ``rounds`` times for ``block`` calls per thread, in rotating order.

    Before each block BLAS's thread count is put back to what the process started with: a variant that
    leaves it changed (``blas-1-scoped`` under concurrent callers) is counted in ``left_blas_changed``
    instead of silently handing its setting to the next variant."""
    lat: dict[str, list[float]] = {v: [] for v in variants}
    cpu: dict[str, float] = dict.fromkeys(variants, 0.0)
    leaks: dict[str, int] = dict.fromkeys(variants, 0)
    for r in range(rounds):
        for k in range(len(variants)):
            variant = variants[(r + k) % len(variants)]
            threadpool_limits(START_BLAS_THREADS, user_api="blas")  # no ``with``: sets it and leaves it
            cpu0 = time.process_time()
            with block_setting(variant), swapped_stats(VARIANTS[variant]):
                lat[variant] += timed_block(work, level, threads, block, r * block * threads)
            cpu[variant] += time.process_time() - cpu0
            leaks[variant] += numpy_blas_threads() != START_BLAS_THREADS
    rows = {v: summary(lat[v]) for v in variants}
    for v, row in rows.items():
        row["cpu_ms_per_call"] = round(1000.0 * cpu[v] / row["calls"], 3)
        row["left_blas_changed"] = leaks[v]
    base = rows.get("today")
    for row in rows.values():
        if base:
            row["p50_vs_today"] = round(row["p50_ms"] / base["p50_ms"], 3)
            row["p99_vs_today"] = round(row["p99_ms"] / base["p99_ms"], 3)
    return rows


def check_same(work: Workload, variants: list[str]) -> dict[str, float]:
    """Each variant's largest difference from today's statistics on the probes (they must agree to float error)."""
    rows = np.vstack([work.probes[:1], work.candidates[0]])  # a search's 51 rows
    mu0, sd0 = stats_today(work.norm, rows)
    out = {}
    for v in variants:
        with block_setting(v):
            mu, sd = VARIANTS[v](work.norm, rows)
        out[v] = float(max(np.abs(mu - mu0).max(), np.abs(sd - sd0).max()))
    return out


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--library", type=Path, default=LFW_LIBRARY, help="a library of >= 500 faces")
    parser.add_argument("--levels", nargs="+", default=LEVELS, choices=LEVELS)
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    parser.add_argument("--load", type=int, nargs="+", default=[0, 3], help="busy processes, one phase per value")
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2], help="concurrent callers")
    parser.add_argument("--rounds", type=int, default=10, help="blocks per variant per phase")
    parser.add_argument(
        "--block", type=int, default=100, help="calls per thread per block (cold: a half, search: a fifth)"
    )
    parser.add_argument("--probes", type=int, default=500, help="indexed faces used as probes")
    parser.add_argument("--output", type=Path, default=OUT / "snorm_threads.json")
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    require(args.library, "the lfw-dev library (run bench.speed.ingest first, or pass --library)")
    results: list[dict] = []
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "library"
        shutil.copytree(args.library, folder)
        work = Workload(folder, args.probes)
        print(f"library {args.library}: {len(work.lib.catalog.all_face_ids())} faces; cohort {work.norm.cohort.shape}")
        agree = check_same(work, args.variants)
        print("largest difference from today's mu/sd:", {k: f"{v:.1e}" for k, v in agree.items()})
        for load in args.load:
            with busy_processes(load):
                load_avg = os.getloadavg()[0]
                for level in args.levels:
                    block = max(1, args.block // {"snorm": 1, "cold": 2, "search": 5, "search-cold": 5}[level])
                    for threads in args.threads:
                        rows = run_phase(work, level, args.variants, threads, args.rounds, block)
                        for variant, row in rows.items():
                            row.update(level=level, load=load, threads=threads, variant=variant)
                            results.append(row)
                            print(
                                f"load {load} ({load_avg:.1f}) {level:6} threads {threads} {variant:15}"
                                f" p50 {row['p50_ms']:8.3f}  p99 {row['p99_ms']:8.3f}  max {row['max_ms']:8.2f}"
                                f"  cpu {row['cpu_ms_per_call']:7.3f}  leaks {row['left_blas_changed']}"
                                f"  x{row.get('p50_vs_today', 1):.2f} / x{row.get('p99_vs_today', 1):.2f}"
                            )
        work.lib.close()
    args.output.parent.mkdir(parents=True, exist_ok=True)
    report = {
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "numpy": np.__version__,
            "blas_threads": START_BLAS_THREADS,
        },
        "library": str(args.library),
        "max_difference_from_today": agree,
        "results": results,
    }
    args.output.write_text(json.dumps(report, indent=1))
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
