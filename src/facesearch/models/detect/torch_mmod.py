"""dlib's CNN (MMOD) face detector network as a PyTorch module, and the runner that puts it behind the
CNN detector.

Why: GPU ingestion. The lent GPU machines have PyTorch with CUDA but ONNX Runtime for the CPU only.
Each piece reuses what the ONNX path already has rather than re-deriving it:

* :class:`MmodNet`: the network from the same parsed weights as :mod:`facesearch.models.convert.mmod_onnx`
  (checked by its :func:`~facesearch.models.convert.mmod_onnx.mmod_settings`, batch norms folded by its
  ``_affine``), same input and output: normalised canvas [N, 3, H, W] -> raw score map [N, 1, H', W'].
* :class:`TorchMmodRunner`: that network behind :class:`~facesearch.models.detect.cnn.CnnFaceDetector`'s
  ``runner`` hook, so the detector's pyramid, box decoding and NMS stay exactly as they are
  (:func:`torch_cnn_detector`). One image at a time: fine for search, not for bulk ingest; ingest uses
  :class:`~facesearch.models.detect.torch_batch.TorchBatchDetector`.

The device and dtype are checked and the module placed by :func:`facesearch.models.runtime.torch_placement`.
Import this module only where torch is wanted: torch is an optional extra (``pip install '.[gpu]'``).
"""

from __future__ import annotations

import logging

import numpy as np
import torch
import torch.nn.functional as F  # noqa: N812 (the usual name)
from torch import nn

from facesearch.errors import ModelError
from facesearch.models.convert.dlib_format import DlibNetwork
from facesearch.models.convert.mmod_onnx import MMOD_CONVS, MmodSettings, _affine, mmod_settings
from facesearch.models.detect.base import DetectorSettings
from facesearch.models.detect.cnn import CnnFaceDetector
from facesearch.models.runtime import torch_placement

log = logging.getLogger(__name__)


class MmodNet(nn.Module):
    """dlib's MMOD face detector network: canvas (RGB - mean) / 256 [N, 3, H, W] -> scores [N, 1, H', W'].

    Output in float32 whatever the parameters' dtype. Build with :meth:`from_network`.
    """

    def __init__(self, convs: list[nn.Conv2d], relus: list[bool], settings: MmodSettings) -> None:
        super().__init__()
        self.convs = nn.ModuleList(convs)
        self.relus = relus
        self.settings = settings

    @classmethod
    def from_network(cls, network: DlibNetwork) -> MmodNet:
        """From a parsed ``mmod_human_face_detector.dat``; ModelError if it is not dlib's face detector."""
        settings = mmod_settings(network)  # checks the loss, the windows and the layer names
        layers = iter(enumerate(network.layers))
        convs, relus, channels = [], [], 3
        for spec in MMOD_CONVS:
            index, layer = next(layers)
            a = layer.attrs
            geometry = (a["num_filters"], a["nr"], a["nc"], a["stride_y"], a["stride_x"], a["padding_y"])
            wanted = (spec.num, spec.size, spec.size, spec.stride, spec.stride, spec.padding)
            filters = layer.tensors["filters"].astype(np.float64)
            if geometry != wanted or filters.shape != (spec.num, channels, spec.size, spec.size):
                raise ModelError(
                    f"dlib MMOD network does not match the face detector's type at layer {index} "
                    f"({layer.name}): geometry {geometry}, filters {filters.shape}",
                    code="model_mismatch",
                )
            biases = layer.tensors.get("biases")
            bias = np.zeros(spec.num) if biases is None else biases.reshape(-1).astype(np.float64)
            relu = False
            if spec.bn:
                index, layer = next(layers)
                scale, shift = _affine(index, layer, spec.num)  # float64, batch norm in inference mode
                filters, bias = filters * scale[:, None, None, None], bias * scale + shift
                _, layer = next(layers)
                relu = not layer.attrs.get("disabled")
            conv = nn.Conv2d(channels, spec.num, spec.size, stride=spec.stride, padding=spec.padding)
            conv.weight.data = torch.from_numpy(filters.astype(np.float32))
            conv.bias.data = torch.from_numpy(bias.astype(np.float32))
            conv.requires_grad_(False)
            convs.append(conv)
            relus.append(relu)
            channels = spec.num
        return cls(convs, relus, settings).eval()

    def forward(self, canvas: torch.Tensor) -> torch.Tensor:
        x = canvas.to(self.convs[0].weight.dtype)
        for conv, relu in zip(self.convs, self.relus, strict=True):
            x = conv(x)
            if relu:
                x = F.relu(x, inplace=True)  # x is the convolution's own fresh output
        return x.float()


def build_torch_mmod(network: DlibNetwork | None = None) -> MmodNet:
    """dlib's MMOD network as a float32 CPU module (``network``: parsed weights, else the installed file)."""
    if network is None:
        from facesearch.models.convert.dlib_format import read_dlib_network
        from facesearch.models.weights import DLIB_MMOD, dlib_model_path

        network = read_dlib_network(dlib_model_path(DLIB_MMOD))
    return MmodNet.from_network(network)


class TorchMmodRunner:
    """The network as :class:`CnnFaceDetector`'s ``runner``: numpy canvases in, numpy score maps out."""

    def __init__(
        self,
        device: str | torch.device = "cuda",
        dtype: str | torch.dtype = "float32",
        network: DlibNetwork | None = None,
    ) -> None:
        placement = torch_placement(device, dtype)  # checked before the weights are read
        self.device, self.dtype = placement.device, placement.dtype
        self.net = placement.place(build_torch_mmod(network))
        self.mmod = self.net.settings

    def __call__(self, canvas: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            x = torch.from_numpy(np.ascontiguousarray(canvas, dtype=np.float32)).to(self.device)
            return self.net(x).cpu().numpy()


def torch_cnn_detector(
    settings: DetectorSettings | None = None, *, device: str = "cuda", dtype: str = "float32"
) -> CnnFaceDetector:
    """dlib's CNN face detector with its network run by PyTorch on ``device`` (same boxes as ONNX)."""
    return CnnFaceDetector(settings, runner=TorchMmodRunner(device, dtype))
