"""Reading the persons (issue 14): the list, one person's faces, the CSV export rows. Reads only.

Only faces grouping may see are counted or shown (people/faces.py: never an opted-out person's, never
a face of a collection switched off), so a person whose faces are all excluded is nobody here.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from facesearch.media.urls import shown_url
from facesearch.people.faces import grouped_collections, suppressed
from facesearch.search.exclusions import OptOuts
from facesearch.store.people_schema import PersonFaceRow, PersonRow
from facesearch.store.schema import FaceRow, ImageRow


@dataclass(frozen=True)
class PersonFace:
    face_id: int
    image_id: int
    image_path: str | None  # the local file, or the URL it was fetched from (credentials stripped)
    how: str  # auto (clustering) or manual (a merge or split)
    quality: float

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Person:
    id: int
    name: str | None
    hidden: bool
    face_count: int
    photo_count: int
    representative_face_id: int  # the person's face of the highest quality
    created_at: datetime
    updated_at: datetime
    faces: list[PersonFace] | None = None  # show only

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        if self.faces is None:
            out.pop("faces")
        return out


def _faces(session: Session, optouts: OptOuts, person_id: int | None = None) -> dict[int, list[PersonFace]]:
    allowed = grouped_collections(session)
    hidden = suppressed(optouts)
    query = (
        select(
            PersonFaceRow.person_id,
            FaceRow.id,
            FaceRow.image_id,
            FaceRow.quality,
            PersonFaceRow.how,
            ImageRow.source,
            ImageRow.collection_id,
        )  # fmt: skip
        .join(FaceRow, FaceRow.id == PersonFaceRow.face_id)
        .join(ImageRow, ImageRow.id == FaceRow.image_id)
        .order_by(PersonFaceRow.person_id, FaceRow.id)
    )
    if person_id is not None:
        query = query.where(PersonFaceRow.person_id == int(person_id))
    out: dict[int, list[PersonFace]] = {}
    for person, face, image, quality, how, source, collection in session.execute(query):
        if collection in allowed and int(face) not in hidden:
            out.setdefault(int(person), []).append(PersonFace(int(face), int(image), shown_url(source), how, quality))
    return out


def _person(row: PersonRow, faces: list[PersonFace], with_faces: bool) -> Person:
    best = max(faces, key=lambda f: (f.quality, -f.face_id))
    photos = len({f.image_id for f in faces})
    shown = faces if with_faces else None
    return Person(row.id, row.name, row.hidden, len(faces), photos, best.face_id, row.created_at, row.updated_at, shown)


def list_persons(session: Session, optouts: OptOuts, *, include_hidden: bool = False) -> list[Person]:
    """Every person with a face that may be shown, most faces first (hidden ones only when asked)."""
    faces = _faces(session, optouts)
    rows = session.scalars(select(PersonRow).where(PersonRow.id.in_(sorted(faces)))).all() if faces else []
    found = [_person(r, faces[r.id], False) for r in rows if include_hidden or not r.hidden]
    return sorted(found, key=lambda p: (-p.face_count, p.id))


def get_person(session: Session, optouts: OptOuts, person_id: int) -> Person | None:
    """One person with its faces (None: no such person, or none of its faces may be shown)."""
    row = session.get(PersonRow, int(person_id))
    faces = _faces(session, optouts, person_id).get(int(person_id)) if row is not None else None
    return _person(row, faces, True) if row is not None and faces else None


def export_rows(session: Session, optouts: OptOuts, *, include_hidden: bool = False) -> list[tuple[int, str, int]]:
    """(face_id, image_path, person_id) of every face shown in a person, by person then face."""
    visible = {p.id for p in list_persons(session, optouts, include_hidden=include_hidden)}
    faces = _faces(session, optouts)
    return [(f.face_id, f.image_path or "", p) for p in sorted(visible) for f in faces[p]]
