"""The Embedder interface: aligned face chips in, L2-normalised vectors out.

Every embedder states which model it runs (:class:`~facesearch.models.embed.info.ModelInfo`); the
implementations (ONNX Runtime, dlib, PyTorch) differ only in how :meth:`Embedder._raw` runs the
network. Flipping, averaging several alignments of one face and the stability score are done here,
once, so every implementation gives the same vectors for the same raw descriptors.
"""

from __future__ import annotations

from abc import ABC, abstractmethod

import numpy as np

from facesearch.errors import ModelError
from facesearch.models.embed.info import ModelInfo


class Embedder(ABC):
    """Turns a batch of aligned chips (N, size, size, 3) uint8 RGB into (N, dim) unit vectors."""

    info: ModelInfo
    chip_size: int = 150
    chip_padding: float = 0.25
    backend: str = ""

    @abstractmethod
    def _raw(self, chips: np.ndarray) -> np.ndarray:
        """Run the model on a batch and return raw float32 descriptors."""

    def embed(self, chips: np.ndarray, batch_size: int = 64, flip: bool = False, group: int = 1) -> np.ndarray:
        """Embed chips in batches; returns L2-normalised float32 vectors (cosine = dot product).

        ``flip`` averages each chip's descriptor with its mirror image's: a face and its mirror are the
        same person, and the average cancels some of the network's left/right noise. ``group`` > 1
        averages the descriptors of each run of ``group`` consecutive chips (several alignments of one
        face, see align.face_chips) into one vector: N chips give N / group vectors.
        """
        return self.embed_with_stability(chips, batch_size, flip, group)[0]

    def embed_with_stability(
        self, chips: np.ndarray, batch_size: int = 64, flip: bool = False, group: int = 1
    ) -> tuple[np.ndarray, np.ndarray]:
        """:meth:`embed`, plus each face's stability: the mean cosine of its views (chips and mirrors)
        with their average. 1.0 with a single view. A face whose descriptor swings with a pixel of
        alignment is one the network is unsure about: on lfw-dev the least stable searches fail most.
        """
        if chips.ndim != 4 or chips.shape[1:] != (self.chip_size, self.chip_size, 3):
            raise ModelError(f"expected chips of shape (N, {self.chip_size}, {self.chip_size}, 3), got {chips.shape}")
        if group < 1 or len(chips) % group:
            raise ModelError(f"{len(chips)} chips cannot be averaged in groups of {group}")
        if len(chips) == 0:
            return np.zeros((0, self.info.dim), dtype=np.float32), np.zeros(0, np.float32)
        views = [self._raw_batched(chips, batch_size)]
        if flip:
            views.append(self._raw_batched(mirrored(chips), batch_size))
        raw = np.stack(views, axis=1).astype(np.float32)  # (N, views, dim)
        raw = raw.reshape(len(chips) // group, group * len(views), -1)  # (faces, views per face, dim)
        vectors = l2_normalise(raw.sum(axis=1))
        if raw.shape[1] == 1:
            return vectors, np.ones(len(vectors), np.float32)
        unit = raw / np.maximum(np.linalg.norm(raw, axis=2, keepdims=True), 1e-12)
        centre = l2_normalise(unit.sum(axis=1))
        stability = np.einsum("fvd,fd->fv", unit, centre).mean(axis=1)
        return vectors, stability.astype(np.float32)

    def _raw_batched(self, chips: np.ndarray, batch_size: int) -> np.ndarray:
        return np.concatenate([self._raw(chips[i : i + batch_size]) for i in range(0, len(chips), batch_size)])


def mirrored(chips: np.ndarray) -> np.ndarray:
    """Chips (N, H, W, 3) uint8 mirrored left-right, as a new C-contiguous array: ``chips[:, :, ::-1]``.

    Issue 15: copied as whole 3-byte pixels rather than byte by byte through a reversed view, which numpy
    does ~1.5x faster (an ingest worker mirrors every chip it embeds). Pixels are moved, never computed:
    the result is the same array to the bit.
    """
    if chips.dtype != np.uint8 or chips.ndim != 4 or chips.shape[3] != 3:
        return np.ascontiguousarray(chips[:, :, ::-1])
    source = np.ascontiguousarray(chips)
    pixels = source.view(np.dtype("V3")).reshape(source.shape[:3])
    return np.ascontiguousarray(pixels[:, :, ::-1]).view(np.uint8).reshape(source.shape)


def l2_normalise(vectors: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors / np.maximum(norms, 1e-12)
