"""HNSW search breadth shared by the FAISS and Milvus engines: both build the same kind of graph, so a
library's recall does not depend on which engine holds its vectors."""

from __future__ import annotations

HNSW_EF_CONSTRUCTION = 80
HNSW_EF_SEARCH = 0  # 0: adaptive, see adaptive_ef_search()
HNSW_EF_AT_100K = 256


def adaptive_ef_search(n: int) -> int:
    """efSearch that keeps recall@10 >= 0.99 as the gallery grows (measured: bench/scale/search.py).

    HNSW32 needed efSearch 256 at 100k faces (recall@10 0.997, p50 1.0 ms) and 1024 at 1M (0.996,
    p50 5.6 ms) on galleries of real LFW faces plus matched synthetic distractors; recall at a fixed
    efSearch falls as the graph grows, roughly as n^0.6 keeps it level between those points.
    """
    return int(min(4096, max(64, round(HNSW_EF_AT_100K * max(n / 100_000, 0.25) ** 0.6))))
