"""dlib's own ResNet through dlib-bin: the reference the converted models are checked against."""

from __future__ import annotations

import numpy as np

from facesearch.models.embed.base import Embedder
from facesearch.models.embed.info import dlib_resnet_info
from facesearch.models.weights import DLIB_RESNET, dlib_model_path


class DlibEmbedder(Embedder):
    """dlib's own ResNet via dlib-bin: the reference implementation (single-threaded, slow)."""

    backend = "dlib"

    def __init__(self) -> None:
        import dlib

        path = dlib_model_path(DLIB_RESNET)
        self._model = dlib.face_recognition_model_v1(str(path))
        self.info = dlib_resnet_info(path)

    def _raw(self, chips: np.ndarray) -> np.ndarray:
        return np.array([np.asarray(self._model.compute_face_descriptor(chip)) for chip in chips], np.float32)
