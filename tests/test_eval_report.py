"""Plots and Markdown reports: files are real PNGs, the report links them and shows the numbers."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from facesearch.eval.report import (
    ReportInputError,
    error_tradeoff,
    flatten,
    write_identification_report,
    write_verification_report,
)


def assert_png(path: Path) -> None:
    assert path.is_file() and path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with Image.open(path) as img:
        img.verify()
    with Image.open(path) as img:
        assert img.format == "PNG" and img.size == (640, 480)
        # Not a blank canvas: a plot has many colours (axes, curve, text anti-aliasing).
        assert len(img.convert("RGB").getcolors(maxcolors=1 << 16) or []) > 20


def test_error_tradeoff_counts() -> None:
    genuine, impostor = np.array([0.9, 0.8, 0.4]), np.array([0.1, 0.5, 0.85, -np.inf])
    thresholds, fmr, fnmr = error_tradeoff(genuine, impostor)
    np.testing.assert_allclose(thresholds, [0.1, 0.4, 0.5, 0.8, 0.85, 0.9])
    np.testing.assert_allclose(fmr, [3 / 4, 2 / 4, 2 / 4, 1 / 4, 1 / 4, 0])  # impostors >= t; -inf never
    np.testing.assert_allclose(fnmr, [0, 0, 1 / 3, 1 / 3, 2 / 3, 2 / 3])  # genuine < t


def test_verification_report(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    scores = np.concatenate([rng.normal(0.95, 0.02, 300), rng.normal(0.8, 0.05, 3000)])
    same = np.arange(3300) < 300
    summary = {
        "accuracy": 0.98765,
        "tar_at_far": {"0.01": 0.91234, "0.001": 0.81234},
        "no_face": {"count": 3, "fallback": "centre"},
        "fold_thresholds": [0.9, 0.91],
        "command": ["facesearch", "eval", "verify", "--pairs", "pairs.txt"],
    }
    out = tmp_path / "report"
    files = write_verification_report(out, scores, same, summary, title="LFW dev | verification", threshold=0.9)
    assert [f.name for f in files] == ["roc.png", "det.png", "scores.png", "report.md"]
    for png in files[:3]:
        assert_png(png)
    md = (out / "report.md").read_text()
    assert md.startswith("# LFW dev | verification\n")
    for name in ("roc.png", "det.png", "scores.png"):
        assert f"]({name})" in md
    assert "| accuracy | 0.98765 |" in md and "| tar_at_far.0.001 | 0.81234 |" in md
    assert "| no_face.count | 3 |" in md and "| fold_thresholds | 0.9, 0.91 |" in md
    assert "facesearch eval verify --pairs pairs.txt" in md and "| command |" not in md
    # The operating point is stated: FMR and FNMR at 0.9 from the same scores.
    fmr, fnmr = np.mean(scores[~same] >= 0.9), np.mean(scores[same] < 0.9)
    assert f"FMR {fmr:.4g}, FNMR {fnmr:.4g}" in md and "300 same-person and 3,000 different-person pairs" in md


def test_tiny_inputs_and_ties(tmp_path: Path) -> None:
    files = write_verification_report(tmp_path, np.array([0.7, 0.3]), np.array([True, False]), {"pairs": 2})
    for png in files[:3]:
        assert_png(png)
    files = write_verification_report(tmp_path / "ties", np.full(4, 0.5), np.array([1, 1, 0, 0], bool), {})
    assert_png(files[0])
    assert "| metric | value |" in files[-1].read_text()


@pytest.mark.parametrize(
    ("scores", "same", "message"),
    [
        ([], [], "no same-person scores"),
        ([0.9, 0.8], [True, True], "no different-person scores"),
        ([0.1, 0.2], [False, False], "no same-person scores"),
        ([0.9, float("nan")], [True, False], "NaN"),
        ([0.9, 0.1, 0.2], [True, False], "3 scores but 2"),
        ([-np.inf, -np.inf], [True, False], "no finite score"),
    ],
)
def test_bad_verification_input(tmp_path: Path, scores: list, same: list, message: str) -> None:
    with pytest.raises(ReportInputError, match=message) as err:
        write_verification_report(tmp_path, np.array(scores, dtype=float), np.array(same, dtype=bool), {})
    assert err.value.code == "bad_report_input"
    assert not (tmp_path / "report.md").exists()


def test_identification_report(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    mated = rng.normal(0.95, 0.02, 200)
    mated[:20] = -np.inf  # mate not at rank 1 (or no face): a miss at every threshold
    non_mated = np.concatenate([rng.normal(0.85, 0.04, 300), [-np.inf] * 5])
    ranks = np.where(np.isfinite(mated), 1, 0)
    ranks[:10] = 3
    summary = {"rank1": 0.9, "fnir_at_fpir": {"0.01": 0.4321}, "seed": 0}
    files = write_identification_report(tmp_path, mated, non_mated, summary, mated_ranks=ranks, threshold=0.93)
    assert [f.name for f in files] == ["det.png", "scores.png", "cmc.png", "report.md"]
    for png in files[:3]:
        assert_png(png)
    md = files[-1].read_text()
    assert "| fnir_at_fpir.0.01 | 0.4321 |" in md and "| rank1 | 0.9 |" in md
    assert re.search(r"200 mated searches \(20 without the mate at rank 1\), 305 non-mated searches \(5 ", md)
    assert all(f"]({f.name})" in md for f in files[:3])
    # Without ranks there is no CMC plot.
    assert [f.name for f in write_identification_report(tmp_path / "b", mated, non_mated, {})] == [
        "det.png",
        "scores.png",
        "report.md",
    ]
    with pytest.raises(ReportInputError, match="no non-mated"):
        write_identification_report(tmp_path / "c", mated, np.array([]), {})
    with pytest.raises(ReportInputError, match="5 mated ranks but 200"):
        write_identification_report(tmp_path / "d", mated, non_mated, {}, mated_ranks=np.ones(5))


def test_flatten_nested_summary() -> None:
    assert flatten({"a": {"b": 1, "c": {"d": 0.123456789}}, "e": [1, 2], "f": None}) == [
        ("a.b", "1"),
        ("a.c.d", "0.123457"),
        ("e", "1, 2"),
        ("f", "None"),
    ]
