"""Opt-out: a person is removed from the library and kept out of it from then on.

What is kept: one embedding of the person's face (the largest face in the photo they provide), the
SHA-256 of that photo, a note, who registered it and when. Never the photo itself.

What is removed, at once: every indexed *face* that matches the embedding (its row, embedding,
thumbnail and vector). Faces, not images: in a group photo only the opted-out person's face goes,
the other people in it stay searchable; an image left with no face at all is deleted entirely.

Matching uses a strict threshold: the cosine similarity at a false match rate of 1e-5 in the
library's calibration (the cosine score table the library hands over), or cosine 0.95 for a model
without one.
Strict because a false match here deletes a stranger's face, and because every opt-out adds to the
chance that an innocent face is hidden: with N opt-outs each face is hidden with probability about
N x FMR. The scan runs over every embedding in the catalog (exact, not the approximate index).

Keeping them out: the registry is the library writer's :class:`~facesearch.store.writer.FaceScreen`, so
no ingest engine can store a face for which :meth:`OptOutRegistry.is_opted_out` is true; search asks
:meth:`OptOutRegistry.suppressed_face_ids` for any indexed face that still matches (one that came in by
a path that did not filter) and excludes those from the vector search itself, before ranking, and
gives a probe face that is itself an opted-out person no candidates. :meth:`OptOutRegistry.sweep`
re-applies every opt-out to the whole catalog.

Every change goes through the library's single writer (store/writer.py): it holds the write lock,
deletes in one transaction with the audit entry, and keeps the vector index in step.
"""

from __future__ import annotations

import json
import logging
import uuid
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol

import numpy as np
from sqlalchemy import delete, func, select

from facesearch.errors import CalibrationError, FaceSearchError, NoFaceFound
from facesearch.governance.audit import utc_iso
from facesearch.governance.db import ensure_governance_tables
from facesearch.governance.events import GovernanceEvent, record
from facesearch.governance.types import User, actor_name
from facesearch.store.catalog import Catalog
from facesearch.store.deletion import Removed, checkpoint
from facesearch.store.governance_schema import OptOutRow
from facesearch.store.schema import FaceRow
from facesearch.store.writer import LibraryWriter

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


class ScoreTableLike(Protocol):
    def threshold_for(self, max_fmr: float) -> float: ...


class EmbedLargestFace(Protocol):
    def __call__(self, photo: bytes | str | Path) -> tuple[np.ndarray, str]:
        """The embedding of the largest face in a photo and the photo's SHA-256 (NoFaceFound if none)."""
        ...


def optout_threshold(
    table: ScoreTableLike | None, source: str | None, max_fmr: float = OPTOUT_MAX_FMR
) -> tuple[float, str]:
    """The cosine similarity at or above which a face is the opted-out person, and where it comes from.

    ``table`` is the library's cosine score table (None without a calibration); when it cannot
    resolve ``max_fmr`` the fallback is used.
    """
    if table is not None:
        try:
            return float(table.threshold_for(max_fmr)), f"{source}: cosine at FMR {max_fmr:g}"
        except CalibrationError as exc:
            log.warning("opt-out threshold: %s; using cosine %.2f", exc, FALLBACK_THRESHOLD)
    return FALLBACK_THRESHOLD, f"fallback: cosine {FALLBACK_THRESHOLD} (no calibration resolves FMR {max_fmr:g})"


class OptOutRegistry:
    """The opt-outs of one library, with the matching used to remove and to keep out.

    It is the writer's face screen (:meth:`screens`, :meth:`refused`): ingest cannot store an
    opted-out person's face, whichever engine runs it.
    """

    def __init__(
        self,
        catalog: Catalog,
        writer: LibraryWriter,
        *,
        model_key: str,
        dim: int,
        embed: EmbedLargestFace,
        threshold: float,
        threshold_source: str,
    ) -> None:
        self.catalog = catalog
        self.writer = writer
        self.model_key = model_key
        self.dim = dim
        self.embed_largest = embed
        ensure_governance_tables(self.catalog)
        self.threshold, self.threshold_source = float(threshold), threshold_source
        self._cache: tuple[tuple[int, int], np.ndarray, np.ndarray] | None = None
        self._suppressed: tuple[tuple[Any, ...], np.ndarray] | None = None
        writer.on_change(self._forget_suppressed)  # faces came or went (in this process)

    def _forget_suppressed(self) -> None:
        self._suppressed = None

    # registering ----------------------------------------------------------------------------------

    def embed(self, photo: bytes | str | Path) -> tuple[np.ndarray, str]:
        """The embedding of the largest face in a photo, and the photo's SHA-256."""
        try:
            return self.embed_largest(photo)
        except NoFaceFound as exc:
            raise NoFaceFound("no face found in the opt-out photo: send a clear photo of the face") from exc

    def add(self, photo: bytes | str | Path, note: str = "", *, actor: str | User | None = None) -> OptOutReceipt:
        """Register an opt-out from a photo and remove every indexed face of that person; audited.

        The photo is read and embedded in memory and then dropped: only its embedding and SHA-256 are kept.
        """
        if not isinstance(note, str) or len(note) > MAX_NOTE:
            raise FaceSearchError(f"the note must be text of at most {MAX_NOTE} characters", code="bad_request")
        by = actor_name(actor)
        embedding, digest = self.embed(photo)
        with self.writer.deleting() as deletion:
            s = deletion.session
            matches = self._matching_faces(embedding[None])
            row = OptOutRow(
                created_by=by,
                note=note,
                photo_sha256=digest,
                model_key=self.model_key,
                embedding=embedding.tobytes(),
            )
            s.add(row)
            s.flush()
            removed = deletion.faces(matches)
            receipt = self._receipt(by, removed, optout_id=row.id, photo_sha256=digest)
            entry = record(self.catalog, GovernanceEvent("optout_add", self._audit_details(receipt)), by, session=s)
            row.audit_seq = entry.seq  # the catalog's evidence that this entry exists (audit verify)
        receipt.audit_sequence = entry.seq
        self._cache = None
        log.info("opt-out %d: removed %d faces (%d images)", row.id, len(removed.face_ids), len(removed.image_ids))
        return receipt

    def sweep(self, *, actor: str | User | None = None) -> OptOutReceipt:
        """Remove every indexed face that matches any opt-out (faces added by a path that did not filter)."""
        by = actor_name(actor)
        with self.writer.deleting() as deletion:
            _, matrix = self._matrix()
            matches = self._matching_faces(matrix) if len(matrix) else []
            removed = deletion.faces(matches)
            receipt = self._receipt(by, removed, optout_id=None, photo_sha256=None)
            entry = record(
                self.catalog,
                GovernanceEvent("optout_sweep", self._audit_details(receipt)),
                by,
                session=deletion.session,
            )
        receipt.audit_sequence = entry.seq
        return receipt

    def remove_optout(self, optout_id: int, *, actor: str | User | None = None) -> None:
        """Delete an opt-out (its embedding goes too). Faces it removed are not restored; audited."""
        by = actor_name(actor)
        with self.writer.deleting() as deletion:
            s = deletion.session
            row = s.get(OptOutRow, int(optout_id))
            if row is None:
                raise FaceSearchError(f"no opt-out {optout_id}", code="not_found")
            s.execute(delete(OptOutRow).where(OptOutRow.id == row.id))
            record(self.catalog, GovernanceEvent("optout_remove", {"optout_id": int(optout_id)}), by, session=s)
        self._cache = None
        checkpoint(self.catalog)  # the embedding's pages are zeroed: truncate the WAL that still holds them

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
                key = self.model_key
                other = [r.id for r in rows if r.model_key != key]
                if other:
                    log.warning("opt-outs %s were embedded with another model and cannot be matched", other)
                own = [r for r in rows if r.model_key == key]
                ids = np.asarray([r.id for r in own], dtype=np.int64)
                dim = self.dim
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

    # the writer's face screen -------------------------------------------------------------------

    def screens(self) -> bool:
        """Whether any opt-out applies (no opt-out: storing skips the check)."""
        return self.count() > 0

    def refused(self, embeddings: np.ndarray) -> np.ndarray:
        """The faces ingest must not store: those of opted-out people."""
        return self.is_opted_out(embeddings)

    # what search must exclude ---------------------------------------------------------------------

    def suppressed_face_ids(self) -> np.ndarray:
        """Indexed faces that match an opt-out: normally none (opt-outs remove them and ingest refuses
        them), but a face stored by a path that did not screen must never be shown. Search excludes
        these ids from the vector search itself, before ranking.

        An exact scan of the catalog's embeddings, redone only when the opt-outs or the faces change.
        """
        ids, _ = self._matrix()
        if len(ids) == 0:
            return np.zeros(0, np.int64)
        with self.catalog.session() as s:
            faces = tuple(int(x or 0) for x in s.execute(select(func.count(FaceRow.id), func.max(FaceRow.id))).one())
        signature = (self._cache[0] if self._cache else None, faces)
        if self._suppressed is None or self._suppressed[0] != signature:
            _, matrix = self._matrix()
            found = np.asarray(sorted(self._matching_faces(matrix)), dtype=np.int64)
            self._suppressed = (signature, found)
        return self._suppressed[1]

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
