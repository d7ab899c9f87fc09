"""Typed search and verify results, with the stable JSON schema other tools read.

Stable keys (add fields freely, never rename these):
search → ``{"faces": [{"box": [...], "candidates": [{"rank", "similarity", "passes_threshold", "fmr",
"expected_false_candidates", "label", "face_id", "collection", "image": {"path", "source_url",
"page_url"}}]}], "max_fmr", "threshold"}``;
verify → ``{"same_person", "similarity", "fmr", "label", "threshold", "max_fmr"}``.

``fmr`` is the calibrated chance that a different person scores as high (search/calibration.py);
``passes_threshold`` means ``fmr <= max_fmr``. Only such results are labelled ``match``; every other
result is ``possible lead, needs human review``. Even a match is a lead for a person to review, never
an identification on its own.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

LABEL_MATCH = "match"
LABEL_LEAD = "possible lead, needs human review"


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
    label: str = LABEL_LEAD


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
    probe_sha256: str
    probe_size: list[int] = field(default_factory=list)  # [width, height] of the decoded probe
    score: str = "cosine"  # the kind of candidate score: "cosine" or "snorm"
    max_fmr: float | None = None  # the operating point: threshold = the score whose fmr is max_fmr
    calibration: str | None = None  # where the score → fmr table was measured
    audit_sequence: int | None = None  # the audit entry that records this search (None: not audited)

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
    label: str = LABEL_LEAD
    calibration: str | None = None
    photos_sha256: list[str] = field(default_factory=list)  # of the two photos' bytes (what the audit log keeps)
    audit_sequence: int | None = None  # the audit entry that records this comparison (None: not audited)

    def to_dict(self) -> dict:
        return asdict(self)
