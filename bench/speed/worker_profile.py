"""Where an ingest worker's time goes, per photo, on real lfw-dev photos (issue 15, the non-HOG part).

Builds the worker a new library's ingest builds (``Ingester.worker_settings`` with 2 workers: one ONNX
thread per worker) in this process, then runs its stages one after another on chunks of 8 photos, as
``Worker.process`` does, each under its own timer: read + hash + duplicate look-up, decode, HOG (one run at
the near-miss threshold), near-miss CNN crops, landmarks, alignment (the 5 alignments of each face), quality,
thumbnail, the ResNet (plain and mirrored batches), descriptor averaging, and the pickling of a chunk's
results (what goes back to the parent). Then the parent's side: the writer storing the same results
(catalog transaction + index add), per photo. No timer lives in product code: the stages are called here.

``--cprofile`` instead runs ``Worker.process`` unchanged under cProfile and prints the top functions.

    PYTHONPATH=src:. .venv/bin/python -m bench.speed.worker_profile --photos 400
    PYTHONPATH=src:. .venv/bin/python -m bench.speed.worker_profile --photos 200 --cprofile
    PYTHONPATH=src:. .venv/bin/python -m bench.speed.worker_profile --photos 200 --jitter-axes xy   # 10 views

``--jitter-axes`` builds the library with those axes (default: what a new library gets; issue 15: "y", 6 views).
"""

from __future__ import annotations

import argparse
import cProfile
import pickle
import pstats
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

from bench.datasets import lfw_photos

T = TypeVar("T")
CHUNK = 8


class Timers:
    """CPU seconds of this process per stage, summed over the run (CPU, not wall: the machine is shared, and
    a worker's CPU is what 2 workers on 2 cores divide)."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = defaultdict(float)

    def __call__(self, stage: str, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        start = time.process_time()
        try:
            return fn(*args, **kwargs)
        finally:
            self.seconds[stage] += time.process_time() - start


def staged_chunk(worker: Any, collection_id: int, sources: list, timers: Timers) -> tuple[list, list]:
    """``Worker.process`` for the CPU path, stage by stage (same calls, same order, same results)."""
    from facesearch.ingest.worker import ItemResult, keep_faces
    from facesearch.media.decode import decode_image, sha256_hex
    from facesearch.models.align import face_chips, quality_score, thumbnail_jpeg
    from facesearch.models.detect.base import downscale
    from facesearch.models.detect.near_miss import NEAR_MISS_SCORE, same_face
    from facesearch.models.pipeline import Face, jitter_shifts
    from facesearch.store.catalog import NewImage

    pipeline = worker.pipeline
    detector = pipeline.detector
    settings = detector.settings
    embedder = pipeline.embedder
    results: list[ItemResult] = []
    pending: list[tuple[ItemResult, list[Face]]] = []
    for source in sources:
        data, _ = timers("read", worker._read, source)
        digest = timers("sha256", sha256_hex, data)
        timers("duplicate lookup", worker._already_indexed, collection_id, digest)
        decoded = timers("decode", decode_image, data, max_pixels=worker.settings.max_pixels)
        rgb = decoded.rgb
        image = NewImage(
            sha256=digest,
            source=source.location,
            source_kind=source.kind,
            page_url=source.page_url,
            meta=dict(source.meta),
            format=decoded.format,
            width=decoded.width,
            height=decoded.height,
            size_bytes=len(data),
            exif_time=decoded.exif_time,
        )
        result = ItemResult(source, "indexed", image=image)
        work, scale = timers("downscale", downscale, rgb, settings.working_size)
        scored = timers("HOG", detector.hog.scored_boxes, work, min(NEAR_MISS_SCORE, settings.min_score))
        found = [box for box in scored if box[4] >= settings.min_score]
        if found:
            for near in scored:
                if near[4] < settings.min_score and not any(same_face(near[:4], f[:4]) for f in found):
                    for extra in timers("near-miss CNN", detector._check, work, near[:4]):
                        if not any(same_face(extra[:4], f[:4]) for f in found):
                            found.append(extra)
            detections = timers("landmarks", detector._landmarks.detections, rgb, work, scale, found)
        else:
            detections = timers("fallback CNN (whole photo)", pipeline.fallback.detect, rgb)
        faces = []
        for index, det in enumerate(detections):
            chips = timers(
                "align (all alignments)",
                face_chips,
                rgb,
                det,
                embedder.chip_size,
                embedder.chip_padding,
                jitter_shifts(pipeline.jitter, pipeline.jitter_axes),
            )
            quality = timers("quality", quality_score, chips[0], det)
            thumb = timers("thumbnail", thumbnail_jpeg, rgb, det.box)
            faces.append(
                Face(index, det.box, det.landmarks, det.score, quality, thumb, chips[0], shifted_chips=chips[1:])
            )
        results.append(result)
        pending.append((result, faces))
    all_faces = [face for _, faces in pending for face in faces]
    timers("embed (all)", pipeline.embed_faces, all_faces)
    for result, faces in pending:
        timers("keep_faces", keep_faces, result, faces, worker.settings.min_quality)
    timers("pickle results (IPC)", pickle.dumps, results, pickle.HIGHEST_PROTOCOL)
    return results, all_faces


def embed_parts(pipeline: Any, faces: list, timers: Timers) -> None:
    """The ResNet alone on the same chips, plain and mirrored, in the batch sizes embed() uses."""
    embedder = pipeline.embedder
    chips = np.concatenate([np.concatenate([f.chip[None], f.shifted_chips]) for f in faces])
    timers("  resnet plain views", embedder._raw_batched, chips, 64)
    mirrored = timers("  mirror copy", lambda: np.ascontiguousarray(chips[:, :, ::-1]))
    timers("  resnet mirrored views", embedder._raw_batched, mirrored, 64)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--photos", type=int, default=400, help="spread-out lfw-dev photos (default 400)")
    parser.add_argument("--cprofile", action="store_true", help="cProfile Worker.process instead of stage timers")
    parser.add_argument("--top", type=int, default=35)
    parser.add_argument("--jitter-axes", default=None, help="xy (10 views) or y (6) [default: a new library's]")
    args = parser.parse_args()

    from facesearch import Library
    from facesearch.ingest.sources import Source
    from facesearch.ingest.worker import Worker

    photos = lfw_photos(args.photos)
    with tempfile.TemporaryDirectory() as tmp, Library.open(Path(tmp) / "lib", jitter_axes=args.jitter_axes) as lib:
        lib.recipe.prepare()
        lib.create_collection("c")
        collection_id = lib.catalog.collection_id("c", create=False)
        settings = lib.ingester.worker_settings(False, workers=2)
        print(f"recipe {lib.model_info.key}; embed_threads {settings.embed_threads}; {len(photos)} photos")
        worker = Worker(settings)
        sources = [Source(str(p), "file") for p in photos]
        chunks = [sources[i : i + CHUNK] for i in range(0, len(sources), CHUNK)]
        worker.process(collection_id, chunks[0])  # warm up (lazy CNN, first-run allocations)
        if args.cprofile:
            profile = cProfile.Profile()
            start = time.perf_counter()
            profile.enable()
            for chunk in chunks:
                worker.process(collection_id, chunk)
            profile.disable()
            wall = time.perf_counter() - start
            print(f"Worker.process: {1000 * wall / len(photos):.1f} ms per photo")
            pstats.Stats(profile).sort_stats("tottime").print_stats(args.top)
            return
        timers = Timers()
        start, cpu = time.perf_counter(), time.process_time()
        results, chunk_faces = [], []
        for chunk in chunks:
            chunk_results, faces_of_chunk = staged_chunk(worker, collection_id, chunk, timers)
            results.extend(chunk_results)
            chunk_faces.append(faces_of_chunk)
        wall, cpu = time.perf_counter() - start, time.process_time() - cpu
        faces = sum(len(r.faces) for r in results)
        parts = Timers()  # the embedding's parts, once more, chunk by chunk on the same chips
        for faces_of_chunk in chunk_faces:
            if faces_of_chunk:
                embed_parts(worker.pipeline, faces_of_chunk, parts)
        # the parent: the writer's store of the same results, in chunks
        write = Timers()
        with lib.writer.locked():
            for i in range(0, len(results), CHUNK):
                write("store (catalog + index)", lib.ingester.store, collection_id, results[i : i + CHUNK])
    total = sum(timers.seconds.values())
    print(
        f"\n{len(photos)} photos, {faces} faces; worker {1000 * cpu / len(photos):.1f} ms CPU per photo "
        f"({1000 * wall / len(photos):.1f} ms wall)"
    )
    print(f"{'stage (CPU)':32s} {'ms/photo':>9s} {'share':>6s}")
    for stage, seconds in sorted(timers.seconds.items(), key=lambda kv: -kv[1]):
        print(f"{stage:32s} {1000 * seconds / len(photos):9.2f} {seconds / total:6.1%}")
    for stage, seconds in write.seconds.items():
        print(f"{'parent: ' + stage:32s} {1000 * seconds / len(photos):9.2f}")
    print("the embedding's parts (again, same chips):")
    for stage, seconds in parts.seconds.items():
        print(f"{stage:32s} {1000 * seconds / len(photos):9.2f}")


if __name__ == "__main__":
    main()
