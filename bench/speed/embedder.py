"""Embedder speed: dlib-bin's compute_face_descriptor vs our ONNX rebuild under ONNX Runtime.

Why: the ONNX path is the default embedder only because it is much faster for the same numbers;
this script shows by how much on the machine at hand. Uses dlib's aligned "johns" chips from
../shared/data (or FACESEARCH_DATA). Prints ms/face and speedups; writes no files.

    .venv/bin/python -m bench.speed.embedder [--repeats 3]
"""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Callable

import dlib
import numpy as np
import onnxruntime as ort

from bench.datasets import johns_chips
from facesearch.models.convert.dlib_format import read_dlib_network
from facesearch.models.convert.dlib_resnet_onnx import INPUT_NAME, build_resnet_onnx
from facesearch.models.weights import DLIB_RESNET, dlib_model_path

BATCH = 32


def best_ms_per_face(run: Callable[[], None], faces: int, repeats: int) -> float:
    """Best of ``repeats`` timed runs, after one warm-up, in milliseconds per face."""
    run()
    timings = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        timings.append(time.perf_counter() - start)
    return 1000.0 * min(timings) / faces


def time_dlib(chips: np.ndarray, repeats: int) -> float:
    recognizer = dlib.face_recognition_model_v1(str(dlib_model_path(DLIB_RESNET)))

    def run() -> None:
        for chip in chips:
            recognizer.compute_face_descriptor(chip)

    return best_ms_per_face(run, len(chips), repeats)


def time_onnx(model_bytes: bytes, chips: np.ndarray, threads: int, repeats: int) -> float:
    """ONNX Runtime in batches of BATCH; ``threads`` 0 means ONNX Runtime's default."""
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    session = ort.InferenceSession(model_bytes, options, providers=["CPUExecutionProvider"])
    batches = [chips[i : i + BATCH] for i in range(0, len(chips), BATCH)]

    def run() -> None:
        for batch in batches:
            session.run(None, {INPUT_NAME: batch})

    return best_ms_per_face(run, len(chips), repeats)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    chips = johns_chips()
    chips = np.concatenate([chips] * -(-2 * BATCH // len(chips)))[: 2 * BATCH]  # two full batches
    model_bytes = build_resnet_onnx(read_dlib_network(dlib_model_path(DLIB_RESNET))).SerializeToString()

    print(f"{len(chips)} chips of 150x150, {os.cpu_count()} CPUs, onnxruntime {ort.__version__}")
    dlib_ms = time_dlib(chips, args.repeats)
    print(f"dlib-bin compute_face_descriptor  {dlib_ms:8.2f} ms/face")
    for label, threads in (("default threads", 0), ("1 thread", 1)):
        onnx_ms = time_onnx(model_bytes, chips, threads, args.repeats)
        print(f"onnxruntime batch {BATCH}, {label:15s} {onnx_ms:8.2f} ms/face  speedup x{dlib_ms / onnx_ms:.1f}")


if __name__ == "__main__":
    main()
