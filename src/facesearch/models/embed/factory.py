"""The embedder a library asks for: which implementation, on which runtime, for which model.

``onnx`` (the default) and ``dlib`` run dlib's ResNet; an :class:`~facesearch.models.embed.info.OnnxModelSpec`
runs a configured ONNX model; a device other than the CPU runs dlib's ResNet with PyTorch
(:func:`facesearch.models.runtime.runtime_for`). Weights are converted here, when an embedder is made,
never when a module is imported.
"""

from __future__ import annotations

import os
from pathlib import Path

from facesearch.errors import ModelError
from facesearch.models.convert.onnx_files import cached_conversion
from facesearch.models.embed.base import Embedder
from facesearch.models.embed.dlib_embedder import DlibEmbedder
from facesearch.models.embed.info import (
    BUILTIN_KEYS,
    DLIB_RESNET_INT8_KEY,
    DLIB_RESNET_INT8R_KEY,
    DLIB_RESNET_KEY,
    INT8_KEYS,
    OnnxModelSpec,
    dlib_resnet_info,
)
from facesearch.models.embed.onnx_embedder import OnnxEmbedder
from facesearch.models.runtime import TORCH, runtime_for, torch_part
from facesearch.models.weights import DLIB_RESNET


def converted_dlib_resnet(cache_dir: Path) -> Path:
    """Convert dlib's ResNet to ONNX once and cache it in ``cache_dir`` (the library's models folder).

    The converter, and with it ``onnx`` (~0.6 s of CPU to import), is imported only when the file is not there
    yet: every ingest worker and command builds an embedder, and the conversion happens once (issue 11)."""
    return cached_conversion(cache_dir, DLIB_RESNET, DLIB_RESNET_KEY, _convert_resnet)


def _convert_resnet(dat_path: Path, onnx_path: Path) -> Path:
    from facesearch.models.convert.dlib_resnet_onnx import convert_resnet

    return convert_resnet(dat_path, onnx_path)


def converted_dlib_resnet_int8(cache_dir: Path, model: str = DLIB_RESNET_INT8_KEY) -> Path:
    """Quantise dlib's ResNet to int8 once (issue 15) and cache it in ``cache_dir`` beside the float one.

    ``model`` :data:`DLIB_RESNET_INT8_KEY` (8-bit weights) or :data:`DLIB_RESNET_INT8R_KEY` (7-bit weights,
    ``reduce_range``: the same descriptors on every x86 CPU); the model key starts the file name, so both
    coexist in one models folder. The name carries the shipped ranges' hash as well as the weights', so a
    release with new ranges never reuses an int8 model quantised with the old ones.
    """
    from facesearch.models.convert.resnet_int8 import convert_resnet_int8, shipped_ranges_sha256

    reduce_range = model == DLIB_RESNET_INT8R_KEY

    def convert(dat_path: Path, onnx_path: Path) -> Path:
        return convert_resnet_int8(dat_path, onnx_path, reduce_range=reduce_range)

    key = f"{model}-r{shipped_ranges_sha256()[:8]}"
    return cached_conversion(cache_dir, DLIB_RESNET, key, convert)


def converted_builtin(cache_dir: Path, model: str = DLIB_RESNET_KEY) -> Path:
    """The converted ONNX file of built-in model ``model`` (one of BUILTIN_KEYS), converting it the first time."""
    if model in INT8_KEYS:
        return converted_dlib_resnet_int8(cache_dir, model)
    if model != DLIB_RESNET_KEY:
        raise ModelError(f"unknown built-in model {model!r}: choose {' or '.join(BUILTIN_KEYS)}", code="bad_model")
    return converted_dlib_resnet(cache_dir)


def create_embedder(
    backend: str,
    cache_dir: Path,
    spec: OnnxModelSpec | None = None,
    threads: int = 0,
    *,
    device: str = "cpu",
    dtype: str = "float32",
    model: str = DLIB_RESNET_KEY,
) -> Embedder:
    """The embedder for a library: ``onnx``/``dlib`` run dlib's ResNet; ``spec`` a configured ONNX model.

    ``model`` picks the built-in model: dlib's ResNet (float, the reference) or one of its int8 quantisations
    (:data:`DLIB_RESNET_INT8_KEY`, issue 15; :data:`DLIB_RESNET_INT8R_KEY`, its portable form), which only
    ONNX Runtime on the CPU runs.

    ``device`` other than ``"cpu"`` (``"cuda"``, ``"cuda:1"``) runs dlib's ResNet with PyTorch there, in
    ``dtype`` (:class:`facesearch.models.embed.torch_embedder.TorchEmbedder`, the optional ``gpu`` extra): the
    same model and model key as ``onnx``, so its embeddings share an index with the CPU path's.
    """
    if spec is None and model not in BUILTIN_KEYS:
        raise ModelError(f"unknown built-in model {model!r}: choose {' or '.join(BUILTIN_KEYS)}", code="bad_model")
    if spec is None and model in INT8_KEYS and (backend != "onnx" or runtime_for(device) == TORCH):
        raise ModelError(
            f"the int8 model {model} runs only with the 'onnx' embedder on the CPU, not {backend!r} on {device!r}",
            code="bad_embedder",
        )
    if runtime_for(device) == TORCH:
        return _torch_embedder(backend, spec, device, dtype)
    if spec is not None:
        if backend == "dlib":
            raise ModelError("the dlib backend only runs dlib's ResNet; this library uses " + spec.key)
        return OnnxEmbedder(spec, threads=threads)
    if backend == "dlib":
        return DlibEmbedder()
    if backend != "onnx":
        raise ModelError(f"unknown embedder {backend!r}: choose 'onnx' or 'dlib'", code="bad_embedder")
    path = converted_builtin(cache_dir, model)
    resnet_spec = OnnxModelSpec(key=model, path=str(path), chip_size=150, chip_padding=0.25, input_format="uint8_nhwc")
    return OnnxEmbedder(resnet_spec, info=dlib_resnet_info(key=model), threads=threads)


def _torch_embedder(backend: str, spec: OnnxModelSpec | None, device: str, dtype: str) -> Embedder:
    if spec is not None or backend != "onnx":
        what = spec.key if spec is not None else f"the {backend!r} embedder"
        raise ModelError(
            f"only dlib's ResNet (embedder 'onnx') runs on device {device!r}, not {what}", code="bad_device"
        )
    return torch_part("embed.torch_embedder", device).TorchEmbedder(device=device, dtype=dtype)


def default_threads() -> int:
    """Every core: what a runtime given ``threads=0`` uses."""
    return os.cpu_count() or 1
