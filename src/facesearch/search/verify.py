"""The 1:1 question: are the largest faces in two photos the same person? Answered, labelled, audited.

Apart from the 1:N search because it is another question with another rule: one comparison at the
cosine operating point (a 1:1 question has no cohort and no gallery, so no s-norm and no max_fpir),
and its own label (:func:`verify_label`). The purpose is bound by the caller (search/service.py)
before anything is read, as for a search.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from facesearch.governance.events import VerifyEvent, record
from facesearch.governance.types import SearchPurpose, User
from facesearch.search.probes import Probe, ProbeReader
from facesearch.search.results import LABEL_LEAD, LABEL_MATCH, LABEL_NO_MATCH, VerifyResult
from facesearch.search.scoring import Scoring
from facesearch.store.catalog import Catalog


def verify_label(same: bool, calibrated: bool) -> str:
    """A 1:1 comparison's label: ``match`` at fmr <= max_fmr, else ``no match``; without a calibration the
    fallback threshold gives at most a ``possible lead`` (no false match rate backs it)."""
    if not same:
        return LABEL_NO_MATCH
    return LABEL_MATCH if calibrated else LABEL_LEAD


class Verifier:
    """1:1 comparisons of one library: its calibration, its model, its audit log."""

    def __init__(self, catalog: Catalog, reader: ProbeReader, scoring: Scoring, *, model_key: str) -> None:
        self.catalog = catalog
        self.reader = reader
        self.scoring = scoring
        self.model_key = model_key

    def verify(
        self, a: Probe, b: Probe, *, purpose: SearchPurpose, actor: str | User | None, max_fmr: float | None
    ) -> VerifyResult:
        """Compare the largest face in each photo (cosine; found largest first); ``purpose`` already bound. Audited.

        A bad ``max_fmr`` is refused before either photo is read."""
        table, threshold, max_fmr, source = self.scoring.operating_point("cosine", max_fmr)
        photo_a, photo_b = self.reader.photo(a), self.reader.photo(b)
        face_a, face_b = photo_a.faces[0], photo_b.faces[0]
        similarity = float(np.dot(face_a.embedding, face_b.embedding))
        same = bool(similarity >= threshold)
        estimate = table.fmr_at(similarity) if table else None
        result = VerifyResult(
            same_person=same,
            similarity=round(similarity, 4),
            threshold=round(threshold, 4),
            model=self.model_key,
            faces=[{"box": list(f.box), "quality": f.quality} for f in (face_a, face_b)],
            fmr=float(f"{estimate.fmr:.3g}") if estimate else None,
            fmr_upper_bound=estimate.upper_bound if estimate else False,
            max_fmr=max_fmr,
            label=verify_label(same, table is not None),
            photos_sha256=[photo_a.digest, photo_b.digest],
            calibration=source,
            calibration_warning=self.scoring.calibration_warning(source),
        )
        event = VerifyEvent(purpose, result.photos_sha256, result.same_person, result.similarity, result.fmr)
        entry = record(self.catalog, event, actor)
        return replace(result, audit_sequence=entry.seq)
