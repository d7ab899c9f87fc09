"""The one search path: every search, verification and view of an indexed face goes through here.

Whichever interface asks (Python, CLI, REST API, web app), :class:`SearchService`:

1. requires a stated purpose (case id and purpose, plus what the collections demand) before it
   looks at the probe (search/purposes.py);
2. decodes the probe (media/), finds and embeds its faces (a pipeline borrowed from the pool;
   search/probes.py: one photo, several fused as one person, or an indexed face);
3. gives a probe face that is itself an opted-out person no candidates, and excludes indexed faces
   of opted-out people and faces outside the chosen collection from the vector search itself, so
   ranking never sees them (search/exclusions.py; no "slack" candidates fetched and filtered afterwards);
4. scores the candidates against the library's calibration (search/scoring.py, search/ranking.py);
5. appends the audit entry (who, case, purpose, the probe's SHA-256, the faces shown;
   search/search_event.py) and returns the result naming it.

A 1:1 verify (search/verify.py) and a face view (search/face_views.py) are governed the same way;
this class is their one entry point. It takes narrow collaborators (catalog, live index, pipelines,
scoring, opt-outs) rather than the library, so nothing here imports the facade above it. The index is
refreshed from disk first when another process saved a newer one, so a long-running server never
answers from a stale copy.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

import numpy as np

from facesearch.errors import FaceSearchError
from facesearch.governance.events import record
from facesearch.governance.probe_crops import keep_probe_crops
from facesearch.governance.types import SearchPurpose, User
from facesearch.models.pipeline_pool import PipelinePool
from facesearch.search.exclusions import (
    OptOuts,
    blocked_probe_faces,
    collection_faces,
    suppressed_ids,
    without_opted_out,
)
from facesearch.search.face_views import view_face
from facesearch.search.filters import DateLike, DateRange, restrict_to_dates
from facesearch.search.probes import Probe, ProbeReader, indexed_probe, probe_photos
from facesearch.search.purposes import bound_purpose
from facesearch.search.ranking import rank_candidates
from facesearch.search.results import ProbeFace, SearchResult, VerifyResult
from facesearch.search.scoring import Scoring
from facesearch.search.search_event import search_event
from facesearch.search.verify import Verifier
from facesearch.store.catalog import Catalog
from facesearch.store.live_index import LiveIndex
from facesearch.store.schema import FaceRow

MAX_TOP_K = 1000
RERANK_DEPTH = 50  # raw candidates re-ranked when scores are normalised


class SearchService:
    """Search, verify and face views of one library, each purpose-bound and audited."""

    def __init__(
        self,
        catalog: Catalog,
        index: LiveIndex,
        pipelines: PipelinePool,
        scoring: Scoring,
        optouts: OptOuts,
        *,
        model_key: str,
        max_bytes: int,
        max_pixels: int,
    ) -> None:
        self.catalog = catalog
        self.index = index
        self.pipelines = pipelines
        self.scoring = scoring
        self.optouts = optouts
        self.model_key = model_key
        self.probes = ProbeReader(pipelines, max_bytes=max_bytes, max_pixels=max_pixels)
        self.verifier = Verifier(catalog, self.probes, scoring, model_key=model_key)

    # probes, not compared with the library (nothing to audit) -------------------------------------

    def load(self, probe: Probe) -> tuple[np.ndarray, str]:
        """Decode a probe given as a path or as bytes; returns RGB pixels and the SHA-256 of the bytes."""
        return self.probes.load(probe)

    def largest_face(self, photo: Probe) -> tuple[np.ndarray, str]:
        """The embedding of the largest face in a photo and the photo's SHA-256 (for opt-out requests).

        Not a search: nothing is compared with the library, so nothing is audited here; the caller
        (an opt-out) audits what it does with it.
        """
        return self.probes.largest_face(photo)

    def faces(self, image: Probe) -> list[dict]:
        """The faces detected in a photo (box, landmarks, scores): nothing is compared with the library."""
        return self.probes.detected(image)

    # search ---------------------------------------------------------------------------------------

    def search(
        self,
        probe: Probe | Sequence[Probe],
        *,
        purpose: SearchPurpose | None,
        actor: str | User | None = None,
        top_k: int = 20,
        collection: str | None = None,
        face: int | None = None,
        max_fmr: float | None = None,
        max_fpir: float | None = None,
        same_person: bool = False,
        taken_after: DateLike = None,
        taken_before: DateLike = None,
        probe_face_id: int | None = None,
    ) -> SearchResult:
        """Find indexed faces like each face in the probe (or only face number ``face``). Audited.

        Issue 13: ``taken_after``/``taken_before`` (dates, or ISO times) search only photos taken in that
        range (EXIF date; photos without one are left out, and the result counts them: ``undated_excluded``),
        applied before ranking like the collection. ``probe_face_id`` searches with an indexed face's stored
        embedding instead of a photo (search/probes.py ``indexed_probe``).

        ``probe`` may be several photos of one person with ``same_person=True`` (issue 13): their
        largest faces are fused into one probe face (search/probes.py ``ProbeReader.fused``), searched,
        labelled, filtered and audited exactly as one photo's face, the audit entry listing every photo's
        SHA-256 (``probes_sha256``; ``probe_sha256`` is the first photo's).

        The labels are set for the gallery searched (search/labels.py): ``max_fmr`` (default: the
        library's, 1e-3) is the false match rate per comparison of a ``possible lead``; a ``match``
        also expects at most ``max_fpir`` (default: the library's, 0.01) strangers as high among the
        faces searched. The rest are ``no match``.
        """
        purpose = bound_purpose(self.catalog, purpose, collection, "search", actor)
        dates = DateRange.of(taken_after, taken_before)  # a bad date is refused before the probe is read
        photos = probe_photos(probe, same_person, face) if probe_face_id is None else []
        if not 1 <= top_k <= MAX_TOP_K:
            raise FaceSearchError(f"top_k must be between 1 and {MAX_TOP_K}", code="bad_request")
        max_fpir = self.scoring.max_fpir(max_fpir)  # a bad value is refused before the probe is read
        allowed, undated = restrict_to_dates(self.catalog, collection_faces(self.catalog, collection), dates)
        if probe_face_id is not None:
            read = indexed_probe(self.catalog, probe, probe_face_id, purpose, suppressed_ids(self.optouts))
        else:
            read = self.probes.read(photos, face)
        faces = read.faces
        self.index.refresh(repair=False)  # another process saved a newer index: answer from it
        index = self.index.current
        allowed, excluded = without_opted_out(self.optouts, allowed)
        normalizer = self.scoring.normalizer
        kind = normalizer.kind if normalizer else "cosine"  # issue 16: "snorm" or "snorm_cos" by the library
        self.scoring.operating_point(kind, max_fmr)  # a bad max_fmr is refused before the vector search
        queries = np.stack([f.embedding for f in faces])
        blocked = blocked_probe_faces(self.optouts, queries, read.parts)
        if len(index) == 0 or (allowed is not None and len(allowed) == 0):
            ids = np.zeros((len(faces), 0), np.int64)
            scores = np.zeros((len(faces), 0), np.float32)
        else:
            depth = max(top_k, RERANK_DEPTH) if normalizer else top_k
            scores, ids = index.search(queries, depth, allowed=allowed, excluded=excluded)
        ids = np.where(blocked[:, None], -1, ids)  # an opted-out person's probe face: nobody is shown
        rows = self.catalog.faces_by_ids({int(i) for i in ids.ravel() if i >= 0})
        # the faces this search could return: the collection's, or the gallery less the opted-out faces
        gallery_size = (
            int(len(allowed))
            if allowed is not None
            else max(0, len(index) - (0 if excluded is None else len(excluded)))
        )
        point, source = self.scoring.search_point(kind, max_fmr, max_fpir, gallery_size)
        results: list[ProbeFace] = []
        for face_obj, face_scores, face_ids in zip(faces, scores, ids, strict=True):
            candidates = rank_candidates(face_obj, face_scores, face_ids, rows, normalizer, top_k, point)
            results.append(
                ProbeFace(
                    face=face_obj.index,
                    box=list(face_obj.box),
                    det_score=round(face_obj.det_score, 4),
                    quality=face_obj.quality,
                    candidates=candidates,
                )
            )
        result = SearchResult(
            faces=results,
            threshold=round(point.threshold, 4),
            model=self.model_key,
            gallery_size=gallery_size,
            top_k=top_k,
            collection=collection,
            probe_sha256=read.digest,
            probes_sha256=read.digests,
            probe_size=read.size,
            score=kind,
            max_fmr=point.max_fmr,
            calibration=source,
            max_fpir=point.max_fpir,
            match_fmr=float(f"{point.match_fmr:.3g}") if point.match_fmr is not None else None,
            match_threshold=round(point.match_threshold, 4) if point.match_threshold is not None else None,
            match_unavailable=point.match_unavailable,
            calibration_warning=self.scoring.calibration_warning(source),
            **dates.audit(),
            undated_excluded=undated,
            probe_face_id=probe_face_id,
        )
        # Issue 13: a real case's report shows each probe face's crop (never the photo; none of an opted-out person)
        crops = [(f.index, f.thumbnail) for f, b in zip(faces, blocked, strict=True) if not b]
        keep_probe_crops(self.catalog, self.index.folder, purpose.case_id, read.digest, crops)
        entry = record(self.catalog, search_event(result, purpose), actor)
        return replace(result, audit_sequence=entry.seq)

    # verify and face views ------------------------------------------------------------------------

    def verify(
        self,
        a: Probe,
        b: Probe,
        *,
        purpose: SearchPurpose | None,
        actor: str | User | None = None,
        max_fmr: float | None = None,
    ) -> VerifyResult:
        """Are the largest faces in two photos the same person (cosine; a 1:1 question has no cohort)? Audited."""
        purpose = bound_purpose(self.catalog, purpose, None, "comparison", actor)
        return self.verifier.verify(a, b, purpose=purpose, actor=actor, max_fmr=max_fmr)

    def view_face(
        self,
        face_id: int,
        *,
        purpose: SearchPurpose | None,
        actor: str | User | None,
        thumbnail: bool,
        photo: bool = False,
    ) -> FaceRow | None:
        """An indexed face's row, for its metadata or thumbnail (None: no such face, or an opted-out person's).

        Bound like a search and audited (search/face_views.py): browsing faces outside a case shows in the log.
        """
        what = "photo" if photo else "thumbnail" if thumbnail else "metadata"  # photo: the whole original (issue 13)
        return view_face(self.catalog, self.optouts, face_id, purpose, actor, what)
