"""The s-norm threshold with the same meaning as the cosine default: FMR 1e-3 per comparison.

Uses the lfw-dev library left by bench/speed/ingest.py: a 2,000-face cohort sampled as the library does,
then 200,000 random different-person pairs among the other faces (person = photo folder, single-face
photos only). Prints the 99.9th percentile of impostor scores, raw cosine and s-normalised.

    .venv/bin/python -m bench.accuracy.snorm_threshold [--library bench/out/lfw-library]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from sqlalchemy import select

from bench.datasets import LFW_LIBRARY
from facesearch.search.normalize import COHORT_SIZE, CohortNormalizer
from facesearch.store.catalog import Catalog
from facesearch.store.schema import FaceRow, ImageRow


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--library", type=Path, default=LFW_LIBRARY)
    parser.add_argument("--pairs", type=int, default=200_000)
    args = parser.parse_args()
    catalog = Catalog(args.library / "catalog.sqlite")
    with catalog.session() as s:
        rows = s.execute(
            select(FaceRow.id, FaceRow.embedding, ImageRow.source).join(ImageRow).where(ImageRow.face_count == 1)
        ).all()
    ids = np.array([r[0] for r in rows])
    vectors = np.stack([np.frombuffer(r[1], np.float32) for r in rows])
    people = np.array([Path(r[2]).parent.name for r in rows])
    normalizer = CohortNormalizer.from_catalog(catalog)
    cohort_ids = set(
        np.sort(np.random.default_rng(0).choice(catalog.all_face_ids(), COHORT_SIZE, replace=False)).tolist()
    )
    rest = np.array([i for i, face_id in enumerate(ids) if face_id not in cohort_ids])
    rng = np.random.default_rng(1)
    a, b = rng.choice(rest, args.pairs), rng.choice(rest, args.pairs)
    keep = people[a] != people[b]
    a, b = a[keep], b[keep]
    raw = np.einsum("ij,ij->i", vectors[a], vectors[b])
    mu, sd = normalizer.stats(vectors)
    snorm = ((raw - mu[a]) / sd[a] + (raw - mu[b]) / sd[b]) / 2
    for name, scores in (("cosine", raw), ("s-norm", snorm)):
        print(
            f"{name:7s} impostor pairs {len(scores)}: FMR 1e-2 at {np.quantile(scores, 0.99):.4f}, "
            f"1e-3 at {np.quantile(scores, 0.999):.4f}, 1e-4 at {np.quantile(scores, 0.9999):.4f}"
        )


if __name__ == "__main__":
    main()
