"""Grouping the library's faces into persons (issue 14): a full clustering and the incremental one.

Both decide "same person" with people/clustering.py at one cosine threshold, derived from the
library's calibration (search/scoring.py, the same tables that label search results) at a false match
rate per comparison, 1e-4 by default (:data:`DEFAULT_MAX_FMR`). Why lower than search's 1e-3: a search
shows candidates for a person to review, but clustering compares every face with its neighbours and
links what passes without anyone looking, and single links chain; merging two people (relatives,
children, twins: the most reported failure of other tools) is the worse error, so a merge needs
stronger evidence. At 1e-4, plain linking reached pairwise precision 0.998 on lfw-dev (the issue's
figures). The threshold a full run used is kept (``people_runs``) and every later ingest assigns at it,
so incremental persons and a full re-cluster agree: a new face joins the person of its nearest grouped face
(``place``: the full clustering's join rule, the batch's new faces grouped among themselves first, a group
joining a person when the group-to-person evidence passes), and new evidence that two persons nobody has
touched are one merges them, as a full run's links would.

A full run keeps what users decided: faces a merge or split placed (``manual``) stay together
(must-link), split persons stay apart and a face marked "not this person" never joins that person
again (cannot-link); a new group keeps the id, name and hidden flag of the person most of whose faces
it holds (largest overlap first), so names survive.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np
from sqlalchemy import delete, insert, or_, select, update
from sqlalchemy.orm import Session

from facesearch.people.clustering import MAX_FMR, NEW, cluster, place
from facesearch.people.faces import Assignment, current, eligible
from facesearch.search.exclusions import OptOuts
from facesearch.store.ids import number_rows
from facesearch.store.people_schema import (
    APART,
    AUTO,
    MANUAL,
    NOT_PERSON,
    PeopleRunRow,
    PersonFaceRow,
    PersonMarkRow,
    PersonRow,
    drop_empty_persons,
)
from facesearch.store.schema import utcnow

DEFAULT_MAX_FMR = MAX_FMR  # the operating point the clustering was measured at (people/clustering.py)
# Grouped faces found per new face by the vector index: the persons place() may join it to are theirs (its
# links come from its 32 nearest faces, people/clustering.NEIGHBOURS, which are among these).
CANDIDATES = 64


@dataclass(frozen=True)
class Outcome:
    """What one grouping did (counts and ids; what the audit entry holds)."""

    faces: int
    persons: int
    kept: int  # persons that kept their id
    new: int  # persons created
    gone: int  # persons no group kept

    def to_dict(self) -> dict[str, int]:
        return {"faces": self.faces, "persons": self.persons, "kept": self.kept, "new": self.new, "gone": self.gone}


def _marks(session: Session) -> tuple[list[tuple[int, int]], list[tuple[int, int]]]:
    """(not_person: (face, person)), (apart: (person, other))."""
    not_person, apart = [], []
    for kind, person, face, other in session.execute(
        select(PersonMarkRow.kind, PersonMarkRow.person_id, PersonMarkRow.face_id, PersonMarkRow.other_id)
    ):
        if kind == NOT_PERSON and face is not None:
            not_person.append((int(face), int(person)))
        elif kind == APART and other is not None:
            apart.append((int(person), int(other)))
    return not_person, apart


def constraints(
    session: Session, ids: np.ndarray, now: Assignment
) -> tuple[list[list[int]], list[tuple[list[int], list[int]]]]:
    """The must-link and cannot-link index groups that keep the users' decisions through a re-cluster."""
    row = {int(face): i for i, face in enumerate(ids.tolist())}
    faces_of = {p: [row[f] for f in fs if f in row] for p, fs in now.faces_of().items()}
    must = [[row[f] for f in fs if f in row] for fs in now.manual_of().values()]
    not_person, apart = _marks(session)
    cannot = [(faces_of.get(p, []), faces_of.get(q, [])) for p, q in apart]
    cannot += [([row[f]], faces_of.get(p, [])) for f, p in not_person if f in row]
    return [m for m in must if len(m) > 1], [(a, b) for a, b in cannot if a and b]


def new_persons(session: Session, labels: Sequence[int], audit_seq: int) -> dict[int, int]:
    """A new person for each label (one bulk INSERT: a first clustering creates one per face that links to none)."""
    stamp = utcnow()
    persons = [PersonRow(audit_seq=audit_seq, created_at=stamp, updated_at=stamp, hidden=False) for _ in labels]
    number_rows(session, "persons", persons)  # never a deleted person's id
    session.add_all(persons)
    session.flush()
    return {int(label): person.id for label, person in zip(labels, persons, strict=True)}


def _map_groups(labels: np.ndarray, ids: np.ndarray, now: Assignment) -> dict[int, int]:
    """New group -> the existing person it continues: largest overlap first, each person at most once."""
    overlap: Counter[tuple[int, int]] = Counter()
    for label, face in zip(labels.tolist(), ids.tolist(), strict=True):
        person = now.person_of.get(int(face))
        if person is not None:
            overlap[(int(label), person)] += 1
    mapped: dict[int, int] = {}
    taken: set[int] = set()
    for (label, person), _ in sorted(overlap.items(), key=lambda kv: (-kv[1], kv[0][1], kv[0][0])):
        if label not in mapped and person not in taken:
            mapped[label] = person
            taken.add(person)
    return mapped


def full_cluster(session: Session, optouts: OptOuts, threshold: float, audit_seq: int) -> Outcome:
    """Cluster every face grouping may see and rewrite the persons (in the caller's transaction)."""
    ids, vectors = eligible(session, optouts)
    now = current(session)
    must, cannot = constraints(session, ids, now)
    labels = cluster(vectors, threshold, must_link=must, cannot_link=cannot) if len(ids) else np.zeros(0, np.int64)
    mapped = _map_groups(labels, ids, now)
    person_for: dict[int, int] = dict(mapped)
    person_for.update(new_persons(session, sorted(set(labels.tolist()) - set(mapped)), audit_seq))
    before = set(now.faces_of())
    session.execute(delete(PersonFaceRow))
    rows = []
    for label, face in zip(labels.tolist(), ids.tolist(), strict=True):
        person = person_for[int(label)]
        kept_manual = now.how.get(face) == MANUAL and now.person_of.get(face) == person
        rows.append({"face_id": int(face), "person_id": person, "how": MANUAL if kept_manual else AUTO})
    if rows:
        session.execute(insert(PersonFaceRow), rows)
    drop_empty_persons(session)
    persons = len(person_for)
    return Outcome(len(ids), persons, len(mapped), persons - len(mapped), len(before - set(mapped.values())))


class Neighbours(Protocol):
    def __call__(self, queries: np.ndarray, allowed: np.ndarray) -> np.ndarray:
        """The ids of the indexed faces among ``allowed`` nearest to any of ``queries`` (the vector index)."""
        ...


def assign_new(
    session: Session,
    optouts: OptOuts,
    face_ids: Sequence[int],
    threshold: float,
    audit_seq: int,
    near: Neighbours | None = None,
) -> Outcome | None:
    """Place newly stored faces into the existing persons or new ones (None: no face grouping may see).

    ``near``: the vector index's nearest grouped faces of the new ones; all faces of their persons (and
    only those) are read from the catalog and given to :func:`~facesearch.people.clustering.place`, so an
    ingest batch costs a search and its persons, not a read of every grouped face, and ``place`` sees
    each person whole (its size and how alike its faces are enter the join test, as in a full run).
    Without it every grouped face is read. ``place`` is the one incremental rule (``facesearch eval
    cluster --batches`` measures exactly it). Persons nobody has touched may be joined by the new
    evidence (pieces of one person that arrived apart), as a full clustering would join them.
    """
    new_ids, new_vectors = eligible(session, optouts, list(face_ids))
    fresh = [i for i, face in enumerate(new_ids.tolist()) if session.get(PersonFaceRow, face) is None]
    if not fresh:
        return None
    new_ids, new_vectors = new_ids[fresh], new_vectors[fresh]
    now = current(session)
    candidates = list(now.person_of)
    if near is not None and candidates:
        found = near(new_vectors, np.asarray(sorted(candidates), np.int64))
        persons = {now.person_of[int(i)] for i in found.tolist() if int(i) in now.person_of}
        candidates = sorted(face for face, person in now.person_of.items() if person in persons)
    known_ids, known_vectors = eligible(session, optouts, candidates)
    known_labels = np.asarray([now.person_of[int(f)] for f in known_ids.tolist()], np.int64)
    mergeable = _untouched(session, sorted(set(known_labels.tolist())))
    placed = place(new_vectors, known_vectors, known_labels, threshold, mergeable=mergeable)
    person_of_group: dict[int, int] = {}
    for row, group in enumerate(placed.groups.tolist()):
        if placed.joined[row] != NEW:
            person_of_group[int(group)] = int(placed.joined[row])
    fresh_groups = sorted(set(placed.groups.tolist()) - set(person_of_group))
    person_of_group.update(new_persons(session, fresh_groups, audit_seq))
    rows = [{"face_id": int(face), "person_id": person_of_group[int(placed.groups[row])], "how": AUTO}
            for row, face in enumerate(new_ids.tolist())]  # fmt: skip
    session.execute(insert(PersonFaceRow), rows)
    for gone, kept in placed.merged.items():  # pieces of one person the new faces showed to be one
        session.execute(update(PersonFaceRow).where(PersonFaceRow.person_id == gone).values(person_id=kept))
        session.execute(delete(PersonRow).where(PersonRow.id == gone))
    session.flush()
    kept = len(set(placed.joined.tolist()) - {NEW})
    return Outcome(len(new_ids), kept + len(fresh_groups), kept, len(fresh_groups), len(placed.merged))


def _untouched(session: Session, persons: Sequence[int]) -> set[int]:
    """The persons among ``persons`` nobody has touched (every face ``auto``, no name, not hidden, no mark):
    the only ones an ingest may join together; a user's person changes only by the user's hand or a full
    re-cluster."""
    if not persons:
        return set()
    touched = set(session.scalars(select(PersonRow.id).where(
        PersonRow.id.in_(persons), or_(PersonRow.name.is_not(None), PersonRow.hidden.is_(True)))))  # fmt: skip
    touched |= set(session.scalars(select(PersonFaceRow.person_id).where(
        PersonFaceRow.person_id.in_(persons), PersonFaceRow.how == MANUAL).distinct()))  # fmt: skip
    for a, b in session.execute(select(PersonMarkRow.person_id, PersonMarkRow.other_id).where(
            or_(PersonMarkRow.person_id.in_(persons), PersonMarkRow.other_id.in_(persons)))):  # fmt: skip
        touched |= {a, b}
    return set(persons) - touched


def last_run(session: Session) -> PeopleRunRow | None:
    """The newest full clustering (None: the library was never clustered; nothing is assigned then)."""
    return session.scalars(select(PeopleRunRow).order_by(PeopleRunRow.id.desc()).limit(1)).first()
