"""Ingest writer throughput: one catalog transaction per photo against one per batch, same run.

Why: a GPU ingests thousands of photos a second and a single process writes them all (the catalog
and the vector index; ingest/runner.py). One ORM transaction per photo capped the writer at ~640
photos/s on this machine's cores, far below the 2,000 images/s target; ``Library._store`` now writes
each batch of results in one transaction (bulk INSERT ... RETURNING, not the ORM's unit of work) and
one index call. Synthetic records only (random unit vectors, no photo, no person): what is measured
is the writing.

    .venv/bin/python -m bench.speed.writer [--photos 4000] [--faces 1] [--catalog-url postgresql+psycopg://...]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from facesearch import Library
from facesearch.ingest.sources import Source
from facesearch.ingest.worker import ItemResult
from facesearch.store.catalog import NewFace, NewImage


def results(count: int, faces: int, offset: int, seed: int) -> list[ItemResult]:
    """``count`` indexed results with ``faces`` random-vector faces each (3 kB thumbnails, as real ones)."""
    rng = np.random.default_rng(seed)
    out = []
    for i in range(offset, offset + count):
        vectors = rng.standard_normal((faces, 128)).astype(np.float32)
        vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
        image = NewImage(
            sha256=f"{i:064x}",
            source=f"/photos/{i:07d}.jpg",
            source_kind="file",
            page_url=None,
            meta={},
            format="JPEG",
            width=250,
            height=250,
            size_bytes=12_000,
            exif_time=None,
        )
        new_faces = [
            NewFace(
                face_index=j,
                box=(60, 60, 120, 120),
                landmarks=[[100.0, 100.0]] * 5,
                det_score=1.0,
                quality=0.8,
                embedding=vectors[j],
                thumbnail=bytes(3000),
            )
            for j in range(faces)
        ]
        out.append(ItemResult(Source(image.source, "file"), "indexed", image=image, faces=new_faces))
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--photos", type=int, default=4000, help="photos per way of writing (default 4000)")
    parser.add_argument("--faces", type=int, default=1, help="faces per photo (default 1, as LFW)")
    parser.add_argument("--catalog-url", help="a PostgreSQL catalog instead of SQLite")
    args = parser.parse_args()
    rates: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as tmp, Library.open(Path(tmp) / "lib", catalog_url=args.catalog_url) as lib:
        collection = lib.catalog.collection_id("bench")

        def per_photo(batch: list[ItemResult]) -> None:
            """The writer before: one ORM transaction per photo, then its vectors (what the writer did then)."""
            for result in batch:
                stored = lib.catalog.add_image(collection, lib.model_id, result.image, result.faces)
                lib.vector_index.add(np.asarray(stored[1]), np.stack([f.embedding for f in result.faces]))

        def batches_of(size: int):  # noqa: ANN202
            def write(batch: list[ItemResult]) -> None:
                with lib.writer.locked():
                    for start in range(0, len(batch), size):
                        lib.ingester.store(collection, batch[start : start + size])

            return write

        ways = {
            "one ORM transaction per photo (before)": per_photo,
            "the writer (Ingester.store), batches of 1": batches_of(1),
            "the writer (Ingester.store), batches of 16": batches_of(16),
            "the writer (Ingester.store), batches of 64": batches_of(64),
        }
        for index, (label, write) in enumerate(ways.items()):
            batch = results(args.photos, args.faces, index * args.photos, seed=index)
            started = time.perf_counter()
            write(batch)
            rates[label] = len(batch) / (time.perf_counter() - started)
            print(f"{label:50s} {rates[label]:8,.0f} photos/s  ({args.faces} face(s) each)")
        assert lib.catalog.face_count() == len(ways) * args.photos * args.faces == len(lib.vector_index)
    base = rates["one ORM transaction per photo (before)"]
    print(
        "vs before: "
        + ", ".join(f"{label.split(', ')[-1]} x{rate / base:.2f}" for label, rate in list(rates.items())[1:])
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
