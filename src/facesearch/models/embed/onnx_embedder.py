"""Any ONNX face embedding model run by ONNX Runtime: dlib's converted ResNet (the default) or an
operator-supplied model (an ArcFace file, say) with its own chip size and preprocessing."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from facesearch.errors import ModelError
from facesearch.models.embed.base import Embedder
from facesearch.models.embed.info import ModelInfo, OnnxModelSpec
from facesearch.models.runtime import onnx_session
from facesearch.models.weights import file_sha256


class OnnxEmbedder(Embedder):
    """Any ONNX embedding model run by ONNX Runtime on the CPU, batched."""

    backend = "onnx"

    def __init__(self, spec: OnnxModelSpec, info: ModelInfo | None = None, threads: int = 0) -> None:
        path = Path(spec.path)
        if not path.is_file():
            raise ModelError(f"ONNX model file not found: {path}", code="model_missing")
        self.session = onnx_session(path, threads=threads, what=f"ONNX model {path}")
        self.spec = spec
        self.chip_size = spec.chip_size
        self.chip_padding = spec.chip_padding
        dim = self.session.output_shape[-1]
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
        out = self.session.run({self.session.input_name: feed})[0]
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
