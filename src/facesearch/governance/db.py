"""Shared database plumbing for the governance layer: table creation, write transactions, actors.

The governance tables live in the library's own catalog database (SQLite or PostgreSQL), so that an
erasure, its audit entry and the face rows it deletes commit together or not at all.
"""

from __future__ import annotations

import getpass
import logging
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from sqlalchemy import select, text
from sqlalchemy.engine import Engine
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session
from sqlalchemy.orm.attributes import flag_modified

from facesearch.errors import FaceSearchError
from facesearch.store.catalog import Catalog
from facesearch.store.schema import Base, CollectionRow

if TYPE_CHECKING:
    from facesearch.governance.users import User

log = logging.getLogger(__name__)

# pg_advisory_xact_lock key that serialises governance writes on PostgreSQL ("fsaudit!" in ASCII).
# Every library sharing one database shares the audit chain, hence the one constant.
AUDIT_LOCK_KEY = 0x6673617564697421
# How long a governance write waits for another one on PostgreSQL (SQLite: the busy_timeout, 30 s too).
LOCK_TIMEOUT = "30s"

# Guards against casual edits of the audit log (an UPDATE or DELETE fails). They are not the
# protection: whoever can write the file can drop them. The hash chain is what detects tampering.
# Catalogs now get them from the first migration (store/migrations/); these serve only the
# fallback below.
_TRIGGERS = (
    """CREATE TRIGGER IF NOT EXISTS audit_log_no_update BEFORE UPDATE ON audit_log
       BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END""",
    """CREATE TRIGGER IF NOT EXISTS audit_log_no_delete BEFORE DELETE ON audit_log
       BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END""",
    """CREATE TRIGGER IF NOT EXISTS audit_head_no_delete BEFORE DELETE ON audit_head
       BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END""",
)

_ready: weakref.WeakSet[Engine] = weakref.WeakSet()


def ensure_governance_tables(catalog: Catalog) -> None:
    """Make sure the governance tables (and the audit log's triggers) exist in a catalog.

    A :class:`Catalog` migrates its schema when it opens (store/migrate.py): libraries created
    before the governance layer existed get the tables then, so for any opened catalog this returns
    at once without touching the database. Every governance entry point still calls it, and it still
    creates what is missing for a catalog-like object whose schema was not migrated.
    """
    if catalog.engine in _ready or getattr(catalog, "schema_change", None) is not None:
        return
    from facesearch.governance import schema

    for attempt in range(3):
        try:
            with catalog.engine.begin() as conn:
                Base.metadata.create_all(conn, tables=schema.governance_tables())
                if conn.dialect.name == "sqlite":
                    for ddl in _TRIGGERS:
                        conn.exec_driver_sql(ddl)
            break
        except OperationalError as exc:  # another process created a table between the check and the CREATE
            if "already exists" not in str(exc) or attempt == 2:
                raise
    _ready.add(catalog.engine)


@contextmanager
def immediate(catalog: Catalog) -> Iterator[Session]:
    """A session in one serialised write transaction: committed on success, rolled back on error.

    Governance writes read before they write (the audit head, then the entry that follows it), so
    two processes must never interleave them.

    SQLite: Python's sqlite3 driver starts a transaction only at the first write, so two processes
    could both read the audit head and then race to write after it. BEGIN IMMEDIATE takes SQLite's
    write lock before the first read (waiting up to the catalog's busy_timeout for another writer).

    PostgreSQL: READ COMMITTED lets both read the same head, so before reading anything the
    transaction takes a transaction-scoped advisory lock (``pg_advisory_xact_lock``, waiting at
    most ``LOCK_TIMEOUT``), released at commit or rollback; the next holder's reads, each with a
    fresh snapshot, then see what was committed.
    Only these transactions take it: catalog writes (ingest) go on in parallel, as they should.
    """
    ensure_governance_tables(catalog)
    with catalog.session() as session:
        conn = session.connection()
        if conn.dialect.name == "sqlite":
            conn.exec_driver_sql("BEGIN IMMEDIATE")
        else:
            conn.exec_driver_sql(f"SET LOCAL lock_timeout = '{LOCK_TIMEOUT}'")
            conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": AUDIT_LOCK_KEY})
        try:
            yield session
            session.commit()
        except BaseException:
            session.rollback()
            raise


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


def update_collection_settings(session: Session, collection: str, changes: dict[str, Any]) -> dict[str, Any]:
    """Merge ``changes`` into a collection's settings JSON (a None value deletes the key); returns the result."""
    row = session.scalar(select(CollectionRow).where(CollectionRow.name == collection))
    if row is None:
        raise FaceSearchError(f"no collection named {collection!r}", code="not_found")
    settings = dict(row.settings or {})
    for key, value in changes.items():
        if value is None:
            settings.pop(key, None)
        else:
            settings[key] = value
    row.settings = settings
    flag_modified(row, "settings")
    return settings
