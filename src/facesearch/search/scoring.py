"""How a library scores: its calibration (score -> false match rate), thresholds and the s-norm cohort.

One object owns what turns a similarity into a decision, so search, verify and opt-out read the
same operating point, and the cohort drawn from the indexed faces is forgotten whenever the writer
changes them (:meth:`Scoring.forget_cohort` is one of the writer's listeners).
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path

from facesearch.config import LibraryConfig
from facesearch.errors import LibraryError
from facesearch.search.calibration import (
    CALIBRATION_NAME,
    Calibration,
    ScoreTable,
    default_calibration,
    heldout_warning,
)
from facesearch.search.labels import SearchPoint, check_max_fpir, search_point
from facesearch.search.normalize import CohortNormalizer
from facesearch.store.catalog import Catalog

log = logging.getLogger(__name__)


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

    # the cohort -----------------------------------------------------------------------------------

    @property
    def normalizer(self) -> CohortNormalizer | None:
        """The cohort normaliser when the library uses s-norm (built on first use from indexed faces)."""
        if self.config.score_normalization != "snorm":
            return None
        with self._lock:
            if self._normalizer is False:
                self._normalizer = CohortNormalizer.from_catalog(self.catalog)
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

        Without a calibration for the library's model, the configured fallback threshold is used.
        """
        max_fmr = self.config.max_fmr if max_fmr is None else max_fmr
        table, source = self.score_table(kind)
        if table is None:
            threshold = self.config.snorm_threshold if kind == "snorm" else self.config.threshold
            return None, threshold, None, None
        return table, table.threshold_for(max_fmr), max_fmr, source

    def max_fpir(self, max_fpir: float | None) -> float:
        """The max FPIR of one search: the one asked for (checked), else the library's."""
        return check_max_fpir(self.config.max_fpir if max_fpir is None else max_fpir)

    def search_point(
        self, kind: str, max_fmr: float | None, max_fpir: float | None, gallery_size: int
    ) -> tuple[SearchPoint, str | None]:
        """The labels' operating point of one search over ``gallery_size`` faces, and its calibration's source."""
        table, threshold, max_fmr, source = self.operating_point(kind, max_fmr)
        point = search_point(table, threshold, max_fmr, gallery_size, self.max_fpir(max_fpir), source)
        return point, source

    def calibration_warning(self, source: str | None) -> str | None:
        """Said in every result that uses a calibration found off by more than 2x on held-out people."""
        return heldout_warning(self.model_key, source) if source is not None else None
