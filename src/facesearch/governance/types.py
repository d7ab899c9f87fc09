"""The governance layer's value types: who acts (:class:`User`, :func:`actor_name`), what roles allow,
and why a search runs (:class:`SearchPurpose`).

They live apart from the behaviour (users.py, purpose.py, audit.py, db.py) so that every module of
the layer, and the layers above it, can name them without importing each other: value types at
the bottom, behaviour above, no import cycles.
"""

from __future__ import annotations

import getpass
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from facesearch.errors import FaceSearchError
from facesearch.governance.errors import PermissionDenied

if TYPE_CHECKING:
    from facesearch.store.governance_schema import UserRow

ROLES = ("admin", "ingester", "investigator", "auditor")

# Which roles may do each action. The REST API calls require(user, action) before each operation.
ROLE_PERMISSIONS: dict[str, frozenset[str]] = {
    "search": frozenset({"admin", "investigator"}),
    "verify": frozenset({"admin", "investigator"}),
    "review": frozenset({"admin", "investigator"}),
    "open_case": frozenset({"admin", "investigator"}),  # create and close cases (issue 13)
    "read_cases": frozenset({"admin", "investigator", "auditor"}),  # investigators: the cases they work
    "watch": frozenset({"admin", "investigator"}),  # a case's watches and alerts (issue 13): those working it
    "people": frozenset({"admin", "investigator"}),  # persons found in the archive (issue 14), for a case
    "ingest": frozenset({"admin", "ingester"}),
    "remove": frozenset({"admin", "ingester"}),
    "erase": frozenset({"admin"}),
    "optout": frozenset({"admin"}),
    "read_audit": frozenset({"admin", "auditor"}),
    "export_audit": frozenset({"admin", "auditor"}),
    "manage_users": frozenset({"admin"}),
    "manage_collections": frozenset({"admin"}),
}
ACTIONS = tuple(ROLE_PERMISSIONS)


@dataclass(frozen=True)
class User:
    """A user as callers see it: no key material."""

    id: int
    name: str
    role: str
    key_id: str
    created_at: datetime
    created_by: str
    revoked_at: datetime | None = None

    @property
    def active(self) -> bool:
        return self.revoked_at is None

    def can(self, action: str) -> bool:
        return allowed(self.role, action)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_row(cls, row: UserRow) -> User:
        return cls(row.id, row.name, row.role, row.key_id, row.created_at, row.created_by, row.revoked_at)


def allowed(role: str, action: str) -> bool:
    """Whether ``role`` may do ``action``. An unknown action is an error, not a silent refusal."""
    if action not in ROLE_PERMISSIONS:
        raise ValueError(f"unknown action {action!r}; known: {', '.join(ACTIONS)}")
    return role in ROLE_PERMISSIONS[action]


def require(user: User | None, action: str) -> None:
    """Raise :class:`PermissionDenied` unless ``user`` is active and its role allows ``action``."""
    if user is None or not user.active:
        raise PermissionDenied(f"{action} needs an active user")
    if not allowed(user.role, action):
        roles = ", ".join(sorted(ROLE_PERMISSIONS[action]))
        raise PermissionDenied(f"{user.name} ({user.role}) may not {action}; it needs the role {roles}")


def default_actor() -> str:
    """The actor recorded for local use without an API key: ``cli:<operating-system user>``."""
    try:
        name = getpass.getuser()
    except (KeyError, OSError):  # no passwd entry (containers)
        name = "unknown"
    return f"cli:{name}"


def actor_name(actor: str | User | None) -> str:
    """The name recorded in the audit log for a user, a free-form actor string, or the local user."""
    if actor is None:
        return default_actor()
    if isinstance(actor, str):
        if not actor.strip():
            raise FaceSearchError("the actor must not be empty", code="bad_request")
        return actor.strip()
    return actor.name


@dataclass(frozen=True)
class SearchPurpose:
    """The case a search belongs to, what it is for, and (where demanded) its legal basis.

    As stated: :func:`facesearch.governance.purpose.validate_purpose` normalises and checks it.
    """

    case_id: str
    purpose: str
    legal_basis: str | None = None

    def to_dict(self) -> dict:
        return asdict(self)
