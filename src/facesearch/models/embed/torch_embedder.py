"""dlib's face ResNet run by PyTorch (a GPU, or the CPU): the same model as the default ONNX embedder.

Why: GPU ingestion. The lent GPU machines have PyTorch with CUDA but ONNX Runtime for the CPU only.
:class:`TorchEmbedder` reports the same :class:`~facesearch.models.embed.info.ModelInfo` (key
``dlib_resnet_v1``) as the ONNX path, because it runs the same weights and gives the same descriptors:
within 1e-6 in float32, cosine >= 0.9999 in float16/bfloat16 (see tests/test_torch_parity.py). An
index embedded on a GPU is therefore searchable on the CPU and vice versa.

Large batches are what make a GPU fast: chips are cut into batches of :attr:`TorchEmbedder.batch_size`
(1024 by default), copied to the device from pinned memory without waiting, and all results are
fetched with one synchronisation at the end. Requires the optional ``gpu`` extra (torch).
"""

from __future__ import annotations

import logging
import threading

import numpy as np
import torch

from facesearch.models.convert.dlib_format import DlibNetwork
from facesearch.models.embed.base import Embedder
from facesearch.models.embed.info import dlib_resnet_info
from facesearch.models.embed.torch_resnet import DlibResNet, build_torch_resnet
from facesearch.models.runtime import torch_placement

log = logging.getLogger(__name__)

DEFAULT_BATCH = 1024


class TorchEmbedder(Embedder):
    """dlib's ResNet on a torch device, in float32, bfloat16 or float16; same interface as OnnxEmbedder."""

    backend = "torch"

    def __init__(
        self,
        device: str | torch.device = "cuda",
        dtype: str | torch.dtype = "float32",
        batch_size: int = DEFAULT_BATCH,
        network: DlibNetwork | None = None,
    ) -> None:
        placement = torch_placement(device, dtype)  # checked before the weights are read
        self.device, self.dtype = placement.device, placement.dtype
        self.batch_size = max(1, int(batch_size))
        self.chip_size = 150
        self.chip_padding = 0.25
        self.info = dlib_resnet_info()
        self.model: DlibResNet = placement.place(build_torch_resnet(network))
        self._lock = threading.Lock()
        log.debug("torch embedder on %s in %s, batches of %d", self.device, self.dtype, self.batch_size)

    def _raw(self, chips: np.ndarray) -> np.ndarray:
        return self._raw_batched(chips, self.batch_size)

    def _raw_batched(self, chips: np.ndarray, batch_size: int) -> np.ndarray:
        """Every batch is queued before the one wait for the results: copies overlap the computation.

        The batch is the larger of ``batch_size`` (the CPU path's 64 by default) and the embedder's own.
        """
        batch = max(batch_size, self.batch_size)
        chips = np.ascontiguousarray(chips, dtype=np.uint8)
        if not chips.flags.writeable:  # torch.from_numpy warns on read-only arrays (np.asarray of a PIL image)
            chips = chips.copy()
        pin = self.device.type == "cuda"
        outputs = []
        with self._lock, torch.inference_mode():
            for start in range(0, len(chips), batch):
                host = torch.from_numpy(chips[start : start + batch])
                if pin:
                    host = host.pin_memory()
                outputs.append(self.model(host.to(self.device, non_blocking=pin)))
            if not outputs:
                return np.zeros((0, self.info.dim), np.float32)
            return torch.cat(outputs).cpu().numpy().astype(np.float32, copy=False)

    def embed_tensor(self, chips: torch.Tensor) -> torch.Tensor:
        """L2-normalised embeddings of uint8 chips already on the device [N, 150, 150, 3], left on the device.

        For pipelines that keep data on the GPU (bench/speed/gpu.py); no flip or grouping here.
        """
        with self._lock, torch.inference_mode():
            out = torch.cat([self.model(chips[i : i + self.batch_size]) for i in range(0, len(chips), self.batch_size)])
            return torch.nn.functional.normalize(out, dim=1)
