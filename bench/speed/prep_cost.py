"""CPU cost per photo of the batched engine's worker side: can 15 cores feed one GPU at 2,000 photos/s?

Why: with the CNN and the ResNet on the GPU, what is left on the CPU (ingest/batched_prep.py) is
reading, hashing, decoding (``prepare``) and, once the device's cells come back, decoding boxes,
landmarks, alignment, quality and thumbnail (``finish``). This times both on one core for real LFW
photos (the cells come from the CNN run here through PyTorch, untimed) and prints photos/s per core
and what N cores would sustain.

    OMP_NUM_THREADS=1 .venv/bin/python -m bench.speed.prep_cost [--images ../shared/data/lfw-dev/images] [--photos 300]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from bench.datasets import lfw_images


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=Path, default=None, help="a folder of photos (default: lfw-dev's)")
    parser.add_argument("--photos", type=int, default=300)
    parser.add_argument("--cores", type=int, default=15, help="worker cores to extrapolate to (default 15)")
    args = parser.parse_args()
    args.images = args.images or lfw_images()
    # Imported after the arguments are read: the torch detector needs the gpu extra, --help should not.
    from facesearch import Library
    from facesearch.ingest.batched_prep import PrepSettings, PrepWorker
    from facesearch.ingest.sources import Source
    from facesearch.models.detect.torch_batch import TorchBatchDetector

    photos = sorted(args.images.rglob("*.jpg"))[:: max(1, len(list(args.images.rglob("*.jpg"))) // args.photos)]
    photos = photos[: args.photos]
    with tempfile.TemporaryDirectory() as tmp:
        with Library.open(Path(tmp) / "lib", jitter=0, detector="cnn") as lib:
            settings, collection = lib.ingester.worker_settings(False, 1), lib.catalog.collection_id("bench")
        detector = TorchBatchDetector(settings.pipeline_options["detector_settings"], device="cpu", landmarks=False)
        worker = PrepWorker(PrepSettings(settings, 150, 0.25, detector.mmod))
        items = [(i, Source(str(p), "file")) for i, p in enumerate(photos)]
        started = time.perf_counter()
        prepared = worker.prepare(collection, items)
        prepare_s = time.perf_counter() - started
        cells, tiles = [], None
        for start in range(0, len(prepared), 16):
            batch = np.stack([p.work for p in prepared[start : start + 16]])
            found, tiles = detector.score_cells(batch, detector.settings.upsample, detector.settings.min_score)
            cells += found
        started = time.perf_counter()
        done = worker.finish([(p.seq, c) for p, c in zip(prepared, cells, strict=True)], tiles)
        finish_s = time.perf_counter() - started
    count, faces = len(photos), sum(len(d.faces or []) for d in done)
    per_photo = (prepare_s + finish_s) / count
    print(
        f"{count} photos, {faces} faces, one core: prepare {prepare_s / count * 1000:.2f} ms/photo, "
        f"finish {finish_s / count * 1000:.2f} ms/photo -> {1 / per_photo:,.0f} photos/s per core, "
        f"{args.cores / per_photo:,.0f} photos/s on {args.cores} such cores (target 2,000)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
