"""Score → false-match-rate tables: measurement, interpolation, thresholds and the shipped default.

The score distributions here are synthetic (normal impostor and genuine scores), so every expected
rate is known in closed form; the real-photo path is tested in test_search.py and test_eval.py.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from facesearch.eval.calibrate import calibrate, comparison_scores
from facesearch.search.calibration import Calibration, CalibrationError, ScoreTable, default_calibration
from facesearch.search.normalize import CohortNormalizer


@pytest.fixture(scope="module")
def table() -> ScoreTable:
    rng = np.random.default_rng(0)
    impostor = rng.normal(0.0, 1.0, 1_000_000)
    genuine = rng.normal(4.0, 1.0, 10_000)
    return ScoreTable.from_scores("cosine", impostor, genuine)


def normal_tail(x: float) -> float:
    return 0.5 * math.erfc(x / math.sqrt(2))


def test_fmr_matches_the_impostor_distribution(table: ScoreTable) -> None:
    for score in (0.0, 1.0, 2.0, 3.0, 3.7):
        expected = normal_tail(score)
        assert table.fmr_at(score).fmr == pytest.approx(expected, rel=0.15), score
        assert not table.fmr_at(score).upper_bound


def test_fmr_never_increases_with_the_score(table: ScoreTable) -> None:
    scores = np.linspace(-3, 6, 400)
    rates = [table.fmr_at(float(s)).fmr for s in scores]
    assert all(b <= a for a, b in zip(rates, rates[1:], strict=False))


def test_beyond_the_highest_impostor_the_fmr_is_a_bound_never_zero(table: ScoreTable) -> None:
    beyond = table.fmr_at(table.thresholds[-1] + 1.0)
    assert beyond.upper_bound
    assert beyond.fmr == pytest.approx(1e-6)


def test_threshold_for_inverts_fmr_at(table: ScoreTable) -> None:
    for max_fmr in (1e-1, 1e-2, 1e-3, 1e-4, 3e-5):
        threshold = table.threshold_for(max_fmr)
        assert table.fmr_at(threshold).fmr == pytest.approx(max_fmr, rel=1e-6)
        assert table.fmr_at(threshold + 1e-3).fmr <= max_fmr
        assert table.fmr_at(threshold - 1e-3).fmr > max_fmr
    assert table.threshold_for(1e-3) == pytest.approx(3.09, abs=0.05)  # the normal's 99.9th percentile


def test_fnmr_at_the_operating_point(table: ScoreTable) -> None:
    threshold = table.threshold_for(1e-3)
    assert table.fnmr_at(threshold) == pytest.approx(1 - normal_tail(threshold - 4.0), abs=0.02)


def test_fnmr_between_rungs_is_never_lower_than_the_genuine_scores_say() -> None:
    """A threshold interpolated between two rungs reports the rung above: an upper bound, never the
    optimistic rung below (the miss rate must not be understated)."""
    rng = np.random.default_rng(1)
    genuine = rng.normal(4.0, 1.0, 10_000)
    table = ScoreTable.from_scores("cosine", rng.normal(0.0, 1.0, 1_000_000), genuine)
    checked = 0
    for max_fmr in (2e-2, 7e-3, 2e-3, 7e-4, 2e-4, 7e-5):  # between rungs (20 a decade)
        threshold = table.threshold_for(max_fmr)
        if threshold in table.thresholds:
            continue
        measured = float(np.mean(genuine < threshold))
        below = table.fnmr[int(np.searchsorted(table.thresholds, threshold)) - 1]
        assert below < measured <= table.fnmr_at(threshold), max_fmr
        checked += 1
    assert checked >= 4  # interpolated thresholds were really tested
    assert table.fnmr_at(table.thresholds[3]) == table.fnmr[3]  # on a rung: that rung


@pytest.mark.parametrize("bad", [0.0, 1.0, -1e-3, 1e-9])
def test_unusable_max_fmr_is_refused(table: ScoreTable, bad: float) -> None:
    with pytest.raises(CalibrationError) as info:
        table.threshold_for(bad)
    assert info.value.code == "bad_request"


def test_too_few_comparisons_are_refused() -> None:
    with pytest.raises(CalibrationError, match="at least 100"):
        ScoreTable.from_scores("cosine", np.arange(50.0), np.arange(5.0))


def test_round_trip_through_json(tmp_path: Path, table: ScoreTable) -> None:
    calibration = Calibration(model="m+flip", source="synthetic", tables={"cosine": table})
    path = tmp_path / "calibration.json"
    calibration.save(path)
    loaded = Calibration.load(path)
    back = loaded.table("cosine")
    assert back is not None and loaded.model == "m+flip"
    for score in (0.5, 2.5, 3.5):
        assert back.fmr_at(score).fmr == pytest.approx(table.fmr_at(score).fmr, rel=1e-3)
    assert "nan" not in path.read_text().lower()


def test_malformed_calibration_file_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "calibration.json"
    path.write_text(json.dumps({"format": 1, "model": "m", "source": "s", "tables": {"cosine": {"score": "x"}}}))
    with pytest.raises(CalibrationError, match="not a valid calibration"):
        Calibration.load(path)
    path.write_text(
        '{"format": 1, "model": "m", "source": "s", "tables": {"cosine": '
        '{"score": "cosine", "thresholds": [1, 0.5], "fmr": [0.1, 0.01], "fnmr": [0, 0],'
        ' "impostor_comparisons": 100, "genuine_comparisons": 1}}}'
    )
    with pytest.raises(CalibrationError, match="must increase"):
        Calibration.load(path)


def test_comparison_scores_count_every_pair_once() -> None:
    rng = np.random.default_rng(1)
    vectors = rng.normal(size=(60, 8)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    people = np.repeat(np.arange(20), 3)
    cohort = CohortNormalizer(rng.normal(size=(30, 8)).astype(np.float32), top=5)
    scores = comparison_scores(vectors, people, cohort)
    impostor, genuine = scores["cosine"]
    assert len(genuine) == 20 * 3 and len(impostor) == 60 * 59 // 2 - 60
    brute = sorted(
        float(vectors[i] @ vectors[j]) for i in range(60) for j in range(i + 1, 60) if people[i] == people[j]
    )
    assert np.allclose(np.sort(genuine), brute, atol=1e-6)
    sampled = comparison_scores(vectors, people, cohort, max_comparisons=500)
    assert len(sampled["snorm"][1]) == 60 and 400 < len(sampled["snorm"][0]) <= 500


def test_calibrate_refuses_too_few_people() -> None:
    vectors = {Path(f"p{i % 3}/{i}.jpg"): np.eye(4, dtype=np.float32)[i % 4] for i in range(30)}
    with pytest.raises(CalibrationError, match="at least 10 different people"):
        calibrate(vectors, lambda p: p.parent.name, "m", "s")


def test_shipped_default_is_for_the_default_recipe_and_holds_only_numbers() -> None:
    default = default_calibration("dlib_resnet_v1+flip+jitter2.5")
    assert default is not None, "facesearch ships a calibration for its default recipe"
    for kind in ("cosine", "snorm"):
        table = default.table(kind)
        assert table is not None and table.impostor_comparisons > 1_000_000
        assert table.fmr[-1] < 1e-4
    assert default_calibration("someone-elses-model") is None


def test_every_shipped_calibration_validates_and_was_checked_on_held_out_people() -> None:
    """Each recipe's shipped entry (default_calibration.json) loads as a calibration (validated tables), measures
    cosine and s-norm over millions of comparisons, and has a held-out check recorded for the same source
    (calibration_checks.json): a table added without its check would give labels no one measured the honesty of."""
    import json
    from importlib import resources

    from facesearch.search.calibration import CHECKS_NAME

    package = resources.files("facesearch.search")
    entries = json.loads(package.joinpath("default_calibration.json").read_text())
    checks = json.loads(package.joinpath(CHECKS_NAME).read_text())
    assert "dlib_resnet_v1_int8r+flip+jitter2.5y" in [entry["model"] for entry in entries]
    for entry in entries:
        calibration = default_calibration(entry["model"])
        assert calibration is not None and calibration.model == entry["model"]
        for kind in ("cosine", "snorm"):
            table = calibration.table(kind)
            assert table is not None and table.impostor_comparisons > 1_000_000, (entry["model"], kind)
            assert all(a >= b for a, b in zip(table.fmr, table.fmr[1:], strict=False)), (entry["model"], kind)
        checked = [c for c in checks if c["model"] == entry["model"] and c["source"] == calibration.source]
        assert checked, f"no held-out check recorded for {entry['model']}"


def test_photo_cohort_never_holds_the_compared_people() -> None:
    # 60 people, one of them with 200 photos: a cohort holding his other photos would push his
    # s-norm scores down; the cohort is drawn from one half of the people, pairs from the other.
    rng = np.random.default_rng(2)
    centres = rng.normal(size=(60, 16))
    people = np.array([0] * 200 + [i for i in range(1, 60) for _ in range(10)])
    vectors = centres[people] + rng.normal(scale=0.6, size=(len(people), 16))
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    embeddings = {
        Path(f"p{p}/{i}.jpg"): v.astype(np.float32) for i, (p, v) in enumerate(zip(people, vectors, strict=True))
    }
    calibration = calibrate(embeddings, lambda p: p.parent.name, "m", "synthetic")
    cosine, snorm = calibration.table("cosine"), calibration.table("snorm")
    assert cosine is not None and snorm is not None
    assert cosine.impostor_comparisons == len(people) * (len(people) - 1) // 2 - 200 * 199 // 2 - 59 * 45
    assert snorm.impostor_comparisons < cosine.impostor_comparisons / 2, "s-norm pairs come from half the people"


def test_calibration_measures_snorm_cos_on_the_same_comparisons_as_snorm() -> None:
    """Issue 16: a calibration has a snorm_cos table, scored on exactly the comparisons of its s-norm table as
    s-norm + SNORM_COS_WEIGHT x cosine: a snorm_cos library's labels read rates of its own score, not another's."""
    from facesearch.search.normalize import SNORM_COS_WEIGHT

    rng = np.random.default_rng(4)
    vectors = rng.normal(size=(60, 8)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    people = np.repeat(np.arange(20), 3)
    cohort = CohortNormalizer(rng.normal(size=(30, 8)).astype(np.float32), top=5)
    scores = comparison_scores(vectors, people, cohort)
    assert set(scores) == {"cosine", "snorm", "snorm_cos"}
    for side in (0, 1):  # impostor, genuine: the same pairs in the same order in every kind
        expected = scores["snorm"][side] + SNORM_COS_WEIGHT * scores["cosine"][side]
        np.testing.assert_allclose(scores["snorm_cos"][side], expected, rtol=1e-5, atol=1e-4)
    embeddings = {Path(f"p{p}/{i}.jpg"): v for i, (p, v) in enumerate(zip(people, vectors, strict=True))}
    calibration = calibrate(embeddings, lambda p: p.parent.name, "m", "synthetic", normalizer=cohort)
    snorm, fused = calibration.table("snorm"), calibration.table("snorm_cos")
    assert snorm is not None and fused is not None
    assert (fused.impostor_comparisons, fused.genuine_comparisons) == (
        snorm.impostor_comparisons,
        snorm.genuine_comparisons,
    )
