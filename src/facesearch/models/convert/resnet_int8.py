"""dlib's ResNet in int8: the converted float model quantised on the user's machine from shipped ranges.

Issue 15 ("a faster embedder at the same answers"). Static int8 quantisation needs the range of every
activation the network produces, which is normally measured by running real faces through it. Users
have no face set to measure on, and the project ships no photos or embeddings of real people, so the
ranges are measured once, by ``scripts/int8_ranges.py`` on aligned lfw-dev chips, and shipped as
aggregate figures only (one min/max pair per tensor: ``dlib_resnet_int8_ranges.json``). Quantising is
then a pure function of dlib's weights and those figures, done at conversion time and cached beside the
float model (:func:`facesearch.models.embed.factory.converted_dlib_resnet_int8`).

Before quantising, each convolution's per-channel affine (dlib's batch-norm replacement, ``Mul`` then
``Add`` after the ``Conv`` in the float graph) is folded into the convolution's weights and bias
(:func:`fold_affine`): the same function in float arithmetic, but one quantised operator instead of three,
and the folded weights are what the per-channel weight scales are computed from. The tensor names of the
folded graph are deterministic (the converter names every tensor), which is what lets shipped ranges
address them.
"""

from __future__ import annotations

import hashlib
import json
import logging
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from facesearch.errors import ModelError
from facesearch.models.convert.onnx_files import write_atomically

if TYPE_CHECKING:  # onnx is slow to import: only conversions need it
    import onnx

log = logging.getLogger(__name__)

RANGES_FILE = "dlib_resnet_int8_ranges.json"
QUANT_FORMATS = ("qdq", "qoperator")
OP_TYPES = ["Conv", "MatMul", "Add", "Relu", "MaxPool", "AveragePool", "GlobalAveragePool", "Pad", "Flatten"]
"""The operators quantised: every operator of the network body (the input's Cast/Sub/Mul/Transpose stay float)."""


@dataclass(frozen=True)
class Int8Ranges:
    """Shipped activation ranges: for the float model with these weights, tensor name -> (min, max)."""

    weights_sha256: str
    ranges: dict[str, tuple[float, float]]
    photos: int = 0
    source: str = ""

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Int8Ranges:
        try:
            ranges = {str(k): (float(v[0]), float(v[1])) for k, v in data["ranges"].items()}
            return cls(str(data["weights_sha256"]), ranges, int(data.get("photos", 0)), str(data.get("source", "")))
        except (KeyError, TypeError, ValueError, IndexError) as exc:
            raise ModelError(f"malformed int8 ranges: {exc}", code="model_mismatch") from exc

    def to_json(self) -> dict[str, Any]:
        return {
            "weights_sha256": self.weights_sha256,
            "photos": self.photos,
            "source": self.source,
            "ranges": {k: [lo, hi] for k, (lo, hi) in sorted(self.ranges.items())},
        }


def _shipped_text() -> str:
    return resources.files("facesearch.models.convert").joinpath(RANGES_FILE).read_text()


def shipped_ranges() -> Int8Ranges:
    """The ranges shipped with facesearch (``scripts/int8_ranges.py`` made them)."""
    return Int8Ranges.from_json(json.loads(_shipped_text()))


def shipped_ranges_sha256() -> str:
    """The shipped ranges' hash: part of the cached int8 model's name, so new ranges mean a new conversion."""
    return hashlib.sha256(_shipped_text().encode()).hexdigest()


def fold_affine(model: onnx.ModelProto) -> onnx.ModelProto:
    """A copy of the converted ResNet with every ``Conv -> Mul(gamma) -> Add(beta)`` chain folded into one
    ``Conv`` (weights scaled per output channel by gamma, bias beta): the same function, fewer operators."""
    import onnx
    from onnx import numpy_helper

    model = onnx.ModelProto.FromString(model.SerializeToString())
    graph = model.graph
    inits = {t.name: t for t in graph.initializer}
    consumers: dict[str, list[onnx.NodeProto]] = {}
    for node in graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node)

    def only_consumer(name: str, op: str) -> onnx.NodeProto | None:
        users = consumers.get(name, [])
        if len(users) == 1 and users[0].op_type == op:
            return users[0]
        return None

    drop: set[tuple[str, str]] = set()  # (op type, output) of the Mul and Add nodes folded away
    for conv in graph.node:
        if conv.op_type != "Conv":
            continue
        mul = only_consumer(conv.output[0], "Mul")
        add = only_consumer(mul.output[0], "Add") if mul is not None else None
        if mul is None or add is None or mul.input[1] not in inits or add.input[1] not in inits:
            continue
        weights = numpy_helper.to_array(inits[conv.input[1]])
        gamma = numpy_helper.to_array(inits[mul.input[1]]).reshape(-1)
        beta = numpy_helper.to_array(inits[add.input[1]]).reshape(-1)
        bias = numpy_helper.to_array(inits[conv.input[2]]) if len(conv.input) > 2 else np.zeros_like(gamma)
        inits[conv.input[1]].CopyFrom(
            numpy_helper.from_array((weights * gamma[:, None, None, None]).astype(np.float32), conv.input[1])
        )
        bias_name = f"{conv.name or conv.output[0]}_folded_bias"
        graph.initializer.append(numpy_helper.from_array((bias * gamma + beta).astype(np.float32), bias_name))
        inits[bias_name] = graph.initializer[-1]
        del conv.input[2:]
        conv.input.append(bias_name)
        conv.output[0] = add.output[0]
        drop.update((("Mul", mul.output[0]), ("Add", add.output[0])))
    kept = [node for node in graph.node if (node.op_type, node.output[0]) not in drop]
    del graph.node[:]
    graph.node.extend(kept)
    used = {name for node in graph.node for name in node.input}
    unused = [t for t in graph.initializer if t.name not in used]
    for tensor in unused:
        graph.initializer.remove(tensor)
    del graph.value_info[:]
    onnx.checker.check_model(model)
    return model


def quantise_resnet(
    float_model: onnx.ModelProto,
    ranges: Int8Ranges,
    *,
    quant_format: str = "qdq",
    reduce_range: bool = False,
    per_channel: bool = True,
) -> onnx.ModelProto:
    """dlib's converted ResNet quantised to int8 (static, per-channel weights) with the given ranges.

    ``quant_format``: ``"qdq"`` (QuantizeLinear/DequantizeLinear pairs, fused by ONNX Runtime into integer
    kernels when the session is made) or ``"qoperator"`` (QLinearConv and friends written out). The ranges
    must be for these weights (ModelError ``model_mismatch`` otherwise), and for every tensor quantised.
    ``per_channel=False`` (one weight scale per tensor) exists for ``bench/speed/embed_runtime.py`` only.
    """
    import onnx
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.calibrate import TensorsData, save_tensors_data

    if quant_format not in QUANT_FORMATS:
        raise ModelError(f"unknown quantisation format {quant_format!r}: choose {' or '.join(QUANT_FORMATS)}")
    sha = {p.key: p.value for p in float_model.metadata_props}.get("sha256", "")
    if sha != ranges.weights_sha256:
        raise ModelError(
            f"int8 ranges were measured for weights {ranges.weights_sha256[:12]}, this model has {sha[:12] or 'none'}",
            code="model_mismatch",
        )
    folded = fold_affine(float_model)
    _check_coverage(folded, ranges)
    data = {name: (np.array(lo, np.float32), np.array(hi, np.float32)) for name, (lo, hi) in ranges.ranges.items()}
    with tempfile.TemporaryDirectory(prefix="facesearch-int8-") as tmp:
        folder = Path(tmp)
        onnx.save_model(folded, folder / "folded.onnx")
        save_tensors_data(TensorsData(CalibrationMethod.MinMax, data), folder / "ranges.json")
        with _without_preprocess_advice():
            quantize_static(
                folder / "folded.onnx",
                folder / "int8.onnx",
                calibration_data_reader=None,
                calibration_cache_path=folder / "ranges.json",
                quant_format=QuantFormat.QDQ if quant_format == "qdq" else QuantFormat.QOperator,
                op_types_to_quantize=OP_TYPES,
                per_channel=per_channel,
                reduce_range=reduce_range,
                activation_type=QuantType.QUInt8,
                weight_type=QuantType.QInt8,
                calibrate_method=CalibrationMethod.MinMax,
            )
        return onnx.load_model(folder / "int8.onnx")


def activation_tensors(folded: onnx.ModelProto) -> set[str]:
    """The tensors whose ranges quantising needs: every input and output of a quantised operator that is
    computed (not a weight). The same set ONNX Runtime's calibrators measure."""
    weights = {t.name for t in folded.graph.initializer}
    return {
        name
        for node in folded.graph.node
        if node.op_type in OP_TYPES
        for name in (*node.input, *node.output)
        if name and name not in weights
    }


def _check_coverage(folded: onnx.ModelProto, ranges: Int8Ranges) -> None:
    """Ranges for exactly the tensors quantised: a missing one would leave that tensor unquantised, or
    quantised with a made-up range, and an unknown one means the ranges were measured on another graph."""
    wanted = activation_tensors(folded)
    missing, unknown = sorted(wanted - ranges.ranges.keys()), sorted(ranges.ranges.keys() - wanted)
    if missing or unknown:
        raise ModelError(
            f"int8 ranges do not fit this graph: missing {missing[:3]}, unknown {unknown[:3]} "
            f"({len(missing)} missing, {len(unknown)} unknown)",
            code="model_mismatch",
        )
    bad = [name for name, (lo, hi) in ranges.ranges.items() if not (np.isfinite(lo) and np.isfinite(hi) and lo <= hi)]
    if bad:
        raise ModelError(f"int8 ranges are not finite (min <= max) for {bad[:3]}", code="model_mismatch")


class _PreprocessAdvice(logging.Filter):
    """Drops onnxruntime.quantization's advice to run its pre-processing, logged on every call: its part that
    matters here (folding the affine layers into the convolutions) is :func:`fold_affine`, already done."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "pre-process" not in record.getMessage() and "pre-processing" not in record.getMessage()


@contextmanager
def _without_preprocess_advice() -> Iterator[None]:
    root, advice = logging.getLogger(), _PreprocessAdvice()
    root.addFilter(advice)
    try:
        yield
    finally:
        root.removeFilter(advice)


def convert_resnet_int8(
    dat_path: Path, onnx_path: Path, ranges: Int8Ranges | None = None, *, reduce_range: bool = False
) -> Path:
    """Convert ``dlib_face_recognition_resnet_model_v1.dat`` to an int8 ONNX file at ``onnx_path``.

    ``reduce_range``: 7-bit weights (model ``dlib_resnet_v1_int8r``), whose integer products cannot saturate
    the int16 sums of ONNX Runtime's AVX2 kernels, so the descriptors do not depend on the CPU's VNNI."""
    from facesearch.models.convert.dlib_format import read_dlib_network
    from facesearch.models.convert.dlib_resnet_onnx import build_resnet_onnx

    float_model = build_resnet_onnx(read_dlib_network(Path(dat_path)))
    model = quantise_resnet(float_model, ranges or shipped_ranges(), reduce_range=reduce_range)
    try:
        write_atomically(model.SerializeToString(), Path(onnx_path))
    except OSError as exc:
        raise ModelError(f"cannot write converted model to {onnx_path}: {exc}") from exc
    log.info("quantised %s to int8 at %s", Path(dat_path).name, onnx_path)
    return Path(onnx_path)
