"""The 1:N figures of ``eval identify`` from per-search outcomes: rank-1/5, FNIR at FPIR, and how far to trust them.

Kept apart from the searching (eval/identify.py) so that the library's own searches and the gallery-size
sweep (eval/gallery_sweep.py, issue 16) measure their outcomes with one definition.

Issue 16, the small-sample warning: an FPIR is a share of the non-mated searches, so with n of them the
smallest non-zero FPIR that can be measured is 1/n. Below :data:`SMALL_SAMPLE` searches every FPIR figure
is flagged, and an FPIR under 1/n cannot be told from 0 at all (the threshold lets no non-mated search
through): such a figure is said to be what it is, not read as if it were the FPIR asked for.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

FPIRS = (0.01, 0.003)
SMALL_SAMPLE = 100  # non-mated searches below which an FPIR figure is flagged (issue 16)


@dataclass(frozen=True)
class Figures:
    """Rank-1/5 hit rates of the mated searches and FNIR (with its threshold) at each FPIR of :data:`FPIRS`."""

    rank1: float
    rank5: float
    fnir_at_fpir: dict[str, float]
    thresholds: dict[str, float]


def figures(mated_ranks: list[int | None], mated_top: list[float | None], non_mated_top: np.ndarray) -> Figures:
    """Measure: ``mated_ranks`` the mate's rank among the top 5 (None: absent), ``mated_top`` the top
    candidate's score where the mate is first (None otherwise), ``non_mated_top`` each non-mated search's
    top score (-inf: no face found, never a false positive). NIST's rank-1 FNIR/FPIR."""
    rank1 = float(np.mean([r == 1 for r in mated_ranks]))
    rank5 = float(np.mean([r is not None and r <= 5 for r in mated_ranks]))
    fnir, thresholds = {}, {}
    for fpir in FPIRS:
        threshold = threshold_at_fpir(np.asarray(non_mated_top, dtype=np.float64), fpir)
        thresholds[str(fpir)] = threshold
        hits = [score is not None and score >= threshold for score in mated_top]
        fnir[str(fpir)] = 1.0 - float(np.mean(hits))
    return Figures(rank1, rank5, fnir, thresholds)


def threshold_at_fpir(non_mated_top: np.ndarray, fpir: float) -> float:
    """The lowest threshold at which at most ``fpir`` of non-mated searches return a candidate."""
    ordered = np.sort(non_mated_top)[::-1]
    allowed = int(np.floor(fpir * len(ordered)))
    if allowed >= len(ordered):
        return -np.inf
    return float(np.nextafter(ordered[allowed], np.inf))


def fpir_sample(non_mated: int) -> dict[str, dict]:
    """Issue 16: per FPIR figure, the non-mated searches it rests on, the resolution they give, and the flag."""
    return {
        str(fpir): {
            "non_mated_searches": non_mated,
            "smallest_nonzero_fpir": round(1 / non_mated, 6) if non_mated else None,
            "small_sample": non_mated < SMALL_SAMPLE,
        }
        for fpir in FPIRS
    }


def small_sample_warnings(non_mated: int) -> list[str]:
    """Issue 16: one warning line per FPIR figure resting on fewer than :data:`SMALL_SAMPLE` non-mated searches."""
    if non_mated >= SMALL_SAMPLE:
        return []
    lines = []
    for fpir in FPIRS:
        head = f"FNIR at FPIR {fpir} rests on {non_mated} non-mated searches (fewer than {SMALL_SAMPLE})"
        if non_mated == 0:
            lines.append(
                f"{head}: no FPIR can be measured (the threshold falls to -inf: any mate on top counts as found)"
            )
            continue
        line = f"{head}: the smallest non-zero FPIR they can show is 1/{non_mated} = {1 / non_mated:.3g}"
        if fpir * non_mated < 1:
            line += f", so FPIR {fpir} cannot be told from 0 (the threshold lets no non-mated search through)"
        lines.append(line)
    return lines
