"""Issue 14: the clustering algorithm alone (people/clustering.py), on synthetic unit vectors (no real person).

Three tight groups of five; the rules checked are the ones the people features stand on: a cannot-link is
never crossed even when the faces are alike, a must-link joins, and assign() never puts a face into a
person it is forbidden from.
"""

from __future__ import annotations

import numpy as np
import pytest

from facesearch.people.clustering import COHESION, LONE_COHESION, NEW, assign, cluster, place


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


def _unit(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x, axis=-1, keepdims=True)).astype(np.float32)


def _around(centre: np.ndarray, n: int, noise: float, seed: int) -> np.ndarray:
    return _unit(centre + np.random.default_rng(seed).normal(scale=noise, size=(n, len(centre))))


def test_a_tight_person_does_not_take_in_a_stranger_who_only_passes_the_threshold() -> None:
    """Issue 14 (precision >= 0.995): 20 faces of one person alike at cosine ~0.99 and one stranger at ~0.935 to
    each of them (threshold 0.9: every link passes, so does the mean). The larger group's own cohesion sets the
    bar: a face that far below how alike the person's faces are stays out (on lfw-dev: strangers the model
    confuses with a well-photographed person). Without the cohesion bar it joins."""
    centre = np.zeros(128)
    centre[0] = 1.0
    person = _around(centre, 20, 0.008, 1)
    stranger = np.zeros(128)
    stranger[0], stranger[1] = 0.935, np.sqrt(1 - 0.935**2)
    x = np.concatenate([person, stranger[None].astype(np.float32)])
    assert float((x[:20] @ x[20]).min()) >= 0.9
    labels = cluster(x, 0.9)
    assert len(set(labels[:20].tolist())) == 1 and labels[20] != labels[0]
    assert len(set(cluster(x, 0.9, cohesion=np.inf, lone_cohesion=np.inf).tolist())) == 1  # no cohesion bar


def _at_mean(person: np.ndarray, mean: float) -> np.ndarray:
    """A face whose mean cosine to the faces of ``person`` is exactly ``mean`` (towards their mean direction)."""
    total = person.astype(np.float64).sum(axis=0)
    direction = total / np.linalg.norm(total)
    aside = np.zeros(len(total))
    aside[5] = 1.0
    aside -= (aside @ direction) * direction
    cos = mean * len(person) / np.linalg.norm(total)
    return _unit(cos * direction + np.sqrt(1 - cos**2) * aside / np.linalg.norm(aside))[None]


def test_a_lone_face_must_be_closer_to_a_person_than_a_group_must() -> None:
    """Issue 14 (pairwise precision >= 0.995 on all of lfw-dev, not only on each half): one face joining a
    person of 20 costs 20 false pairs when it is a stranger, and as the archive grows a dense region of
    look-alike strangers offers many such faces (on lfw-dev: strangers taken into Megawati Sukarnoputri's,
    Hu Jintao's, Junichiro Koizumi's persons at ~0.022 below the person's own mean). A lone face joining a person
    of ``LONE_INTO`` faces or more meets ``LONE_COHESION`` (0.02) instead of ``COHESION`` (0.025): a face 0.0225
    below the person's own mean stays out (it would join under the groups' bar), in cluster() and in place(),
    and a face 0.015 below (a plain new photo of the person) still joins."""
    threshold = 0.9
    centre = np.zeros(128)
    centre[0] = 1.0
    person = _around(centre, 20, 0.008, 1)
    own = (float(person.sum(axis=0) @ person.sum(axis=0)) - 20) / (20 * 19)
    assert LONE_COHESION < 0.0225 < COHESION  # between the two bars
    stranger, look = _at_mean(person, own - 0.0225), _at_mean(person, own - 0.015)
    assert float((person @ stranger[0]).min()) >= threshold  # every link passes, so does the mean
    labels = cluster(np.concatenate([person, stranger]), threshold)
    assert len(set(labels[:20].tolist())) == 1 and labels[20] != labels[0]
    assert len(set(cluster(np.concatenate([person, stranger]), threshold, lone_cohesion=COHESION).tolist())) == 1
    assert len(set(cluster(np.concatenate([person, look]), threshold).tolist())) == 1
    known = np.zeros(20, np.int64)
    assert place(stranger, person, known, threshold).joined.tolist() == [NEW]
    assert place(stranger, person, known, threshold, lone_cohesion=COHESION).joined.tolist() == [0]
    assert place(look, person, known, threshold).joined.tolist() == [0]


def _arc(n: int, half_width: float) -> np.ndarray:
    """``n`` faces spread evenly over an arc of +-``half_width`` radians in the plane of the first two axes."""
    angles = np.linspace(-half_width, half_width, n)
    x = np.zeros((n, 128), np.float32)
    x[:, 0], x[:, 1] = np.cos(angles), np.sin(angles)
    return x


def test_a_face_all_of_whose_neighbours_are_one_varied_person_joins_it() -> None:
    """Issue 14 (recall of people photographed in many ways): a person of 200 faces spread wide (mean pair
    similarity under the threshold: many poses, ages), and a new face in its middle whose 32 nearest faces all
    belong to it at the threshold. The mean test alone refuses it (a duplicate person: on lfw-dev, fragments of
    George W Bush); links that saturate what a face can show join it, in place() as in cluster()."""
    threshold = 0.9
    person = _arc(200, 2 * np.arccos(threshold))
    face = _arc(1, 0.0)
    assert float((person @ face[0]).mean()) < threshold  # the average linkage test alone fails
    assert place(face, person, np.zeros(200, np.int64), threshold).joined.tolist() == [0]
    assert place(face, person, np.zeros(200, np.int64), threshold, saturation=2.0).joined.tolist() == [NEW]


def test_place_groups_new_faces_first_and_rejoins_pieces_of_one_untouched_person() -> None:
    """Issue 14 (incremental = full re-cluster): a known person split into two pieces (labels 3 and 8) that a
    new face links, and two new faces of a stranger. The stranger's faces are one new group (not a person
    each); the pieces become one person when both may be merged, never when one is a user's (not mergeable)."""
    centre, other = np.zeros(128), np.zeros(128)
    centre[0], other[1] = 1.0, 1.0
    known = np.concatenate([_around(centre, 5, 0.01, 2), _around(centre, 5, 0.01, 3)])
    labels = np.array([3] * 5 + [8] * 5)
    new = np.concatenate([_around(centre, 1, 0.01, 4), _around(other, 2, 0.01, 5)])
    placed = place(new, known, labels, 0.9, mergeable={3, 8})
    assert placed.merged in ({8: 3}, {3: 8})
    assert placed.joined[0] in (3, 8) and placed.joined[0] not in placed.merged
    assert placed.joined[1] == placed.joined[2] == NEW and placed.groups[1] == placed.groups[2] != placed.groups[0]
    kept_apart = place(new, known, labels, 0.9, mergeable={3})
    assert kept_apart.merged == {} and kept_apart.joined[0] in (3, 8)
