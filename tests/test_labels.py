"""Labels set per search for the gallery searched (search/labels.py), on the calibration facesearch ships.

No stand-in tables: every check reads the shipped lfw-dev table of the default recipe, so the
gallery sizes where a match stops being measurable are the real ones (docs/accuracy.md).
"""

from __future__ import annotations

import math

import pytest

from facesearch.errors import FaceSearchError
from facesearch.search.calibration import ScoreTable, default_calibration
from facesearch.search.labels import (
    LABEL_LEAD,
    LABEL_MATCH,
    LABEL_NO_MATCH,
    SearchPoint,
    check_max_fpir,
    search_point,
)

MAX_FMR = 1e-3
MAX_FPIR = 0.01


@pytest.fixture(scope="module")
def table() -> ScoreTable:
    calibration = default_calibration("dlib_resnet_v1+flip+jitter2.5")
    assert calibration is not None
    cosine = calibration.table("cosine")
    assert cosine is not None
    return cosine


def point(table: ScoreTable, gallery_size: int, max_fpir: float = MAX_FPIR) -> SearchPoint:
    return search_point(table, table.threshold_for(MAX_FMR), MAX_FMR, gallery_size, max_fpir, "lfw-dev")


def label_of(p: SearchPoint, score: float) -> str:
    return p.label(score, p.estimate(score))


def test_a_stranger_under_max_fmr_is_not_a_match_once_the_gallery_is_large(table: ScoreTable) -> None:
    """Issue 12 §2: a different person at fmr 2.9e-4 per comparison (under max_fmr 1e-3) was labelled
    `match` in a gallery of 69 faces. Expected strangers there: 2.9e-4 x 69 = 0.02 > max_fpir 0.01."""
    stranger = table.threshold_for(2.9e-4)
    assert table.fmr_at(stranger).fmr == pytest.approx(2.9e-4, rel=0.02)
    assert stranger >= table.threshold_for(MAX_FMR)  # past the per-comparison threshold: what labelled it a match
    assert label_of(point(table, 69), stranger) == LABEL_LEAD
    assert label_of(point(table, 1_000_000), stranger) == LABEL_LEAD
    # The same score in a gallery of 10 faces expects 0.0029 strangers: a match there.
    assert label_of(point(table, 10), stranger) == LABEL_MATCH


def test_a_match_needs_expected_false_candidates_at_most_max_fpir(table: ScoreTable) -> None:
    """Issue 12 §2: match only when fmr x gallery size <= max_fpir (and fmr <= max_fmr: a match is a lead
    too), at every gallery size the shipped table measures."""
    for gallery in (1, 69, 1_000, 100_000):
        p = point(table, gallery)
        assert p.match_unavailable is None and p.match_fmr == pytest.approx(min(MAX_FMR, MAX_FPIR / gallery))
        assert p.match_threshold is not None and p.match_threshold >= p.threshold
        for score in (p.match_threshold - 0.002, p.match_threshold + 1e-6, p.match_threshold + 0.01):
            estimate = p.estimate(score)
            assert estimate is not None
            matched = p.label(score, estimate) == LABEL_MATCH
            rule = estimate.fmr * gallery <= MAX_FPIR and estimate.fmr <= MAX_FMR  # a match is always a lead too
            assert matched == rule, (gallery, score, estimate)
    # A looser max_fpir, asked for by one search, moves the bar down; never below the lead threshold.
    strict, loose = point(table, 1_000), point(table, 1_000, max_fpir=0.5)
    assert loose.match_threshold is not None and strict.match_threshold is not None
    assert loose.threshold <= loose.match_threshold < strict.match_threshold


def test_three_labels(table: ScoreTable) -> None:
    """Issue 12 §2: match, possible lead (fmr <= max_fmr, not a match here), no match (the rest)."""
    p = point(table, 1_000)
    assert p.match_threshold is not None
    assert label_of(p, p.match_threshold + 0.01) == LABEL_MATCH
    assert label_of(p, (p.threshold + p.match_threshold) / 2) == LABEL_LEAD
    assert label_of(p, p.threshold - 0.01) == LABEL_NO_MATCH
    assert label_of(p, 0.2) == LABEL_NO_MATCH  # obviously a stranger: no longer "possible lead"


def test_when_the_calibration_cannot_measure_that_low_no_result_is_a_match_and_it_says_why(table: ScoreTable) -> None:
    """Issue 12 §2: at 10M faces a match needs fmr 1e-9 per comparison, below the 2.2e-8 that 45M lfw-dev
    comparisons resolve: no result is a match (not even the best possible score), and the reason says how to fix it."""
    p = point(table, 10_000_000)
    assert p.match_fmr == pytest.approx(1e-9) and p.match_fmr < table.fmr[-1]
    assert p.match_threshold is None and p.match_unavailable is not None
    assert "calibrate on more photos" in p.match_unavailable and "10,000,000 faces" in p.match_unavailable
    assert f"{math.ceil(1 / 1e-9):,}" in p.match_unavailable  # how many comparisons would resolve it
    identical = 1.0  # the same photo: beyond every measured impostor score
    assert p.estimate(identical).upper_bound  # type: ignore[union-attr]
    assert label_of(p, identical) == LABEL_LEAD
    # 100k faces need 1e-7: measurable with the shipped table, so the same score is a match there.
    assert label_of(point(table, 100_000), identical) == LABEL_MATCH


def test_without_a_calibration_nothing_is_a_match() -> None:
    """A model with no calibration has no fmr: the fallback threshold gives leads, never matches, and says why."""
    p = search_point(None, 0.928, None, 50, MAX_FPIR, None)
    assert p.label(0.99, None) == LABEL_LEAD and p.label(0.5, None) == LABEL_NO_MATCH
    assert p.match_unavailable is not None and "facesearch calibrate" in p.match_unavailable


@pytest.mark.parametrize("bad", [0.0, 1.0, -0.1, 2.0, float("nan"), float("inf")])
def test_a_bad_max_fpir_is_refused_with_a_clear_error(bad: float) -> None:
    with pytest.raises(FaceSearchError, match="max-fpir must be between 0 and 1") as info:
        check_max_fpir(bad)
    assert info.value.code == "bad_request"


def test_a_calibration_off_by_more_than_2x_on_held_out_people_says_so() -> None:
    """Issue 12 §2: if the held-out ratio (measured / claimed FMR) is off by more than 2x, every result using
    that calibration says so; within 2x, or for a calibration nobody checked, nothing is said."""
    from facesearch.search.calibration import heldout_warning

    model = "dlib_resnet_v1+flip"
    shipped = default_calibration(model)
    assert shipped is not None
    check = {"model": model, "source": shipped.source, "command": "python -m bench.accuracy.heldout_calibration"}
    off = heldout_warning(model, shipped.source, [{**check, "worst_off_by": 3.4}])
    assert off is not None and "off by up to 3.4x" in off and "facesearch calibrate" in off
    assert heldout_warning(model, shipped.source, [{**check, "worst_off_by": 1.6}]) is None
    assert heldout_warning(model, "my own photos", [{**check, "worst_off_by": 3.4}]) is None
    # Checked twice (two subsets): one within 2x does not cancel the other.
    twice = [{**check, "worst_off_by": 1.9}, {**check, "command": "... --limit 2000", "worst_off_by": 4.5}]
    assert "off by up to 4.5x" in (heldout_warning(model, shipped.source, twice) or "")
