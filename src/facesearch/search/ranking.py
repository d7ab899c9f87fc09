"""From nearest vectors to ranked, labelled candidates: scores, false match rates and labels.

Kept apart from the search path (search/service.py) so the arithmetic of one probe face's
candidates reads on its own: raw similarities, optional s-norm re-ranking, the calibrated false
match rate of each score and the label it earns at the operating point.
"""

from __future__ import annotations

import numpy as np

from facesearch.media.urls import shown_url, web_link
from facesearch.models.pipeline import Face
from facesearch.search.labels import SearchPoint
from facesearch.search.normalize import CohortNormalizer
from facesearch.search.results import Candidate, ImageRef
from facesearch.store.schema import FaceRow


def rank_candidates(
    probe: Face,
    scores: np.ndarray,
    ids: np.ndarray,
    rows: dict[int, FaceRow],
    normalizer: CohortNormalizer | None,
    top_k: int,
    point: SearchPoint,
) -> list[Candidate]:
    """The top ``top_k`` candidates of one probe face, ranked by the library's score.

    Empty slots (-1) and faces whose rows are gone (removed since the index was loaded) are dropped.
    """
    found = [(float(sc), rows[int(i)]) for sc, i in zip(scores, ids, strict=True) if int(i) in rows]
    ranking = np.array([sc for sc, _ in found], dtype=np.float64)
    if normalizer and found:
        vectors = np.stack([np.frombuffer(row.embedding, dtype=np.float32) for _, row in found])
        ids_found = np.array([row.id for _, row in found], dtype=np.int64)
        ranking = normalizer.normalize(ranking, probe.embedding, vectors, ids_found)
    order = np.argsort(-ranking, kind="stable")[:top_k]
    return [
        candidate(rank, found[i][1], found[i][0], float(ranking[i]), point) for rank, i in enumerate(order, start=1)
    ]


def candidate(
    rank: int,
    row: FaceRow,
    similarity: float,
    score: float,
    point: SearchPoint,
) -> Candidate:
    """One candidate: its similarity, score, calibrated false match rate and its label at this search's point."""
    image = row.image
    passes = bool(score >= point.threshold)
    estimate = point.estimate(score)
    return Candidate(
        rank=rank,
        similarity=round(similarity, 4),
        passes_threshold=passes,
        fmr=float(f"{estimate.fmr:.3g}") if estimate else None,
        fmr_upper_bound=estimate.upper_bound if estimate else False,
        expected_false_candidates=float(f"{estimate.fmr * point.gallery_size:.3g}") if estimate else None,
        label=point.label(score, estimate),  # uncalibrated: never a "match"
        face_id=row.id,
        collection=image.collection.name,
        box=list(row.box),
        quality=row.quality,
        image=ImageRef(
            image_id=image.id,
            path=image.source if image.source_kind == "file" else None,
            source_url=shown_url(image.source) if image.source_kind == "url" else None,
            page_url=web_link(image.page_url),
            sha256=image.sha256,
        ),
        score=round(score, 4),
    )
