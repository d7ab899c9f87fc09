"""Embedder arithmetic that needs no real model: grouping views and the stability of a face's views."""

from __future__ import annotations

import numpy as np
import pytest

from facesearch.errors import ModelError
from facesearch.models.embed.base import Embedder, mirrored
from facesearch.models.embed.info import ModelInfo


def test_stability_is_one_for_a_single_view_and_lower_for_disagreeing_views() -> None:
    class Fixed(Embedder):
        """A stand-in network: each chip's descriptor is its mean pixel per channel (4 dims)."""

        info = ModelInfo(key="k", name="n", version="1", source="s", licence="l", dim=4)
        chip_size = 2

        def _raw(self, chips: np.ndarray) -> np.ndarray:
            means = chips.reshape(len(chips), -1, 3).mean(axis=1)
            return np.concatenate([means, np.ones((len(chips), 1))], axis=1).astype(np.float32)

    same = np.full((2, 2, 2, 3), 100, np.uint8)
    vectors, stability = Fixed().embed_with_stability(same, group=2)
    assert vectors.shape == (1, 4) and np.isclose(stability[0], 1.0)
    different = same.copy()
    different[1] = (200, 0, 50)
    _, unstable = Fixed().embed_with_stability(different, group=2)
    assert unstable[0] < 0.95
    with pytest.raises(ModelError, match="groups of 2"):
        Fixed().embed(np.zeros((3, 2, 2, 3), np.uint8), group=2)


def test_mirrored_chips_are_the_reversed_view_to_the_bit() -> None:
    """Issue 15: the faster mirror (whole 3-byte pixels) gives exactly ``chips[:, :, ::-1]``, contiguous,
    for contiguous and strided inputs, and leaves the input untouched; other shapes keep the plain reversal."""
    rng = np.random.default_rng(0)
    chips = rng.integers(0, 256, size=(7, 150, 150, 3), dtype=np.uint8)
    before = chips.copy()
    for given in (chips, chips[::2], chips[:, 1:-1, 1:-1]):
        out = mirrored(given)
        assert out.flags.c_contiguous and out.dtype == np.uint8
        assert np.array_equal(out, given[:, :, ::-1])
    assert np.array_equal(chips, before)
    assert not np.array_equal(mirrored(chips), chips)  # a mirror, not a copy
    floats = rng.random((2, 4, 4, 3)).astype(np.float32)
    assert np.array_equal(mirrored(floats), floats[:, :, ::-1])
