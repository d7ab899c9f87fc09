"""Milvus Lite search latency at N faces, for choosing the milvus-lite version and index type.

Plain pymilvus (no facesearch import), so the same script runs in any virtualenv holding any
pymilvus + milvus-lite pair: the numbers compare versions, not our wrapper. It builds the
collection exactly as store/vectors/milvus_index.py does (int64 id, float vector, int64 collection id,
metric IP, Strong consistency), inserts N random unit vectors (latency does not depend on the
data; recall does, and random 128-d vectors are the hardest case for IVF), and times single-query
searches (top 20, one query per call, as a user's search does), unfiltered and filtered to one
collection (a third of the faces) by the scalar field. Recall@10 is against exact numpy search;
``mates_found`` is what matters for faces: queries are noisy copies of gallery vectors at cosine
0.93 (a typical same-person score of dlib's ResNet), and the share whose mate is in the top 10.
IVF_FLAT is searched at nprobe = nlist/16 and at nprobe = nlist (which must be exact).

    .venv/bin/python -m bench.scale.milvus_latency                       # 20k faces, FLAT and IVF_FLAT
    .venv/bin/python -m bench.scale.milvus_latency --sizes 20000,100000 --queries 200

Writes bench/out/milvus-latency-<pymilvus>-<milvus-lite>.json.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import tempfile
import time
import warnings
from importlib.metadata import version
from pathlib import Path

import numpy as np

from bench.datasets import OUT

log = logging.getLogger("bench.scale.milvus_latency")

DIM = 128
TOP = 20
RECALL_AT = 10
WARMUP = 10
MATE_COSINE = 0.93


def unit(rng: np.random.Generator, n: int) -> np.ndarray:
    v = rng.standard_normal((n, DIM)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def build(client, name: str, index_type: str, vectors: np.ndarray) -> tuple[float, list[dict]]:  # type: ignore[no-untyped-def]
    from pymilvus import DataType, MilvusClient

    schema = MilvusClient.create_schema(auto_id=False, enable_dynamic_field=False)
    schema.add_field("id", DataType.INT64, is_primary=True)
    schema.add_field("embedding", DataType.FLOAT_VECTOR, dim=DIM)
    schema.add_field("collection_id", DataType.INT64)
    nlist = int(max(64, round(4 * math.sqrt(len(vectors)))))
    params = {"nlist": nlist} if index_type == "IVF_FLAT" else {}
    index = client.prepare_index_params()
    index.add_index(field_name="embedding", index_type=index_type, metric_type="IP", params=params)
    client.create_collection(name, schema=schema, index_params=index, consistency_level="Strong")
    start = time.perf_counter()
    for lo in range(0, len(vectors), 1_000):  # as store/vectors/milvus_index.py: bigger requests are slower on Lite
        rows = [
            {"id": i, "embedding": vectors[i], "collection_id": i % 3} for i in range(lo, min(len(vectors), lo + 1_000))
        ]
        client.insert(name, rows)
    client.flush(name)
    client.load_collection(name)
    if index_type == "IVF_FLAT":
        settings = [{"nprobe": max(1, round(nlist / 16))}, {"nprobe": nlist}]
    else:
        settings = [{}]
    return time.perf_counter() - start, [{"metric_type": "IP", "params": p} for p in settings]


def timed(client, name: str, queries: np.ndarray, search: dict, expr: str) -> tuple[list[float], list[list[int]]]:  # type: ignore[no-untyped-def]
    times, found = [], []
    for i, q in enumerate(queries):
        start = time.perf_counter()
        hits = client.search(name, data=[q], limit=TOP, filter=expr, search_params=search, consistency_level="Strong")
        if i >= WARMUP:
            times.append(time.perf_counter() - start)
        found.append([int(h["id"]) for h in hits[0]])
    return times, found


def recall(found: list[list[int]], exact: np.ndarray) -> float:
    return float(
        np.mean(
            [
                len(set(f[:RECALL_AT]) & set(e[:RECALL_AT].tolist())) / RECALL_AT
                for f, e in zip(found, exact, strict=True)
            ]
        )
    )


def mates(rng: np.random.Generator, vectors: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """n queries at cosine MATE_COSINE to n gallery vectors (their mates), and the mates' ids."""
    ids = rng.choice(len(vectors), n, replace=False)
    noise = unit(rng, n)
    noise -= (noise * vectors[ids]).sum(axis=1, keepdims=True) * vectors[ids]  # orthogonal to the mate
    noise /= np.linalg.norm(noise, axis=1, keepdims=True)
    return vectors[ids] * MATE_COSINE + noise * np.sqrt(1 - MATE_COSINE**2), ids


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", default="20000")
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--index", default="FLAT,IVF_FLAT")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from pymilvus import MilvusClient

    versions = {"pymilvus": version("pymilvus"), "milvus-lite": version("milvus-lite")}
    log.info("pymilvus %(pymilvus)s, milvus-lite %(milvus-lite)s", versions)
    rng = np.random.default_rng(0)
    results = []
    for n in (int(s) for s in args.sizes.split(",")):
        vectors = unit(rng, n)
        queries = unit(rng, args.queries + WARMUP)
        members = np.arange(n) % 3 == 0
        sims = queries @ vectors.T
        exact_all = np.argsort(-sims, axis=1)[:, :RECALL_AT]
        masked = np.where(members[None, :], sims, -np.inf)
        exact_one = np.argsort(-masked, axis=1)[:, :RECALL_AT]
        mate_queries, mate_ids = mates(rng, vectors, args.queries)
        for index_type in args.index.split(","):
            with tempfile.TemporaryDirectory() as tmp:
                start = time.perf_counter()
                client = MilvusClient(str(Path(tmp) / "bench.db"))
                opened = time.perf_counter() - start
                insert_s, settings = build(client, "faces", index_type, vectors)
                for search in settings:
                    t_all, f_all = timed(client, "faces", queries, search, "")
                    t_one, f_one = timed(client, "faces", queries, search, "collection_id == 0")
                    _, f_mate = timed(client, "faces", mate_queries, search, "")
                    found = np.mean([m in f[:RECALL_AT] for m, f in zip(mate_ids.tolist(), f_mate, strict=True)])
                    row = {
                        **versions,
                        "faces": n,
                        "index": index_type,
                        "search_params": search["params"],
                        "open_s": round(opened, 2),
                        "insert_and_flush_s": round(insert_s, 2),
                        "p50_ms": round(1000 * float(np.median(t_all)), 2),
                        "p90_ms": round(1000 * float(np.percentile(t_all, 90)), 2),
                        "recall_at_10": round(recall(f_all[WARMUP:], exact_all[WARMUP:]), 3),
                        "filtered_p50_ms": round(1000 * float(np.median(t_one)), 2),
                        "filtered_p90_ms": round(1000 * float(np.percentile(t_one, 90)), 2),
                        "filtered_recall_at_10": round(recall(f_one[WARMUP:], exact_one[WARMUP:]), 3),
                        "mates_found": round(float(found), 3),
                    }
                    log.info(json.dumps(row))
                    results.append(row)
                client.close()
    OUT.mkdir(parents=True, exist_ok=True)
    out = OUT / f"milvus-latency-{versions['pymilvus']}-{versions['milvus-lite']}.json"
    out.write_text(json.dumps(results, indent=2) + "\n")
    log.info("wrote %s", out)


if __name__ == "__main__":
    main()
