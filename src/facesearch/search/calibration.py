"""Calibrated scores: turn a raw score into the chance that a different person scores that high.

A similarity of 0.93 says nothing by itself; "1 in 1,000 comparisons with a stranger scores this
high" does. A calibration is a table per score kind (``cosine``, ``snorm``) measured from many
different-person comparisons (impostor pairs): for a ladder of thresholds, the fraction of impostor
comparisons scoring at or above each one (the false match rate, FMR), and the fraction of
same-person comparisons below it (FNMR). Between rungs the FMR is interpolated on a log scale.

Beyond the highest impostor score measured, the FMR cannot be measured: it is reported as the
resolution of the calibration (1 / impostor comparisons) and flagged as an upper bound, never as 0.

The tables hold aggregate figures only (score thresholds and rates), never embeddings. facesearch
ships one measured on lfw-dev for its default recipe (``default_calibration.json``); ``facesearch
calibrate`` measures one on the operator's own labelled photos and stores it in the library.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from importlib import resources
from pathlib import Path

import numpy as np

from facesearch.config import DEFAULT_MAX_FMR as DEFAULT_MAX_FMR  # re-exported: the library default
from facesearch.errors import CalibrationError as CalibrationError  # re-exported: callers find it here

FORMAT = 1
CALIBRATION_NAME = "calibration.json"
# The shipped tables checked on people they were not built from (bench/accuracy/heldout_calibration.py):
# measured / claimed FMR on the held-out half. Off by more than this, every result using them says so.
CHECKS_NAME = "calibration_checks.json"
HONEST_WITHIN = 2.0
RUNGS_PER_DECADE = 20
SCORE_KINDS = ("cosine", "snorm", "snorm_cos")  # issue 16: snorm_cos is s-norm + 45 x cosine (normalize.py)


@dataclass(frozen=True)
class FmrEstimate:
    """The estimated false match rate of one score; ``upper_bound`` when beyond the measured range."""

    fmr: float
    upper_bound: bool


@dataclass
class ScoreTable:
    """FMR (and FNMR) at a ladder of increasing thresholds of one kind of score."""

    score: str
    thresholds: list[float]
    fmr: list[float]
    fnmr: list[float]
    impostor_comparisons: int
    genuine_comparisons: int

    def __post_init__(self) -> None:
        if not (len(self.thresholds) == len(self.fmr) == len(self.fnmr)) or not self.thresholds:
            raise CalibrationError(f"{self.score} table: thresholds, fmr and fnmr must be non-empty and equally long")
        if any(b <= a for a, b in zip(self.thresholds, self.thresholds[1:], strict=False)):
            raise CalibrationError(f"{self.score} table: thresholds must increase")
        if any(b > a for a, b in zip(self.fmr, self.fmr[1:], strict=False)) or min(self.fmr) <= 0:
            raise CalibrationError(f"{self.score} table: fmr must be positive and never increase")

    @property
    def resolution(self) -> float:
        """The smallest FMR this table can tell apart from zero."""
        return 1.0 / self.impostor_comparisons

    @classmethod
    def from_scores(cls, score: str, impostor: np.ndarray, genuine: np.ndarray) -> ScoreTable:
        """Measure the table from raw impostor and genuine comparison scores."""
        impostor = np.sort(np.asarray(impostor, dtype=np.float64).ravel())
        genuine = np.sort(np.asarray(genuine, dtype=np.float64).ravel())
        n = len(impostor)
        if n < 100 or len(genuine) == 0:
            raise CalibrationError(
                f"calibration needs at least 100 different-person and 1 same-person comparisons; got {n} and "
                f"{len(genuine)}: use more people and more photos per person"
            )
        thresholds: list[float] = []
        fmr: list[float] = []
        decades = math.log10(n)
        for step in range(int(decades * RUNGS_PER_DECADE) + 1):
            allowed = int(n * 10 ** (-step / RUNGS_PER_DECADE))  # false matches allowed at this rung
            allowed = max(allowed, 1)
            threshold = float(impostor[n - allowed])
            if thresholds and threshold <= thresholds[-1]:
                continue
            thresholds.append(threshold)
            fmr.append((n - int(np.searchsorted(impostor, threshold, side="left"))) / n)
        fnmr = [int(np.searchsorted(genuine, t, side="left")) / len(genuine) for t in thresholds]
        return cls(score, thresholds, fmr, fnmr, n, len(genuine))

    def fmr_at(self, score: float) -> FmrEstimate:
        """The estimated FMR of one comparison that scored ``score``."""
        t = self.thresholds
        if score <= t[0]:
            return FmrEstimate(self.fmr[0], False)
        if score > t[-1]:
            return FmrEstimate(min(self.fmr[-1], self.resolution), True)
        i = int(np.searchsorted(t, score, side="right")) - 1
        if i >= len(t) - 1:
            return FmrEstimate(self.fmr[-1], False)
        frac = (score - t[i]) / (t[i + 1] - t[i])
        log_fmr = math.log10(self.fmr[i]) + frac * (math.log10(self.fmr[i + 1]) - math.log10(self.fmr[i]))
        return FmrEstimate(10**log_fmr, False)

    def threshold_for(self, max_fmr: float) -> float:
        """The lowest score whose estimated FMR is at most ``max_fmr``."""
        if not 0 < max_fmr < 1:
            raise CalibrationError(f"max-fmr must be between 0 and 1 (exclusive); got {max_fmr}", code="bad_request")
        if max_fmr < self.fmr[-1]:
            raise CalibrationError(
                f"max-fmr {max_fmr:g} is below what this calibration can measure ({self.fmr[-1]:.2g} from "
                f"{self.impostor_comparisons:,} different-person comparisons): calibrate on more photos",
                code="bad_request",
            )
        if max_fmr >= self.fmr[0]:
            return self.thresholds[0]
        # fmr never increases: find the first rung at or below the target and interpolate before it.
        j = next(k for k, f in enumerate(self.fmr) if f <= max_fmr)
        if self.fmr[j] == max_fmr or j == 0:
            return self.thresholds[j]
        hi, lo = math.log10(self.fmr[j - 1]), math.log10(self.fmr[j])
        frac = (hi - math.log10(max_fmr)) / (hi - lo)
        return self.thresholds[j - 1] + frac * (self.thresholds[j] - self.thresholds[j - 1])

    def fnmr_at(self, threshold: float) -> float:
        """The measured FNMR at a threshold: the nearest rung **at or above** it.

        FNMR is measured only at the rungs and grows with the threshold, so the rung above is an upper
        bound for a threshold between two rungs (``threshold_for`` interpolates one). The rung below,
        used before, reported a miss rate lower than the one the threshold has (e.g. 0.0299 for 0.0329
        at FMR 1e-3 on the shipped table): an operator must not be told the system misses less than it
        does. Past the last rung the last measured FNMR is all there is (``threshold_for`` never goes
        there)."""
        i = min(int(np.searchsorted(self.thresholds, threshold, side="left")), len(self.thresholds) - 1)
        return self.fnmr[i]


@dataclass
class Calibration:
    """Score tables for one embedding recipe (model key), with where they were measured."""

    model: str
    source: str
    tables: dict[str, ScoreTable] = field(default_factory=dict)
    format: int = FORMAT

    def table(self, score: str) -> ScoreTable | None:
        return self.tables.get(score)

    def to_dict(self) -> dict:
        return {
            "format": self.format,
            "model": self.model,
            "source": self.source,
            "tables": {k: _rounded(asdict(v)) for k, v in self.tables.items()},
        }

    @classmethod
    def from_dict(cls, data: dict, origin: str = "calibration") -> Calibration:
        try:
            if data.get("format") != FORMAT:
                raise CalibrationError(f"{origin} has format {data.get('format')!r}; expected {FORMAT}")
            tables = {}
            for kind, table in data["tables"].items():
                if kind not in SCORE_KINDS:
                    raise CalibrationError(f"{origin}: unknown score kind {kind!r}")
                tables[kind] = ScoreTable(**table)
            return cls(model=str(data["model"]), source=str(data["source"]), tables=tables)
        except (KeyError, TypeError, AttributeError) as exc:
            raise CalibrationError(f"{origin} is not a valid calibration: {exc}") from exc

    def save(self, path: Path) -> None:
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(json.dumps(self.to_dict(), indent=1) + "\n")
        tmp.replace(path)

    @classmethod
    def load(cls, path: Path) -> Calibration:
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError) as exc:
            raise CalibrationError(f"cannot read calibration {path}: {exc}") from exc
        return cls.from_dict(data, str(path))


def default_calibration(model_key: str) -> Calibration | None:
    """The calibration shipped with facesearch for ``model_key``, if there is one."""
    text = resources.files("facesearch.search").joinpath("default_calibration.json").read_text()
    for entry in json.loads(text):
        if entry["model"] == model_key:
            return Calibration.from_dict(entry, "default_calibration.json")
    return None


def heldout_warning(model_key: str, source: str | None, checks: list[dict] | None = None) -> str | None:
    """A warning for results that use a shipped calibration found off by more than 2x on held-out people.

    The check (calibration_checks.json, written by ``python -m bench.accuracy.heldout_calibration
    --write``) builds the tables on half of lfw-dev's people and measures the other half's impostor
    rate at the thresholds for FMR 1e-3, 1e-4 and 1e-5. A table may have been checked more than once
    (subsets): any check beyond 2x is told (the worst). None when every check is within 2x or none was
    made for this calibration (a library's own calibration is checked by whoever measured it).
    ``checks`` replaces the shipped file's records (to judge a check before recording it).
    """
    if checks is None:
        checks = json.loads(resources.files("facesearch.search").joinpath(CHECKS_NAME).read_text())
    mine = [c for c in checks if c["model"] == model_key and c["source"] == source]
    worst = max(mine, key=lambda c: c["worst_off_by"], default=None)  # any check beyond 2x is told
    if worst is None or worst["worst_off_by"] <= HONEST_WITHIN:
        return None
    ratios = [r for direction in worst.get("ratios", {}).values() for r in direction.values()]
    spread = f"measured / claimed from {min(ratios):g} to {max(ratios):g}; " if ratios else ""
    return (
        f"the calibration's false match rates were off by up to {worst['worst_off_by']:.3g}x on people it was not "
        f"built from ({spread}{worst['command']}): treat fmr and labels as approximate, or calibrate on your own "
        "labelled photos (`facesearch calibrate`)"
    )


def _rounded(table: dict) -> dict:
    """Compact JSON: thresholds to 7 decimals, rates to 4 significant digits (rungs that merge are dropped)."""
    keep: dict[str, list[float]] = {"thresholds": [], "fmr": [], "fnmr": []}
    for t, fmr, fnmr in zip(table["thresholds"], table["fmr"], table["fnmr"], strict=True):
        t = round(t, 7)
        if keep["thresholds"] and t <= keep["thresholds"][-1]:
            continue
        keep["thresholds"].append(t)
        keep["fmr"].append(float(f"{fmr:.4g}"))
        keep["fnmr"].append(float(f"{fnmr:.4g}"))
    return {**table, **keep}
