"""Serialised write transactions: the one way a change and its audit entry commit together.

A change that appends to the audit log reads the log's head before it writes the entry that
follows it, so two processes must never interleave such transactions:

* SQLite: Python's sqlite3 driver starts a transaction only at the first write, so two processes
  could both read the head and then race to write after it. ``BEGIN IMMEDIATE`` takes SQLite's
  write lock before the first read (waiting up to the catalog's busy_timeout for another writer).
* PostgreSQL: READ COMMITTED lets both read the same head, so before reading anything the
  transaction takes a transaction-scoped advisory lock (``pg_advisory_xact_lock``, waiting at most
  ``LOCK_TIMEOUT``), released at commit or rollback; the next holder's reads, each with a fresh
  snapshot, then see what was committed. Only these transactions take it: plain catalog writes
  (ingest) go on in parallel, as they should.

It lives in the store layer because the writer (store/writer.py) deletes rows in such a
transaction and the governance layer appends its audit entry to the same session.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import text
from sqlalchemy.orm import Session

from facesearch.store.catalog import Catalog

# pg_advisory_xact_lock key that serialises these writes on PostgreSQL ("fsaudit!" in ASCII).
# Every library sharing one database shares the audit chain, hence the one constant.
AUDIT_LOCK_KEY = 0x6673617564697421
# How long such a write waits for another one on PostgreSQL (SQLite: the busy_timeout, 30 s too).
LOCK_TIMEOUT = "30s"


@contextmanager
def serialised(catalog: Catalog) -> Iterator[Session]:
    """A session in one serialised write transaction: committed on success, rolled back on error."""
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
