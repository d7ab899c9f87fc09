"""The label each search result earns, set per search as NIST sets 1:N thresholds.

Why per search: a false match rate (FMR) is per comparison, but a search makes one comparison per
indexed face. At FMR 1e-3, a gallery of 1M faces expects ~1,000 different people above the
threshold in every search; calling them all ``match`` would be a lie that grows with the gallery.
So a search states the chance it accepts that a person who is *not* in the gallery gets anyone
labelled ``match`` (the false positive identification rate, ``max_fpir``, default 0.01), and a
candidate is a ``match`` only when the strangers expected to score as high in this gallery
(``expected_false_candidates`` = fmr x gallery size) are at most ``max_fpir``, and its fmr per
comparison is at most ``max_fmr`` too (a match is always also a lead).

- ``match``: fmr x gallery size <= max_fpir (and fmr <= max_fmr);
- ``possible lead``: fmr <= max_fmr per comparison, but not a match at this gallery size;
- ``no match``: the rest (most likely different people).

When the calibration cannot measure an fmr as low as max_fpir / gallery size (its smallest
measured rate is higher), no result is a match: :attr:`SearchPoint.match_unavailable` says why and
how to fix it, instead of extrapolating a table beyond what it measured.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from facesearch.errors import FaceSearchError
from facesearch.search.calibration import FmrEstimate, ScoreTable

LABEL_MATCH = "match"
LABEL_LEAD = "possible lead"
LABEL_NO_MATCH = "no match"


@dataclass(frozen=True)
class SearchPoint:
    """One search's operating point: what a score must reach to be a lead and to be a match."""

    table: ScoreTable | None  # score -> fmr (None: the model has no calibration)
    threshold: float  # a lead's score: fmr <= max_fmr (or the configured fallback threshold, uncalibrated)
    max_fmr: float | None  # None: uncalibrated
    gallery_size: int
    max_fpir: float
    match_fmr: float | None  # the fmr per comparison a match needs: min(max_fmr, max_fpir / gallery size)
    match_threshold: float | None  # the score a match needs (None: no result can be a match)
    match_unavailable: str | None  # why no result can be a match, and how to fix it

    def estimate(self, score: float) -> FmrEstimate | None:
        """The calibrated fmr of a score (None without a calibration)."""
        return self.table.fmr_at(score) if self.table is not None else None

    def label(self, score: float, estimate: FmrEstimate | None) -> str:
        """``match``, ``possible lead`` or ``no match`` for one candidate's score and its estimated fmr."""
        if score < self.threshold:
            return LABEL_NO_MATCH
        if estimate is None or self.match_fmr is None or self.match_unavailable is not None:
            return LABEL_LEAD
        strangers = estimate.fmr * max(self.gallery_size, 1)
        return LABEL_MATCH if strangers <= self.max_fpir and estimate.fmr <= self.match_fmr else LABEL_LEAD


def search_point(
    table: ScoreTable | None,
    threshold: float,
    max_fmr: float | None,
    gallery_size: int,
    max_fpir: float,
    source: str | None,
) -> SearchPoint:
    """The operating point of a search over ``gallery_size`` faces at ``max_fpir``.

    ``threshold`` and ``max_fmr`` are the lead operating point (scoring.py); ``source`` names the
    calibration for the message that explains why no match is possible.
    """
    if table is None or max_fmr is None:
        why = (
            "this model has no calibration, so no score can be turned into a false match rate: no result is "
            "labelled match; run `facesearch calibrate` on labelled photos of many people to get matches"
        )
        return SearchPoint(table, threshold, max_fmr, gallery_size, max_fpir, None, None, why)
    match_fmr = min(max_fmr, max_fpir / max(gallery_size, 1))
    smallest = table.fmr[-1]
    if match_fmr < smallest:
        needed = math.ceil(1 / match_fmr)
        why = (
            f"this search covers {gallery_size:,} faces: at max FPIR {max_fpir:g} a match needs a false match rate "
            f"per comparison of {match_fmr:.2g} or less, below the {smallest:.2g} that the calibration "
            f"({source}; {table.impostor_comparisons:,} different-person comparisons) can measure. No result is "
            f"labelled match rather than guessing: calibrate on more photos (`facesearch calibrate`; at least "
            f"{needed:,} different-person comparisons), or search a smaller collection"
        )
        return SearchPoint(table, threshold, max_fmr, gallery_size, max_fpir, match_fmr, None, why)
    match_threshold = max(threshold, table.threshold_for(match_fmr))
    return SearchPoint(table, threshold, max_fmr, gallery_size, max_fpir, match_fmr, match_threshold, None)


def check_max_fpir(max_fpir: float) -> float:
    """``max_fpir`` if it is a usable chance (0 < max_fpir < 1), else a clear error."""
    if not (isinstance(max_fpir, int | float) and 0 < max_fpir < 1):  # NaN fails this too
        raise FaceSearchError(f"max-fpir must be between 0 and 1 (exclusive); got {max_fpir}", code="bad_request")
    return float(max_fpir)
