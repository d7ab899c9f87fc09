"""A view of one indexed face (its metadata, its thumbnail or its whole photo), bound and audited like a search.

A module of its own because a face view reads no probe and compares nothing, yet is governed as a
search is: a stated purpose bound to its case, the legal basis the face's collection demands, no face
of an opted-out person, and an audit entry, so that browsing faces outside a case shows in the log
(issue 12 §3; the whole photo, issue 13).
"""

from __future__ import annotations

from facesearch.governance.cases import bind_search
from facesearch.governance.errors import PurposeRequired
from facesearch.governance.events import FaceViewEvent, record
from facesearch.governance.purpose import validate_purpose
from facesearch.governance.types import SearchPurpose, User
from facesearch.search.exclusions import OptOuts, is_suppressed
from facesearch.search.purposes import purpose_for_face
from facesearch.store.catalog import Catalog
from facesearch.store.schema import FaceRow


def view_face(
    catalog: Catalog, optouts: OptOuts, face_id: int, purpose: SearchPurpose | None, actor: str | User | None, what: str
) -> FaceRow | None:
    """An indexed face's row, to show ``what`` of it: its ``metadata``, its ``thumbnail`` or its whole ``photo``
    (None: no such face, or an opted-out person's).

    Bound like a search: a case and a purpose (checked before anything is read), and the legal
    basis the face's collection demands, or :class:`PurposeRequired` (search/purposes.py
    ``purpose_for_face``: the refusal does not name the collection); audited.
    """
    if purpose is None:
        raise PurposeRequired("a face view needs a case id and a purpose")
    # Before anything is read; bound to its case like a search: a closed case shows no more faces.
    purpose = bind_search(catalog, validate_purpose(purpose), actor)
    row = catalog.faces_by_ids([face_id]).get(face_id)
    if row is None:
        return None
    if is_suppressed(optouts, face_id):
        return None  # an opted-out person's face is never shown
    purpose = purpose_for_face(catalog, purpose, face_id, row.image.collection.name, "every search and face view")
    record(catalog, FaceViewEvent(purpose, face_id, what), actor)
    return row
