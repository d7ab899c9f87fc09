"""Where and how a model runs: ONNX Runtime or PyTorch, which device, and the sessions they give.

Why one module: each model class used to build its own ONNX Runtime session, or move its own torch
module to a device, with its own copy of the thread options and of the device and dtype checks. Here
the choice is made once (:func:`runtime_for`) and sessions are made in one place
(:func:`onnx_session`, :func:`torch_placement`). A model class says only what it runs and how to
feed it; the session says which engine, which device, how many threads. (The same split as a model
and its session classes in Immich's machine-learning service.)

Nothing here imports onnxruntime or torch until a session is made: torch is an optional extra, and
importing a model module must never load either, nor convert any weights.
"""

from __future__ import annotations

import importlib
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np

from facesearch.errors import ModelError

if TYPE_CHECKING:
    import onnxruntime as ort
    import torch

CPU = "cpu"
ONNXRUNTIME = "onnxruntime"
TORCH = "torch"
CPU_PROVIDERS: tuple[str, ...] = ("CPUExecutionProvider",)
DTYPE_NAMES: tuple[str, ...] = ("float32", "bfloat16", "float16")

Module = TypeVar("Module")


def runtime_for(device: str) -> str:
    """The runtime for a device: ONNX Runtime on the CPU, PyTorch anywhere else.

    ONNX Runtime is the faster of the two on the CPU and needs no optional extra; the lent GPU machines
    have PyTorch with CUDA but ONNX Runtime for the CPU only. Both run the same weights (same model key).
    """
    return ONNXRUNTIME if device == CPU else TORCH


# --------------------------------------------------------------------------------------------
# ONNX Runtime


class OnnxSession:
    """An ONNX Runtime session run one call at a time: a run already uses every thread it was given,
    and several callers sharing a model (a server's searches) must not interleave on it."""

    def __init__(self, session: ort.InferenceSession) -> None:
        self._session = session
        self._lock = threading.Lock()

    @property
    def input_name(self) -> str:
        """The first input's name (every model here has exactly one input)."""
        return str(self._session.get_inputs()[0].name)

    @property
    def output_shape(self) -> list[Any]:
        """The first output's shape: ints, or names/None for dimensions fixed only at run time."""
        return list(self._session.get_outputs()[0].shape)

    @property
    def metadata(self) -> dict[str, str]:
        """The model's custom metadata (a converted detector keeps its decoding settings there)."""
        return dict(self._session.get_modelmeta().custom_metadata_map)

    def run(self, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        """Every output of one run."""
        with self._lock:
            return self._session.run(None, feeds)


NO_SPINNING = ("session.intra_op.allow_spinning", "0")
"""ONNX Runtime's session setting that stops idle intra-op threads busy-waiting (see :func:`onnx_session`)."""


def onnx_session(
    model: Path | str | bytes, *, threads: int = 0, what: str = "", providers: Sequence[str] = CPU_PROVIDERS
) -> OnnxSession:
    """An ONNX Runtime session for a model file or serialized model.

    ``threads`` is the intra-op thread count (0: all cores); one inter-op thread, since these graphs
    are chains. ``what`` names the model in the error raised when it cannot be loaded.

    The intra-op threads do not spin between runs (ONNX Runtime's default is to busy-wait for the next
    one): here a run is followed by Python work (decoding, alignment, the catalog), and on a machine shared
    with ingest workers, a server or a test suite, spinning threads burn the CPU that work needs. Measured
    (issue 11): ~10% less CPU for an LFW ingest and 22 searches; 129 s -> 87 s of CPU (wall 187 s -> 95 s) for
    the two `eval identify` tests, on the shared 2-core machine.
    """
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.add_session_config_entry(NO_SPINNING[0], NO_SPINNING[1])
    options.log_severity_level = 3
    source = model if isinstance(model, bytes) else str(model)
    try:
        session = ort.InferenceSession(source, options, providers=list(providers))
    except Exception as exc:  # onnxruntime raises its own untyped errors
        raise ModelError(f"cannot load {what or 'ONNX model'}: {exc}") from exc
    return OnnxSession(session)


# --------------------------------------------------------------------------------------------
# PyTorch


def torch_part(module: str, device: str) -> ModuleType:
    """``facesearch.models.<module>``, a module that needs PyTorch (the optional ``gpu`` extra).

    A clear error names the extra when torch is missing.
    """
    try:
        return importlib.import_module(f"facesearch.models.{module}")
    except ImportError as exc:
        raise ModelError(
            f"device {device!r} needs PyTorch, an optional extra: pip install 'facesearch[gpu]' ({exc})",
            code="torch_missing",
        ) from exc


def torch_device(device: str | torch.device) -> torch.device:
    """``"cuda"``, ``"cuda:1"``, ``"cpu"``... as a torch device; ModelError if it is not usable here."""
    import torch

    try:
        resolved = torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise ModelError(f"unknown torch device {device!r}: {exc}", code="bad_device") from exc
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise ModelError(f"device {device!r} requested but CUDA is not available to torch", code="bad_device")
    return resolved


def torch_dtype(dtype: str | torch.dtype) -> torch.dtype:
    """``"float32"``/``"bfloat16"``/``"float16"`` (or the torch dtype itself) -> torch dtype."""
    import torch

    known = {name: getattr(torch, name) for name in DTYPE_NAMES}
    if isinstance(dtype, torch.dtype):
        if dtype not in known.values():
            raise ModelError(f"unsupported dtype {dtype}: choose one of {', '.join(known)}", code="bad_dtype")
        return dtype
    try:
        return known[str(dtype).removeprefix("torch.")]
    except KeyError:
        raise ModelError(f"unsupported dtype {dtype!r}: choose one of {', '.join(known)}", code="bad_dtype") from None


@dataclass(frozen=True)
class TorchPlacement:
    """A checked torch device and dtype: where a model's module runs, and in what precision."""

    device: torch.device
    dtype: torch.dtype

    @property
    def cuda(self) -> bool:
        return self.device.type == "cuda"

    def place(self, module: Module) -> Module:
        """The module in inference mode on the device, in the dtype (channels-last on CUDA: what cuDNN's
        fast convolution kernels want)."""
        import torch

        if self.cuda:
            module = module.to(memory_format=torch.channels_last)  # type: ignore[attr-defined]
        return module.to(device=self.device, dtype=self.dtype).eval()  # type: ignore[attr-defined]


def torch_placement(device: str | torch.device, dtype: str | torch.dtype = "float32") -> TorchPlacement:
    """Check a device and a dtype before any weights are read (ModelError ``bad_device``/``bad_dtype``)."""
    return TorchPlacement(torch_device(device), torch_dtype(dtype))
