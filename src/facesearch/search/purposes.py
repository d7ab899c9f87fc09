"""The stated purpose of a search, a verify or a face view, checked and bound before anything is read.

One place for the two bindings every part of the search path needs, so that a search, a 1:1 verify,
an indexed face used as a probe and a face view cannot drift apart: to the case (governance/cases.py
``bind_search``: a closed case, an unknown one once a library has cases, or one the actor does not
work, is refused, issue 13) and to what a collection demands (governance/purpose.py ``check_purpose``).
"""

from __future__ import annotations

from facesearch.governance.cases import bind_search
from facesearch.governance.errors import PurposeRequired
from facesearch.governance.purpose import check_purpose
from facesearch.governance.types import SearchPurpose, User
from facesearch.store.catalog import Catalog


def bound_purpose(
    catalog: Catalog, purpose: SearchPurpose | None, collection: str | None, what: str, actor: str | User | None
) -> SearchPurpose:
    """The checked purpose of a ``what`` ("search", "comparison") over ``collection``, bound to its case.

    Refused (:class:`PurposeRequired`) when missing, for every interface (issue 13)."""
    if purpose is None:
        raise PurposeRequired(f"a {what} needs a case id and a purpose")
    return bind_search(catalog, check_purpose(catalog, purpose, collection), actor)


def purpose_for_face(
    catalog: Catalog, purpose: SearchPurpose, face_id: int, collection: str, needed_for: str
) -> SearchPurpose:
    """``purpose`` checked against what the collection of indexed face ``face_id`` demands.

    Why a face's collection rules a view of it or a search with it: face ids are sequential, so
    without it anyone allowed to search could walk a protected collection one id at a time (issue 12
    §3). The refusal names the face, never the collection; ``needed_for`` ("every search") says what
    the collection's legal basis is required for.
    """
    try:
        return check_purpose(catalog, purpose, collection)
    except PurposeRequired as exc:
        if exc.code != "purpose_required":
            raise
        raise PurposeRequired(
            f"face {face_id} is in a collection that requires a legal_basis for {needed_for}"
        ) from exc
