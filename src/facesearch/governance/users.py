"""Users, roles and API keys.

An API key is ``fs_<key id>_<secret>``: the key id (12 hex characters, not secret) finds the user's
row with one indexed lookup; the whole key is then checked against a salted scrypt hash with a
constant-time comparison. The key itself is returned once, by :func:`add_user` or
:func:`rotate_key`, and never stored: a copy of the database does not yield working keys.

Keys carry 256 random bits, so the hash need not be slow to resist guessing (that is for
passwords); scrypt with modest parameters keeps each authentication to a few milliseconds. The
parameters are stored with each hash so that they can be raised later without invalidating keys.

Roles, least privilege first:

- ``auditor``: reads and exports the audit log; cannot search.
- ``ingester``: indexes and removes photos; cannot search.
- ``investigator``: searches, verifies, reviews results; cannot change the library.
- ``admin``: everything, including users, collections, erasure and opt-outs.

A name is one name whatever its case or Unicode form: "Admin" cannot be added beside "admin"
(:func:`name_key`, kept unique in the database too), and ``revoke ADMIN`` finds "admin". A library
always keeps one active admin: revoking or demoting the last one is refused here, so that every
interface (command line, API, Python) obeys the same rule.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import re
import secrets
import threading
import unicodedata
from collections import OrderedDict

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from facesearch.governance.db import ensure_governance_tables, immediate
from facesearch.governance.errors import UserError
from facesearch.governance.events import GovernanceEvent, record
from facesearch.governance.types import ACTIONS, ROLE_PERMISSIONS, ROLES, User, actor_name, allowed, require
from facesearch.store.catalog import Catalog
from facesearch.store.governance_schema import UserRow
from facesearch.store.schema import utcnow

log = logging.getLogger(__name__)

# Re-exported: callers have long found the value types here.
__all__ = ["ACTIONS", "ROLES", "ROLE_PERMISSIONS", "User", "allowed", "require"]

KEY_PREFIX = "fs_"
KEY_ID_CHARS = 12
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,99}$")  # no ':' so no name looks like "cli:<user>"
_SCRYPT = {"n": 2**12, "r": 8, "p": 1}

# keys ---------------------------------------------------------------------------------------------


def _new_key() -> tuple[str, str]:
    key_id = secrets.token_hex(KEY_ID_CHARS // 2)
    return key_id, f"{KEY_PREFIX}{key_id}_{secrets.token_urlsafe(32)}"


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def hash_key(key: str, salt: bytes | None = None, n: int = _SCRYPT["n"], r: int = _SCRYPT["r"], p: int = 1) -> str:
    """``scrypt$n$r$p$salt$hash`` of a key, with a fresh 16-byte salt unless one is given."""
    salt = salt if salt is not None else secrets.token_bytes(16)
    digest = hashlib.scrypt(key.encode(), salt=salt, n=n, r=r, p=p, dklen=32)
    return f"scrypt${n}${r}${p}${_b64(salt)}${_b64(digest)}"


# (stored hash, SHA-256 of the key) pairs that check_key found to match, most recent last (see check_key).
_VERIFIED: OrderedDict[tuple[str, bytes], None] = OrderedDict()
_VERIFIED_MAX = 1024
_VERIFIED_LOCK = threading.Lock()


def check_key(key: str, stored: str) -> bool:
    """Constant-time check of a key against a stored hash.

    A server checks the same few keys on every request: scrypt costs ~10 ms of CPU each time (the API fuzz
    test's ~2,000 requests: ~20 s; issue 11). A pair that matched once is remembered in this process, by the
    stored hash and the key's SHA-256 (never the key), so it is not derived again. Nothing is weakened: a
    rotated key has another stored hash (the pair no longer applies), a revoked user is refused before this
    check (:func:`authenticate` reads the row on every request), and only keys that matched are remembered.
    """
    memo = (stored, hashlib.sha256(key.encode()).digest())
    with _VERIFIED_LOCK:
        if memo in _VERIFIED:
            _VERIFIED.move_to_end(memo)
            return True
    try:
        scheme, n, r, p, salt, digest = stored.split("$")
        if scheme != "scrypt":
            return False
        again = hashlib.scrypt(key.encode(), salt=base64.b64decode(salt), n=int(n), r=int(r), p=int(p), dklen=32)
    except (ValueError, TypeError):
        return False
    if not hmac.compare_digest(again, base64.b64decode(digest)):
        return False
    with _VERIFIED_LOCK:
        _VERIFIED[memo] = None
        while len(_VERIFIED) > _VERIFIED_MAX:
            _VERIFIED.popitem(last=False)
    return True


def key_id_of(key: str) -> str | None:
    """The key id part of an API key, or None when the key is not shaped like one."""
    if not isinstance(key, str) or not key.startswith(KEY_PREFIX) or len(key) < len(KEY_PREFIX) + KEY_ID_CHARS + 2:
        return None
    key_id = key[len(KEY_PREFIX) : len(KEY_PREFIX) + KEY_ID_CHARS]
    if key[len(KEY_PREFIX) + KEY_ID_CHARS] != "_" or not re.fullmatch(r"[0-9a-f]+", key_id):
        return None
    return key_id


# users --------------------------------------------------------------------------------------------


def name_key(name: str) -> str:
    """The name as compared: NFKC, then case-folded (migration 0004_users computes the same)."""
    return unicodedata.normalize("NFKC", name).casefold()


def _find(session: Session, name: str) -> UserRow | None:
    """The user of that exact name, else the one whose name differs only by case or Unicode form.

    The exact name first: a catalog migrated with two spellings of one name (0004_users) keeps both,
    and each must stay reachable, to be revoked.
    """
    row = session.scalar(select(UserRow).where(UserRow.name == name))
    if row is None and isinstance(name, str):
        row = session.scalar(select(UserRow).where(UserRow.name_key == name_key(name)))
    return row


def _keep_an_admin(session: Session, row: UserRow, change: str) -> None:
    """Refuse to leave the library without an active admin (nobody could manage users any more)."""
    if row.role != "admin" or row.revoked_at is not None:
        return
    others = session.scalar(
        select(func.count(UserRow.id)).where(
            UserRow.role == "admin", UserRow.revoked_at.is_(None), UserRow.id != row.id
        )
    )
    if not others:
        raise UserError(
            f"cannot {change} {row.name!r}: the last active admin (add another admin first)", code="last_admin"
        )


def add_user(catalog: Catalog, name: str, role: str, *, actor: str | User | None = None) -> tuple[User, str]:
    """Create a user with a new API key. Returns (user, key): the key is shown this once and never stored."""
    if role not in ROLES:
        raise UserError(f"unknown role {role!r}: choose one of {', '.join(ROLES)}", code="unknown_role")
    if not isinstance(name, str) or not _NAME.match(name):
        raise UserError(
            f"bad user name {name!r}: 1-100 letters, digits, '.', '_', '@' or '-', starting with a letter or digit",
            code="bad_name",
        )
    by = actor_name(actor)
    key_id, key = _new_key()
    try:
        with immediate(catalog) as s:
            existing = _find(s, name)
            if existing is not None:
                same = "" if existing.name == name else f" (as {existing.name!r}: names differ by more than case)"
                raise UserError(f"a user named {name!r} already exists{same}", code="user_exists")
            row = UserRow(
                name=name, name_key=name_key(name), role=role, key_id=key_id, key_hash=hash_key(key), created_by=by
            )
            s.add(row)
            s.flush()
            user = User.from_row(row)
            facts = {"user": name, "role": role, "key_id": key_id}
            row.audit_seq = record(catalog, GovernanceEvent("user_add", facts), by, session=s).seq  # evidence: §4
    except IntegrityError as exc:  # the name (or, once in 2^48, the key id) was taken meanwhile
        raise UserError(f"a user named {name!r} already exists", code="user_exists") from exc
    log.info("user %s (%s) added by %s", name, role, by)
    return user, key


def authenticate(catalog: Catalog, key: str) -> User | None:
    """The active user an API key belongs to, or None (unknown, malformed, wrong or revoked key)."""
    key_id = key_id_of(key)
    if key_id is None:
        return None
    ensure_governance_tables(catalog)
    with catalog.session() as s:
        row = s.scalar(select(UserRow).where(UserRow.key_id == key_id))
        if row is None or row.revoked_at is not None or not check_key(key, row.key_hash):
            return None
        return User.from_row(row)


def get_user(catalog: Catalog, name: str) -> User:
    ensure_governance_tables(catalog)
    with catalog.session() as s:
        row = _find(s, name)
        if row is None:
            raise UserError(f"no user named {name!r}", code="no_user")
        return User.from_row(row)


def list_users(catalog: Catalog, include_revoked: bool = True) -> list[User]:
    ensure_governance_tables(catalog)
    with catalog.session() as s:
        query = select(UserRow).order_by(UserRow.name)
        if not include_revoked:
            query = query.where(UserRow.revoked_at.is_(None))
        return [User.from_row(r) for r in s.scalars(query)]


def revoke_user(catalog: Catalog, name: str, *, actor: str | User | None = None) -> User:
    """Revoke a user's key for good (the row stays, so the audit log's names keep their meaning).

    Refused (``last_admin``) for the last active admin, checked in the same write transaction.
    """
    by = actor_name(actor)
    with immediate(catalog) as s:
        row = _find(s, name)
        if row is None:
            raise UserError(f"no user named {name!r}", code="no_user")
        if row.revoked_at is None:
            _keep_an_admin(s, row, "revoke")
            row.revoked_at = utcnow()
            details = {"user": row.name, "key_id": row.key_id}
            record(catalog, GovernanceEvent("user_revoke", details), by, session=s)
        s.flush()
        return User.from_row(row)


def rotate_key(catalog: Catalog, name: str, *, actor: str | User | None = None) -> tuple[User, str]:
    """Give an active user a new key (the old one stops working at once). Returns (user, new key)."""
    by = actor_name(actor)
    key_id, key = _new_key()
    with immediate(catalog) as s:
        row = _find(s, name)
        if row is None:
            raise UserError(f"no user named {name!r}", code="no_user")
        if row.revoked_at is not None:
            raise UserError(f"user {name!r} is revoked: add a new user instead", code="no_user")
        old = row.key_id
        row.key_id, row.key_hash = key_id, hash_key(key)
        s.flush()
        record(
            catalog,
            GovernanceEvent("user_rotate_key", {"user": row.name, "old_key_id": old, "key_id": key_id}),
            by,
            session=s,
        )
        return User.from_row(row), key


def set_role(catalog: Catalog, name: str, role: str, *, actor: str | User | None = None) -> User:
    """Give an active user another role (audited). Demoting the last active admin is refused (``last_admin``)."""
    if role not in ROLES:
        raise UserError(f"unknown role {role!r}: choose one of {', '.join(ROLES)}", code="unknown_role")
    by = actor_name(actor)
    with immediate(catalog) as s:
        row = _find(s, name)
        if row is None:
            raise UserError(f"no user named {name!r}", code="no_user")
        if row.revoked_at is not None:
            raise UserError(f"user {row.name!r} is revoked: add a new user instead", code="no_user")
        if row.role != role:
            if role != "admin":
                _keep_an_admin(s, row, "demote")
            details = {"user": row.name, "old_role": row.role, "role": role}
            row.role = role
            s.flush()
            record(catalog, GovernanceEvent("user_role", details), by, session=s)
        return User.from_row(row)
