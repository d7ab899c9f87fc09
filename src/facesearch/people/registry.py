"""People in the archive (issue 14): the library's persons, as one object (``Library.people``).

Governance first. Grouping an archive into persons is biometric processing of everyone in it, so
every clustering, read and correction is bound like a search (search/purposes.py ``bound_purpose``: a
case id and a purpose, what the collections demand, and once a library has cases an open case the
actor works: governance/cases.py ``bind_search``), needs the ``people`` permission for an API user
(admins and investigators), and is one audited entry (``PeopleEvent``). Opt-outs are respected at
every step (people/faces.py), and an admin can switch grouping off for a collection.

Incremental: the registry is a store listener of the library's writer (``LibraryWriter.on_store``), so
every ingest path and engine reaches it: once the library has been clustered, each stored batch's
faces join existing persons or new ones (people/grouping.py ``assign_new``), at the threshold of the
last full run, recorded as a ``people_assign`` entry (actor ``system:people``).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

import numpy as np
from sqlalchemy import delete, select, update

from facesearch.errors import FaceSearchError
from facesearch.governance.db import immediate, update_collection_settings
from facesearch.governance.events import PeopleEvent, record
from facesearch.governance.types import SearchPurpose, User, actor_name, require
from facesearch.people import corrections
from facesearch.people.faces import PEOPLE_SETTING
from facesearch.people.grouping import CANDIDATES, DEFAULT_MAX_FMR, Outcome, assign_new, full_cluster, last_run
from facesearch.people.views import Person, export_rows, get_person, list_persons
from facesearch.search.purposes import bound_purpose
from facesearch.search.service import SearchService
from facesearch.store.people_schema import PeopleRunRow, PersonFaceRow, PersonMarkRow, PersonRow, drop_empty_persons
from facesearch.store.schema import CollectionRow, FaceRow, ImageRow
from facesearch.store.writer import LibraryWriter, StoredFaces

log = logging.getLogger(__name__)

ASSIGN_ACTOR = "system:people"  # no user name holds ':' (governance/users.py)


class People:
    """The persons of one library: clustering, reading, corrections (see the module docstring)."""

    def __init__(self, searches: SearchService, writer: LibraryWriter) -> None:
        self.searches = searches
        self.catalog = searches.catalog
        self.scoring = searches.scoring
        self.optouts = searches.optouts
        self.writer = writer
        writer.on_store(self.assign_stored)

    # governance -----------------------------------------------------------------------------------

    def _bind(self, purpose: SearchPurpose | None, actor: str | User | None) -> SearchPurpose:
        if isinstance(actor, User):
            require(actor, "people")
        return bound_purpose(self.catalog, purpose, None, "people grouping", actor)

    def threshold(self, max_fmr: float | None = None) -> tuple[float, float | None, str | None]:
        """The cosine same-person threshold at ``max_fmr`` (default 1e-4: grouping.py says why), its fmr, source."""
        fmr = DEFAULT_MAX_FMR if max_fmr is None else float(max_fmr)
        if not 0 < fmr < 1:
            raise FaceSearchError(f"max_fmr must be between 0 and 1, not {max_fmr}", code="bad_request")
        _, threshold, used, source = self.scoring.operating_point("cosine", fmr)
        return float(threshold), used, source

    # clustering -----------------------------------------------------------------------------------

    def cluster(
        self, *, purpose: SearchPurpose | None, actor: str | User | None = None, max_fmr: float | None = None
    ) -> dict[str, Any]:
        """Group every face into persons again, keeping names and manual decisions. Audited (``people_cluster``)."""
        stated = self._bind(purpose, actor)
        threshold, used, source = self.threshold(max_fmr)
        with self.writer.locked(), immediate(self.catalog) as s:
            outcome = full_cluster(s, self.optouts, threshold, 0)
            facts = {**outcome.to_dict(), "threshold": round(threshold, 6), "max_fmr": used, "calibration": source}
            entry = record(self.catalog, PeopleEvent("people_cluster", stated, facts), actor, session=s)
            s.execute(update(PersonRow).where(PersonRow.audit_seq == 0).values(audit_seq=entry.seq))
            s.add(PeopleRunRow(actor=entry.actor, threshold=threshold, max_fmr=used, faces=outcome.faces,
                               persons=outcome.persons, audit_seq=entry.seq))  # fmt: skip
        return {**facts, "audit_sequence": entry.seq}

    def assign_stored(self, stored: StoredFaces) -> Outcome | None:
        """The writer's store listener: new faces into persons, once the library has been clustered."""
        if len(stored.face_ids) == 0:
            return None
        with immediate(self.catalog) as s:
            run = last_run(s)
            if run is None:
                return None
            outcome = assign_new(s, self.optouts, stored.face_ids.tolist(), run.threshold, 0, self._near)
            if outcome is None:
                return None
            facts = {**outcome.to_dict(), "run": run.id, "face_ids": [int(i) for i in stored.face_ids.tolist()]}
            entry = record(self.catalog, PeopleEvent("people_assign", None, facts), ASSIGN_ACTOR, session=s)
            s.execute(update(PersonRow).where(PersonRow.audit_seq == 0).values(audit_seq=entry.seq))
        log.info("people: %d new faces, %d into known persons, %d new", outcome.faces, outcome.kept, outcome.new)
        return outcome

    def _near(self, queries: np.ndarray, allowed: np.ndarray) -> np.ndarray:
        """The grouped faces nearest the new ones, by the library's vector index (exact on Flat)."""
        _, ids = self.searches.index.current.search(queries, CANDIDATES, allowed=allowed)
        return np.unique(ids[ids >= 0])

    def clustered(self) -> bool:
        with self.catalog.session() as s:
            return last_run(s) is not None

    # reading --------------------------------------------------------------------------------------

    def _read(self, stated: SearchPurpose, actor: str | User | None, facts: dict[str, Any]) -> int:
        return record(self.catalog, PeopleEvent("people_read", stated, facts), actor).seq

    def list_persons(
        self, *, purpose: SearchPurpose | None, actor: str | User | None = None, include_hidden: bool = False
    ) -> list[Person]:
        """The persons, most faces first (hidden ones only with ``include_hidden``). Audited (``people_read``)."""
        stated = self._bind(purpose, actor)
        with self.catalog.session() as s:
            found = list_persons(s, self.optouts, include_hidden=include_hidden)
        self._read(stated, actor, {"what": "list", "persons": len(found)})
        return found

    def show(self, person_id: int, *, purpose: SearchPurpose | None, actor: str | User | None = None) -> Person:
        """One person with its faces (``no_person``: none, or none that may be shown). Audited."""
        stated = self._bind(purpose, actor)
        with self.catalog.session() as s:
            found = get_person(s, self.optouts, person_id)
        if found is None:
            raise FaceSearchError(f"no person {person_id}", code="no_person")
        self._read(stated, actor, {"what": "show", "person_id": found.id, "faces": found.face_count})
        return found

    def export(
        self, *, purpose: SearchPurpose | None, actor: str | User | None = None, include_hidden: bool = False
    ) -> list[tuple[int, str, int]]:
        """(face_id, image_path, person_id) rows for a CSV. Audited."""
        stated = self._bind(purpose, actor)
        with self.catalog.session() as s:
            rows = export_rows(s, self.optouts, include_hidden=include_hidden)
        self._read(stated, actor, {"what": "export", "faces": len(rows), "persons": len({r[2] for r in rows})})
        return rows

    def thumbnail(self, person_id: int, *, purpose: SearchPurpose | None, actor: str | User | None = None) -> FaceRow:
        """The representative face's row (thumbnail) of a person: a face view, bound and audited as one."""
        self._bind(purpose, actor)
        with self.catalog.session() as s:
            found = get_person(s, self.optouts, person_id)
        if found is None:
            raise FaceSearchError(f"no person {person_id}", code="no_person")
        row = self.searches.view_face(found.representative_face_id, purpose=purpose, actor=actor, thumbnail=True)
        if row is None:
            raise FaceSearchError(f"no person {person_id}", code="no_person")
        return row

    # corrections ----------------------------------------------------------------------------------

    def _correct(self, kind: str, stated: SearchPurpose, actor: str | User | None, change: Any) -> tuple[Any, int]:
        """Run ``change(session, seq_placeholder, actor_name)`` and its entry in one transaction."""
        with self.writer.locked(), immediate(self.catalog) as s:
            result, facts = change(s, 0, actor_name(actor))
            entry = record(self.catalog, PeopleEvent(kind, stated, facts), actor, session=s)
            s.execute(update(PersonRow).where(PersonRow.audit_seq == 0).values(audit_seq=entry.seq))
            s.execute(update(PersonMarkRow).where(PersonMarkRow.audit_seq == 0).values(audit_seq=entry.seq))
        return result, entry.seq

    def name(
        self, person_id: int, name: str | None, *, purpose: SearchPurpose | None, actor: str | User | None = None
    ) -> int:
        """Name a person (None or "" clears it). The entry says that it was named, never the name: the log is
        append-only, and a name is personal data that an erasure must be able to remove."""
        stated = self._bind(purpose, actor)

        def change(s, seq, who):  # type: ignore[no-untyped-def]
            row = corrections.rename(s, person_id, name)
            return row.id, {"person_id": row.id, "named": row.name is not None}

        return self._correct("people_name", stated, actor, change)[1]

    def hide(
        self, person_id: int, hidden: bool = True, *, purpose: SearchPurpose | None, actor: str | User | None = None
    ) -> int:
        """Hide a person from the list (or show it again). Audited."""
        stated = self._bind(purpose, actor)

        def change(s, seq, who):  # type: ignore[no-untyped-def]
            row = corrections.hide(s, person_id, hidden)
            return row.id, {"person_id": row.id, "hidden": row.hidden}

        return self._correct("people_hide", stated, actor, change)[1]

    def plan_merge(
        self, into: int, other: int, *, purpose: SearchPurpose | None, actor: str | User | None = None
    ) -> dict:
        """What :meth:`merge` would do (refused as it would be): nothing changes."""
        self._bind(purpose, actor)
        with self.catalog.session() as s:
            a, b = corrections.check_merge(s, into, other)
            faces = len(corrections.faces_of(s, b.id))
            return {"into": a.id, "merged": b.id, "faces_moved": faces, "name": a.name or b.name}

    def merge(self, into: int, other: int, *, purpose: SearchPurpose | None, actor: str | User | None = None) -> dict:
        """Person ``other`` becomes part of ``into``; both stay together through re-clusters. Audited."""
        stated = self._bind(purpose, actor)

        def change(s, seq, who):  # type: ignore[no-untyped-def]
            row, moved = corrections.merge(s, into, other)
            return row.id, {"into": row.id, "merged": int(other), "faces_moved": moved}

        person, seq = self._correct("people_merge", stated, actor, change)
        return {"person_id": person, "audit_sequence": seq}

    def plan_split(
        self, person_id: int, face_ids: Iterable[int], *, purpose: SearchPurpose | None, actor: str | User | None = None
    ) -> dict:
        """What :meth:`split` would do (refused as it would be): nothing changes."""
        self._bind(purpose, actor)
        with self.catalog.session() as s:
            row, faces, left = corrections.check_split(s, person_id, face_ids)
            return {"person_id": row.id, "faces_moved": faces, "faces_left": left}

    def split(
        self, person_id: int, face_ids: Iterable[int], *, purpose: SearchPurpose | None, actor: str | User | None = None
    ) -> dict:
        """Move faces out of a person into a new one, kept apart from it from now on. Audited."""
        stated = self._bind(purpose, actor)
        wanted = sorted({int(f) for f in face_ids})

        def change(s, seq, who):  # type: ignore[no-untyped-def]
            new = corrections.split(s, person_id, wanted, seq, who)
            return new.id, {"person_id": int(person_id), "new_person_id": new.id, "face_ids": wanted}

        new_id, seq = self._correct("people_split", stated, actor, change)
        return {"person_id": int(person_id), "new_person_id": new_id, "audit_sequence": seq}

    def not_this_person(self, face_id: int, *, purpose: SearchPurpose | None, actor: str | User | None = None) -> dict:
        """Face ``face_id`` is not the person it is in: never placed there again. Audited."""
        stated = self._bind(purpose, actor)

        def change(s, seq, who):  # type: ignore[no-untyped-def]
            old, new = corrections.not_person(s, face_id, seq, who)
            return (old, new.id), {"face_id": int(face_id), "person_id": old, "new_person_id": new.id}

        (old, new_id), seq = self._correct("people_not_person", stated, actor, change)
        return {"face_id": int(face_id), "person_id": old, "new_person_id": new_id, "audit_sequence": seq}

    # the per-collection switch --------------------------------------------------------------------

    def set_collection(self, collection: str, enabled: bool, *, actor: str | User | None = None) -> dict[str, Any]:
        """Switch people grouping on or off for a collection (an admin's act, audited). Off: its faces leave
        their persons now and are never clustered, assigned or shown."""
        if isinstance(actor, User):
            require(actor, "manage_collections")
        with self.writer.locked(), immediate(self.catalog) as s:
            settings = update_collection_settings(s, collection, {PEOPLE_SETTING: None if enabled else False})
            removed = 0
            if not enabled:
                cid = s.scalar(select(CollectionRow.id).where(CollectionRow.name == collection))
                ids = (
                    select(FaceRow.id)
                    .join(ImageRow, ImageRow.id == FaceRow.image_id)
                    .where(ImageRow.collection_id == cid)
                )
                removed = s.execute(delete(PersonFaceRow).where(PersonFaceRow.face_id.in_(ids))).rowcount or 0
                drop_empty_persons(s)
            facts = {"collection": collection, "enabled": bool(enabled), "faces_removed": int(removed)}
            record(self.catalog, PeopleEvent("people_collection", None, facts), actor, session=s)
        return {**facts, "settings": settings}
