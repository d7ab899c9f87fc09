"""What the audit log keeps of a search: the probe's hash and what was shown, never the probe.

Its own module because it is the one translation from a search's result to its audit entry
(governance/events.py ``SearchEvent``), which a case report later reads back (governance/case_report.py):
what the entry holds is a promise of its own, apart from how the search was run.
"""

from __future__ import annotations

from facesearch.governance.events import SearchEvent
from facesearch.governance.types import SearchPurpose
from facesearch.search.results import LABEL_LEAD, LABEL_MATCH, SearchResult


def search_event(result: SearchResult, purpose: SearchPurpose) -> SearchEvent:
    """What the audit log keeps of a search: the probe's hash and what was shown, never the probe.

    For each probe face: its box, the face ids shown (in rank order), how many were labelled match and
    how many possible lead, and (issue 13) each shown face's fmr and label, parallel to ``shown``, with the
    calibration's source: what a case report states, so that ``audit export`` alone rebuilds it.
    """
    return SearchEvent(
        stated=purpose,
        probe_sha256=result.probe_sha256,
        collection=result.collection,
        top_k=result.top_k,
        max_fmr=result.max_fmr,
        threshold=result.threshold,
        score=result.score,
        model=result.model,
        gallery_size=result.gallery_size,
        faces=[
            {
                "face": f.face,
                "box": list(f.box),
                "shown": [c.face_id for c in f.candidates],
                "matches": sum(1 for c in f.candidates if c.label == LABEL_MATCH),
                "leads": sum(1 for c in f.candidates if c.label == LABEL_LEAD),
                "fmr": [c.fmr for c in f.candidates],
                "labels": [c.label for c in f.candidates],
            }
            for f in result.faces
        ],
        max_fpir=result.max_fpir,
        probes_sha256=list(result.probes_sha256),
        calibration=result.calibration,
        taken_after=result.taken_after,
        taken_before=result.taken_before,
        undated_excluded=result.undated_excluded,
        probe_face_id=result.probe_face_id,
    )
