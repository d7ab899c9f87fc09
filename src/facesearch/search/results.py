"""Typed search and verify results, with the stable JSON schema other tools read.

Stable keys (add fields freely, never rename these):
search → ``{"faces": [{"box": [...], "candidates": [{"rank", "similarity", "passes_threshold",
"face_id", "collection", "image": {"path", "source_url", "page_url"}}]}]}``;
verify → ``{"same_person", "similarity", "threshold"}``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field


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

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class VerifyResult:
    same_person: bool
    similarity: float
    threshold: float
    model: str
    faces: list[dict]

    def to_dict(self) -> dict:
        return asdict(self)
