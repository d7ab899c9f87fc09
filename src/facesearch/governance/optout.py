"""Opt-out: a person is removed from the library and kept out of it from then on.

What is kept: one embedding of the person's face (the largest face in the photo they provide), the
SHA-256 of that photo, a note, who registered it and when. Never the photo itself.

What is removed, at once: every indexed *face* that matches the embedding (its row, embedding,
thumbnail and vector). Faces, not images: in a group photo only the opted-out person's face goes,
the other people in it stay searchable; an image left with no face at all is deleted entirely.

Matching uses a strict threshold: the cosine similarity at a false match rate of 1e-5 in the
library's calibration (``library.score_table("cosine")``), or cosine 0.95 for a model without one.
Strict because a false match here deletes a stranger's face, and because every opt-out adds to the
chance that an innocent face is hidden: with N opt-outs each face is hidden with probability about
N x FMR. The scan runs over every embedding in the catalog (exact, not the approximate index).

Keeping them out is the callers' part: ingest drops faces for which :meth:`OptOutRegistry.is_opted_out`
is true, and search passes its results through :meth:`OptOutRegistry.filter_search_result` (which also
blanks the results of a probe face that is itself an opted-out person). :meth:`OptOutRegistry.sweep`
re-applies every opt-out to the whole catalog (after faces came in by a path that did not filter).
"""

from __future__ import annotations

import json
import logging
import uuid
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from sqlalchemy import delete, func, select

from facesearch.errors import FaceSearchError, NoFaceFound
from facesearch.governance.audit import AuditLog, utc_iso
from facesearch.governance.db import actor_name, ensure_governance_tables, immediate
from facesearch.governance.removal import Removed, checkpoint, delete_faces, secure_delete, sync_index, write_lock
from facesearch.governance.schema import OptOutRow
from facesearch.search.calibration import CalibrationError
from facesearch.search.results import SearchResult
from facesearch.store.schema import FaceRow

if TYPE_CHECKING:
    from facesearch.governance.users import User
    from facesearch.library import Library

log = logging.getLogger(__name__)

OPTOUT_MAX_FMR = 1e-5
FALLBACK_THRESHOLD = 0.95
MAX_NOTE = 1000


@dataclass(frozen=True)
class OptOut:
    """A registered opt-out as callers see it (the embedding stays in the database)."""

    id: int
    created_at: datetime
    created_by: str
    note: str
    photo_sha256: str


@dataclass
class OptOutReceipt:
    """What an opt-out (or a sweep) removed, for the person who asked and for the records."""

    receipt_id: str
    at: str
    actor: str
    optout_id: int | None  # None for a sweep
    photo_sha256: str | None
    threshold: float
    threshold_source: str
    face_ids: list[int] = field(default_factory=list)
    image_ids: list[int] = field(default_factory=list)  # images deleted (only this person's faces were in them)
    kept_image_ids: list[int] = field(default_factory=list)  # images that keep other people's faces
    sources: list[str] = field(default_factory=list)
    audit_sequence: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)


def optout_threshold(library: Library, max_fmr: float = OPTOUT_MAX_FMR) -> tuple[float, str]:
    """The cosine similarity at or above which a face is the opted-out person, and where it comes from."""
    table, source = library.score_table("cosine")
    if table is not None:
        try:
            return float(table.threshold_for(max_fmr)), f"{source}: cosine at FMR {max_fmr:g}"
        except CalibrationError as exc:
            log.warning("opt-out threshold: %s; using cosine %.2f", exc, FALLBACK_THRESHOLD)
    return FALLBACK_THRESHOLD, f"fallback: cosine {FALLBACK_THRESHOLD} (no calibration resolves FMR {max_fmr:g})"


class OptOutRegistry:
    """The opt-outs of one library, with the matching used to remove and to keep out."""

    def __init__(self, library: Library, threshold: float | None = None, max_fmr: float = OPTOUT_MAX_FMR) -> None:
        self.library = library
        self.catalog = library.catalog
        ensure_governance_tables(self.catalog)
        if threshold is None:
            self.threshold, self.threshold_source = optout_threshold(library, max_fmr)
        else:
            self.threshold, self.threshold_source = float(threshold), "given"
        self._cache: tuple[tuple[int, int], np.ndarray, np.ndarray] | None = None

    # registering ----------------------------------------------------------------------------------

    def embed(self, photo: bytes | str | Path) -> tuple[np.ndarray, str]:
        """The embedding of the largest face in a photo, and the photo's SHA-256."""
        rgb, digest = self.library.searcher.load(photo)
        with self.library.borrow_pipeline() as pipeline:
            faces = pipeline.analyse(rgb)
        if not faces:
            raise NoFaceFound("no face found in the opt-out photo: send a clear photo of the face")
        largest = max(faces, key=lambda f: f.box[2] * f.box[3])
        return np.asarray(largest.embedding, dtype=np.float32), digest

    def add(self, photo: bytes | str | Path, note: str = "", *, actor: str | User | None = None) -> OptOutReceipt:
        """Register an opt-out from a photo and remove every indexed face of that person; audited.

        The photo is read and embedded in memory and then dropped: only its embedding and SHA-256 are kept.
        """
        if not isinstance(note, str) or len(note) > MAX_NOTE:
            raise FaceSearchError(f"the note must be text of at most {MAX_NOTE} characters", code="bad_request")
        by = actor_name(actor)
        embedding, digest = self.embed(photo)
        with write_lock(self.library):
            matches = self._matching_faces(embedding[None])
            with immediate(self.catalog) as s, secure_delete(s):
                row = OptOutRow(
                    created_by=by,
                    note=note,
                    photo_sha256=digest,
                    model_key=self.library.model_info.key,
                    embedding=embedding.tobytes(),
                )
                s.add(row)
                s.flush()
                removed = delete_faces(s, matches)
                receipt = self._receipt(by, removed, optout_id=row.id, photo_sha256=digest)
                entry = AuditLog(self.catalog).append_in(s, by, "optout_add", self._audit_details(receipt))
            receipt.audit_sequence = entry.seq
            sync_index(self.library, removed.face_ids)
        checkpoint(self.catalog)
        self.library.discard_uploaded_copies(removed.sources)
        self._cache = None
        log.info("opt-out %d: removed %d faces (%d images)", row.id, len(removed.face_ids), len(removed.image_ids))
        return receipt

    def sweep(self, *, actor: str | User | None = None) -> OptOutReceipt:
        """Remove every indexed face that matches any opt-out (faces added by a path that did not filter)."""
        by = actor_name(actor)
        with write_lock(self.library):
            _, matrix = self._matrix()
            matches = self._matching_faces(matrix) if len(matrix) else []
            with immediate(self.catalog) as s, secure_delete(s):
                removed = delete_faces(s, matches)
                receipt = self._receipt(by, removed, optout_id=None, photo_sha256=None)
                entry = AuditLog(self.catalog).append_in(s, by, "optout_sweep", self._audit_details(receipt))
            receipt.audit_sequence = entry.seq
            sync_index(self.library, removed.face_ids)
        if removed.face_ids:
            checkpoint(self.catalog)
            self.library.discard_uploaded_copies(removed.sources)
        return receipt

    def remove_optout(self, optout_id: int, *, actor: str | User | None = None) -> None:
        """Delete an opt-out (its embedding goes too). Faces it removed are not restored; audited."""
        by = actor_name(actor)
        with immediate(self.catalog) as s, secure_delete(s):
            row = s.get(OptOutRow, int(optout_id))
            if row is None:
                raise FaceSearchError(f"no opt-out {optout_id}", code="not_found")
            s.execute(delete(OptOutRow).where(OptOutRow.id == row.id))
            AuditLog(self.catalog).append_in(s, by, "optout_remove", {"optout_id": int(optout_id)})
        self._cache = None
        checkpoint(self.catalog)

    def list_optouts(self) -> list[OptOut]:
        with self.catalog.session() as s:
            rows = s.scalars(select(OptOutRow).order_by(OptOutRow.id))
            return [OptOut(r.id, r.created_at, r.created_by, r.note, r.photo_sha256) for r in rows]

    # matching -------------------------------------------------------------------------------------

    def _matching_faces(self, targets: np.ndarray) -> list[int]:
        """Ids of catalog faces whose cosine with any target is at least the threshold (exact scan)."""
        found: list[int] = []
        for ids, vectors in self.catalog.iter_embeddings():
            hit = (vectors @ targets.T).max(axis=1) >= self.threshold
            found.extend(int(i) for i in ids[hit])
        return found

    def count(self) -> int:
        """How many opt-outs apply to this library's recipe (0: nothing to filter)."""
        return len(self._matrix()[0])

    def _matrix(self) -> tuple[np.ndarray, np.ndarray]:
        """(opt-out ids, embeddings) of this library's recipe, reloaded when another process changed them."""
        with self.catalog.session() as s:
            signature = tuple(int(x or 0) for x in s.execute(select(func.count(), func.max(OptOutRow.id))).one())
            if self._cache is None or self._cache[0] != signature:
                rows = s.execute(select(OptOutRow.id, OptOutRow.embedding, OptOutRow.model_key)).all()
                key = self.library.model_info.key
                other = [r.id for r in rows if r.model_key != key]
                if other:
                    log.warning("opt-outs %s were embedded with another model and cannot be matched", other)
                own = [r for r in rows if r.model_key == key]
                ids = np.asarray([r.id for r in own], dtype=np.int64)
                dim = self.library.model_info.dim
                matrix = (
                    np.stack([np.frombuffer(r.embedding, dtype=np.float32) for r in own])
                    if own
                    else np.zeros((0, dim), np.float32)
                )
                self._cache = (signature, ids, matrix)  # type: ignore[assignment]
        return self._cache[1], self._cache[2]  # type: ignore[index]

    def best_matches(self, embeddings: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """For each embedding, the highest cosine with any opt-out and that opt-out's id (-1 if none)."""
        vectors = np.atleast_2d(np.asarray(embeddings, dtype=np.float32))
        ids, matrix = self._matrix()
        if len(matrix) == 0 or len(vectors) == 0:
            return np.full(len(vectors), -1.0, np.float32), np.full(len(vectors), -1, np.int64)
        scores = vectors @ matrix.T
        best = scores.argmax(axis=1)
        return scores[np.arange(len(vectors)), best], ids[best]

    def is_opted_out(self, embeddings: np.ndarray) -> np.ndarray:
        """A boolean mask: which embeddings (rows) belong to an opted-out person. For ingest and search."""
        scores, _ = self.best_matches(embeddings)
        return scores >= self.threshold

    def filter_search_result(self, result: SearchResult, probe_embeddings: np.ndarray | None = None) -> SearchResult:
        """A copy of ``result`` without candidates of opted-out people (ranks renumbered).

        With ``probe_embeddings`` (one per probe face, in ``result.faces`` order), a probe face that is
        itself an opted-out person gets no candidates at all. Faces removed since the search ran are
        dropped too. The result may hold fewer than ``top_k`` candidates: ask for a few more if needed.
        """
        ids, _ = self._matrix()
        if len(ids) == 0:
            return result
        blocked = (
            self.is_opted_out(probe_embeddings) if probe_embeddings is not None else np.zeros(len(result.faces), bool)
        )
        wanted = sorted({c.face_id for f in result.faces for c in f.candidates})
        vectors = self._embeddings(wanted)
        keep: set[int] = set()
        if vectors:
            listed = list(vectors)
            mask = self.is_opted_out(np.stack([vectors[i] for i in listed]))
            keep = {i for i, out in zip(listed, mask, strict=True) if not out}
        faces = []
        dropped = 0
        for face, block in zip(result.faces, blocked, strict=True):
            kept = [] if block else [c for c in face.candidates if c.face_id in keep]
            dropped += len(face.candidates) - len(kept)
            faces.append(replace(face, candidates=[replace(c, rank=r) for r, c in enumerate(kept, start=1)]))
        if dropped:
            log.info("opt-out filter dropped %d candidates", dropped)
        return replace(result, faces=faces)

    def _embeddings(self, face_ids: list[int]) -> dict[int, np.ndarray]:
        found: dict[int, np.ndarray] = {}
        with self.catalog.session() as s:
            for start in range(0, len(face_ids), 900):
                chunk = face_ids[start : start + 900]
                for face_id, blob in s.execute(select(FaceRow.id, FaceRow.embedding).where(FaceRow.id.in_(chunk))):
                    found[face_id] = np.frombuffer(blob, dtype=np.float32)
        return found

    # receipts -------------------------------------------------------------------------------------

    def _receipt(self, by: str, removed: Removed, optout_id: int | None, photo_sha256: str | None) -> OptOutReceipt:
        return OptOutReceipt(
            receipt_id=uuid.uuid4().hex,
            at=utc_iso(),
            actor=by,
            optout_id=optout_id,
            photo_sha256=photo_sha256,
            threshold=round(self.threshold, 6),
            threshold_source=self.threshold_source,
            face_ids=removed.face_ids,
            image_ids=removed.image_ids,
            kept_image_ids=removed.kept_image_ids,
            sources=removed.sources,
        )

    @staticmethod
    def _audit_details(receipt: OptOutReceipt) -> dict[str, Any]:
        """Ids and counts only: the audit log is never erased, so it must not keep paths or URLs of the person."""
        return {
            "receipt_id": receipt.receipt_id,
            "optout_id": receipt.optout_id,
            "photo_sha256": receipt.photo_sha256,
            "threshold": receipt.threshold,
            "face_ids": receipt.face_ids,
            "image_ids": receipt.image_ids,
            "kept_image_ids": receipt.kept_image_ids,
            "faces_removed": len(receipt.face_ids),
            "images_removed": len(receipt.image_ids),
        }
