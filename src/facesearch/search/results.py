"""Typed search and verify results, with the stable JSON schema other tools read.

Stable keys (add fields freely, never rename these):
search → ``{"faces": [{"box": [...], "candidates": [{"rank", "similarity", "passes_threshold", "fmr",
"expected_false_candidates", "label", "face_id", "collection", "image": {"image_id", "path",
"source_url", "page_url"}}]}], "max_fmr", "threshold", "gallery_size", "max_fpir", "match_fmr",
"match_threshold", "match_unavailable", "calibration_warning"}``;
verify → ``{"same_person", "similarity", "fmr", "label", "threshold", "max_fmr", "calibration_warning"}``.

``fmr`` is the calibrated chance that a different person scores as high in one comparison
(search/calibration.py); ``passes_threshold`` means ``fmr <= max_fmr``. A search's labels are set
for its gallery (search/labels.py): ``match`` when ``expected_false_candidates`` (fmr x
``gallery_size``) is at most ``max_fpir``, ``possible lead`` when only ``fmr <= max_fmr`` holds,
``no match`` for the rest. ``match_fmr`` and ``match_threshold`` are what a match needs in this
search; ``match_unavailable`` (when not null) says why no result can be a match and how to fix it.
``calibration_warning`` (when not null) says that the calibration's figures were found off by more
than 2x on people it was not built from. Verify is one comparison (1:1): ``match`` when
``fmr <= max_fmr``, else ``no match``. Even a match is a lead for a person to review, never an
identification on its own.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from facesearch.search.labels import LABEL_LEAD as LABEL_LEAD  # re-exported: the labels live with their rule
from facesearch.search.labels import LABEL_MATCH as LABEL_MATCH
from facesearch.search.labels import LABEL_NO_MATCH as LABEL_NO_MATCH


@dataclass
class ImageRef:
    image_id: int
    path: str | None  # local file the photo was indexed from
    source_url: str | None  # URL the photo was fetched from
    page_url: str | None  # web page the photo came from, if known
    sha256: str


@dataclass
class Candidate:
    rank: int
    similarity: float
    passes_threshold: bool
    face_id: int
    collection: str
    box: list[int]
    quality: float
    image: ImageRef
    score: float = 0.0  # what ranks and is compared with the threshold: cosine, or s-norm when enabled
    fmr: float | None = None  # calibrated false match rate of this score (None: no calibration for the model)
    fmr_upper_bound: bool = False  # the score is beyond every measured impostor score: fmr is at most this
    expected_false_candidates: float | None = None  # fmr x gallery size: strangers expected to score this high
    label: str = LABEL_NO_MATCH  # match, possible lead or no match (search/labels.py)


@dataclass
class ProbeFace:
    face: int
    box: list[int]
    det_score: float
    quality: float
    candidates: list[Candidate] = field(default_factory=list)


@dataclass
class SearchResult:
    faces: list[ProbeFace]
    threshold: float
    model: str
    gallery_size: int
    top_k: int
    collection: str | None
    probe_sha256: str  # of the probe photo's bytes (of the first photo of a same-person probe)
    # Every probe photo's SHA-256, in the order given: one, or each photo fused into a same-person probe (issue 13).
    probes_sha256: list[str] = field(default_factory=list)
    probe_size: list[int] = field(default_factory=list)  # [width, height] of the decoded probe
    score: str = "cosine"  # the kind of candidate score: "cosine", "snorm" or "snorm_cos" (issue 16)
    max_fmr: float | None = None  # the operating point: threshold = the score whose fmr is max_fmr
    calibration: str | None = None  # where the score → fmr table was measured
    audit_sequence: int | None = None  # the audit entry that records this search (None: not audited)
    # The 1:N operating point (search/labels.py): a match expects at most max_fpir strangers in this gallery.
    max_fpir: float | None = None
    match_fmr: float | None = None  # the fmr per comparison a match needs: min(max_fmr, max_fpir / gallery_size)
    match_threshold: float | None = None  # the score a match needs (None: no result can be a match)
    match_unavailable: str | None = None  # why no result can be a match here, and how to fix it
    calibration_warning: str | None = None  # the calibration was found off by more than 2x on held-out people
    # Issue 13: the date range searched (photos taken in it; ISO bounds, before exclusive) and the faces
    # left out for having no date (None: no range given); the indexed face searched with, if any.
    taken_after: str | None = None
    taken_before: str | None = None
    undated_excluded: int | None = None
    probe_face_id: int | None = None

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class VerifyResult:
    same_person: bool
    similarity: float
    threshold: float
    model: str
    faces: list[dict]
    fmr: float | None = None
    fmr_upper_bound: bool = False
    max_fmr: float | None = None
    label: str = LABEL_NO_MATCH  # match (fmr <= max_fmr), or no match; possible lead for an uncalibrated model
    calibration: str | None = None
    calibration_warning: str | None = None  # the calibration was found off by more than 2x on held-out people
    photos_sha256: list[str] = field(default_factory=list)  # of the two photos' bytes (what the audit log keeps)
    audit_sequence: int | None = None  # the audit entry that records this comparison (None: not audited)

    def to_dict(self) -> dict:
        return asdict(self)
