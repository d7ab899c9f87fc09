"""The synthetic distractors' pair similarities (src/facesearch/eval/distractors.py)."""

from __future__ import annotations

import numpy as np

from facesearch.eval import distractors


def test_pair_similarities_in_cache_sized_chunks_are_each_pairs_dot_product() -> None:
    """Issue 11 (the suite's speed): pairs are computed ``PAIR_CHUNK`` rows at a time (the calibration's 30 steps
    cost ~6 s with 100,000-row gathers). Every pair, across the chunks' seams, is still its own dot product."""
    rng = np.random.default_rng(7)
    a = rng.standard_normal((300, 128), dtype=np.float32)
    b = rng.standard_normal((200, 128), dtype=np.float32)
    n = 2 * distractors.PAIR_CHUNK + 5  # two full chunks and a partial one
    i, j = rng.integers(0, len(a), size=n), rng.integers(0, len(b), size=n)
    sims = distractors.pair_similarities(a, b, i, j)
    assert sims.shape == (n,) and sims.dtype == np.float32
    expected = np.array([a[x] @ b[y] for x, y in zip(i, j, strict=True)], dtype=np.float32)
    np.testing.assert_allclose(sims, expected, rtol=1e-5, atol=1e-5)


def test_different_person_pairs_are_of_two_labelled_people() -> None:
    """Issue 11 (the suite's speed): the labels are compared as integer codes. Each kept pair is still of two
    different, labelled people: a pair's similarity here is 1 exactly when both faces are one person's."""
    rng = np.random.default_rng(3)
    persons = np.array(["ann", "ann", "bob", "", "cy", "cy", "bob", ""])
    one_hot = np.eye(len(persons), dtype=np.float32)[[0, 0, 2, 3, 4, 4, 2, 7]]  # one person, one vector
    sims = distractors.different_person_similarities(one_hot, persons, 500, rng)
    assert len(sims) == 500 and not sims.any()  # never a pair of one person's faces
