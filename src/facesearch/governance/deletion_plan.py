"""What a removal or an erasure will delete, worked out before anything is deleted (issue 12 §7).

``facesearch remove --image 117`` once deleted a photo of someone else (117 was a face id read off
the search table) without showing anything. Removal and erasure now resolve their criteria here, in
one place, to a :class:`DeletionPlan`: every photo that goes or loses faces (image id, path, faces,
collection), the face ids, a collection dropped and rejections erased. The same resolution serves
both the preview an operator confirms (``preview_removal``/``preview_erasure``) and the deletion
itself, which re-resolves inside its write transaction and, given the plan that was confirmed
(``expected``), refuses if the library changed meanwhile: what was shown is exactly what goes.

A plan that deletes nothing is :class:`NothingMatched`: no deletion, no receipt, no audit entry.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session

from facesearch.errors import FaceSearchError
from facesearch.governance.writers import WriterSource, writer_of
from facesearch.store.schema import CollectionRow, FaceRow, ImageRow, RejectionRow

_CHUNK = 900  # under SQLite's bound-parameter limit


class NothingMatched(FaceSearchError):
    """A removal or erasure whose criteria match nothing in the library (HTTP 404; the CLI exits 1)."""

    code = "nothing_matched"


class PlanChanged(FaceSearchError):
    """The library changed between the preview an operator confirmed and the deletion (HTTP 409)."""

    code = "plan_changed"


@dataclass(frozen=True)
class PlannedImage:
    """One photo a deletion touches: deleted whole, or losing ``faces`` of its ``face_total`` faces."""

    image_id: int
    source: str
    collection: str
    faces: int
    face_total: int
    whole: bool


@dataclass(frozen=True)
class DeletionPlan:
    """Everything one removal or erasure will delete (see the module docstring)."""

    images: list[PlannedImage] = field(default_factory=list)
    face_ids: list[int] = field(default_factory=list)
    collection: str | None = None  # dropped as well (with its rejections)
    rejections: int = 0  # rejection rows erased (they name sources)
    missing_image_ids: list[int] = field(default_factory=list)  # ids asked for that match nothing
    missing_face_ids: list[int] = field(default_factory=list)
    asked: str = ""  # the criteria in words

    @property
    def empty(self) -> bool:
        return not self.images and not self.face_ids and self.collection is None and not self.rejections

    def refuse_if_empty(self) -> None:
        """Raise :class:`NothingMatched` (naming the criteria) when this plan deletes nothing."""
        if self.empty:
            raise NothingMatched(f"nothing matched {self.asked or 'the criteria'}: nothing was deleted")

    @property
    def image_ids(self) -> list[int]:
        """The photos deleted whole."""
        return [i.image_id for i in self.images if i.whole]

    def same_as(self, other: DeletionPlan) -> bool:
        """Whether two plans delete the same rows (what a confirmation agreed to)."""
        return (self.image_ids, self.face_ids, self.collection, self.rejections) == (
            other.image_ids,
            other.face_ids,
            other.collection,
            other.rejections,
        )

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["counts"] = {"images": len(self.image_ids), "faces": len(self.face_ids), "rejections": self.rejections}
        return data


@dataclass
class Targets:
    """Criteria resolved to rows: whole images, single faces, a collection, rejections by source."""

    image_ids: set[int] = field(default_factory=set)
    face_ids: set[int] = field(default_factory=set)
    collection_id: int | None = None
    collection: str | None = None
    rejection_sources: list[str] = field(default_factory=list)
    missing_image_ids: list[int] = field(default_factory=list)
    missing_face_ids: list[int] = field(default_factory=list)
    asked: str = ""  # the criteria in words, for a NothingMatched message


def source_candidates(source: str) -> list[str]:
    """How a source may be stored: a URL as given; a path resolved to an absolute one, then as given."""
    return [source] if "://" in source else list(dict.fromkeys([str(Path(source).resolve()), source]))


def _collection_id(session: Session, name: str) -> int:
    cid = session.scalar(select(CollectionRow.id).where(CollectionRow.name == name))
    if cid is None:
        raise FaceSearchError(f"no collection named {name!r}", code="not_found")
    return int(cid)


def _chunks(ids: Iterable[int]) -> Iterator[list[int]]:
    values = sorted({int(i) for i in ids})
    for start in range(0, len(values), _CHUNK):
        yield values[start : start + _CHUNK]


def _existing(session: Session, column: Any, ids: Iterable[int]) -> set[int]:
    return {int(i) for chunk in _chunks(ids) for i in session.scalars(select(column).where(column.in_(chunk)))}


def removal_targets(session: Session, *, image_id: int | None, source: str | None, collection: str | None) -> Targets:
    """What ``remove`` deletes: one image, the images of one source (the first spelling that matches), a collection."""
    if sum(x is not None for x in (image_id, source, collection)) != 1:
        raise FaceSearchError("remove needs exactly one of image_id, source or collection", code="bad_request")
    targets = Targets()
    if collection is not None:
        targets.collection_id, targets.collection = _collection_id(session, collection), collection
        targets.image_ids = set(
            session.scalars(select(ImageRow.id).where(ImageRow.collection_id == targets.collection_id))
        )
        targets.asked = f"collection {collection!r}"
    elif image_id is not None:
        targets.image_ids = _existing(session, ImageRow.id, [image_id])
        targets.missing_image_ids = [] if targets.image_ids else [int(image_id)]
        targets.asked = f"image id {image_id} (an image id, as in the search table's 'image' column)"
    else:
        for candidate in source_candidates(str(source)):
            found = set(session.scalars(select(ImageRow.id).where(ImageRow.source == candidate)))
            if found:
                targets.image_ids = found
                break
        targets.asked = f"source {source!r}"
    return targets


def erasure_targets(
    session: Session,
    *,
    face_ids: Iterable[int] = (),
    image_ids: Iterable[int] = (),
    source: str | None = None,
    collection: str | None = None,
) -> Targets:
    """What ``erase`` deletes: faces, images, every spelling of a source (with its rejections), a collection."""
    targets = Targets()
    asked_images, asked_faces = {int(i) for i in image_ids}, {int(i) for i in face_ids}
    targets.image_ids = _existing(session, ImageRow.id, asked_images)
    targets.face_ids = _existing(session, FaceRow.id, asked_faces)
    targets.missing_image_ids = sorted(asked_images - targets.image_ids)
    targets.missing_face_ids = sorted(asked_faces - targets.face_ids)
    words = []
    if asked_faces:
        words.append(f"face ids {sorted(asked_faces)}")
    if asked_images:
        words.append(f"image ids {sorted(asked_images)}")
    if source:
        targets.rejection_sources = source_candidates(source)
        targets.image_ids |= set(
            session.scalars(select(ImageRow.id).where(ImageRow.source.in_(targets.rejection_sources)))
        )
        words.append(f"source {source!r}")
    if collection:
        targets.collection_id, targets.collection = _collection_id(session, collection), collection
        targets.image_ids |= set(
            session.scalars(select(ImageRow.id).where(ImageRow.collection_id == targets.collection_id))
        )
        words.append(f"collection {collection!r}")
    targets.asked = ", ".join(words)
    return targets


def plan_of(session: Session, targets: Targets) -> DeletionPlan:
    """The rows ``targets`` name, read (nothing is changed), as a plan to show or to check against."""
    single: dict[int, int] = {}  # face id -> its image, for the single faces asked for
    for chunk in _chunks(targets.face_ids):
        query = select(FaceRow.id, FaceRow.image_id).where(FaceRow.id.in_(chunk))
        single.update((int(f), int(i)) for f, i in session.execute(query))
    touched = set(targets.image_ids) | set(single.values())
    face_ids = {f for f, i in single.items() if i not in targets.image_ids}
    images = []
    for chunk in _chunks(touched):
        faces_of: dict[int, list[int]] = {}
        for face_id, image_id in session.execute(
            select(FaceRow.id, FaceRow.image_id).where(FaceRow.image_id.in_(chunk))
        ):
            faces_of.setdefault(int(image_id), []).append(int(face_id))
        rows = session.execute(
            select(ImageRow.id, ImageRow.source, CollectionRow.name)
            .join(CollectionRow, CollectionRow.id == ImageRow.collection_id)
            .where(ImageRow.id.in_(chunk))
            .order_by(ImageRow.id)
        )
        for image_id, source, collection in rows:
            all_faces = faces_of.get(int(image_id), [])
            if image_id in targets.image_ids:
                going = all_faces
                face_ids.update(all_faces)
            else:
                going = [f for f in all_faces if f in single]
            whole = image_id in targets.image_ids or len(going) == len(all_faces)
            images.append(PlannedImage(int(image_id), source, collection, len(going), len(all_faces), whole))
    conditions = []
    if targets.rejection_sources:
        conditions.append(RejectionRow.source.in_(targets.rejection_sources))
    if targets.collection_id is not None:
        conditions.append(RejectionRow.collection_id == targets.collection_id)
    rejections = 0
    if conditions:
        rejections = int(session.scalar(select(func.count(RejectionRow.id)).where(or_(*conditions))) or 0)
    return DeletionPlan(
        images=images,
        face_ids=sorted(face_ids),
        collection=targets.collection,
        rejections=rejections,
        missing_image_ids=targets.missing_image_ids,
        missing_face_ids=targets.missing_face_ids,
        asked=targets.asked,
    )


def checked_plan(session: Session, targets: Targets, expected: DeletionPlan | None) -> DeletionPlan:
    """The plan a deletion is about to carry out: refused when it deletes nothing or differs from ``expected``."""
    plan = plan_of(session, targets)
    plan.refuse_if_empty()
    if expected is not None and not plan.same_as(expected):
        raise PlanChanged(
            "the library changed since the preview (other photos or faces now match): nothing was deleted; "
            "look again and confirm what is shown then"
        )
    return plan


def preview_removal(
    library: WriterSource, *, image_id: int | None = None, source: str | None = None, collection: str | None = None
) -> DeletionPlan:
    """What ``remove_photos`` with the same criteria would delete now (read only; may be empty)."""
    with writer_of(library).catalog.session() as s:
        return plan_of(s, removal_targets(s, image_id=image_id, source=source, collection=collection))


def preview_erasure(
    library: WriterSource,
    *,
    face_ids: Iterable[int] | None = None,
    image_ids: Iterable[int] | None = None,
    source: str | None = None,
    collection: str | None = None,
) -> DeletionPlan:
    """What ``erase`` with the same criteria would delete now (read only; may be empty)."""
    with writer_of(library).catalog.session() as s:
        targets = erasure_targets(
            s, face_ids=face_ids or (), image_ids=image_ids or (), source=source, collection=collection
        )
        return plan_of(s, targets)
