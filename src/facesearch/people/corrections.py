"""Corrections that stick (issue 14): name, merge, split, hide, "not this person". Inside the caller's
transaction, which also appends the audit entry.

How each one survives a re-cluster (people/grouping.py ``constraints``): a merge makes every face of
both persons ``manual`` (kept together); a split makes the moved faces ``manual`` in a new person and
marks the two persons ``apart``; "not this person" marks the face against the person (``not_person``:
never joined to it again, by a re-cluster or an ingest) and gives it a person of its own. A merge that
would undo a split or a mark is refused (``conflict``): the user's later choice must not be silently
dropped by the earlier one at the next re-cluster.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable

from sqlalchemy import or_, select, update
from sqlalchemy.orm import Session

from facesearch.errors import FaceSearchError
from facesearch.store.ids import number_rows
from facesearch.store.people_schema import (
    APART,
    AUTO,
    MANUAL,
    NOT_PERSON,
    PersonFaceRow,
    PersonMarkRow,
    PersonRow,
    drop_empty_persons,
)
from facesearch.store.schema import utcnow

MAX_NAME = 200


def person_row(session: Session, person_id: int) -> PersonRow:
    row = session.get(PersonRow, int(person_id))
    if (
        row is None
        or session.scalar(select(PersonFaceRow.face_id).where(PersonFaceRow.person_id == row.id).limit(1)) is None
    ):
        raise FaceSearchError(f"no person {person_id}", code="no_person")
    return row


def clean_name(name: str | None) -> str | None:
    """A person's name, NFKC, trimmed; None or "" clears it. Control and format characters refused."""
    if name is None:
        return None
    if not isinstance(name, str):
        raise FaceSearchError("a name must be text", code="bad_request")
    text = unicodedata.normalize("NFKC", name).strip()
    if len(text) > MAX_NAME:
        raise FaceSearchError(f"a name has at most {MAX_NAME} characters", code="bad_request")
    if any(unicodedata.category(c) in {"Cc", "Cf"} for c in text):
        raise FaceSearchError("a name must not hold control or invisible characters", code="bad_request")
    return text or None


def faces_of(session: Session, person_id: int) -> list[int]:
    return [int(f) for f in session.scalars(select(PersonFaceRow.face_id).where(PersonFaceRow.person_id == person_id))]


def _touch(row: PersonRow) -> None:
    row.updated_at = utcnow()


def rename(session: Session, person_id: int, name: str | None) -> PersonRow:
    row = person_row(session, person_id)
    row.name = clean_name(name)
    _touch(row)
    return row


def hide(session: Session, person_id: int, hidden: bool) -> PersonRow:
    row = person_row(session, person_id)
    row.hidden = bool(hidden)
    _touch(row)
    return row


def check_merge(session: Session, into: int, other: int) -> tuple[PersonRow, PersonRow]:
    """The two persons of a merge, refused when one is missing, they are one, or a correction keeps them apart."""
    if int(into) == int(other):
        raise FaceSearchError(f"person {into} cannot be merged with itself", code="bad_request")
    a, b = person_row(session, into), person_row(session, other)
    apart = session.scalar(
        select(PersonMarkRow.id).where(PersonMarkRow.kind == APART).where(
            or_((PersonMarkRow.person_id == a.id) & (PersonMarkRow.other_id == b.id),
                (PersonMarkRow.person_id == b.id) & (PersonMarkRow.other_id == a.id))).limit(1)
    )  # fmt: skip
    if apart is not None:
        raise FaceSearchError(f"persons {a.id} and {b.id} were split apart by a correction", code="conflict")
    for person, faces in ((a.id, faces_of(session, b.id)), (b.id, faces_of(session, a.id))):
        marked = session.scalar(
            select(PersonMarkRow.face_id)
            .where(
                PersonMarkRow.kind == NOT_PERSON, PersonMarkRow.person_id == person, PersonMarkRow.face_id.in_(faces)
            )
            .limit(1)  # fmt: skip
        )
        if marked is not None:
            raise FaceSearchError(f"face {marked} was marked as not person {person}", code="conflict")
    return a, b


def merge(session: Session, into: int, other: int) -> tuple[PersonRow, int]:
    """Person ``other`` becomes part of ``into`` (its faces, its marks; its name when ``into`` has none)."""
    a, b = check_merge(session, into, other)
    moved = len(faces_of(session, b.id))
    session.execute(update(PersonFaceRow).where(PersonFaceRow.person_id.in_([a.id, b.id]))
                    .values(person_id=a.id, how=MANUAL))  # fmt: skip
    session.execute(update(PersonMarkRow).where(PersonMarkRow.person_id == b.id).values(person_id=a.id))
    session.execute(update(PersonMarkRow).where(PersonMarkRow.other_id == b.id).values(other_id=a.id))
    a.name = a.name or b.name
    _touch(a)
    session.flush()
    drop_empty_persons(session)
    return a, moved


def check_split(session: Session, person_id: int, face_ids: Iterable[int]) -> tuple[PersonRow, list[int], int]:
    row = person_row(session, person_id)
    held = set(faces_of(session, row.id))
    faces = sorted({int(f) for f in face_ids})
    if not faces:
        raise FaceSearchError("name the faces to move out", code="bad_request")
    strangers = [f for f in faces if f not in held]
    if strangers:
        raise FaceSearchError(f"faces {strangers} are not in person {row.id}", code="bad_request")
    if len(faces) == len(held):
        raise FaceSearchError(f"that is every face of person {row.id}: nothing would be split", code="bad_request")
    return row, faces, len(held) - len(faces)


def split(session: Session, person_id: int, face_ids: Iterable[int], seq: int, actor: str) -> PersonRow:
    """Move ``face_ids`` out of a person into a new one; the two are kept apart from now on."""
    row, faces, _ = check_split(session, person_id, face_ids)
    stamp = utcnow()
    new = PersonRow(audit_seq=seq, created_at=stamp, updated_at=stamp, hidden=False)
    number_rows(session, "persons", [new])  # never a deleted person's id
    session.add(new)
    session.flush()
    session.execute(update(PersonFaceRow).where(PersonFaceRow.face_id.in_(faces)).values(person_id=new.id, how=MANUAL))
    session.add(PersonMarkRow(kind=APART, person_id=row.id, other_id=new.id, created_by=actor, audit_seq=seq))
    _touch(row)
    session.flush()
    return new


def not_person(session: Session, face_id: int, seq: int, actor: str) -> tuple[int, PersonRow]:
    """Face ``face_id`` is not the person it is in: marked against that person, given a person of its own."""
    link = session.get(PersonFaceRow, int(face_id))
    if link is None:
        raise FaceSearchError(f"face {face_id} is in no person", code="no_person")
    old = person_row(session, link.person_id)
    stamp = utcnow()
    new = PersonRow(audit_seq=seq, created_at=stamp, updated_at=stamp, hidden=False)
    number_rows(session, "persons", [new])  # never a deleted person's id
    session.add(new)
    session.flush()
    link.person_id, link.how = new.id, AUTO
    session.add(PersonMarkRow(kind=NOT_PERSON, person_id=old.id, face_id=int(face_id), created_by=actor, audit_seq=seq))
    _touch(old)
    session.flush()
    drop_empty_persons(session)
    return old.id, new
