"""Search and verification over a library: probe photo → faces → nearest indexed faces."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from facesearch.errors import FaceSearchError, NoFaceFound
from facesearch.ingest.worker import read_file
from facesearch.models.pipeline import Face
from facesearch.search.calibration import ScoreTable
from facesearch.search.results import (
    LABEL_LEAD,
    LABEL_MATCH,
    Candidate,
    ImageRef,
    ProbeFace,
    SearchResult,
    VerifyResult,
)
from facesearch.store.schema import FaceRow

if TYPE_CHECKING:
    from facesearch.library import Library

MAX_TOP_K = 1000
RERANK_DEPTH = 50  # raw candidates re-ranked when scores are normalised


class Searcher:
    def __init__(self, library: Library) -> None:
        self.lib = library

    def load(self, probe: str | Path | bytes) -> tuple[np.ndarray, str]:
        """Decode a probe given as a path or as bytes; returns RGB pixels and the SHA-256 of the bytes."""
        from facesearch.ingest.decode import decode_image, sha256_hex  # Pillow: only when a probe comes

        if isinstance(probe, bytes):
            data = probe
        else:
            data = read_file(Path(probe), self.lib.config.max_download_bytes)
        return decode_image(data, max_pixels=self.lib.config.max_pixels).rgb, sha256_hex(data)

    def probe_faces(self, probe: str | Path | bytes, face: int | None = None) -> tuple[list[Face], str]:
        faces, digest, _ = self._probe_faces(probe, face)
        return faces, digest

    def _probe_faces(self, probe: str | Path | bytes, face: int | None) -> tuple[list[Face], str, list[int]]:
        rgb, digest = self.load(probe)
        with self.lib.borrow_pipeline() as pipeline:
            faces = pipeline.find_faces(rgb)
            if not faces:
                where = probe if not isinstance(probe, bytes) else ""
                raise NoFaceFound(f"no face found in the probe {where}".strip())
            if face is not None:
                if not 0 <= face < len(faces):
                    raise FaceSearchError(
                        f"the probe has {len(faces)} face(s): choose a face from 0 to {len(faces) - 1}",
                        code="bad_face",
                    )
                faces = [faces[face]]
            return pipeline.embed_faces(faces), digest, [int(rgb.shape[1]), int(rgb.shape[0])]

    def search(
        self,
        probe: str | Path | bytes,
        *,
        top_k: int = 20,
        collection: str | None = None,
        face: int | None = None,
        max_fmr: float | None = None,
    ) -> SearchResult:
        return self.search_with_probes(probe, top_k=top_k, collection=collection, face=face, max_fmr=max_fmr)[0]

    def search_with_probes(
        self,
        probe: str | Path | bytes,
        *,
        top_k: int = 20,
        collection: str | None = None,
        face: int | None = None,
        max_fmr: float | None = None,
    ) -> tuple[SearchResult, np.ndarray]:
        """:meth:`search`, plus the probe faces' embeddings (one row per result face), for the opt-out filter."""
        if not 1 <= top_k <= MAX_TOP_K:
            raise FaceSearchError(f"top_k must be between 1 and {MAX_TOP_K}", code="bad_request")
        allowed = None
        if collection is not None:
            cid = self.lib.catalog.collection_id(collection, create=False)
            if cid is None:
                raise FaceSearchError(f"no collection named {collection!r}", code="not_found")
            allowed = self.lib.catalog.face_ids_in_collection(cid)
        faces, digest, size = self._probe_faces(probe, face)
        index = self.lib.vector_index
        normalizer = self.lib.normalizer
        kind = "snorm" if normalizer else "cosine"
        table, threshold, max_fmr, source = self._operating_point(kind, max_fmr)
        queries = np.stack([f.embedding for f in faces])
        results: list[ProbeFace] = []
        if len(index) == 0 or (allowed is not None and len(allowed) == 0):
            scores = np.zeros((len(faces), 0), np.float32)
            ids = np.zeros((len(faces), 0), np.int64)
        else:
            depth = max(top_k, RERANK_DEPTH) if normalizer else top_k
            scores, ids = index.search(queries, depth, allowed=allowed)
        rows = self.lib.catalog.faces_by_ids({int(i) for i in ids.ravel() if i >= 0})
        gallery_size = len(index) if allowed is None else int(len(allowed))
        for face_obj, face_scores, face_ids in zip(faces, scores, ids, strict=True):
            # Drop empty slots and faces removed since the index was loaded.
            found = [(float(sc), rows[int(i)]) for sc, i in zip(face_scores, face_ids, strict=True) if int(i) in rows]
            ranking = np.array([sc for sc, _ in found], dtype=np.float64)
            if normalizer and found:
                vectors = np.stack([np.frombuffer(row.embedding, dtype=np.float32) for _, row in found])
                ranking = normalizer.normalize(ranking, face_obj.embedding, vectors)
            order = np.argsort(-ranking, kind="stable")[:top_k]
            candidates = [
                self._candidate(rank, found[i][1], found[i][0], float(ranking[i]), threshold, table, gallery_size)
                for rank, i in enumerate(order, start=1)
            ]
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
            threshold=round(threshold, 4),
            model=self.lib.model_info.key,
            gallery_size=gallery_size,
            top_k=top_k,
            collection=collection,
            probe_sha256=digest,
            probe_size=size,
            score=kind,
            max_fmr=max_fmr,
            calibration=source,
        )
        return result, queries

    def _operating_point(
        self, kind: str, max_fmr: float | None
    ) -> tuple[ScoreTable | None, float, float | None, str | None]:
        """The FMR table for a score kind, the threshold it gives for ``max_fmr``, max_fmr and its source.

        Without a calibration for the library's model, the configured fallback threshold is used.
        """
        max_fmr = self.lib.config.max_fmr if max_fmr is None else max_fmr
        table, source = self.lib.score_table(kind)
        if table is None:
            threshold = self.lib.config.snorm_threshold if kind == "snorm" else self.lib.config.threshold
            return None, threshold, None, None
        return table, table.threshold_for(max_fmr), max_fmr, source

    @staticmethod
    def _candidate(
        rank: int,
        row: FaceRow,
        similarity: float,
        score: float,
        threshold: float,
        table: ScoreTable | None,
        gallery_size: int,
    ) -> Candidate:
        image = row.image
        passes = bool(score >= threshold)
        estimate = table.fmr_at(score) if table else None
        return Candidate(
            rank=rank,
            similarity=round(similarity, 4),
            passes_threshold=passes,
            fmr=float(f"{estimate.fmr:.3g}") if estimate else None,
            fmr_upper_bound=estimate.upper_bound if estimate else False,
            expected_false_candidates=float(f"{estimate.fmr * gallery_size:.3g}") if estimate else None,
            label=LABEL_MATCH if passes and table is not None else LABEL_LEAD,  # uncalibrated: never a "match"
            face_id=row.id,
            collection=image.collection.name,
            box=list(row.box),
            quality=row.quality,
            image=ImageRef(
                image_id=image.id,
                path=image.source if image.source_kind == "file" else None,
                source_url=image.source if image.source_kind == "url" else None,
                page_url=image.page_url,
                sha256=image.sha256,
            ),
            score=round(score, 4),
        )

    def verify(self, a: str | Path | bytes, b: str | Path | bytes, max_fmr: float | None = None) -> VerifyResult:
        """Compare the largest faces of two photos by cosine similarity (no cohort: a 1:1 question)."""
        table, threshold, max_fmr, source = self._operating_point("cosine", max_fmr)
        faces_a, sha_a = self.probe_faces(a)
        faces_b, sha_b = self.probe_faces(b)
        face_a, face_b = faces_a[0], faces_b[0]
        similarity = float(np.dot(face_a.embedding, face_b.embedding))
        same = bool(similarity >= threshold)
        estimate = table.fmr_at(similarity) if table else None
        return VerifyResult(
            same_person=same,
            similarity=round(similarity, 4),
            threshold=round(threshold, 4),
            model=self.lib.model_info.key,
            faces=[{"box": list(f.box), "quality": f.quality} for f in (face_a, face_b)],
            fmr=float(f"{estimate.fmr:.3g}") if estimate else None,
            fmr_upper_bound=estimate.upper_bound if estimate else False,
            max_fmr=max_fmr,
            label=LABEL_MATCH if same and table is not None else LABEL_LEAD,
            photos_sha256=[sha_a, sha_b],
            calibration=source,
        )

    def faces(self, image: str | Path | bytes) -> list[dict]:
        rgb, _ = self.load(image)
        with self.lib.borrow_pipeline() as pipeline:
            found = pipeline.analyse(rgb)  # embedded too: the quality score includes stability
        return [
            {
                "face": f.index,
                "box": list(f.box),
                "landmarks": [[round(float(x), 1), round(float(y), 1)] for x, y in f.landmarks],
                "det_score": round(f.det_score, 4),
                "quality": f.quality,
            }
            for f in found
        ]
