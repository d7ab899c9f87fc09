"""The ingest workers' read-only duplicate check: are these bytes already in the collection?

Workers ask before the costly detection, so a re-run (or a second process indexing the same photos)
is cheap. The check is an optimisation only: the catalog's unique constraint is what guarantees
that the same bytes are stored once per collection, whoever wins a race.

SQLite: the catalog file opened read-only with Python's sqlite3 (WAL: never blocks the writer).
PostgreSQL: one pooled connection from the catalog URL, in autocommit so that each check is a single
round trip, and in read-only transactions. The URL never holds a password; libpq reads it from the
environment (``$PGPASSWORD``, ``~/.pgpass``) that worker processes inherit.
"""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

from sqlalchemy import text
from sqlalchemy.engine import Engine

from facesearch.store.database import create_catalog_engine, locate

_QUERY = "SELECT 1 FROM images WHERE collection_id = {a} AND sha256 = {b} LIMIT 1"


class DigestLookup:
    """Opened lazily on first use (in the worker process, not in the parent that pickles the settings)."""

    def __init__(self, catalog_path: str, catalog_url: str | None = None) -> None:
        self.catalog_path = catalog_path  # the SQLite file, when there is no catalog_url
        self.catalog_url = catalog_url  # a database server's URL (no password)
        self._sqlite: sqlite3.Connection | None = None
        self._engine: Engine | None = None

    def exists(self, collection_id: int, digest: str) -> bool:
        if self.catalog_url:
            return self._exists_on_server(collection_id, digest)
        if self._sqlite is None:
            uri = Path(self.catalog_path).resolve().as_uri() + "?mode=ro"
            self._sqlite = sqlite3.connect(uri, uri=True, timeout=30)
        row = self._sqlite.execute(_QUERY.format(a="?", b="?"), (collection_id, digest)).fetchone()
        return row is not None

    def _exists_on_server(self, collection_id: int, digest: str) -> bool:
        if self._engine is None:
            location = locate(self.catalog_url)
            self._engine = create_catalog_engine(
                location,
                isolation_level="AUTOCOMMIT",
                pool_size=1,
                max_overflow=0,
                connect_args={"options": _read_only_options(location.url.query.get("options"))},
            )
        with self._engine.connect() as conn:
            row = conn.execute(text(_QUERY.format(a=":a", b=":b")), {"a": collection_id, "b": digest}).first()
        return row is not None

    def close(self) -> None:
        if self._sqlite is not None:
            self._sqlite.close()
            self._sqlite = None
        if self._engine is not None:
            self._engine.dispose()
            self._engine = None


def _read_only_options(options: str | tuple[str, ...] | None) -> str:
    """libpq ``options`` that make every transaction of the session read-only.

    An explicit ``options`` replaces ``$PGOPTIONS``, so the URL's own options (or else $PGOPTIONS) are kept.
    """
    given = " ".join(options) if isinstance(options, tuple) else options or os.environ.get("PGOPTIONS", "")
    return f"{given} -c default_transaction_read_only=on".strip()
