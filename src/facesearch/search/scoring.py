"""How a library scores: its calibration (score -> false match rate), thresholds and the s-norm cohort.

One object owns what turns a similarity into a decision, so search, verify and opt-out read the
same operating point, and the cohort drawn from the indexed faces is forgotten whenever the writer
changes them (:meth:`Scoring.forget_cohort` is one of the writer's listeners).

It also owns the one "same person" rule of opt-outs (:meth:`Scoring.same_person`): the opt-out
command, the writer's ingest screen and search's suppression all ask it, so an opt-out removes and
keeps out exactly the faces that search or verify would report at the library's operating point;
and what a search for a watched person would make of newly stored faces (:meth:`Scoring.leads`,
for watchlists, issue 13).
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from facesearch.config import LibraryConfig
from facesearch.errors import LibraryError
from facesearch.models.cpu_features import int8_cpu_warning
from facesearch.search.calibration import (
    CALIBRATION_NAME,
    Calibration,
    ScoreTable,
    default_calibration,
    heldout_warning,
)
from facesearch.search.labels import SearchPoint, check_max_fpir, search_point
from facesearch.search.normalize import SNORM_COS_WEIGHT, SNORM_KINDS, CohortNormalizer, cohort_score, cos_weight_of
from facesearch.store.catalog import Catalog

log = logging.getLogger(__name__)

# S-norm is computed only for faces whose cosine with a reference reaches the cosine score at this
# FMR: far below any match (search itself re-ranks only its 50 nearest cosine candidates), it keeps
# the cohort statistics off the millions of faces that cannot be the person.
SNORM_PREFILTER_FMR = 0.1
MAX_COHORT_ROUNDS = 5  # the person's faces leave the cohort in a round or two


@dataclass(frozen=True)
class SamePersonPoint:
    """The operating point of the opt-out rule: thresholds per score kind and where they come from."""

    max_fmr: float | None
    cosine: float
    snorm: float | None  # None: the library ranks by cosine (no cohort), or no table for its cohort's kind
    source: str
    kind: str = "snorm"  # the cohort score ``snorm`` is a threshold of: "snorm" or "snorm_cos" (issue 16)

    def describe(self) -> str:
        at = f"FMR <= {self.max_fmr:g} per comparison" if self.max_fmr is not None else "uncalibrated"
        name = "s-norm" if self.kind == "snorm" else self.kind
        snorm = f" or {name} >= {self.snorm:.4f}" if self.snorm is not None else ""
        return f"{self.source}: {at} (cosine >= {self.cosine:.4f}{snorm}), as search and verify call a match"


@dataclass(frozen=True)
class Lead:
    """A face a search with some probe would label at least ``possible lead``: its row, score, fmr and label."""

    row: int
    score: float
    fmr: float | None
    label: str


class Scoring:
    """The calibration, operating point and cohort normaliser of one library."""

    def __init__(self, folder: Path, config: LibraryConfig, catalog: Catalog, model_key: str) -> None:
        self.folder = folder
        self.config = config
        self.catalog = catalog
        self.model_key = model_key
        self._lock = threading.Lock()  # builds the cohort once when searches run concurrently
        self._normalizer: CohortNormalizer | None | bool = False  # False: not built yet
        self._calibration: Calibration | None | bool = False  # False: not loaded yet
        self._cohort_cache: tuple[tuple[object, ...], CohortNormalizer] | None = None  # the cohort less opt-outs

    # the cohort -----------------------------------------------------------------------------------

    @property
    def normalizer(self) -> CohortNormalizer | None:
        """The cohort normaliser when the library uses s-norm or snorm_cos (built on first use from indexed faces);
        its ``kind`` is the score kind searches report and read their table for."""
        if self.config.score_normalization not in SNORM_KINDS:
            return None
        with self._lock:
            if self._normalizer is False:
                weight = cos_weight_of(self.config.score_normalization)
                self._normalizer = CohortNormalizer.from_catalog(self.catalog, cos_weight=weight)
            return self._normalizer  # type: ignore[return-value]

    def forget_cohort(self) -> None:
        """The indexed faces changed: draw the cohort again on next use."""
        with self._lock:
            self._normalizer = False

    # calibration ----------------------------------------------------------------------------------

    @property
    def calibration(self) -> Calibration | None:
        """The score -> FMR tables: the library's own (``facesearch calibrate``), else the shipped default.

        None for a model facesearch has no figures for: search then falls back to the configured
        thresholds and reports no ``fmr`` until the operator calibrates.
        """
        if self._calibration is False:
            own = self.folder / CALIBRATION_NAME
            calibration = Calibration.load(own) if own.is_file() else default_calibration(self.model_key)
            if calibration is not None and calibration.model != self.model_key:
                log.warning("%s is for %s, not this library's %s: ignored", own, calibration.model, self.model_key)
                calibration = default_calibration(self.model_key)
            self._calibration = calibration
        return self._calibration  # type: ignore[return-value]

    def score_table(self, kind: str) -> tuple[ScoreTable | None, str | None]:
        """The FMR table for one score kind and where it was measured.

        The library's own calibration may lack a kind (no s-norm table when the library was too
        small for a cohort when it was calibrated): the shipped default fills in for that kind.
        """
        for calibration in (self.calibration, default_calibration(self.model_key)):
            table = calibration.table(kind) if calibration else None
            if table is not None:
                return table, calibration.source  # type: ignore[union-attr]
        return None, None

    def save_calibration(self, calibration: Calibration) -> Path:
        """Keep a calibration measured for this library's model; searches use it from now on."""
        if calibration.model != self.model_key:
            raise LibraryError(f"calibration is for {calibration.model}, this library uses {self.model_key}")
        path = self.folder / CALIBRATION_NAME
        calibration.save(path)
        self._calibration = calibration
        return path

    def operating_point(
        self, kind: str, max_fmr: float | None
    ) -> tuple[ScoreTable | None, float, float | None, str | None]:
        """The FMR table for a score kind, the threshold it gives for ``max_fmr``, max_fmr and its source.

        Without a calibration for the library's model, the configured fallback threshold is used. Issue 16: a
        ``snorm_cos`` score without a table falls back to the score a face reaching both fallbacks would have
        (s-norm threshold + weight x cosine threshold), with no FMR: its labels say uncalibrated, never a rate
        read in another kind's table.
        """
        max_fmr = self.config.max_fmr if max_fmr is None else max_fmr
        table, source = self.score_table(kind)
        if table is None:
            threshold = {
                "snorm": self.config.snorm_threshold,
                "snorm_cos": self.config.snorm_threshold + SNORM_COS_WEIGHT * self.config.threshold,
            }.get(kind, self.config.threshold)
            return None, threshold, None, None
        return table, table.threshold_for(max_fmr), max_fmr, source

    def max_fpir(self, max_fpir: float | None) -> float:
        """The max FPIR of one search: the one asked for (checked), else the library's."""
        return check_max_fpir(self.config.max_fpir if max_fpir is None else max_fpir)

    def search_point(
        self, kind: str, max_fmr: float | None, max_fpir: float | None, gallery_size: int
    ) -> tuple[SearchPoint, str | None]:
        """The labels' operating point of one search over ``gallery_size`` faces, and its calibration's source.

        Issue 16: a score kind the model's calibration has no table for (a snorm_cos library of a recipe whose
        shipped tables are cosine and s-norm only) says so, rather than that the model has no calibration."""
        table, threshold, max_fmr, source = self.operating_point(kind, max_fmr)
        point = search_point(table, threshold, max_fmr, gallery_size, self.max_fpir(max_fpir), source)
        if table is None and self.calibration is not None:
            why = (
                f"this library scores {kind}, and its model's calibration has no {kind} table, so no score can be "
                f"turned into a false match rate: no result is labelled match; run `facesearch calibrate` on "
                "labelled photos of many people (it measures every score kind), or use score_normalization snorm"
            )
            point = replace(point, match_unavailable=why)
        return point, source

    def calibration_warning(self, source: str | None) -> str | None:
        """Said in every result that uses a calibration found off by more than 2x on held-out people, or whose
        descriptors this CPU computes otherwise than the calibration's did (``dlib_resnet_v1_int8`` on a CPU
        without VNNI: models/cpu_features.py)."""
        if source is None:
            return None
        said = [heldout_warning(self.model_key, source), int8_cpu_warning(self.model_key)]
        return "; ".join(w for w in said if w) or None

    # watchlists -----------------------------------------------------------------------------------

    def leads(self, template: np.ndarray, faces: np.ndarray, gallery_size: int) -> list[Lead]:
        """The rows of ``faces`` that a search with the probe ``template`` over ``gallery_size`` faces would
        label ``possible lead`` or ``match``, with their scores, fmr and labels (issue 13, watchlists).

        The search operating point exactly: the library's score (its cohort's kind, s-norm or snorm_cos, when
        it has a cohort, as search ranks; else cosine), the threshold of its ``max_fmr`` and the labels of
        search/labels.py.
        """
        faces = np.atleast_2d(np.asarray(faces, dtype=np.float32))
        template = np.asarray(template, dtype=np.float32).ravel()
        if len(faces) == 0:
            return []
        normalizer = self.normalizer
        kind = normalizer.kind if normalizer else "cosine"
        point, _ = self.search_point(kind, None, None, gallery_size)
        raw = faces @ template
        scores = normalizer.normalize(raw, template, faces) if normalizer else raw
        found: list[Lead] = []
        for row in np.flatnonzero(scores >= point.threshold):
            score = float(scores[row])
            estimate = point.estimate(score)
            fmr = float(f"{estimate.fmr:.3g}") if estimate else None
            found.append(Lead(int(row), round(score, 4), fmr, point.label(score, estimate)))
        return found

    # the opt-out rule -----------------------------------------------------------------------------

    def same_person_point(self) -> SamePersonPoint:
        """The thresholds :meth:`same_person` applies: the library's ``max_fmr``, per score kind."""
        cosine_table, cosine, max_fmr, source = self.operating_point("cosine", None)
        snorm: float | None = None
        normalizer = self.normalizer
        kind = normalizer.kind if normalizer is not None else "snorm"
        if normalizer is not None:
            snorm_table, snorm, _, snorm_source = self.operating_point(kind, None)
            if snorm_table is None:
                snorm = None
            source = source or snorm_source
        return SamePersonPoint(
            max_fmr, float(cosine), snorm, source or "library configuration (no calibration)", kind=kind
        )

    def same_person(self, references: np.ndarray, faces: np.ndarray) -> np.ndarray:
        """Which ``faces`` (rows) are the person of any of ``references`` (rows): a boolean mask.

        A face is the person's when its score against any reference reaches the library's match
        operating point (false match rate <= ``max_fmr`` per comparison, in the same calibration search
        uses): by cosine, as verify scores, or by the cohort's score (s-norm, or issue 16's snorm_cos) when
        the library has a cohort, as search ranks. Either one is enough: an opt-out must remove every face a
        search or a verification with the person's photo would report, and the union costs at most twice ``max_fmr`` per
        comparison in strangers' faces (measured in docs/accuracy.md).

        S-norm is scored against the cohort as it will be once the person is gone
        (:meth:`_cohort_without`): with their own faces in the cohort, their scores look ordinary and
        stay below the threshold, but the opt-out removes those faces, the cohort is drawn again, and
        search would then label what is left of the person a match.
        """
        faces = np.atleast_2d(np.asarray(faces, dtype=np.float32))
        references = np.atleast_2d(np.asarray(references, dtype=np.float32))
        if len(faces) == 0 or len(references) == 0:
            return np.zeros(len(faces), bool)
        point = self.same_person_point()
        raw = faces @ references.T
        hit = raw.max(axis=1) >= point.cosine
        normalizer = self.normalizer
        if point.snorm is None or normalizer is None:
            return hit
        table, _ = self.score_table("cosine")
        floor = table.threshold_for(SNORM_PREFILTER_FMR) if table is not None else -1.0
        near = np.flatnonzero(~hit & (raw.max(axis=1) >= floor))
        if len(near):
            cohort = self._cohort_without(normalizer, references, point)
            hit[near] = _snorm_hits(cohort, references, faces[near], raw[near], point.snorm)
        return hit

    def _cohort_without(
        self, normalizer: CohortNormalizer, references: np.ndarray, point: SamePersonPoint
    ) -> CohortNormalizer:
        """The cohort less the faces of the references' person(s), found by the same rule until nothing changes."""
        key = (normalizer, references.tobytes(), point)  # the object itself: a new cohort is a new key
        with self._lock:
            if self._cohort_cache is not None and self._cohort_cache[0] == key:
                return self._cohort_cache[1]
        members = normalizer.cohort
        raw = members @ references.T
        inside = raw.max(axis=1) >= point.cosine
        cohort = normalizer
        for _ in range(MAX_COHORT_ROUNDS):
            cohort = CohortNormalizer(members[~inside], normalizer.top, normalizer.cos_weight)
            grown = inside | _snorm_hits(cohort, references, members, raw, point.snorm)  # type: ignore[arg-type]
            if (grown == inside).all():
                break
            inside = grown
        with self._lock:
            self._cohort_cache = (key, cohort)
        return cohort


def _snorm_hits(
    cohort: CohortNormalizer, references: np.ndarray, faces: np.ndarray, raw: np.ndarray, threshold: float
) -> np.ndarray:
    """Rows of ``faces`` whose cohort score (s-norm, or snorm_cos by the cohort's ``cos_weight``; search/normalize.py)
    with any reference reaches ``threshold``."""
    mu_r, sd_r = cohort.stats(references)
    mu_f, sd_f = cohort.stats(faces)
    scores = cohort_score(raw, (mu_r[None, :], sd_r[None, :]), (mu_f[:, None], sd_f[:, None]), cohort.cos_weight)
    return scores.max(axis=1) >= threshold
