"""Evaluation: pairs files in both LFW formats, the metrics, and `facesearch eval verify` end to end."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from facesearch.eval.lfw import PairsFormatError, read_pairs
from facesearch.eval.metrics import best_threshold, eer, kfold_accuracy, roc_auc, tar_at_far


def test_metrics_on_two_known_normal_distributions() -> None:
    rng = np.random.default_rng(0)
    scores = np.concatenate([rng.normal(1, 0.3, 4000), rng.normal(0, 0.3, 4000)])
    same = np.arange(8000) < 4000
    # d' = 3.33: accuracy Phi(1.667) = 0.952, AUC Phi(2.357) = 0.991, TAR@1% Phi(1.007) = 0.843.
    mean, std, thresholds = kfold_accuracy(scores, same, np.arange(8000) % 10)
    assert abs(mean - 0.952) < 0.01 and std < 0.02 and len(thresholds) == 10
    assert abs(best_threshold(scores, same) - 0.5) < 0.05
    assert abs(roc_auc(scores, same) - 0.991) < 0.003
    assert abs(eer(scores, same) - 0.048) < 0.01
    assert abs(tar_at_far(scores, same, 0.01) - 0.843) < 0.03


def test_perfect_separation_and_ties() -> None:
    same = np.array([True, True, False, False])
    assert roc_auc(np.array([0.9, 0.8, 0.2, 0.1]), same) == 1.0
    assert roc_auc(np.array([0.5, 0.5, 0.5, 0.5]), same) == 0.5
    assert kfold_accuracy(np.array([0.9, 0.8, 0.2, 0.1]), same, np.array([0, 1, 0, 1]))[0] == 1.0


@pytest.fixture(scope="module")
def lfw(shared_data: Path) -> Path:
    return shared_data / "lfw-dev"


def test_reads_view1_and_view2_formats(lfw: Path, tmp_path: Path) -> None:
    view1 = read_pairs(lfw / "pairsDevTrain.txt", lfw / "images")
    assert len(view1) == 2200 and sum(p.same for p in view1) == 1100
    assert sorted({p.fold for p in view1}) == list(range(10))
    assert all(sum(1 for p in view1 if p.fold == f and p.same) == 110 for f in range(10))

    lines = (lfw / "pairsDevTrain.txt").read_text().splitlines()[1:]
    same_lines, diff_lines = lines[:1100], lines[1100:]
    body = [
        line for fold in range(2) for line in same_lines[fold * 3 : fold * 3 + 3] + diff_lines[fold * 3 : fold * 3 + 3]
    ]
    view2 = tmp_path / "pairs.txt"
    view2.write_text("2\t3\n" + "\n".join(body) + "\n")
    pairs = read_pairs(view2, lfw / "images")
    assert [(p.fold, p.same) for p in pairs] == [(0, True)] * 3 + [(0, False)] * 3 + [(1, True)] * 3 + [(1, False)] * 3


def test_bad_pairs_files_say_what_is_wrong(lfw: Path, tmp_path: Path) -> None:
    bad = tmp_path / "bad.txt"
    bad.write_text("3\nAaron_Peirsol 1 2\n")
    with pytest.raises(PairsFormatError, match="promises 6 pairs"):
        read_pairs(bad, lfw / "images")
    bad.write_text("1\nNobody_Here 1 2\nA 1 B 2\n")
    with pytest.raises(PairsFormatError, match="missing"):
        read_pairs(bad, lfw / "images")
    bad.write_text("1\nAaron_Peirsol 1\nA 1 B 2\n")
    with pytest.raises(PairsFormatError, match="same-person"):
        read_pairs(bad, lfw / "images")


def test_eval_verify_cli_on_a_pairs_subset(lfw: Path, tmp_path: Path) -> None:
    lines = (lfw / "pairsDevTrain.txt").read_text().splitlines()[1:]
    subset = tmp_path / "pairs.txt"
    subset.write_text("100\n" + "\n".join(lines[:100] + lines[1100:1200]) + "\n")
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "facesearch.cli",
            "eval",
            "verify",
            "--pairs",
            str(subset),
            "--images",
            str(lfw / "images"),
            "--json",
            "-l",
            str(tmp_path / "nolib"),
        ],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "XDG_CACHE_HOME": str(tmp_path / "cache")},
    )
    report = json.loads(out.stdout)
    assert set(report) >= {"accuracy", "accuracy_std", "auc", "eer", "tar_at_far", "no_face"}
    assert set(report["tar_at_far"]) == {"0.01", "0.001"}
    assert report["pairs"] == 200 and report["accuracy"] > 0.93 and report["auc"] > 0.97
    assert report["no_face"]["fallback"] == "centre"


@pytest.fixture(scope="module")
def small_lfw(lfw: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Another LFW-layout folder (links to 950 lfw-dev people): the commands work on any such folder.
    Its gallery holds 500+ faces, enough for the s-norm cohort."""
    root = tmp_path_factory.mktemp("small-lfw") / "images"
    root.mkdir()
    people = sorted((lfw / "images").iterdir())
    multi = [p for p in people if len(list(p.glob("*.jpg"))) >= 3][:50]
    singles = [p for p in people if len(list(p.glob("*.jpg"))) == 1][:900]
    for person in multi + singles:
        (root / person.name).symlink_to(person, target_is_directory=True)
    return root


@pytest.mark.parametrize("normalize", ["none", "snorm"])
def test_eval_identify_through_the_library(small_lfw: Path, tmp_path: Path, normalize: str) -> None:
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "facesearch.cli",
            "eval",
            "identify",
            "--images",
            str(small_lfw),
            "--seed",
            "3",
            "--normalize",
            normalize,
            "--json",
            "--work-dir",
            str(tmp_path / "lib"),
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    report = json.loads(out.stdout)
    assert set(report) >= {"rank1", "rank5", "fnir_at_fpir", "gallery_size", "mated", "non_mated"}
    assert set(report["fnir_at_fpir"]) == {"0.01", "0.003"}
    assert report["non_mated"] == 450 and report["mated"] >= 100
    assert report["gallery_size"] >= 500  # 50 enrolled + 450 distractors (some photos hold 2 faces)
    assert report["score"] == normalize.replace("none", "cosine")
    assert report["rank1"] >= 0.9 and report["rank5"] >= report["rank1"]
    assert 0.0 <= report["fnir_at_fpir"]["0.01"] <= 0.6
    # The library it built is a normal library: its gallery collection is there.
    assert (tmp_path / "lib" / "catalog.sqlite").is_file()
