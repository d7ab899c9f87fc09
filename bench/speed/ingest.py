"""Ingest benchmark: facesearch (ONNX embedder, all cores) vs a one-process dlib-bin pipeline.

The baseline does what the ``face_recognition`` library does for each photo: HOG detection with
one upsampling, 68-point landmarks, then dlib's ``compute_face_descriptor`` — one process, one
photo at a time. facesearch runs its real ingest path (``Library.index``) on every core. Both run
on the same photos in the same run, so the printed ratios hold even on a noisy machine.
It also times the embedder alone per face (dlib-bin vs ONNX Runtime) on the same chips.

    .venv/bin/python -m bench.speed.ingest                 # all of lfw-dev (9,525 photos)
    .venv/bin/python -m bench.speed.ingest --limit 1000    # a spread-out subset, for a quick look
    .venv/bin/python -m bench.speed.ingest --limit 2000 --models default,dlib_resnet_v1
                                                        # issue 15: the default recipe (int8) and float, same run

``--models`` (default ``default``): ``default`` is the model a new library gets today (settings.default_model:
the int8 ResNet since issue 15), the others built-in keys; the first is the headline ``facesearch`` figure.
Writes bench/out/ingest.json and keeps the default recipe's library in bench/out/lfw-library for
bench/scale/search.py (another model's in bench/out/lfw-library-<model>).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import time
from pathlib import Path

import dlib
import numpy as np
from PIL import Image

from bench.datasets import LFW_LIBRARY, OUT, johns_chips, lfw_photos
from bench.speed.embedder import BATCH, time_dlib, time_onnx
from facesearch import Library
from facesearch.models.convert.dlib_format import read_dlib_network
from facesearch.models.convert.dlib_resnet_onnx import build_resnet_onnx
from facesearch.models.embed.factory import converted_builtin
from facesearch.models.weights import DLIB_RESNET, DLIB_SHAPE_68, dlib_model_path
from facesearch.settings import LibrarySpec

DEFAULT = "default"


def baseline(photos: list[Path]) -> dict:
    """One process, face_recognition-style: detect (upsample 1), 68 landmarks, dlib descriptor."""
    detector = dlib.get_frontal_face_detector()
    shapes = dlib.shape_predictor(str(dlib_model_path(DLIB_SHAPE_68)))
    recognizer = dlib.face_recognition_model_v1(str(dlib_model_path(DLIB_RESNET)))
    faces = 0
    start = time.perf_counter()
    for path in photos:
        image = np.asarray(Image.open(path).convert("RGB"))
        for rect in detector(image, 1):
            recognizer.compute_face_descriptor(image, shapes(image, rect), 1)
            faces += 1
    return {"seconds": time.perf_counter() - start, "faces": faces}


def facesearch_ingest(photos: list[Path], workers: int, model: str = DEFAULT) -> dict:
    """``model``: a built-in key, or ``default`` for what a new library gets (no --model)."""
    library = LFW_LIBRARY if model == DEFAULT else LFW_LIBRARY.with_name(f"lfw-library-{model}")
    shutil.rmtree(library, ignore_errors=True)
    with Library.open(library, model=None if model == DEFAULT else model) as lib:
        # Once, not part of ingest speed: the model files a library makes on its first ingest (the ResNet's
        # conversion; since issue 15 also the detectors' files, which the workers used to make in the timed run).
        lib.recipe.prepare()
        model_path = converted_builtin(lib.models_dir, lib.config.model)
        lib.create_collection("lfw-dev")
        start = time.perf_counter()
        report = lib.index([str(p) for p in photos], collection="lfw-dev", workers=workers)
        seconds = time.perf_counter() - start
        recipe = lib.model_info.key
    return {
        "recipe": recipe,
        "model_path": str(model_path),
        "seconds": seconds,
        "faces": report.faces,
        "indexed": report.indexed,
        "rejected": len(report.rejected),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--limit", type=int, default=None, help="Use a spread-out subset of this many photos")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument(
        "--models",
        default=DEFAULT,
        help="Comma-separated: 'default' (what a new library gets: the int8 ResNet) and/or built-in model keys "
        "(dlib_resnet_v1 for float), each ingested in turn; the first is the headline figure",
    )
    args = parser.parse_args()
    OUT.mkdir(parents=True, exist_ok=True)
    photos = lfw_photos(args.limit)
    print(f"{len(photos)} lfw-dev photos, {os.cpu_count()} CPUs, facesearch with {args.workers} workers")
    print(f"default model of a new library: {LibrarySpec().new_config().model}")

    chips = johns_chips()
    chips = np.concatenate([chips] * -(-2 * BATCH // len(chips)))[: 2 * BATCH]
    model = build_resnet_onnx(read_dlib_network(dlib_model_path(DLIB_RESNET))).SerializeToString()
    dlib_ms = time_dlib(chips, 3)
    onnx_ms = time_onnx(model, chips, 0, 3)
    onnx_1t_ms = time_onnx(model, chips, 1, 3)

    models = args.models.split(",")
    runs = {model: facesearch_ingest(photos, args.workers, model) for model in models}
    ours = runs[models[0]]
    for run in runs.values():  # each model's ResNet alone, all threads, same chips as the dlib figure
        run["embedder_ms_per_face"] = time_onnx(Path(run["model_path"]).read_bytes(), chips, 0, 3)
    base = baseline(photos)

    def rates(run: dict) -> tuple[float, float]:
        return len(photos) / run["seconds"], run["faces"] / run["seconds"]

    base_ips, base_fps = rates(base)
    ours_ips, ours_fps = rates(ours)
    result = {
        "photos": len(photos),
        "cpus": os.cpu_count(),
        "embedder_ms_per_face": {"dlib": dlib_ms, "onnx_all_threads": onnx_ms, "onnx_1_thread": onnx_1t_ms},
        "embedder_speedup": dlib_ms / onnx_ms,
        "baseline": {**base, "images_per_s": base_ips, "faces_per_s": base_fps},
        "facesearch": {**ours, "images_per_s": ours_ips, "faces_per_s": ours_fps},
        "ingest_speedup": ours_ips / base_ips,
        "models": {model: {**run, "ingest_speedup": rates(run)[0] / base_ips} for model, run in runs.items()},
    }
    print(
        f"\nembedder per face: dlib-bin {dlib_ms:.1f} ms, ONNX {onnx_ms:.1f} ms (all threads, batch {BATCH}), "
        f"{onnx_1t_ms:.1f} ms (1 thread)  ->  x{dlib_ms / onnx_ms:.1f} faster"
    )
    print(f"{'pipeline':38s} {'images/s':>9s} {'faces/s':>9s} {'faces':>7s} {'seconds':>8s}")
    print(
        f"{'(a) dlib-bin, one process':38s} {base_ips:9.1f} {base_fps:9.1f} {base['faces']:7d} {base['seconds']:8.1f}"
    )
    for letter, (model, run) in zip("bcdef", runs.items(), strict=False):
        ips, fps = rates(run)
        label = f"({letter}) facesearch {model}, {args.workers} workers"
        print(f"{label:38s} {ips:9.1f} {fps:9.1f} {run['faces']:7d} {run['seconds']:8.1f}")
        print(
            f"ingest speed-up ({letter})/(a): x{ips / base_ips:.2f}  [{run['recipe']}; ResNet alone "
            f"{run['embedder_ms_per_face']:.1f} ms/face]"
        )
    (OUT / "ingest.json").write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
