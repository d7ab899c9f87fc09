"""Issue 14: measuring how faces are grouped into persons (eval/cluster.py, `facesearch eval cluster`) and the
properties the clustering must keep at scale: no chaining through a thin bridge, incremental = full re-cluster.

Synthetic unit vectors stand in for faces where the property is geometric; the one end-to-end test embeds a
few lfw-dev photos from ../shared/data (nothing of them is kept).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from facesearch.eval.cluster import bcubed, chinese_whispers, incremental, pairwise
from facesearch.people.clustering import MAX_FMR, cluster
from tests.helpers import cli_ok, copy_library, run_cli

DIM = 128


def _unit(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x, axis=-1, keepdims=True)).astype(np.float32)


def _group(centre: np.ndarray, n: int, rng: np.random.Generator, noise: float = 0.02) -> np.ndarray:
    return _unit(centre + rng.normal(scale=noise, size=(n, DIM)))


def test_pairwise_and_bcubed_on_hand_counted_cases() -> None:
    """Issue 14: truth AAA BB, found AA BBB: 2 of the 4 pairs put together are right and 2 of the 4 true pairs
    are found (0.5 / 0.5); BCubed per face 1, 1, 1/3, 2/3, 2/3 = 0.7333 both ways. Every face alone: pairwise
    precision 1 (no false merge), recall 0; BCubed recall is each face's share of its person, 0.4."""
    truth, found = np.array([0, 0, 0, 1, 1]), np.array([7, 7, 3, 3, 3])
    assert pairwise(truth, found) == pytest.approx({"precision": 0.5, "recall": 0.5, "f1": 0.5})
    assert bcubed(truth, found) == pytest.approx({"precision": 11 / 15, "recall": 11 / 15, "f1": 11 / 15})
    alone = np.arange(5)
    assert pairwise(truth, alone) == pytest.approx({"precision": 1.0, "recall": 0.0, "f1": 0.0})
    assert bcubed(truth, alone)["recall"] == pytest.approx((1 / 3 * 3 + 1 / 2 * 2) / 5)
    assert pairwise(truth, np.zeros(5))["precision"] == pytest.approx(4 / 10)


def test_two_dense_groups_joined_by_a_thin_bridge_stay_two_persons() -> None:
    """Issue 14: no chaining. Two people 60 degrees apart, 20 faces each, and two faces on the arc between them,
    each linking its neighbours: single linkage makes one person of all 42; the clustering keeps the two
    groups apart (a bridge face joins one side or stays alone)."""
    rng = np.random.default_rng(3)
    a, b = np.zeros(DIM), np.zeros(DIM)
    a[0], b[0], b[1] = 1.0, np.cos(np.pi / 3), np.sin(np.pi / 3)
    bridge = np.array([[np.cos(t), np.sin(t)] + [0.0] * (DIM - 2) for t in (np.pi / 9, 2 * np.pi / 9)])
    x = np.concatenate([_group(a, 20, rng), _group(b, 20, rng), _unit(bridge)])
    chained = cluster(x, 0.9, support=0.0, average=-1.0, cohesion=np.inf)
    assert len(set(chained)) == 1  # the case bites: one link at a time, everything joins
    labels = cluster(x, 0.9)
    assert len(set(labels[:20])) == 1 and len(set(labels[20:40])) == 1 and labels[0] != labels[20]
    assert len(set(labels[:40])) == 2 and len(set(labels)) <= 4  # a bridge face may stay alone, never merge them


def test_incremental_batches_give_the_persons_of_a_full_recluster() -> None:
    """Issue 14: faces indexed in 10 batches (assign, then cluster the leftovers) give the same persons as one
    full re-cluster, within pairwise F1 0.01 against the truth; 60 persons of 1 to 30 faces."""
    rng = np.random.default_rng(5)
    sizes = rng.integers(1, 31, size=60)
    centres = _unit(rng.normal(size=(60, DIM)))
    x = np.concatenate([_group(c, int(n), rng, noise=0.03) for c, n in zip(centres, sizes, strict=True)])
    truth = np.repeat(np.arange(60), sizes)
    full, inc = cluster(x, 0.85), incremental(x, 0.85, 10)
    assert pairwise(truth, full)["f1"] > 0.99
    assert abs(pairwise(truth, inc)["f1"] - pairwise(truth, full)["f1"]) <= 0.01
    assert pairwise(full, inc)["f1"] >= 0.99


@pytest.fixture(scope="module")
def few_people(shared_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An LFW-layout folder (links into lfw-dev): 6 people with 3-5 photos, 6 with one."""
    root = tmp_path_factory.mktemp("cluster-people") / "images"
    root.mkdir()
    people = sorted((shared_data / "lfw-dev" / "images").iterdir())
    multi = [p for p in people if 3 <= len(list(p.glob("*.jpg"))) <= 5][:6]
    singles = [p for p in people if len(list(p.glob("*.jpg"))) == 1][:6]
    for person in multi + singles:
        (root / person.name).symlink_to(person, target_is_directory=True)
    return root


def test_eval_cluster_scores_ours_and_both_baselines_on_the_same_faces(few_people: Path, tmp_path: Path) -> None:
    """Issue 14: `eval cluster` embeds the one-face photos, clusters them at the calibrated threshold and
    reports pairwise and BCubed figures for ours, Chinese Whispers and Immich's DBSCAN on the same faces,
    the incremental run with --batches, and plots with --report; a second run reads the cached faces."""
    args = ["eval", "cluster", "--images", str(few_people), "--batches", "3", "--cache", str(tmp_path / "cache")]
    report = json.loads(cli_ok(*args, "--report", str(tmp_path / "report"), "--json").stdout)
    photos = len(list(few_people.glob("*/*.jpg")))
    assert report["photos"] == photos
    assert report["faces"] + report["skipped_photos"]["no_face"] + report["skipped_photos"]["several"] == photos
    assert set(report["methods"]) == {"facesearch", "single_linkage", "chinese_whispers", "dbscan_immich"}
    ours = report["methods"]["facesearch"]
    assert 10 <= ours["persons_true"] <= 12 and ours["pairwise"]["precision"] == 1.0 and ours["bcubed"]["f1"] > 0.8
    inc = report["incremental"]
    assert inc["batches"] == 3 and inc["persons_true"] == ours["persons_true"]
    assert inc["pairwise_f1_difference"] == pytest.approx(abs(inc["pairwise"]["f1"] - ours["pairwise"]["f1"]), abs=2e-5)
    assert report["threshold"] > 0.9 and report["max_fmr"] == MAX_FMR  # the operating point people use
    assert {p.name for p in (tmp_path / "report").iterdir()} == {"quality.png", "sizes.png", "report.md"}
    assert "eval cluster" in (tmp_path / "report" / "report.md").read_text()
    again = json.loads(cli_ok(*args, "--json").stdout)
    assert again["methods"] == report["methods"] and len(list((tmp_path / "cache").iterdir())) == 1


def test_eval_cluster_refuses_a_bad_operating_point(few_people: Path) -> None:
    """Issue 14: a false match rate outside (0, 1) is refused with its code before anything is embedded."""
    result = run_cli("eval", "cluster", "--images", str(few_people), "--max-fmr", "2", "--json")
    assert result.exit_code != 0 and "max-fmr" in result.output


def test_eval_cluster_indexed_reads_the_faces_a_library_holds_and_refuses_photos_it_lacks(
    example_gallery: Path, shared_data: Path, tmp_path: Path
) -> None:
    """Issue 14: `eval cluster --indexed` scores the stored faces of the folder's photos (nothing embedded:
    an archive already indexed is measured in seconds); a folder with a photo the library never indexed is
    refused with a clear error, since the figures would silently be those of part of the folder."""
    library = copy_library(example_gallery, tmp_path / "lib")
    by_identity = shared_data / "face_recognition_examples" / "by_identity"
    folder = tmp_path / "people"
    for photo in sorted(p for p in by_identity.rglob("*") if p.is_file() and p.name != "obama.jpg"):
        (folder / photo.parent.name).mkdir(parents=True, exist_ok=True)
        (folder / photo.parent.name / photo.name).symlink_to(photo)
    args = ["eval", "cluster", "--images", str(folder), "--library", str(library), "--indexed", "--json"]
    report = json.loads(cli_ok(*args).stdout)
    assert report["photos"] == 16 and report["faces"] + sum(report["skipped_photos"].values()) == 16
    assert report["methods"]["facesearch"]["persons_true"] >= 5
    assert report["methods"]["facesearch"]["pairwise"]["precision"] == 1.0
    (folder / "barack_obama" / "obama.jpg").symlink_to(by_identity / "barack_obama" / "obama.jpg")
    refused = run_cli(*args)
    assert refused.exit_code != 0 and "not indexed" in refused.output


def test_chinese_whispers_runs_at_the_scale_of_dlibs_raw_descriptors() -> None:
    """Issue 14 (a fair baseline): dlib's 0.5 is a distance between raw descriptors (length ~1.41), not between
    unit vectors. Two people whose faces are at cosine 0.9 across (distance 0.45 as unit vectors, 0.63 at
    dlib's scale) are two persons for Chinese Whispers as a dlib user runs it; on unit vectors unscaled the
    same threshold makes them one, the mismatch that had collapsed lfw-dev into one person."""
    rng = np.random.default_rng(7)
    a, b = np.zeros(DIM), np.zeros(DIM)
    a[0], b[0], b[1] = 1.0, 0.9, np.sqrt(1 - 0.9**2)
    x = np.concatenate([_group(a, 10, rng, noise=0.005), _group(b, 10, rng, noise=0.005)])
    truth = np.repeat([0, 1], 10)
    assert pairwise(truth, chinese_whispers(x)) == pytest.approx({"precision": 1.0, "recall": 1.0, "f1": 1.0})
    assert len(set(chinese_whispers(x, scale=1.0).tolist())) == 1
