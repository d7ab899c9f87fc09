"""Issue 14: the clustering algorithm alone (people/clustering.py), on synthetic unit vectors (no real person).

Three tight groups of five; the rules checked are the ones the people features stand on: a cannot-link is
never crossed even when the faces are alike, a must-link joins, and assign() never puts a face into a
person it is forbidden from.
"""

from __future__ import annotations

import numpy as np
import pytest

from facesearch.people.clustering import NEW, assign, cluster


@pytest.fixture(scope="module")
def faces() -> np.ndarray:
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(3, 128))
    x = np.repeat(centres / np.linalg.norm(centres, axis=1, keepdims=True), 5, axis=0)
    x = x + rng.normal(scale=0.02, size=x.shape)
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def test_alike_faces_are_one_person_and_strangers_are_not(faces: np.ndarray) -> None:
    labels = cluster(faces, 0.8)
    assert [len(set(labels[i : i + 5])) for i in (0, 5, 10)] == [1, 1, 1]
    assert len(set(labels)) == 3


def test_a_cannot_link_is_never_crossed_and_a_must_link_joins(faces: np.ndarray) -> None:
    split = cluster(faces, 0.8, cannot_link=[([0, 1], [2, 3, 4])])
    assert split[0] == split[1] and not {split[0]} & set(split[2:5]) and len(set(split)) == 4
    merged = cluster(faces, 0.8, must_link=[[0, 5]])
    assert len(set(merged[:10])) == 1 and len(set(merged)) == 2
    everything_below = cluster(faces, 1.01)  # nothing is similar enough: every face alone
    assert len(set(everything_below)) == len(faces)


def test_assign_joins_the_nearest_allowed_person_or_none(faces: np.ndarray) -> None:
    known_labels = cluster(faces[3:], 0.8)
    placed = assign(faces[:3], faces[3:], known_labels, 0.8, forbidden=[set(), {int(known_labels[0])}, set()])
    assert placed[0] == placed[2] == known_labels[0] and placed[1] == NEW
    assert (assign(faces[:3], faces[3:], known_labels, 1.01) == NEW).all()
