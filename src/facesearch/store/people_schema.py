"""The people tables (issue 14): persons, which faces each holds, the manual marks, the full runs.

Declared in the store layer (like the governance tables) so that a deletion of faces, which the store
runs, takes them out of persons in the same transaction (:func:`forget_faces`). Migration 0007_people.

* ``persons``: a person found by clustering or made by a correction; ``name`` and ``hidden`` are the
  user's; ``audit_seq`` the entry that created it.
* ``person_faces``: one row per grouped face (a face is in at most one person); ``how`` is ``auto``
  (clustering placed it) or ``manual`` (a merge or split did: kept together by every re-cluster).
* ``person_marks``: ``not_person`` (face ``face_id`` is not person ``person_id``) and ``apart`` (persons
  ``person_id`` and ``other_id`` are two people: a split); a re-cluster never undoes either.
* ``people_runs``: each full clustering (its threshold, max_fmr, counts, audit entry); the first one
  switches incremental assignment on.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from sqlalchemy import Float, Index, String, Table, delete, or_, select
from sqlalchemy.orm import Mapped, Session, mapped_column

from facesearch.store.schema import ID64, Base, utcnow

AUTO, MANUAL = "auto", "manual"
NOT_PERSON, APART = "not_person", "apart"


class PersonRow(Base):
    __tablename__ = "persons"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str | None] = mapped_column(String(200), default=None)
    hidden: Mapped[bool] = mapped_column(default=False)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)
    audit_seq: Mapped[int] = mapped_column(ID64)


class PersonFaceRow(Base):
    __tablename__ = "person_faces"
    __table_args__ = (Index("ix_person_faces_person", "person_id"),)
    face_id: Mapped[int] = mapped_column(ID64, primary_key=True, autoincrement=False)
    person_id: Mapped[int] = mapped_column()
    how: Mapped[str] = mapped_column(String(10), default=AUTO)


class PersonMarkRow(Base):
    __tablename__ = "person_marks"
    __table_args__ = (Index("ix_person_marks_person", "person_id"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(String(20))
    person_id: Mapped[int] = mapped_column()
    face_id: Mapped[int | None] = mapped_column(ID64, default=None)
    other_id: Mapped[int | None] = mapped_column(default=None)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    created_by: Mapped[str] = mapped_column(String(200))
    audit_seq: Mapped[int] = mapped_column(ID64)


class PeopleRunRow(Base):
    __tablename__ = "people_runs"
    id: Mapped[int] = mapped_column(primary_key=True)
    at: Mapped[datetime] = mapped_column(default=utcnow)
    actor: Mapped[str] = mapped_column(String(200))
    threshold: Mapped[float] = mapped_column(Float)
    max_fmr: Mapped[float | None] = mapped_column(Float, default=None)
    faces: Mapped[int] = mapped_column()
    persons: Mapped[int] = mapped_column()
    audit_seq: Mapped[int] = mapped_column(ID64)


def people_tables() -> list[Table]:
    return [m.__table__ for m in (PersonRow, PersonFaceRow, PersonMarkRow, PeopleRunRow)]  # type: ignore[misc]


def drop_empty_persons(session: Session) -> None:
    """Persons left without a face disappear, with their marks (an emptied person is nobody)."""
    held = select(PersonFaceRow.person_id)
    session.execute(delete(PersonMarkRow).where(or_(PersonMarkRow.person_id.not_in(held),
                                                    PersonMarkRow.other_id.not_in(held))))  # fmt: skip
    session.execute(delete(PersonRow).where(PersonRow.id.not_in(held)))


def forget_faces(session: Session, face_ids: Iterable[int]) -> None:
    """Deleted faces leave their persons (an opt-out, erasure, retention or removal; same transaction)."""
    ids = sorted({int(i) for i in face_ids})
    for start in range(0, len(ids), 900):
        chunk = ids[start : start + 900]
        session.execute(delete(PersonFaceRow).where(PersonFaceRow.face_id.in_(chunk)))
        session.execute(delete(PersonMarkRow).where(PersonMarkRow.face_id.in_(chunk)))
    if ids:
        drop_empty_persons(session)
