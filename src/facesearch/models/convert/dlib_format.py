"""A reader for dlib's serialized DNN files (``dlib::serialize(net)``), written from the format's facts.

Why our own reader: we run dlib's public-domain networks with ONNX Runtime, so we need their weights
without linking dlib. The reader is deliberately general: it decodes the generic encodings, walks the
layer chain, and hands each layer's details to a reader chosen by the layer's serialized name (see
:func:`register_layer`), so a new layer type is one small function.

File structure (everything uses dlib's variable-length integer encoding):

* an optional loss layer: version ``1``, the loss details (a name such as ``loss_metric_2``), then the
  sub-network;
* a chain of version numbers from the output end to the input: ``2`` for an ordinary layer, ``1`` for a
  tag or skip layer (they store nothing else), ``3`` for the innermost layer that sits on the input;
* the input layer (``input_rgb_image_sized`` ...);
* then, from the input end outwards, each ordinary layer's details followed by 3 bools and 3 tensors
  (training state, empty in shipped models); the innermost layer has an extra integer at the end.

Every error raises :class:`facesearch.errors.ModelError` with the byte offset, because a silent
misread would give wrong descriptors rather than a crash.
"""

from __future__ import annotations

import hashlib
import logging
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from facesearch.errors import ModelError

log = logging.getLogger(__name__)

TAG_OR_SKIP = "tag_or_skip"
"""Name given to tag and skip layers: the file stores neither their kind nor their id."""

# dlib's enums, as stored in the file.
CONV_MODE = 0
FC_MODE = 1
FC_HAS_BIAS = 0
FC_NO_BIAS = 1

# float_details exponents that encode special values.
_EXP_INF = 32000
_EXP_NINF = 32001
_EXP_NAN = 32002

_MAX_STRING = 1 << 20
_CHAIN_VERSION_LAYER = 2
_CHAIN_VERSION_TAG = 1
_CHAIN_VERSION_INNERMOST = 3


@dataclass
class DlibLayer:
    """One computational layer, as stored (input end first in :attr:`DlibNetwork.layers`).

    ``params`` is the layer's single flat parameter tensor; ``tensors`` holds the same values split per
    parameter with their real shapes (``filters``/``biases``, ``gamma``/``beta``, ``weights``...), plus
    any extra stored tensors (``running_means``...). ``offset`` is where the layer's details begin.
    """

    name: str
    attrs: dict[str, Any] = field(default_factory=dict)
    params: np.ndarray | None = None
    tensors: dict[str, np.ndarray] = field(default_factory=dict)
    offset: int = 0


@dataclass
class DlibInput:
    """The input layer: its serialized name and attributes (``means`` as R, G, B; sizes when fixed)."""

    name: str
    attrs: dict[str, Any] = field(default_factory=dict)
    offset: int = 0

    @property
    def means(self) -> tuple[float, float, float]:
        """Per-channel means (R, G, B) that dlib subtracts before dividing by 256."""
        return self.attrs["means"]


@dataclass
class DlibLoss:
    """The loss layer's serialized name and attributes (margin, thresholds, detector options...)."""

    name: str
    attrs: dict[str, Any] = field(default_factory=dict)


@dataclass
class DlibNetwork:
    """A whole network: loss (None if the file has none), input layer, layers from input to output."""

    loss: DlibLoss | None
    input: DlibInput
    layers: list[DlibLayer]
    size: int = 0
    sha256: str = ""


# --------------------------------------------------------------------------------------------
# Primitive decoding


class DlibReader:
    """Cursor over the file's bytes that decodes dlib's primitive encodings.

    Each method raises :class:`ModelError` naming the byte offset where the bad value starts.
    """

    def __init__(self, data: bytes) -> None:
        self._data = memoryview(data)
        self.pos = 0

    @property
    def remaining(self) -> int:
        return len(self._data) - self.pos

    def fail(self, message: str, offset: int | None = None) -> ModelError:
        """Build (not raise) the error, so callers write ``raise reader.fail(...)``."""
        where = self.pos if offset is None else offset
        return ModelError(f"dlib model file: {message} at byte offset {where}", code="model_corrupt")

    def take(self, count: int, what: str) -> memoryview:
        if count < 0 or count > self.remaining:
            raise self.fail(f"truncated file: needed {count} bytes for {what}, {self.remaining} left")
        chunk = self._data[self.pos : self.pos + count]
        self.pos += count
        return chunk

    def read_int(self, what: str = "integer", *, signed: bool = True) -> int:
        """A variable-length integer: control byte (count in low 4 bits, 0x80 = negative), magnitude LE."""
        start = self.pos
        control = self.take(1, what)[0]
        count = control & 0x0F
        if control & 0x70 or count > 8:
            raise self.fail(f"bad integer control byte 0x{control:02x} for {what}", start)
        negative = bool(control & 0x80)
        if negative and not signed:
            raise self.fail(f"negative value for unsigned {what}", start)
        value = int.from_bytes(self.take(count, what), "little")
        return -value if negative else value

    def read_uint(self, what: str = "unsigned integer") -> int:
        return self.read_int(what, signed=False)

    def read_bool(self, what: str = "bool") -> bool:
        """A bool is one ASCII byte, ``'0'`` or ``'1'``."""
        start = self.pos
        byte = self.take(1, what)[0]
        if byte not in (0x30, 0x31):
            raise self.fail(f"bad bool byte 0x{byte:02x} for {what}", start)
        return byte == 0x31

    def read_string(self, what: str = "string") -> str:
        start = self.pos
        length = self.read_uint(f"length of {what}")
        if length > _MAX_STRING:
            raise self.fail(f"implausible length {length} for {what}", start)
        raw = bytes(self.take(length, what))
        try:
            return raw.decode("ascii")
        except UnicodeDecodeError as exc:
            raise self.fail(f"non-ASCII bytes in {what}", start) from exc

    def peek_string(self) -> str | None:
        """The printable string at the cursor if one decodes there, else None; the cursor stays put.

        Used where the format is ambiguous (a loss layer's version 1 vs a tag's version 1).
        """
        start = self.pos
        try:
            length = self.read_uint()
            if length > 256:
                return None
            text = bytes(self.take(length, "string")).decode("ascii", errors="replace")
            return text if text.isprintable() else None
        except ModelError:
            return None
        finally:
            self.pos = start

    def read_float(self, what: str = "float") -> float:
        """dlib's portable float: integer mantissa m and integer exponent e, value m * 2**e."""
        start = self.pos
        mantissa = self.read_int(f"mantissa of {what}")
        exponent = self.read_int(f"exponent of {what}")
        if exponent == _EXP_INF:
            return math.inf
        if exponent == _EXP_NINF:
            return -math.inf
        if exponent == _EXP_NAN:
            return math.nan
        if not -(1 << 15) <= exponent < (1 << 15):
            raise self.fail(f"exponent {exponent} out of range for {what}", start)
        try:
            return math.ldexp(float(mantissa), exponent)
        except OverflowError as exc:
            raise self.fail(f"{what} overflows", start) from exc

    def read_dims(self, what: str) -> tuple[int, int, int, int]:
        dims = tuple(self.read_int(f"dimension of {what}") for _ in range(4))
        if any(d < 0 for d in dims):
            raise self.fail(f"negative dimension {dims} in {what}")
        return dims  # type: ignore[return-value]

    def read_tensor(self, what: str = "tensor") -> np.ndarray:
        """A data tensor: version 2, dims (n, k, nr, nc), then raw little-endian float32 values."""
        start = self.pos
        version = self.read_int(f"version of {what}")
        if version != 2:
            raise self.fail(f"unsupported tensor version {version} for {what}", start)
        dims = self.read_dims(what)
        count = math.prod(dims)
        raw = self.take(4 * count, f"data of {what} {dims}")
        return np.frombuffer(raw, dtype="<f4").astype(np.float32).reshape(dims)

    def read_alias_tensor(self, what: str = "alias tensor") -> tuple[int, int, int, int]:
        """An alias tensor is only a shape (version 1, four dims): the values live in ``params``."""
        start = self.pos
        version = self.read_int(f"version of {what}")
        if version != 1:
            raise self.fail(f"unsupported alias tensor version {version} for {what}", start)
        return self.read_dims(what)


# --------------------------------------------------------------------------------------------
# Layer, input and loss readers (dispatch tables keyed by the serialized name)

LayerReader = Callable[[DlibReader, DlibLayer], None]
SectionReader = Callable[[DlibReader, str], dict[str, Any]]

_LAYER_READERS: dict[str, LayerReader] = {}
_INPUT_READERS: dict[str, SectionReader] = {}
_LOSS_READERS: dict[str, SectionReader] = {}


def register_layer(*names: str) -> Callable[[LayerReader], LayerReader]:
    """Register a reader for layers serialized under any of ``names`` (e.g. ``"con_4"``)."""

    def decorate(func: LayerReader) -> LayerReader:
        for name in names:
            _LAYER_READERS[name] = func
        return func

    return decorate


def register_input(*names: str) -> Callable[[SectionReader], SectionReader]:
    """Register a reader for input layers serialized under any of ``names``."""

    def decorate(func: SectionReader) -> SectionReader:
        for name in names:
            _INPUT_READERS[name] = func
        return func

    return decorate


def register_loss(*names: str) -> Callable[[SectionReader], SectionReader]:
    """Register a reader for loss layers serialized under any of ``names``."""

    def decorate(func: SectionReader) -> SectionReader:
        for name in names:
            _LOSS_READERS[name] = func
        return func

    return decorate


def _split_params(reader: DlibReader, layer: DlibLayer, shapes: list[tuple[str, tuple[int, ...]]]) -> None:
    """Cut the flat ``params`` tensor into per-parameter arrays, in the order dlib lays them out."""
    flat = np.zeros(0, np.float32) if layer.params is None else layer.params.reshape(-1)
    needed = sum(math.prod(shape) for _, shape in shapes)
    if needed != flat.size:
        raise reader.fail(
            f"layer {layer.name}: params hold {flat.size} values but the parameter shapes need {needed}",
            layer.offset,
        )
    start = 0
    for key, shape in shapes:
        size = math.prod(shape)
        layer.tensors[key] = flat[start : start + size].reshape(shape)
        start += size


def _read_multipliers(reader: DlibReader, layer: DlibLayer) -> None:
    """Learning-rate and weight-decay multipliers: training-only, kept for completeness."""
    for key in (
        "learning_rate_multiplier",
        "weight_decay_multiplier",
        "bias_learning_rate_multiplier",
        "bias_weight_decay_multiplier",
    ):
        layer.attrs[key] = reader.read_float(key)


@register_layer("con_4", "con_5", "con_6")
def _read_con(reader: DlibReader, layer: DlibLayer) -> None:
    """Convolution: filters (num_filters, k, nr, nc) then biases, cross-correlation like cuDNN."""
    layer.params = reader.read_tensor("con params")
    attrs = layer.attrs
    attrs["num_filters"] = reader.read_int("num_filters")
    attrs["nr"] = reader.read_int("nr")
    attrs["nc"] = reader.read_int("nc")
    attrs["stride_y"] = reader.read_int("stride_y")
    attrs["stride_x"] = reader.read_int("stride_x")
    attrs["padding_y"] = reader.read_int("padding_y")
    attrs["padding_x"] = reader.read_int("padding_x")
    filters = reader.read_alias_tensor("filters")
    biases = reader.read_alias_tensor("biases")
    _read_multipliers(reader, layer)
    attrs["use_bias"] = reader.read_bool("use_bias") if layer.name in ("con_5", "con_6") else True
    attrs["use_relu"] = reader.read_bool("use_relu") if layer.name == "con_6" else False
    shapes = [("filters", filters)]
    if math.prod(biases) and attrs["use_bias"]:
        shapes.append(("biases", biases))
    _split_params(reader, layer, shapes)


@register_layer("fc_2", "fc_3")
def _read_fc(reader: DlibReader, layer: DlibLayer) -> None:
    """Fully connected: weights stored (num_inputs, num_outputs), used as x @ W, then optional biases."""
    attrs = layer.attrs
    attrs["num_outputs"] = reader.read_int("num_outputs")
    attrs["num_inputs"] = reader.read_int("num_inputs")
    layer.params = reader.read_tensor("fc params")
    weights = reader.read_alias_tensor("weights")
    biases = reader.read_alias_tensor("biases")
    attrs["bias_mode"] = reader.read_int("bias_mode")
    _read_multipliers(reader, layer)
    has_bias_mode = attrs["bias_mode"] == FC_HAS_BIAS
    attrs["use_bias"] = reader.read_bool("use_bias") if layer.name == "fc_3" else has_bias_mode
    has_bias = has_bias_mode and attrs["use_bias"] and math.prod(biases) > 0
    shapes = [("weights", (weights[0], weights[1] * weights[2] * weights[3]))]
    if has_bias:
        shapes.append(("biases", (math.prod(biases),)))
    _split_params(reader, layer, shapes)


@register_layer("affine_", "affine_2")
def _read_affine(reader: DlibReader, layer: DlibLayer) -> None:
    """Affine (batch norm folded at save time): y = gamma * x + beta, per channel in CONV_MODE."""
    layer.params = reader.read_tensor("affine params")
    gamma = reader.read_alias_tensor("gamma")
    beta = reader.read_alias_tensor("beta")
    layer.attrs["mode"] = reader.read_int("mode")
    layer.attrs["disabled"] = reader.read_bool("disabled") if layer.name == "affine_2" else False
    _split_params(reader, layer, [("gamma", gamma), ("beta", beta)])


@register_layer("bn_con2", "bn_fc2")
def _read_bn(reader: DlibReader, layer: DlibLayer) -> None:
    """Batch norm stored unfolded: gamma/beta in params plus running statistics and eps."""
    layer.params = reader.read_tensor("bn params")
    gamma = reader.read_alias_tensor("gamma")
    beta = reader.read_alias_tensor("beta")
    for key in ("means", "invstds", "running_means", "running_variances"):
        layer.tensors[key] = reader.read_tensor(key)
    layer.attrs["mode"] = CONV_MODE if layer.name == "bn_con2" else FC_MODE
    layer.attrs["num_updates"] = reader.read_uint("num_updates")
    layer.attrs["running_stats_window_size"] = reader.read_uint("running_stats_window_size")
    _read_multipliers(reader, layer)
    layer.attrs["eps"] = reader.read_float("eps")
    _split_params(reader, layer, [("gamma", gamma), ("beta", beta)])


@register_layer("relu_", "relu_2")
def _read_relu(reader: DlibReader, layer: DlibLayer) -> None:
    layer.attrs["disabled"] = reader.read_bool("disabled") if layer.name == "relu_2" else False


def _read_pool(reader: DlibReader, layer: DlibLayer) -> None:
    """Pooling window; nr = nc = 0 means "the whole input" (avg_pool_everything / max_pool_everything)."""
    for key in ("nr", "nc", "stride_y", "stride_x", "padding_y", "padding_x"):
        layer.attrs[key] = reader.read_int(key)


register_layer("max_pool_2", "avg_pool_2")(_read_pool)


@register_layer("add_prev_")
def _read_nothing(reader: DlibReader, layer: DlibLayer) -> None:
    """Layers whose details are only their name (the tag they refer to lives in the C++ type)."""


def _read_means(reader: DlibReader) -> tuple[float, float, float]:
    return (reader.read_float("avg_red"), reader.read_float("avg_green"), reader.read_float("avg_blue"))


@register_input("input_rgb_image", "input_rgb_image_sized")
def _read_input_rgb(reader: DlibReader, name: str) -> dict[str, Any]:
    attrs: dict[str, Any] = {"means": _read_means(reader)}
    if name == "input_rgb_image_sized":
        attrs["nr"] = reader.read_uint("nr")
        attrs["nc"] = reader.read_uint("nc")
    return attrs


@register_input("input_rgb_image_pyramid", "input_rgb_image_pyramid2")
def _read_input_pyramid(reader: DlibReader, name: str) -> dict[str, Any]:
    """The pyramid type itself is fixed in the C++ type; only means and (v2) paddings are stored."""
    attrs: dict[str, Any] = {"means": _read_means(reader)}
    if name == "input_rgb_image_pyramid2":
        attrs["pyramid_padding"] = reader.read_uint("pyramid_padding")
        attrs["pyramid_outer_padding"] = reader.read_uint("pyramid_outer_padding")
    else:
        attrs["pyramid_padding"], attrs["pyramid_outer_padding"] = 10, 11  # dlib's defaults for v1
    return attrs


@register_loss("loss_metric_2")
def _read_loss_metric(reader: DlibReader, name: str) -> dict[str, Any]:
    return {"margin": reader.read_float("margin"), "distance_threshold": reader.read_float("dist_thresh")}


def _read_box_overlap(reader: DlibReader, what: str) -> dict[str, float]:
    return {
        "iou_threshold": reader.read_float(f"{what} iou threshold"),
        "percent_covered_threshold": reader.read_float(f"{what} covered threshold"),
    }


def _read_detector_windows(reader: DlibReader) -> list[dict[str, Any]]:
    windows = []
    for _ in range(reader.read_uint("detector window count")):
        start = reader.pos
        version = reader.read_int("detector window version")
        if version not in (1, 2):
            raise reader.fail(f"unsupported detector window version {version}", start)
        window: dict[str, Any] = {"width": reader.read_uint("width"), "height": reader.read_uint("height")}
        window["label"] = reader.read_string("label") if version == 2 else ""
        windows.append(window)
    return windows


@register_loss("loss_mmod_")
def _read_loss_mmod(reader: DlibReader, name: str) -> dict[str, Any]:
    """MMOD options (versions 1-4): detector windows, loss weights and the overlap tests for NMS."""
    start = reader.pos
    version = reader.read_int("mmod_options version")
    if not 1 <= version <= 4:
        raise reader.fail(f"unsupported mmod_options version {version}", start)
    if version == 1:
        width, height = reader.read_uint("detector width"), reader.read_uint("detector height")
        windows = [{"width": width, "height": height, "label": ""}]
    else:
        windows = _read_detector_windows(reader)
    attrs: dict[str, Any] = {
        "options_version": version,
        "detector_windows": windows,
        "loss_per_false_alarm": reader.read_float("loss_per_false_alarm"),
        "loss_per_missed_target": reader.read_float("loss_per_missed_target"),
        "truth_match_iou_threshold": reader.read_float("truth_match_iou_threshold"),
        "overlaps_nms": _read_box_overlap(reader, "overlaps_nms"),
        "overlaps_ignore": _read_box_overlap(reader, "overlaps_ignore"),
    }
    if version >= 3:
        attrs["assume_image_pyramid"] = reader.read_int("assume_image_pyramid")
    if version >= 4:
        attrs["use_bounding_box_regression"] = reader.read_bool("use_bounding_box_regression")
        attrs["bbr_lambda"] = reader.read_float("bbr_lambda")
    return attrs


# --------------------------------------------------------------------------------------------
# Network structure


def _read_section(reader: DlibReader, table: dict[str, SectionReader], kind: str) -> tuple[str, int, dict]:
    start = reader.pos
    name = reader.read_string(f"{kind} name")
    section_reader = table.get(name)
    if section_reader is None:
        raise reader.fail(f"unsupported {kind} {name!r} (known: {', '.join(sorted(table))})", start)
    return name, start, section_reader(reader, name)


def _read_loss(reader: DlibReader) -> DlibLoss | None:
    """A loss layer is version 1 followed by a name starting with ``loss_``; a tag would follow with
    another version number instead, so peeking at the name tells them apart."""
    start = reader.pos
    version = reader.read_int("loss layer version")
    name = reader.peek_string()
    if version != 1 or name is None or not name.startswith("loss_"):
        reader.pos = start
        return None
    name, _, attrs = _read_section(reader, _LOSS_READERS, "loss layer")
    return DlibLoss(name, attrs)


def _read_chain(reader: DlibReader) -> list[tuple[int, int]]:
    """(version, offset) from the output end inwards, ending with the innermost layer's version 3."""
    chain: list[tuple[int, int]] = []
    while True:
        start = reader.pos
        version = reader.read_int("layer version")
        if version == _CHAIN_VERSION_INNERMOST:
            chain.append((version, start))
            return chain
        if version not in (_CHAIN_VERSION_LAYER, _CHAIN_VERSION_TAG):
            raise reader.fail(
                f"unsupported layer version {version} (expected 1 for tag/skip, 2 or 3 for layers)", start
            )
        chain.append((version, start))


def _read_layer_details(reader: DlibReader) -> DlibLayer:
    start = reader.pos
    name = reader.read_string("layer name")
    layer_reader = _LAYER_READERS.get(name)
    if layer_reader is None:
        raise reader.fail(f"unsupported layer type {name!r} (known: {', '.join(sorted(_LAYER_READERS))})", start)
    layer = DlibLayer(name=name, offset=start)
    layer_reader(reader, layer)
    return layer


def _read_layer_trailer(reader: DlibReader, layer: DlibLayer, *, innermost: bool) -> None:
    """Training state after each layer's details: 3 bools and 3 tensors (empty in shipped models)."""
    for key in ("setup_called", "gradient_input_is_stale", "output_and_gradient_disabled"):
        layer.attrs[key] = reader.read_bool(key)
    for key in ("x_grad", "cached_output", "params_grad"):
        tensor = reader.read_tensor(key)
        if tensor.size:
            log.debug("layer %s at %d stores a non-empty %s %s", layer.name, layer.offset, key, tensor.shape)
    if innermost:
        layer.attrs["sample_expansion_factor"] = reader.read_int("sample_expansion_factor")


def _read_layers(reader: DlibReader, chain: list[tuple[int, int]]) -> list[DlibLayer]:
    """Details come from the input end outwards, i.e. the chain in reverse; tags/skips have none
    (their ``offset`` is that of their version number in the chain)."""
    layers: list[DlibLayer] = []
    for version, chain_offset in reversed(chain):
        if version == _CHAIN_VERSION_TAG:
            layers.append(DlibLayer(name=TAG_OR_SKIP, offset=chain_offset))
            continue
        layer = _read_layer_details(reader)
        _read_layer_trailer(reader, layer, innermost=version == _CHAIN_VERSION_INNERMOST)
        layers.append(layer)
    return layers


def parse_dlib_network(data: bytes) -> DlibNetwork:
    """Parse a whole serialized network; the file must be consumed exactly to its last byte."""
    reader = DlibReader(data)
    loss = _read_loss(reader)
    chain = _read_chain(reader)
    input_name, input_offset, input_attrs = _read_section(reader, _INPUT_READERS, "input layer")
    layers = _read_layers(reader, chain)
    if reader.remaining:
        raise reader.fail(f"{reader.remaining} unexpected trailing bytes after the network")
    network = DlibNetwork(
        loss=loss,
        input=DlibInput(input_name, input_attrs, input_offset),
        layers=layers,
        size=len(data),
        sha256=hashlib.sha256(data).hexdigest(),
    )
    log.debug("parsed dlib network: %d layers, loss %s", len(layers), loss.name if loss else None)
    return network


def read_dlib_network(path: Path) -> DlibNetwork:
    """Read and parse a dlib ``.dat`` network file (errors name the file and the byte offset)."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ModelError(f"cannot read dlib model file {path}: {exc}", code="model_missing") from exc
    try:
        return parse_dlib_network(data)
    except ModelError as exc:
        raise ModelError(f"{path.name}: {exc}", code=exc.code) from exc
