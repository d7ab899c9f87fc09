"""Which faces people grouping may see, and the persons they are in now (issue 14): reads only.

One place for the two exclusions every part of people grouping applies, so that clustering, the
incremental assignment and every read agree: faces of opted-out people (search's own rule:
search/exclusions.py ``suppressed_ids``) and faces of collections whose ``people`` setting is off are
never clustered, assigned or shown.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from sqlalchemy import select
from sqlalchemy.orm import Session

from facesearch.search.exclusions import OptOuts, suppressed_ids
from facesearch.store.people_schema import MANUAL, PersonFaceRow
from facesearch.store.schema import CollectionRow, FaceRow, ImageRow

PEOPLE_SETTING = "people"  # a collection's settings key: False switches grouping off for its faces


def grouped_collections(session: Session) -> set[int]:
    """The collections whose faces are grouped into persons (all but those switched off)."""
    rows = session.execute(select(CollectionRow.id, CollectionRow.settings)).all()
    return {cid for cid, settings in rows if (settings or {}).get(PEOPLE_SETTING, True) is not False}


def suppressed(optouts: OptOuts) -> set[int]:
    found = suppressed_ids(optouts)
    return set() if found is None else {int(i) for i in found.tolist()}


@dataclass
class Assignment:
    """The persons as they are: face -> person, how each face got there, the faces of each person."""

    person_of: dict[int, int] = field(default_factory=dict)
    how: dict[int, str] = field(default_factory=dict)

    def faces_of(self) -> dict[int, list[int]]:
        out: dict[int, list[int]] = {}
        for face, person in self.person_of.items():
            out.setdefault(person, []).append(face)
        return out

    def manual_of(self) -> dict[int, list[int]]:
        out: dict[int, list[int]] = {}
        for face, person in self.person_of.items():
            if self.how[face] == MANUAL:
                out.setdefault(person, []).append(face)
        return out


def current(session: Session) -> Assignment:
    found = Assignment()
    for face_id, person_id, how in session.execute(
        select(PersonFaceRow.face_id, PersonFaceRow.person_id, PersonFaceRow.how)
    ):
        found.person_of[int(face_id)] = int(person_id)
        found.how[int(face_id)] = how
    return found


def eligible(session: Session, optouts: OptOuts, face_ids: list[int] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(face ids, embeddings) of the faces grouping may see (``face_ids``: only among those), by id.

    Given ids are read by primary key in chunks (no ORDER BY: SQLite would then walk every face row to
    keep the order, thumbnails and all, which made each ingest batch cost a scan of the library)."""
    allowed = grouped_collections(session)
    hidden = suppressed(optouts)
    base = select(FaceRow.id, FaceRow.embedding, ImageRow.collection_id).join(ImageRow, ImageRow.id == FaceRow.image_id)
    if face_ids is None:
        rows = list(session.execute(base))
    else:
        wanted = sorted({int(i) for i in face_ids})
        rows = []
        for start in range(0, len(wanted), 900):  # under SQLite's bound-parameter limit
            rows += session.execute(base.where(FaceRow.id.in_(wanted[start : start + 900]))).all()
    kept = sorted((int(f), blob) for f, blob, collection in rows if collection in allowed and int(f) not in hidden)
    if not kept:
        return np.zeros(0, np.int64), np.zeros((0, 0), np.float32)
    ids = np.fromiter((f for f, _ in kept), dtype=np.int64, count=len(kept))
    return ids, np.frombuffer(b"".join(blob for _, blob in kept), dtype=np.float32).reshape(len(kept), -1)
