"""Load benchmark: POST /v1/search over real HTTP from concurrent clients against the real server.

The library is the face_recognition_examples photos (by_identity minus the probe photos, plus
multi_face), indexed with ``Library.open(path, jitter=0)``: the embedding recipe does not change the
cost of a search much, and the build takes seconds. ``--library PATH`` reuses a library instead (an
investigator user named ``load-bench-<time>`` is added to it). The probes are real photos held out of
the built library, cycled by every client.

The server is the real app (``create_app``) under Uvicorn on a free loopback port (``serving`` from
facesearch.web.background), run in a child process by default so that the clients' threads do not
share its interpreter lock (``--in-process`` serves from a thread of this process instead). The rate
limit is set high (``--rate-limit``, default 1,000,000 per minute) so that the limiter runs but does
not refuse; ``--default-rate-limit`` leaves create_app's default (120 per minute per user: expect
429s under load). Clients run on the same machine as the server, so they take some of its CPU.

First a baseline: 1 client for ``--baseline-seconds``; then ``--clients`` threads, each with its own
httpx.Client, post searches back to back for ``--seconds``. Printed and written per phase: requests,
throughput, p50/p95/p99/max latency of successful requests, and errors by status code.

    .venv/bin/python -m bench.speed.load                          # 8 clients for 20 s, after an 8 s baseline,
                                                                  # with 1 then 2 search workers
    .venv/bin/python -m bench.speed.load --clients 16 --seconds 60
    .venv/bin/python -m bench.speed.load --default-rate-limit     # see the limiter at work
    .venv/bin/python -m bench.speed.load --library bench/out/lfw-library

Writes bench/out/load.json. The built library lives in a temporary directory and is removed afterwards.
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import json
import multiprocessing
import os
import platform
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import numpy as np

from bench.datasets import OUT, examples_dir
from facesearch import Library
from facesearch.api import create_app
from facesearch.governance.users import add_user
from facesearch.web.background import serving

PROBES = (  # held out of the built library: new photos of people in it
    "by_identity/barack_obama/obama.jpg",
    "by_identity/joe_biden/biden2.jpg",
    "by_identity/kit_harington/johnsnow_test1.jpg",
    "by_identity/rose_leslie/img2.jpg",
)
HIGH_RATE_LIMIT = 1_000_000
DEFAULT_RATE_LIMIT = 120  # create_app's default
FORM = {"case_id": "load-bench", "purpose": "load benchmark of the search API", "top_k": "20"}


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--library", type=Path, default=None, help="reuse this library (default: build one)")
    parser.add_argument(
        "--examples", type=Path, default=None, help="face_recognition_examples folder (default: the data folder's)"
    )
    parser.add_argument("--clients", type=int, default=8, help="concurrent clients under load")
    parser.add_argument("--seconds", type=float, default=20.0, help="duration of the loaded phase")
    parser.add_argument("--baseline-seconds", type=float, default=8.0, help="duration of the 1-client phase")
    parser.add_argument("--warmup", type=int, default=3, help="untimed searches before the baseline")
    parser.add_argument("--rate-limit", type=int, default=HIGH_RATE_LIMIT, help="per user, per minute")
    parser.add_argument(
        "--default-rate-limit",
        action="store_true",
        help=f"leave create_app's default rate limit ({DEFAULT_RATE_LIMIT} per minute)",
    )
    parser.add_argument("--in-process", action="store_true", help="serve from a thread of this process")
    parser.add_argument(
        "--search-workers",
        type=int,
        nargs="+",
        default=[1, 2],
        help="serve once per value (probes embedded at once) and compare the loaded throughput to the first",
    )
    parser.add_argument("--output", type=Path, default=OUT / "load.json")
    return parser.parse_args()


# the library and the server ----------------------------------------------------------------------


def build_library(folder: Path, examples: Path) -> dict:
    held_out = {examples / p for p in PROBES}
    files = [str(p) for p in sorted((examples / "by_identity").rglob("*")) if p.is_file() and p not in held_out]
    started = time.perf_counter()
    with Library.open(folder, jitter=0) as lib:
        for name in ("examples", "groups"):
            lib.create_collection(name)
        portraits = lib.index(files, collection="examples", workers=1).indexed
        groups = lib.index([examples / "multi_face"], collection="groups", workers=1).indexed
    return {"portraits": portraits, "group_photos": groups, "build_s": round(time.perf_counter() - started, 2)}


def new_key(folder: Path) -> str:
    with Library.open(folder) as lib:
        _, key = add_user(lib.catalog, f"load-bench-{int(time.time())}", "investigator")
    return key


def _serve_child(library: str, options: dict, urls: multiprocessing.Queue, stop: threading.Event) -> None:
    """The child process: serve until the parent sets ``stop``."""
    try:
        with serving(create_app(Path(library), **options)) as url:
            urls.put(url)
            stop.wait()
    except BaseException as exc:  # tell the parent rather than leave it waiting
        urls.put(exc)
        raise


@contextlib.contextmanager
def server(library: Path, options: dict, in_process: bool) -> Iterator[str]:
    """The base URL of the real app (``create_app(library, **options)``) served by Uvicorn on loopback,
    in a child process or a thread."""
    if in_process:
        with serving(create_app(library, **options)) as url:
            yield url
        return
    ctx = multiprocessing.get_context("spawn")
    urls, stop = ctx.Queue(), ctx.Event()
    child = ctx.Process(target=_serve_child, args=(str(library), options, urls, stop), daemon=True)
    child.start()
    try:
        url = urls.get(timeout=120)
        if isinstance(url, BaseException):
            raise RuntimeError(f"the server did not start: {url!r}")
        yield url
    finally:
        stop.set()
        child.join(timeout=20)
        if child.is_alive():
            child.terminate()
            child.join()


# the load ----------------------------------------------------------------------------------------


@dataclass
class Tally:
    latencies_ms: list[float] = field(default_factory=list)
    statuses: Counter = field(default_factory=Counter)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, status: int | str, ms: float) -> None:
        with self.lock:
            self.statuses[status] += 1
            if status == 200:
                self.latencies_ms.append(ms)


def client_loop(url: str, key: str, probes: list[bytes], start: int, deadline: float, tally: Tally) -> None:
    headers = {"Authorization": f"Bearer {key}"}
    with httpx.Client(base_url=url, headers=headers, timeout=120.0) as client:
        for i in itertools.count(start):
            if time.perf_counter() >= deadline:
                return
            files = {"probe": ("probe.jpg", probes[i % len(probes)], "image/jpeg")}
            t0 = time.perf_counter()
            try:
                status: int | str = client.post("/v1/search", files=files, data=FORM).status_code
            except httpx.HTTPError as exc:
                status = type(exc).__name__
            tally.add(status, (time.perf_counter() - t0) * 1000.0)


def warm_up(url: str, key: str, probes: list[bytes], n: int) -> None:
    """Untimed searches (the first loads the models); stop at once if a search fails."""
    with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {key}"}, timeout=120.0) as client:
        for i in range(n):
            files = {"probe": ("probe.jpg", probes[i % len(probes)], "image/jpeg")}
            response = client.post("/v1/search", files=files, data=FORM)
            if response.status_code != 200:
                raise SystemExit(f"warm-up search failed: {response.status_code} {response.text[:500]}")


def run_phase(url: str, key: str, probes: list[bytes], clients: int, seconds: float) -> dict:
    tally = Tally()
    started = time.perf_counter()
    deadline = started + seconds
    threads = [
        threading.Thread(target=client_loop, args=(url, key, probes, n, deadline, tally), daemon=True)
        for n in range(clients)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - started  # includes the requests in flight at the deadline
    lat = np.array(tally.latencies_ms)
    total = sum(tally.statuses.values())
    ok = tally.statuses.get(200, 0)

    def pct(q: float) -> float | None:
        return round(float(np.percentile(lat, q)), 1) if len(lat) else None

    return {
        "clients": clients,
        "seconds": round(elapsed, 2),
        "requests": total,
        "ok": ok,
        "throughput_rps": round(total / elapsed, 2),
        "ok_throughput_rps": round(ok / elapsed, 2),
        "latency_ms": {
            "mean": round(float(lat.mean()), 1) if len(lat) else None,
            "p50": pct(50),
            "p95": pct(95),
            "p99": pct(99),
            "max": round(float(lat.max()), 1) if len(lat) else None,
        },
        "errors": {str(s): n for s, n in sorted(tally.statuses.items(), key=str) if s != 200},
    }


def show(name: str, phase: dict) -> None:
    lat = phase["latency_ms"]
    errors = ", ".join(f"{s}: {n}" for s, n in phase["errors"].items()) or "none"
    print(
        f"{name:<9} {phase['clients']:>2} client(s)  {phase['requests']:>5} requests in {phase['seconds']:.1f} s  "
        f"{phase['throughput_rps']:7.2f} req/s   latency ms p50 {lat['p50']}  p95 {lat['p95']}  p99 {lat['p99']}  "
        f"max {lat['max']}   errors: {errors}"
    )


def ratios(baseline: dict, loaded: dict) -> dict:
    base, load = baseline["latency_ms"], loaded["latency_ms"]
    return {
        "p50_latency": round(load["p50"] / base["p50"], 2) if base["p50"] and load["p50"] else None,
        "p95_latency": round(load["p95"] / base["p95"], 2) if base["p95"] and load["p95"] else None,
        "throughput": round(loaded["throughput_rps"] / baseline["throughput_rps"], 2)
        if baseline["throughput_rps"]
        else None,
    }


def main() -> None:
    args = parse_args()
    rate_limit = None if args.default_rate_limit else args.rate_limit
    args.examples = args.examples or examples_dir()
    probes = [(args.examples / p).read_bytes() for p in PROBES]
    with tempfile.TemporaryDirectory(prefix="facesearch-load-") as tmp:
        if args.library is None:
            library = Path(tmp) / "lib"
            built = build_library(library, args.examples)
            print(f"built {library} (jitter=0): {built}", flush=True)
        else:
            library, built = args.library, None
        key = new_key(library)
        runs = []
        for workers in args.search_workers:
            options = {"search_workers": workers}
            if rate_limit is not None:
                options["rate_limit_per_minute"] = rate_limit
            with server(library, options, args.in_process) as url:
                where = "in-process thread" if args.in_process else "child process"
                limit = rate_limit or DEFAULT_RATE_LIMIT
                print(f"serving {url} ({where}), {workers} search worker(s), rate limit {limit}/min per user")
                warm_up(url, key, probes, args.warmup)
                baseline = run_phase(url, key, probes, 1, args.baseline_seconds)
                show("baseline", baseline)
                loaded = run_phase(url, key, probes, args.clients, args.seconds)
                show("loaded", loaded)
            runs.append(
                {"search_workers": workers, "baseline": baseline, "loaded": loaded, "ratios": ratios(baseline, loaded)}
            )
            print(f"loaded / baseline: {runs[-1]['ratios']}", flush=True)
    first = runs[0]["loaded"]["throughput_rps"]
    for run in runs[1:]:
        run["throughput_over_first"] = round(run["loaded"]["throughput_rps"] / first, 2) if first else None
        print(
            f"{run['search_workers']} vs {runs[0]['search_workers']} search workers, loaded throughput: "
            f"x{run['throughput_over_first']}"
        )
    report = {
        "library": "built from face_recognition_examples, jitter=0" if built else str(args.library),
        "built": built,
        "probes": list(PROBES),
        "server": "in-process thread" if args.in_process else "child process",
        "rate_limit_per_minute": rate_limit or DEFAULT_RATE_LIMIT,
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "platform": sys.platform},
        "runs": runs,
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
