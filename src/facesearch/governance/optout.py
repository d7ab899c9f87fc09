"""Opt-out: a person is removed from the library and kept out of it from then on.

What is kept: per photo the person provides (several are better: each one catches the person in
other poses and light), one embedding of its largest face and the photo's SHA-256; a note, who
registered it and when. Never the photos themselves.

What is removed, at once: every indexed *face* that is the person's (its row, embedding, thumbnail
and vector). Faces, not images: in a group photo only the opted-out person's face goes, the other
people in it stay searchable; an image left with no face at all is deleted entirely.

One rule decides what is the person's, everywhere: :meth:`Scoring.same_person` of the library
(search/scoring.py, handed in as the registry's ``rule``): a face whose score against any opt-out
embedding reaches the library's match operating point (FMR <= ``max_fmr`` per comparison, the
calibration and scores search and verify use). A stricter point than search's would leave faces
that search still reports as the person (issue 12: at FMR 1e-5 an opt-out removed none of 12 photos
that search then labelled ``match``). The price: with N opt-out photos a stranger's face is removed
with probability about N x 2 x max_fmr (measured: docs/accuracy.md), which is why an opt-out shows
what it will remove before it does (:meth:`OptOutRegistry.preview`). The scan runs over every
embedding in the catalog (exact, not the approximate index).

Keeping them out: the registry is the library writer's :class:`~facesearch.store.writer.FaceScreen`, so
no ingest engine can store a face for which :meth:`OptOutRegistry.is_opted_out` is true (and a photo
whose every face is refused is not stored at all); search asks :meth:`OptOutRegistry.suppressed_face_ids`
for any indexed face that still matches (one that came in by a path that did not filter) and excludes
those from the vector search itself, before ranking, and gives a probe face that is itself an
opted-out person no candidates. :meth:`OptOutRegistry.sweep` re-applies every opt-out to the whole catalog.

Every change goes through the library's single writer (store/writer.py): it holds the write lock,
deletes in one transaction with the audit entry, and keeps the vector index in step.
"""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol

import numpy as np
from sqlalchemy import delete, func, select

from facesearch.errors import FaceSearchError, NoFaceFound
from facesearch.governance.audit import utc_iso
from facesearch.governance.db import ensure_governance_tables
from facesearch.governance.events import GovernanceEvent, record
from facesearch.governance.person_photos import Photo, embed_each
from facesearch.governance.types import User, actor_name
from facesearch.models.template import mean_template
from facesearch.store.catalog import Catalog
from facesearch.store.deletion import Removed, checkpoint
from facesearch.store.governance_schema import OptOutRow
from facesearch.store.ids import number_rows
from facesearch.store.schema import FaceRow, ImageRow, utcnow
from facesearch.store.writer import LibraryWriter

log = logging.getLogger(__name__)

MAX_NOTE = 1000
MAX_PHOTOS = 20  # photos per opt-out request
NOTHING_TO_REMOVE = (
    "no indexed face matches these photos: nothing will be removed now (the opt-out still keeps the person "
    "out of later ingests and searches); check that the photos show the person's face clearly, or add more photos"
)


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
    optout_id: int | None  # None for a sweep; the first photo's opt-out when several were given
    photo_sha256: str | None
    threshold: float  # the cosine threshold (s-norm's, when used, is in threshold_source)
    threshold_source: str
    optout_ids: list[int] = field(default_factory=list)  # one opt-out per photo
    photos_sha256: list[str] = field(default_factory=list)
    face_ids: list[int] = field(default_factory=list)
    image_ids: list[int] = field(default_factory=list)  # images deleted (only this person's faces were in them)
    kept_image_ids: list[int] = field(default_factory=list)  # images that keep other people's faces
    sources: list[str] = field(default_factory=list)
    audit_sequence: int | None = None
    warning: str | None = None  # set when nothing was removed

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)


@dataclass
class PreviewImage:
    """One indexed photo an opt-out would touch: the person's faces in it, and whether the photo goes."""

    image_id: int
    source: str
    face_ids: list[int]
    deleted: bool  # no other face left: the photo is deleted; else only the person's faces go


@dataclass
class OptOutPreview:
    """What an opt-out with these photos would remove now (nothing is changed); shown before confirming."""

    photos_sha256: list[str]
    threshold: float
    threshold_source: str
    face_ids: list[int] = field(default_factory=list)
    image_ids: list[int] = field(default_factory=list)  # images that would be deleted (no other face left)
    kept_image_ids: list[int] = field(default_factory=list)  # images that would keep other people's faces
    images: list[PreviewImage] = field(default_factory=list)
    warning: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class RulePoint(Protocol):
    """The operating point of the same-person rule (search/scoring.py SamePersonPoint)."""

    @property
    def cosine(self) -> float: ...

    def describe(self) -> str: ...


class SamePersonRule(Protocol):
    """The library's one rule for "this face is that person" (search/scoring.py ``Scoring``)."""

    def same_person(self, references: np.ndarray, faces: np.ndarray) -> np.ndarray:
        """A boolean mask over the rows of ``faces``: True for the person of any row of ``references``."""
        ...

    def same_person_point(self) -> RulePoint: ...


class EmbedLargestFace(Protocol):
    def __call__(self, photo: bytes | str | Path) -> tuple[np.ndarray, str]:
        """The embedding of the largest face in a photo and the photo's SHA-256 (NoFaceFound if none)."""
        ...


def with_template(embeddings: np.ndarray) -> np.ndarray:
    """The embeddings of one opt-out's photos, plus their normalised mean when there are several.

    The mean of several photos of a person (a multi-photo template) is closer to their other photos
    than any one photo: on lfw-dev it halved the person's faces left labelled ``match`` after an
    opt-out with 2 photos, for a few more strangers' faces removed (docs/accuracy.md).
    """
    if len(embeddings) < 2:
        return embeddings
    mean = mean_template(embeddings)
    if mean is None:
        return embeddings
    return np.vstack([embeddings, mean[None]])


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
        rule: SamePersonRule,
    ) -> None:
        self.catalog = catalog
        self.writer = writer
        self.model_key = model_key
        self.dim = dim
        self.embed_largest = embed
        ensure_governance_tables(self.catalog)
        self.rule = rule
        self._cache: tuple[tuple[int, int], np.ndarray, np.ndarray] | None = None
        self._suppressed: tuple[tuple[Any, ...], np.ndarray] | None = None
        writer.on_change(self._forget_suppressed)  # faces came or went (in this process)

    def _forget_suppressed(self) -> None:
        self._suppressed = None

    @property
    def threshold(self) -> float:
        """The cosine threshold of the same-person rule (the library's match operating point)."""
        return float(self.rule.same_person_point().cosine)

    @property
    def threshold_source(self) -> str:
        """The rule's operating point in words: FMR, thresholds per score kind, the calibration."""
        return self.rule.same_person_point().describe()

    # registering ----------------------------------------------------------------------------------

    def embed(self, photo: bytes | str | Path) -> tuple[np.ndarray, str]:
        """The embedding of the largest face in a photo, and the photo's SHA-256."""
        try:
            return self.embed_largest(photo)
        except NoFaceFound as exc:
            raise NoFaceFound("no face found in the opt-out photo: send a clear photo of the face") from exc

    def embed_photos(self, photos: Photo | Sequence[Photo]) -> list[tuple[np.ndarray, str]]:
        """The largest face's embedding and the SHA-256 of each photo (the same photo twice counts once)."""
        return embed_each(self.embed, photos, what="opt-out", max_photos=MAX_PHOTOS)

    def preview(self, photos: Photo | Sequence[Photo], *, actor: str | User | None = None) -> OptOutPreview:
        """What :meth:`add` with these photos would remove now; changes nothing but the audit log.

        Audited (``optout_preview``, ids and counts only): it compares the person's photos with the library.
        """
        by = actor_name(actor)
        embedded = self.embed_photos(photos)
        matrix = with_template(np.stack([e for e, _ in embedded]))
        matches = self._matching_faces(matrix)
        preview = OptOutPreview(
            photos_sha256=[d for _, d in embedded],
            threshold=round(self.threshold, 6),
            threshold_source=self.threshold_source,
        )
        preview.images = self._affected(matches)
        preview.face_ids = sorted(f for image in preview.images for f in image.face_ids)
        preview.image_ids = [image.image_id for image in preview.images if image.deleted]
        preview.kept_image_ids = [image.image_id for image in preview.images if not image.deleted]
        if not matches:
            preview.warning = NOTHING_TO_REMOVE
        details = {
            "photos_sha256": preview.photos_sha256,
            "face_ids": preview.face_ids,
            "image_ids": preview.image_ids,
            "kept_image_ids": preview.kept_image_ids,
            "faces_matched": len(preview.face_ids),
        }
        record(self.catalog, GovernanceEvent("optout_preview", details), by)
        return preview

    def add(self, photos: Photo | Sequence[Photo], note: str = "", *, actor: str | User | None = None) -> OptOutReceipt:
        """Register an opt-out from one or several photos of a person and remove every indexed face of
        that person; audited.

        The photos are read and embedded in memory and then dropped: only one embedding and the SHA-256
        of each are kept (an opt-out row per photo). Nothing matched now is not an error (the person
        is still kept out of later ingests): the receipt's ``warning`` says so.
        """
        if not isinstance(note, str) or len(note) > MAX_NOTE:
            raise FaceSearchError(f"the note must be text of at most {MAX_NOTE} characters", code="bad_request")
        by = actor_name(actor)
        embedded = self.embed_photos(photos)
        matrix = with_template(np.stack([e for e, _ in embedded]))
        with self.writer.deleting() as deletion:
            s = deletion.session
            matches = self._matching_faces(matrix)
            at = utcnow()  # one request: its rows share the moment (and so their mean template, _matrix)
            rows = [
                OptOutRow(
                    created_at=at,
                    created_by=by,
                    note=note,
                    photo_sha256=digest,
                    model_key=self.model_key,
                    embedding=embedding.tobytes(),
                )
                for embedding, digest in embedded
            ]
            number_rows(s, "optouts", rows)  # never a withdrawn opt-out's id (store/ids.py)
            s.add_all(rows)
            s.flush()
            removed = deletion.faces(matches)
            receipt = self._receipt(by, removed, optout_id=rows[0].id, photo_sha256=rows[0].photo_sha256)
            receipt.optout_ids = [r.id for r in rows]
            receipt.photos_sha256 = [r.photo_sha256 for r in rows]
            entry = record(self.catalog, GovernanceEvent("optout_add", self._audit_details(receipt)), by, session=s)
            for row in rows:
                row.audit_seq = entry.seq  # the catalog's evidence that this entry exists (audit verify)
        receipt.audit_sequence = entry.seq
        if not receipt.face_ids:
            receipt.warning = NOTHING_TO_REMOVE
            log.warning("opt-out %s: %s", receipt.optout_ids, NOTHING_TO_REMOVE)
        self._cache = None
        log.info(
            "opt-out %s: removed %d faces (%d images)",
            receipt.optout_ids,
            len(removed.face_ids),
            len(removed.image_ids),
        )
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
        """Ids of catalog faces that the same-person rule gives to any target (exact scan)."""
        found: list[int] = []
        for ids, vectors in self.catalog.iter_embeddings():
            hit = self.rule.same_person(targets, vectors)
            found.extend(int(i) for i in ids[hit])
        return found

    def _affected(self, face_ids: list[int]) -> list[PreviewImage]:
        """Per image that would lose faces if these faces went: its id, source, those faces, and whether it would go."""
        per_image: dict[int, list[int]] = {}
        ordered = sorted(set(face_ids))
        images: list[PreviewImage] = []
        with self.catalog.session() as s:
            for start in range(0, len(ordered), 900):
                chunk = ordered[start : start + 900]
                for face_id, image_id in s.execute(select(FaceRow.id, FaceRow.image_id).where(FaceRow.id.in_(chunk))):
                    per_image.setdefault(image_id, []).append(face_id)
            for image_id in sorted(per_image):
                total = int(s.scalar(select(func.count(FaceRow.id)).where(FaceRow.image_id == image_id)) or 0)
                source = str(s.scalar(select(ImageRow.source).where(ImageRow.id == image_id)))
                faces = sorted(per_image[image_id])
                images.append(PreviewImage(image_id, source, faces, deleted=len(faces) >= total))
        return images

    def count(self) -> int:
        """How many opt-outs apply to this library's recipe (0: nothing to filter)."""
        return len(self._matrix()[0])

    def _matrix(self) -> tuple[np.ndarray, np.ndarray]:
        """(opt-out ids, embeddings) of this library's recipe, reloaded when another process changed them."""
        with self.catalog.session() as s:
            signature = tuple(int(x or 0) for x in s.execute(select(func.count(), func.max(OptOutRow.id))).one())
            if self._cache is None or self._cache[0] != signature:
                rows = s.execute(
                    select(
                        OptOutRow.id,
                        OptOutRow.embedding,
                        OptOutRow.model_key,
                        OptOutRow.created_at,
                        OptOutRow.created_by,
                        OptOutRow.note,
                    ).order_by(OptOutRow.id)
                ).all()
                key = self.model_key
                other = [r.id for r in rows if r.model_key != key]
                if other:
                    log.warning("opt-outs %s were embedded with another model and cannot be matched", other)
                requests: dict[tuple[Any, ...], list[Any]] = {}
                for r in rows:
                    if r.model_key == key:
                        requests.setdefault((r.created_at, r.created_by, r.note), []).append(r)
                id_list: list[int] = []
                vectors: list[np.ndarray] = []
                for group in requests.values():
                    embedded = np.stack([np.frombuffer(r.embedding, dtype=np.float32) for r in group])
                    with_mean = with_template(embedded)
                    id_list += [r.id for r in group] + [group[0].id] * (len(with_mean) - len(group))
                    vectors.append(with_mean)
                ids = np.asarray(id_list, dtype=np.int64)
                matrix = np.concatenate(vectors) if vectors else np.zeros((0, self.dim), np.float32)
                self._cache = (signature, ids, matrix)  # type: ignore[assignment]
        return self._cache[1], self._cache[2]  # type: ignore[index]

    def is_opted_out(self, embeddings: np.ndarray) -> np.ndarray:
        """A boolean mask: which embeddings (rows) belong to an opted-out person. For ingest and search."""
        vectors = np.atleast_2d(np.asarray(embeddings, dtype=np.float32))
        _, matrix = self._matrix()
        if len(matrix) == 0 or len(vectors) == 0:
            return np.zeros(len(vectors), bool)
        return self.rule.same_person(matrix, vectors)

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
        signature = (self._cache[0] if self._cache else None, faces, self.threshold_source)
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
            "optout_ids": receipt.optout_ids,
            "photos_sha256": receipt.photos_sha256,
            "threshold": receipt.threshold,
            "face_ids": receipt.face_ids,
            "image_ids": receipt.image_ids,
            "kept_image_ids": receipt.kept_image_ids,
            "faces_removed": len(receipt.face_ids),
            "images_removed": len(receipt.image_ids),
        }
