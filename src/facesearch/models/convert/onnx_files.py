"""Writing converted dlib networks as ONNX files, and caching each conversion by its weights' hash.

Both dlib networks facesearch runs (the face ResNet and the MMOD face detector) are converted from
dlib's own files once per weights file and kept in the library's models folder. The file name
carries the weights' SHA-256, so a different ``.dat`` never reuses a stale conversion.
"""

from __future__ import annotations

import logging
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from facesearch.errors import ModelError
from facesearch.models.weights import dlib_model_path, file_sha256

if TYPE_CHECKING:  # onnx costs ~0.6 s to import (ml_dtypes): only conversions need it
    import onnx

log = logging.getLogger(__name__)


def write_atomically(data: bytes, target: Path) -> None:
    """Write beside the target then rename, so a crash never leaves a half-written model behind."""
    fd, tmp_name = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp_name, target)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise


def save_model(model: onnx.ModelProto, onnx_path: Path, dat_path: Path, sha256: str) -> Path:
    """Write a converted model (atomically); a clear ModelError if the folder is not writable."""
    try:
        write_atomically(model.SerializeToString(), onnx_path)
    except OSError as exc:
        raise ModelError(f"cannot write converted model to {onnx_path}: {exc}") from exc
    log.info("converted %s to %s (sha256 %s)", dat_path.name, onnx_path, sha256[:12])
    return onnx_path


def cached_conversion(cache_dir: Path, dat_filename: str, key: str, convert: Callable[[Path, Path], Path]) -> Path:
    """The ONNX file of dlib model ``dat_filename`` in ``cache_dir``, converting it the first time."""
    dat = dlib_model_path(dat_filename)
    target = cache_dir / f"{key}-{file_sha256(dat)[:12]}.onnx"
    if not target.is_file():
        cache_dir.mkdir(parents=True, exist_ok=True)
        log.info("converting %s to ONNX at %s (once)", dat.name, target)
        convert(dat, target)
    return target
