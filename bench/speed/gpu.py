"""GPU ingestion benchmark: dlib's ResNet and MMOD detector run by PyTorch, against the CPU (ONNX) path.

Why: to know what one GPU machine ingests, and that it still computes the same model. Three figures,
each printed with the device's name, and a final JSON line holding them all:

(a) embedder faces/s: ``TorchEmbedder`` in bfloat16, float16 (and float32) at several batch sizes,
    chips going host -> device -> host as in ingest, beside ONNX Runtime on every CPU core; plus each
    dtype's agreement with ONNX (min cosine, max abs diff of the raw descriptors);
(b) MMOD detector images/s on LFW-size (250x250) photos in batches (``TorchBatchDetector``: tiled
    pyramid and network on the device), beside ``CnnFaceDetector`` (ONNX Runtime); plus how many
    photos get exactly the CPU's boxes;
(c) end-to-end ingest images/s: the product's own ingest, ``Library.index(engine="batched",
    device=...)`` (ingest/batched_engine.py) into a fresh library with the CNN detector: worker
    processes read, hash, decode and align, the device detects and embeds in batches, this process
    writes the catalog and the FAISS index. Photos are unique files (a library skips repeated bytes):
    copies of the given photos, mirrored and re-encoded after the first round.

Photos: ``--images DIR`` (LFW layout or any folder of JPEG/PNG files). Without it the inputs are
synthetic (random pixels: no faces, so (c) then measures reading, decoding, detection and writing
only). Writes nothing outside a temporary folder except the JSON to ``--out`` when given.
``--budget-s`` bounds the whole run (default 300 s).

    PYTHONPATH=src python -m bench.speed.gpu --images ../shared/data/lfw-dev/images --out gpu.json
    .venv/bin/python -m bench.speed.gpu --device cpu --quick        # a smoke test on any machine
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from multiprocessing import get_context
from pathlib import Path
from typing import Any

import numpy as np

# Worker processes import this file too (spawn): they need numpy, dlib and PIL, never torch.
TARGET_EMBED = 20_000  # faces/s on one H100/H200
TARGET_E2E = 2_000  # images/s on one H100/H200
CENTRAL_BOX = (65, 65, 184, 184)  # synthetic photos: the "face" landmarked in a 250x250 image


# --------------------------------------------------------------------------------------------
# Inputs


def image_files(folder: Path) -> list[str]:
    files = [p for p in folder.rglob("*") if p.suffix.lower() in (".jpg", ".jpeg", ".png")]
    return [str(p) for p in sorted(files)]


def synthetic_jpegs(count: int, size: int = 250, seed: int = 0) -> list[bytes]:
    """Random smooth-ish RGB photos as JPEG bytes (in memory: nothing is written)."""
    import io

    from PIL import Image

    rng = np.random.default_rng(seed)
    out = []
    for _ in range(count):
        small = rng.integers(0, 256, (size // 10, size // 10, 3), dtype=np.uint8)
        image = Image.fromarray(small).resize((size, size), Image.Resampling.BILINEAR)
        noisy = np.clip(np.asarray(image, np.int16) + rng.integers(-20, 21, (size, size, 3)), 0, 255)
        buffer = io.BytesIO()
        Image.fromarray(noisy.astype(np.uint8)).save(buffer, "JPEG", quality=90)
        out.append(buffer.getvalue())
    return out


def decode_items(items: list[str] | list[bytes]) -> list[np.ndarray]:
    return [img for img in _decode_chunk(items) if img is not None]


# --------------------------------------------------------------------------------------------
# Inputs for (c): unique photo files


def _decode_chunk(items: list[str] | list[bytes]) -> list[np.ndarray | None]:
    """Files (paths) or bytes -> upright RGB (the ingest's decode); None for a photo that fails."""
    from facesearch.media.decode import decode_image

    out: list[np.ndarray | None] = []
    for item in items:
        try:
            out.append(decode_image(Path(item).read_bytes() if isinstance(item, str) else item).rgb)
        except Exception:  # a bad photo is skipped, as ingest rejects it
            out.append(None)
    return out


def _write_variants(jobs: list[tuple[str | bytes, int, str]]) -> int:
    """Write each (photo, round, destination): round 0 as it is; later rounds mirrored on odd rounds,
    re-encoded at a quality that cycles with the round, and tagged with the round in a JPEG comment,
    so that every file has its own bytes (a library stores the same bytes once)."""
    import io

    from PIL import Image, ImageOps

    for item, round_no, destination in jobs:
        data = Path(item).read_bytes() if isinstance(item, str) else item
        if round_no == 0:
            Path(destination).write_bytes(data)
            continue
        image = Image.open(io.BytesIO(data)).convert("RGB")
        if round_no % 2:
            image = ImageOps.mirror(image)
        quality = 70 + (round_no * 7) % 26
        image.save(destination, "JPEG", quality=quality, comment=f"facesearch bench round {round_no}".encode())
    return len(jobs)


def unique_photos(items: list, count: int, folder: Path, workers: int) -> Path:
    """``count`` photo files with distinct bytes in ``folder``, made from ``items`` (paths or JPEG bytes)."""
    folder.mkdir(parents=True, exist_ok=True)
    jobs = [(items[i % len(items)], i // len(items), str(folder / f"{i:07d}.jpg")) for i in range(count)]
    pieces = [jobs[i : i + 256] for i in range(0, len(jobs), 256)]
    with ProcessPoolExecutor(max(1, workers), mp_context=get_context("spawn")) as pool:
        sum(pool.map(_write_variants, pieces))
    return folder


# --------------------------------------------------------------------------------------------
# Measurements


@dataclass
class Clock:
    """The whole run's deadline; each section gets a share of what is left (``quick``: one timed run)."""

    budget_s: float
    quick: bool = False
    start: float = field(default_factory=time.perf_counter)

    def left(self) -> float:
        return self.budget_s - (time.perf_counter() - self.start)

    def share(self, fraction: float, cap_s: float) -> float:
        """Seconds for one timed loop: ``fraction`` of what is left, at most ``cap_s``, at least 0.5."""
        return 0.0 if self.quick else max(0.5, min(self.left() * fraction, cap_s))


def sync(device: Any) -> None:
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(run: Any, items: int, cap_s: float, device: Any) -> float:
    """Items per second: ``run`` once to warm up, then repeatedly until ``cap_s`` (at least once)."""
    run()
    sync(device)
    done, start = 0, time.perf_counter()
    while True:
        run()
        sync(device)
        done += items
        elapsed = time.perf_counter() - start
        if elapsed >= cap_s:
            return done / elapsed


def onnx_resnet_session(threads: int = 0) -> Any:
    import onnxruntime as ort

    from facesearch.models.convert.dlib_format import read_dlib_network
    from facesearch.models.convert.dlib_resnet_onnx import build_resnet_onnx
    from facesearch.models.weights import DLIB_RESNET, dlib_model_path

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    model = build_resnet_onnx(read_dlib_network(dlib_model_path(DLIB_RESNET))).SerializeToString()
    return ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])


def onnx_raw(session: Any, chips: np.ndarray, batch: int = 64) -> np.ndarray:
    return np.concatenate([session.run(None, {"chips": chips[i : i + batch]})[0] for i in range(0, len(chips), batch)])


def bench_embedder(args: argparse.Namespace, clock: Clock, device: Any, name: str, parity: np.ndarray) -> dict:
    """(a) faces/s of TorchEmbedder per dtype and batch, and of ONNX Runtime on the CPU."""
    from facesearch.models.embed.torch_embedder import TorchEmbedder

    total = args.embed_chips
    reps = -(-total // len(parity))
    chips = np.ascontiguousarray(np.concatenate([parity] * reps)[:total])
    session = onnx_resnet_session()
    reference = onnx_raw(session, parity)
    cpu_count = min(len(chips), args.cpu_chips)
    cpu_rate = timed(lambda: onnx_raw(session, chips[:cpu_count]), cpu_count, clock.share(0.05, 5.0), device)
    print(f"[{platform_name()}] (a) embedder ONNX Runtime CPU, all cores: {cpu_rate:,.0f} faces/s")
    results = []
    configs = [(dtype, batch) for dtype in args.dtypes for batch in args.embed_batches]
    for index, (dtype, batch) in enumerate(configs):
        cap = clock.share(0.3 / (len(configs) - index), 5.0)
        try:
            embedder = TorchEmbedder(device=device, dtype=dtype, batch_size=batch)
            raw = embedder._raw_batched(parity, batch)
            cosine = (raw * reference).sum(1) / np.linalg.norm(raw, axis=1) / np.linalg.norm(reference, axis=1)
            rate = timed(lambda e=embedder, b=batch: e._raw_batched(chips, b), len(chips), cap, device)
            on_device = torch_module().from_numpy(chips[: min(len(chips), 4 * batch)]).to(device)
            device_rate = timed(lambda e=embedder, x=on_device: e.embed_tensor(x), len(on_device), cap / 3, device)
            row = {
                "dtype": dtype,
                "batch": batch,
                "faces_per_s": round(rate, 1),
                "faces_per_s_on_device": round(device_rate, 1),
                "min_cosine_vs_onnx": float(cosine.min()),
                "max_abs_diff_vs_onnx": float(np.abs(raw - reference).max()),
            }
            del embedder, on_device
        except Exception as exc:  # out of memory at a big batch, say: report it and go on
            row = {"dtype": dtype, "batch": batch, "error": f"{type(exc).__name__}: {exc}"[:300]}
        empty_cache(device)
        results.append(row)
        if "error" in row:
            print(f"[{name}] (a) embedder torch {dtype} batch {batch}: {row['error']}")
        else:
            print(
                f"[{name}] (a) embedder torch {dtype} batch {batch}: {row['faces_per_s']:,.0f} faces/s host->host "
                f"({row['faces_per_s_on_device']:,.0f} on device), min cosine vs ONNX {row['min_cosine_vs_onnx']:.6f}"
            )
    return {"cpu_onnx_faces_per_s": round(cpu_rate, 1), "chips": len(chips), "torch": results}


def bench_detector(args: argparse.Namespace, clock: Clock, device: Any, name: str, photos: list[np.ndarray]) -> dict:
    """(b) images/s of the batched torch MMOD detector on 250x250 photos, and of ONNX Runtime."""
    from facesearch.models.detect.base import DetectorSettings
    from facesearch.models.detect.cnn import CnnFaceDetector
    from facesearch.models.detect.torch_batch import TorchBatchDetector

    lfw = [p for p in photos if p.shape[:2] == (250, 250)] or [resize_to(p, 250) for p in photos]
    batch_images = np.stack([lfw[i % len(lfw)] for i in range(args.detect_images)])
    settings = DetectorSettings(upsample=args.upsample)
    cnn = CnnFaceDetector(settings)
    reference_images = batch_images[: args.cpu_images]
    start = time.perf_counter()
    reference = [cnn.mmod_boxes(img, args.upsample) for img in reference_images]
    cpu_rate = len(reference_images) / (time.perf_counter() - start)
    print(f"[{platform_name()}] (b) MMOD detector ONNX Runtime CPU, all cores: {cpu_rate:,.1f} images/s")
    results = []
    for dtype in args.detect_dtypes:
        try:
            detector = TorchBatchDetector(
                settings, device=device, dtype=dtype, batch_size=args.detect_batch, landmarks=False
            )
            found = detector.mmod_boxes_batch(list(reference_images))
            same = sum(corners(a) == corners(b) for a, b in zip(found, reference, strict=True))
            rate = timed(
                lambda d=detector: d.score_maps(batch_images, args.upsample),
                len(batch_images),
                clock.share(0.12, 10.0),
                device,
            )
            row = {
                "dtype": dtype,
                "batch": args.detect_batch,
                "images_per_s": round(rate, 1),
                "same_boxes_as_cpu": f"{same}/{len(reference)}",
                "faces_found_on_checked": sum(len(f) for f in found),
            }
            del detector
        except Exception as exc:
            row = {"dtype": dtype, "batch": args.detect_batch, "error": f"{type(exc).__name__}: {exc}"[:300]}
        empty_cache(device)
        results.append(row)
        if "error" in row:
            print(f"[{name}] (b) MMOD detector torch {dtype}: {row['error']}")
        else:
            print(
                f"[{name}] (b) MMOD detector torch {dtype} batch {args.detect_batch}: {row['images_per_s']:,.1f} "
                f"images/s (250x250, upsample {args.upsample}); same boxes as CPU on {row['same_boxes_as_cpu']}"
            )
    return {"cpu_onnx_images_per_s": round(cpu_rate, 2), "upsample": args.upsample, "torch": results}


def bench_end_to_end(args: argparse.Namespace, clock: Clock, device: Any, name: str, items: list) -> dict:
    """(c) the product's batched ingest on the device, into a fresh CNN library, writes included."""
    import logging

    from facesearch.library import Library

    logging.basicConfig(format="%(message)s")
    logging.getLogger("facesearch.ingest.batched_engine").setLevel(logging.INFO)  # where its time went
    synthetic = args.images is None
    with tempfile.TemporaryDirectory(prefix="facesearch-gpu-bench-") as tmp:
        started = time.perf_counter()
        photos = unique_photos(items, args.e2e_images, Path(tmp) / "photos", args.workers)
        print(f"[{name}] (c) {args.e2e_images} unique photo files written in {time.perf_counter() - started:.1f} s")
        stamps: list[tuple[float, int, int]] = []  # (time, photos done, faces stored) after each write

        def progress(event: str, count: int, report: Any) -> None:
            if event == "advance":
                done = (stamps[-1][1] if stamps else 0) + count
                stamps.append((time.perf_counter(), done, report.faces))

        # device: a new library for a GPU gets the float model (issue 15: int8 runs on the CPU only)
        with Library.open(Path(tmp) / "library", jitter=args.jitter, detector="cnn", device=str(device)) as lib:
            lib.create_collection("bench")
            begun = time.perf_counter()
            report = lib.index(
                [photos],
                collection="bench",
                workers=args.workers,
                engine="batched",
                device=str(device),
                precision=args.e2e_precision,
                progress=progress,
            )
            total_s = time.perf_counter() - begun
            stored = lib.catalog.face_count()
    # Steady state: between the writes at 10% and 90% of the photos (leaves out spawning the workers,
    # loading the models and draining the last batches). Writes come in bursts: too few photos
    # (under 1,000) to average them out give the whole run's rate only.
    steady_images, steady_faces = report.indexed / total_s, report.faces / total_s
    if report.indexed >= 1000 and len(stamps) > 2:
        low = next(s for s in stamps if s[1] >= 0.1 * report.indexed)
        high = next(s for s in stamps if s[1] >= 0.9 * report.indexed)
        if high[0] > low[0]:
            span = high[0] - low[0]
            steady_images, steady_faces = (high[1] - low[1]) / span, (high[2] - low[2]) / span
    stats = {
        "images": report.indexed,
        "faces": report.faces,
        "faces_in_catalog": stored,
        "rejected": len(report.rejected),
        "seconds_total": round(total_s, 2),
        "images_per_s_total": round(report.indexed / total_s, 1),
        "images_per_s": round(steady_images, 1),
        "faces_per_s": round(steady_faces, 1),
        "workers": args.workers,
        "precision": args.e2e_precision,
        "recipe": "flip" + (f"+jitter{args.jitter:g}" if args.jitter else ""),
        "synthetic": synthetic,
    }
    print(
        f"[{name}] (c) end-to-end ingest (batched engine, writes included): {stats['images_per_s']:,.1f} images/s "
        f"steady, {stats['images_per_s_total']:,.1f} with start-up; {stats['faces_per_s']:,.1f} faces/s "
        f"({report.indexed} photos, {report.faces} faces, {args.workers} CPU workers, {args.e2e_precision} "
        f"embeddings, {stats['recipe']}{', synthetic photos' if synthetic else ''})"
    )
    return stats


# --------------------------------------------------------------------------------------------
# Helpers


def torch_module() -> Any:
    import torch

    return torch


def platform_name() -> str:
    return f"CPU {platform.processor() or platform.machine()} x{os.cpu_count()}"


def device_name(device: Any) -> str:
    torch = torch_module()
    return torch.cuda.get_device_name(device) if device.type == "cuda" else platform_name()


def empty_cache(device: Any) -> None:
    if device.type == "cuda":
        torch_module().cuda.empty_cache()


def corners(boxes: list) -> list[tuple[int, int, int, int]]:
    return [(b.left, b.top, b.right, b.bottom) for b in boxes]


def resize_to(rgb: np.ndarray, size: int) -> np.ndarray:
    from PIL import Image

    return np.asarray(Image.fromarray(rgb).resize((size, size), Image.Resampling.BILINEAR))


def parity_chips(photos: list[np.ndarray], device: Any, count: int, synthetic: bool) -> np.ndarray:
    """Real aligned chips (GPU detection, CPU landmarks) when photos are real, else random chips."""
    if not synthetic:
        from facesearch.models.align import face_chip
        from facesearch.models.detect.torch_batch import TorchBatchDetector

        detector = TorchBatchDetector(device=device, batch_size=16)
        chips = []
        for start in range(0, len(photos), 16):
            for rgb, faces in zip(
                photos[start : start + 16], detector.detect_batch(photos[start : start + 16]), strict=True
            ):
                chips += [face_chip(rgb, face) for face in faces]
            if len(chips) >= count:
                break
        if chips:
            return np.stack(chips[:count])
    return np.random.default_rng(1).integers(0, 256, (count, 150, 150, 3), dtype=np.uint8)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda", help="cuda, cuda:1, cpu (default cuda)")
    parser.add_argument("--images", type=Path, help="a folder of photos (LFW layout or any); default: synthetic")
    parser.add_argument("--quick", action="store_true", help="tiny sizes: checks that everything runs")
    parser.add_argument("--budget-s", type=float, default=300.0, help="bound on the whole run (default 300)")
    parser.add_argument("--out", type=Path, help="write the final JSON here (nothing is written otherwise)")
    parser.add_argument("--workers", type=int, default=max(1, (os.cpu_count() or 2) - 1))
    parser.add_argument("--upsample", type=int, default=1, help="detector upsampling (1: the library default)")
    parser.add_argument("--skip", default="", help="comma-separated sections to skip: embed, detect, e2e")
    parser.add_argument("--e2e-images", type=int, default=20_000, help="photos ingested in (c) (default 20,000)")
    parser.add_argument("--precision", default="float16", help="(c) embeddings on a GPU: float16, bfloat16, float32")
    parser.add_argument("--jitter", type=float, default=0.0, help="(c) library recipe: 0 = flip only (default)")
    args = parser.parse_args(argv)
    quick = args.quick
    on_cpu = args.device == "cpu"  # float16 convolutions have no fast CPU kernels: minutes for nothing
    args.dtypes = ["bfloat16", "float32"] if on_cpu else ["bfloat16", "float16", "float32"]
    args.embed_batches = [8, 16] if quick else [256, 1024, 4096]
    args.embed_chips = 32 if quick else 8192
    args.cpu_chips = 16 if quick else 512
    args.detect_dtypes = ["float32"] if on_cpu else ["float32", "float16"]
    args.detect_images = 4 if quick else 1024
    args.detect_batch = 2 if quick else 128
    args.cpu_images = 2 if quick else 32
    args.e2e_images = 8 if quick else args.e2e_images
    args.e2e_precision = "float32" if on_cpu else args.precision
    if quick:
        args.workers = min(args.workers, 2)
    args.skip = {s.strip() for s in args.skip.split(",") if s.strip()}
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    clock = Clock(args.budget_s, args.quick)
    torch = torch_module()
    from facesearch.models.runtime import torch_device

    device = torch_device(args.device)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True  # fixed shapes: let cuDNN pick its fastest kernels once
    name = device_name(device)
    synthetic = args.images is None
    items: list = image_files(args.images) if not synthetic else synthetic_jpegs(64 if args.quick else 512)
    if not items:
        print(f"no photos found under {args.images}", file=sys.stderr)
        return 2
    photos = decode_items(items[: 64 if args.quick else 256])
    report: dict[str, Any] = {
        "device": str(device),
        "device_name": name,
        "cpu": platform_name(),
        "torch": torch.__version__,
        "cudnn_allow_tf32": bool(torch.backends.cudnn.allow_tf32),
        "photos": "synthetic" if synthetic else str(args.images),
        "quick": args.quick,
        "budget_s": args.budget_s,
        "targets": {"embed_faces_per_s": TARGET_EMBED, "e2e_images_per_s": TARGET_E2E},
    }
    print(
        f"[{name}] torch {torch.__version__}, photos: {report['photos']} ({len(items)}), budget {args.budget_s:.0f} s"
    )
    sections = {
        "embed": lambda: bench_embedder(
            args, clock, device, name, parity_chips(photos, device, 16 if args.quick else 256, synthetic)
        ),
        "detect": lambda: bench_detector(args, clock, device, name, photos),
        "e2e": lambda: bench_end_to_end(args, clock, device, name, items),
    }
    for section, run in sections.items():
        if section in args.skip or clock.left() <= 0:
            report[section] = {"skipped": "asked" if section in args.skip else "out of budget"}
            continue
        start = time.perf_counter()
        report[section] = run()
        report[section]["section_s"] = round(time.perf_counter() - start, 1)
    if device.type == "cuda":
        report["max_memory_gib"] = round(torch.cuda.max_memory_allocated(device) / 2**30, 2)
    report["elapsed_s"] = round(time.perf_counter() - clock.start, 1)
    line = json.dumps(report)
    if args.out:
        args.out.write_text(line + "\n")
    print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
