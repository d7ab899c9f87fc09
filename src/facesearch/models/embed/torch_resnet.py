"""dlib's face-recognition ResNet as a PyTorch module, built from the same parsed weights as the ONNX model.

Why: the lent GPU machines have PyTorch with CUDA but only a CPU build of ONNX Runtime. The module gives
the descriptors the ONNX graph gives (float32: to float rounding), so an index embedded on a GPU is
searchable with the CPU path and vice versa: it is the same model (same key, same weights).

The wiring is not re-encoded here: :func:`facesearch.models.convert.dlib_resnet_onnx.anet_type_spec` (the mirror of
dlib's C++ ``anet_type``) is walked beside the file's layers, exactly as the ONNX converter walks it,
and every layer's geometry is checked against it. The walk produces a short program of steps (conv,
relu, pool, tag, skip, add_prev...) that :meth:`DlibResNet.forward` runs. Each ``affine_`` (dlib's
batch norm, already folded to a per-channel scale and shift) is folded into the convolution before it,
in float64, as ONNX Runtime's graph optimiser also does.

Import this module only where torch is wanted: torch is an optional extra (``pip install '.[gpu]'``).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F  # noqa: N812 (the usual name)
from torch import nn

from facesearch.errors import ModelError
from facesearch.models.convert.dlib_format import CONV_MODE, FC_HAS_BIAS, TAG_OR_SKIP, DlibLayer, DlibNetwork
from facesearch.models.convert.dlib_resnet_onnx import CHIP_SIZE, EMBEDDING_DIM, LayerSpec, anet_type_spec

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class _Step:
    """One step of the program: ``op`` plus the index of its module (conv) or the tag it names."""

    op: str  # conv, relu, max_pool, avg_pool, global_pool, fc, tag, skip, add_prev
    arg: int = 0  # conv: module index; tag, skip, add_prev: tag id; pools: window size
    stride: int = 1


def _fail(index: int, layer: DlibLayer, message: str) -> ModelError:
    return ModelError(
        f"dlib ResNet does not match anet_type at layer {index} ({layer.name}, byte offset {layer.offset}): {message}",
        code="model_mismatch",
    )


class _ProgramBuilder:
    """Walks ``anet_type_spec()`` beside the parsed layers; emits steps and float64 conv weights."""

    def __init__(self) -> None:
        self.steps: list[_Step] = []
        self.convs: list[dict] = []  # weight, bias (float64), stride
        self.fc: np.ndarray | None = None
        self.channels = 3

    def add(self, index: int, layer: DlibLayer, spec: LayerSpec) -> None:
        def expect(condition: bool, message: str) -> None:
            if not condition:
                raise _fail(index, layer, message)

        kind = spec.kind
        if kind in ("tag", "skip"):
            expect(layer.name == TAG_OR_SKIP, "expected a tag or skip layer")
            self.steps.append(_Step(kind, spec.tag))
        elif kind == "con":
            self._add_con(layer, spec, expect)
        elif kind == "affine":
            self._add_affine(layer, expect)
        elif kind == "relu":
            expect(layer.name in ("relu_", "relu_2"), "expected relu")
            if not layer.attrs.get("disabled"):
                self.steps.append(_Step("relu"))
        elif kind in ("max_pool", "avg_pool"):
            name = "max_pool_2" if kind == "max_pool" else "avg_pool_2"
            a = layer.attrs
            geometry = (a.get("nr"), a.get("nc"), a.get("stride_y"), a.get("stride_x"), a.get("padding_y"))
            expect(layer.name == name, f"expected {name}")
            expect(geometry == (spec.size, spec.size, spec.stride, spec.stride, 0), f"pool geometry {geometry}")
            self.steps.append(_Step(kind, spec.size, spec.stride))
        elif kind == "avg_pool_everything":
            a = layer.attrs
            expect(layer.name == "avg_pool_2" and (a["nr"], a["nc"]) == (0, 0), "expected avg_pool_everything")
            self.steps.append(_Step("global_pool"))
        elif kind == "fc":
            a = layer.attrs
            expect(layer.name in ("fc_2", "fc_3"), "expected fc")
            expect((a["num_outputs"], a["num_inputs"]) == (spec.num, self.channels), "fc size")
            expect(a["bias_mode"] != FC_HAS_BIAS, "anet_type's fc has no bias")
            self.fc = layer.tensors["weights"].astype(np.float64)  # (inputs, outputs): x @ W
            self.steps.append(_Step("fc"))
        elif kind == "add_prev":
            expect(layer.name == "add_prev_", "expected add_prev")
            self.steps.append(_Step("add_prev", spec.tag))
        else:  # pragma: no cover - anet_type_spec only has the kinds above
            raise _fail(index, layer, f"unknown layer kind {kind!r}")

    def _add_con(self, layer: DlibLayer, spec: LayerSpec, expect) -> None:  # type: ignore[no-untyped-def]
        a = layer.attrs
        expect(layer.name in ("con_4", "con_5", "con_6"), "expected con")
        geometry = (a["num_filters"], a["nr"], a["nc"], a["stride_y"], a["stride_x"])
        expect(geometry == (spec.num, spec.size, spec.size, spec.stride, spec.stride), f"con geometry {geometry}")
        pad = 0 if spec.stride != 1 else spec.size // 2  # dlib's default padding
        expect((a["padding_y"], a["padding_x"]) == (pad, pad), f"padding is not {pad}")
        filters = layer.tensors["filters"]
        expect(filters.shape[1] == self.channels, f"filters take {filters.shape[1]} channels, not {self.channels}")
        biases = layer.tensors.get("biases")
        bias = np.zeros(spec.num) if biases is None else biases.reshape(-1).astype(np.float64)
        self.convs.append({"weight": filters.astype(np.float64), "bias": bias, "stride": spec.stride, "pad": pad})
        self.steps.append(_Step("conv", len(self.convs) - 1))
        if a.get("use_relu"):
            self.steps.append(_Step("relu"))
        self.channels = spec.num

    def _add_affine(self, layer: DlibLayer, expect) -> None:  # type: ignore[no-untyped-def]
        expect(layer.name in ("affine_", "affine_2"), "expected affine")
        expect(layer.attrs["mode"] == CONV_MODE, "affine is not per-channel (CONV_MODE)")
        expect(bool(self.steps) and self.steps[-1].op == "conv", "affine does not follow a convolution")
        if layer.attrs.get("disabled"):
            return
        gamma = layer.tensors["gamma"].astype(np.float64).reshape(-1)
        beta = layer.tensors["beta"].astype(np.float64).reshape(-1)
        conv = self.convs[self.steps[-1].arg]
        expect(gamma.shape == conv["bias"].shape, f"{gamma.size} scales for {conv['bias'].size} channels")
        conv["weight"] = conv["weight"] * gamma[:, None, None, None]
        conv["bias"] = conv["bias"] * gamma + beta


def _pad_to(x: torch.Tensor, channels: int, rows: int, cols: int) -> torch.Tensor:
    """Zero-pad at the end of channels, rows and columns (dlib's add of unequal tensors)."""
    extra = (cols - x.shape[3], rows - x.shape[2], channels - x.shape[1])
    if not any(extra):
        return x
    return F.pad(x, (0, extra[0], 0, extra[1], 0, extra[2]))


class DlibResNet(nn.Module):
    """dlib's ``anet_type``: uint8 RGB chips [N, 150, 150, 3] (NHWC) -> raw float32 descriptors [N, 128].

    Same input and output as the ONNX model (the descriptors are not L2-normalised). Build it with
    :meth:`from_network`; move it with ``.to(device, dtype)`` (the input normalisation always runs
    in float32, then the network runs in the parameters' dtype).
    """

    def __init__(
        self,
        steps: list[_Step],
        convs: list[dict],
        fc: np.ndarray,
        means: tuple[float, float, float],
    ) -> None:
        super().__init__()
        self.steps = steps
        self.convs = nn.ModuleList()
        for spec in convs:
            weight = spec["weight"]
            conv = nn.Conv2d(
                weight.shape[1], weight.shape[0], weight.shape[2], stride=spec["stride"], padding=spec["pad"]
            )
            conv.weight.data = torch.from_numpy(weight.astype(np.float32))
            conv.bias.data = torch.from_numpy(spec["bias"].astype(np.float32))
            conv.requires_grad_(False)
            self.convs.append(conv)
        self.fc = nn.Parameter(torch.from_numpy(fc.astype(np.float32)), requires_grad=False)
        self.means = tuple(float(m) for m in means)
        self._means_cache: dict[torch.device, torch.Tensor] = {}

    @classmethod
    def from_network(cls, network: DlibNetwork) -> DlibResNet:
        """Build from a parsed ``dlib_face_recognition_resnet_model_v1.dat``; ModelError if it is not anet_type."""
        if network.loss is None or network.loss.name != "loss_metric_2":
            found = network.loss.name if network.loss else "no loss layer"
            raise ModelError(f"not dlib's face ResNet: expected loss_metric_2, found {found}", code="model_mismatch")
        info = network.input
        if info.name not in ("input_rgb_image_sized", "input_rgb_image"):
            raise ModelError(f"dlib ResNet: unexpected input layer {info.name!r}", code="model_mismatch")
        if info.attrs.get("nr", CHIP_SIZE) != CHIP_SIZE or info.attrs.get("nc", CHIP_SIZE) != CHIP_SIZE:
            raise ModelError(f"dlib ResNet: input is not {CHIP_SIZE}x{CHIP_SIZE}", code="model_mismatch")
        spec = anet_type_spec()
        if len(network.layers) != len(spec):
            raise ModelError(
                f"dlib ResNet has {len(network.layers)} layers, anet_type has {len(spec)}", code="model_mismatch"
            )
        builder = _ProgramBuilder()
        for index, (layer, layer_spec) in enumerate(zip(network.layers, spec, strict=True)):
            builder.add(index, layer, layer_spec)
        assert builder.fc is not None and builder.fc.shape[1] == EMBEDDING_DIM
        return cls(builder.steps, builder.convs, builder.fc, info.means)

    @property
    def dtype(self) -> torch.dtype:
        return self.fc.dtype

    def _means_on(self, device: torch.device) -> torch.Tensor:
        means = self._means_cache.get(device)
        if means is None:  # kept out of the buffers so that .to(bfloat16) cannot round the means
            means = torch.tensor(self.means, dtype=torch.float32, device=device).reshape(1, 3, 1, 1)
            self._means_cache[device] = means
        return means

    def normalise(self, chips: torch.Tensor) -> torch.Tensor:
        """uint8 NHWC chips -> ``(pixel - mean) / 256`` as NCHW (channels-last memory) in the model's dtype."""
        if chips.ndim != 4 or chips.shape[1:] != (CHIP_SIZE, CHIP_SIZE, 3):
            raise ModelError(f"expected chips of shape (N, {CHIP_SIZE}, {CHIP_SIZE}, 3), got {tuple(chips.shape)}")
        x = chips.permute(0, 3, 1, 2).to(torch.float32)
        x = (x - self._means_on(x.device)) * (1.0 / 256.0)
        return x.to(self.dtype)

    def forward(self, chips: torch.Tensor) -> torch.Tensor:
        x = self.normalise(chips)
        tags: dict[int, torch.Tensor] = {}
        for step in self.steps:
            op = step.op
            if op == "conv":
                x = self.convs[step.arg](x)
            elif op == "relu":  # in place unless a tag still holds x (never so in anet_type: saves memory)
                x = F.relu(x, inplace=not any(t is x for t in tags.values()))
            elif op == "max_pool":
                x = F.max_pool2d(x, step.arg, step.stride)
            elif op == "avg_pool":
                x = F.avg_pool2d(x, step.arg, step.stride)
            elif op == "global_pool":
                x = x.mean(dim=(2, 3))
            elif op == "fc":
                x = x @ self.fc
            elif op == "tag":
                tags[step.arg] = x
            elif op == "skip":
                x = tags[step.arg]
            elif op == "add_prev":
                other = tags[step.arg]
                shape = [max(a, b) for a, b in zip(x.shape[1:], other.shape[1:], strict=True)]
                x = _pad_to(x, *shape) + _pad_to(other, *shape)
        return x.float()


def build_torch_resnet(network: DlibNetwork | None = None) -> DlibResNet:
    """dlib's face ResNet as a float32 CPU module (``network``: parsed weights, else the installed file)."""
    if network is None:
        from facesearch.models.convert.dlib_format import read_dlib_network
        from facesearch.models.weights import DLIB_RESNET, dlib_model_path

        network = read_dlib_network(dlib_model_path(DLIB_RESNET))
    return DlibResNet.from_network(network).eval()
