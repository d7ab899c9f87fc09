"""Shared database plumbing for the governance layer: table creation, write transactions, actors.

The governance tables live in the library's own catalog database (SQLite or PostgreSQL), so that an
erasure, its audit entry and the face rows it deletes commit together or not at all.
"""

from __future__ import annotations

import logging
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import select
from sqlalchemy.engine import Engine
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session
from sqlalchemy.orm.attributes import flag_modified

from facesearch.errors import FaceSearchError
from facesearch.governance.types import actor_name, default_actor
from facesearch.store.catalog import Catalog
from facesearch.store.schema import Base, CollectionRow
from facesearch.store.transactions import serialised

log = logging.getLogger(__name__)

# Re-exported for callers that found them here.
__all__ = [
    "actor_name",
    "default_actor",
    "ensure_governance_tables",
    "immediate",
    "update_collection_settings",
]

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
    from facesearch.store import governance_schema as schema

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
    """A serialised write transaction (store/transactions.py) on a catalog with the governance tables."""
    ensure_governance_tables(catalog)
    with serialised(catalog) as session:
        yield session


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
