"""Why a search is run: every search names a case and a purpose, recorded in the audit log.

What is stated is checked here, once, for every interface (Python, CLI, API, web): text is
normalised (NFKC; invisible, format and bidirectional characters removed; spaces collapsed) so that
what the audit log shows is what was stated, and refused when nothing readable is left, when it
holds control characters, or when a purpose says nothing: fewer than 10 letters, or a placeholder
("...", "test", "n/a", "xxx", "aaaaaaaaaaaa"). Why: a case id of U+200B or a purpose of "..." was
accepted, so the binding of a search to a purpose could be met by typing nothing (issue 12 §3).

A collection can demand more through its settings JSON, e.g. ``{"require": ["legal_basis"]}``:
searches that may return its faces must then state a legal basis too. A search over the whole
library may return faces of every collection, so it must meet the requirements of all of them.
"""

from __future__ import annotations

import logging
import re
import unicodedata

from facesearch.errors import FaceSearchError
from facesearch.governance.db import immediate, update_collection_settings
from facesearch.governance.errors import PurposeRequired
from facesearch.governance.events import GovernanceEvent, record
from facesearch.governance.types import SearchPurpose, User, actor_name
from facesearch.store.catalog import Catalog

log = logging.getLogger(__name__)

__all__ = [
    "REQUIRABLE",
    "SearchPurpose",
    "check_purpose",
    "clean_case_id",
    "clean_text",
    "requirements",
    "set_requirements",
    "validate_purpose",
]

REQUIRABLE = ("legal_basis",)  # case_id and purpose are always required

MAX_CASE_ID = 100
MAX_PURPOSE = 1000
MAX_LEGAL_BASIS = 500
MIN_PURPOSE_LETTERS = 10
# Words that, alone or only with each other, say nothing about why a search is made.
PLACEHOLDER_WORDS = frozenset(
    {
        "test", "tests", "testing", "xxx", "xx", "x", "n", "a", "na", "nil", "none", "null", "nothing", "purpose",
        "reason", "todo", "tbd", "tba", "foo", "bar", "baz", "asdf", "qwerty", "lorem", "ipsum", "dummy",
        "placeholder", "example", "sample", "search", "unknown", "misc", "stuff", "whatever", "blah", "etc",
        "abc", "aaa", "no", "yes", "ok", "other", "general", "default", "dolor", "sit", "amet",
    }
)  # fmt: skip
# Characters that show nothing but are not format characters (category Cf, removed as a class): fillers
# and blanks that render as empty space, and the combining grapheme joiner.
_INVISIBLE = frozenset("\u115f\u1160\u3164\uffa0\u2800\u034f\u17b4\u17b5")
_HIDDEN = ("Cf", "Co", "Cn", "Cs", "Zl", "Zp")  # format (incl. bidi, U+200B, U+2060, U+FEFF), private, unassigned
_SPACES = re.compile(r"\s+")


def clean_text(name: str, value: object, high: int) -> str:
    """``value`` normalised: NFKC, invisible, format and bidi characters removed, spaces collapsed.

    Raises :class:`PurposeRequired` when nothing readable is left (``purpose_required``), when it
    holds control characters such as a newline, or is longer than ``high`` (``invalid_purpose``).
    """
    if not isinstance(value, str):
        raise PurposeRequired(f"a search needs a {name}")
    text = unicodedata.normalize("NFKC", value)
    if any(unicodedata.category(ch) == "Cc" for ch in text):
        raise PurposeRequired(f"the {name} must not contain control characters", code="invalid_purpose")
    kept = "".join(ch for ch in text if unicodedata.category(ch) not in _HIDDEN and ch not in _INVISIBLE)
    kept = _SPACES.sub(" ", kept).strip()
    if not kept:
        hidden = " (it holds only invisible characters)" if value.strip() else ""
        raise PurposeRequired(f"a search needs a {name}{hidden}")
    if len(kept) > high:
        raise PurposeRequired(f"the {name} must be at most {high} characters long", code="invalid_purpose")
    return kept


def clean_case_id(value: object) -> str:
    """A case id as :func:`clean_text` leaves it (what every search, verify and face view records)."""
    return clean_text("case_id", value, MAX_CASE_ID)


def _repeats(letters: str, unit: int) -> bool:
    """``letters`` is its first ``unit`` letters over and over ("asdfasdfasdf", "abcabcabca")."""
    return (letters[:unit] * (len(letters) // unit + 1))[: len(letters)] == letters


def _says_nothing(purpose: str) -> str | None:
    """Why a (cleaned) purpose says nothing about the search, or None when it does."""
    letters = [ch.lower() for ch in purpose if ch.isalpha()]
    if len(letters) < MIN_PURPOSE_LETTERS:
        return f"it has {len(letters)} letters; state why this search is made in at least {MIN_PURPOSE_LETTERS}"
    joined = "".join(letters)
    if len(set(letters)) <= 2 or any(_repeats(joined, unit) for unit in range(3, 6)):
        return "it repeats the same characters"
    words = re.findall(r"[^\W\d_]+", purpose.lower())
    if all(word in PLACEHOLDER_WORDS for word in words):
        return "it is a placeholder"
    if len(words) > 1 and len(set(words)) == 1:
        return "it repeats one word"
    return None


def validate_purpose(purpose: SearchPurpose) -> SearchPurpose:
    """The stated purpose, normalised, or :class:`PurposeRequired` saying what is wrong with it.

    The one check of case id, purpose and legal basis, whichever interface they came from.
    """
    case_id = clean_case_id(purpose.case_id)
    text = clean_text("purpose", purpose.purpose, MAX_PURPOSE)
    why = _says_nothing(text)
    if why is not None:
        raise PurposeRequired(f"the purpose {text!r} says nothing about why: {why}", code="invalid_purpose")
    legal_basis = None
    if isinstance(purpose.legal_basis, str) and purpose.legal_basis.strip():
        try:
            legal_basis = clean_text("legal_basis", purpose.legal_basis, MAX_LEGAL_BASIS)
        except PurposeRequired as exc:
            if exc.code != "purpose_required":
                raise
            raise PurposeRequired("the legal_basis holds only invisible characters", code="invalid_purpose") from exc
    return SearchPurpose(case_id, text, legal_basis)


def requirements(catalog: Catalog, collection: str | None) -> set[str]:
    """What searches of ``collection`` (None: every collection) must state beyond case id and purpose."""
    wanted: set[str] = set()
    for row in catalog.collections():
        if collection is not None and row.name != collection:
            continue
        require = (row.settings or {}).get("require", [])
        if isinstance(require, str):
            require = [require]
        wanted.update(str(r) for r in require)
    return wanted


def check_purpose(catalog: Catalog, purpose: SearchPurpose | None, collection: str | None) -> SearchPurpose:
    """The validated purpose, or :class:`PurposeRequired` when it is missing or lacks what a collection demands.

    An unknown requirement in a collection's settings refuses the search too (a typo in a policy
    must not switch the policy off).
    """
    if purpose is None:
        raise PurposeRequired("a search needs a case id and a purpose")
    purpose = validate_purpose(purpose)
    for need in sorted(requirements(catalog, collection)):
        if need not in REQUIRABLE:
            raise PurposeRequired(
                f"collection settings require unknown field {need!r}; requirable: {', '.join(REQUIRABLE)}",
                code="bad_settings",
            )
        if getattr(purpose, need) is None:
            where = f"collection {collection!r}" if collection else "a collection in this library"
            raise PurposeRequired(f"{where} requires a {need} for every search")
    return purpose


def set_requirements(catalog: Catalog, collection: str, require: list[str], *, actor: str | User | None = None) -> dict:
    """Set what searches of a collection must state (e.g. ``["legal_basis"]``; ``[]`` clears it). Audited."""
    unknown = sorted(set(require) - set(REQUIRABLE))
    if unknown:
        raise FaceSearchError(f"cannot require {unknown}; requirable: {', '.join(REQUIRABLE)}", code="bad_request")
    with immediate(catalog) as s:
        settings = update_collection_settings(s, collection, {"require": sorted(set(require)) or None})
        record(
            catalog,
            GovernanceEvent("collection_require", {"collection": collection, "require": sorted(set(require))}),
            actor_name(actor),
            session=s,
        )
    return settings
