"""Alembic migrations of the catalog, run by facesearch itself whenever a catalog opens.

Users never see Alembic: there is no alembic.ini to keep. :func:`upgrade_to_head` checks the
catalog's revision (one small read) and, only when it is behind, takes a lock and upgrades it:

* a new, empty database gets every table (revision 0001 onwards);
* a catalog made before migrations existed (tables, no ``alembic_version``) is adopted: the first
  revision creates only the tables it lacks (old libraries may predate the governance tables) and
  the triggers, then the database is stamped and later revisions apply as usual;
* a catalog stamped by a newer facesearch is refused rather than touched.

Two processes opening a new catalog at once must not both create it: the upgrade runs in one
transaction that first takes SQLite's write lock (``BEGIN IMMEDIATE``) or a PostgreSQL advisory
lock, then looks at the revision again. On PostgreSQL the DDL is transactional too, so a failed
upgrade leaves the database as it was. A SQLite catalog is also checked, created and migrated under
an exclusive ``flock`` on ``<catalog>.lock`` beside it (:func:`sqlite_file_lock`): two processes
creating one file at once both switch it to WAL as they connect, and SQLite answers one of them
"database is locked" at once, whatever the busy timeout (its deadlock avoidance does not wait); with
the lock, the second waits until the first is done and then finds the catalog current.

For developers: ``python -m facesearch.store.migrate revision "message"`` autogenerates a new revision
(against a scratch SQLite database at head) into ``migrations/versions/``; review it before use.
``python -m facesearch.store.migrate upgrade URL`` upgrades a catalog by hand.
"""

from __future__ import annotations

import argparse
import fcntl
import logging
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from functools import cache
from pathlib import Path
from typing import IO, TYPE_CHECKING

from sqlalchemy import MetaData, inspect, text
from sqlalchemy.engine import Connection, Engine

from facesearch.errors import LibraryError

if TYPE_CHECKING:
    from alembic.config import Config
    from alembic.script import ScriptDirectory

log = logging.getLogger(__name__)

MIGRATIONS = Path(__file__).with_name("migrations")
# The newest revision in migrations/versions/, so that opening an up-to-date catalog (every open but
# the first) costs one read and no import of Alembic (~0.3 s, in every CLI run and ingest worker).
# tests/test_catalog_migrations.py checks it against the scripts; if it were stale, opens would
# only take the slower path, which asks Alembic.
HEAD_REVISION = "0008"
VERSION_TABLE = "alembic_version"  # Alembic's default name
# pg_advisory_xact_lock key held while a catalog is migrated ("fsmigrat" in ASCII): any constant
# works as long as nothing else in the database uses it.
MIGRATION_LOCK_KEY = 0x66736D6967726174


def catalog_metadata() -> MetaData:
    """Every table of the catalog: the store's and the governance layer's (declared on one ``Base``)."""
    import facesearch.store.governance_schema  # noqa: F401  (registers the governance tables)
    import facesearch.store.people_schema  # noqa: F401  (and the people tables, issue 14)
    from facesearch.store.schema import Base

    return Base.metadata


def alembic_config(connection: Connection | None = None) -> Config:
    """An Alembic configuration built in code: the shipped scripts, and the connection to migrate."""
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["connection"] = connection
    return config


@cache
def scripts() -> ScriptDirectory:
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(alembic_config())


def head_revision() -> str:
    head = scripts().get_current_head()
    assert head is not None, "no migration scripts shipped"
    return head


def current_revision(connection: Connection) -> str | None:
    """The revision a catalog is stamped with (None: not stamped, new or made before migrations).

    Read directly (what Alembic's MigrationContext does, without its log lines at every open).
    """
    if not inspect(connection).has_table(VERSION_TABLE):
        return None
    stamped = connection.execute(text(f"SELECT version_num FROM {VERSION_TABLE}")).scalars().all()
    if len(stamped) > 1:
        raise LibraryError(f"the catalog is stamped with several revisions {stamped}: not a facesearch catalog?")
    return stamped[0] if stamped else None


def upgrade_to_head(engine: Engine) -> str:
    """Bring a catalog's schema to the newest revision; returns what was done.

    ``"current"`` (nothing to do: the usual case, one read), ``"created"`` (a new database),
    ``"adopted"`` (a catalog made before migrations, now stamped) or ``"upgraded"``.
    """
    with sqlite_file_lock(engine):
        return _upgrade(engine)


def _upgrade(engine: Engine) -> str:
    with engine.connect() as conn:
        if current_revision(conn) == HEAD_REVISION:
            return "current"
    from alembic import command

    head = head_revision()
    with engine.connect() as conn:
        _lock(conn)
        current = current_revision(conn)  # again: another process may have migrated meanwhile
        if current == head:
            conn.commit()
            return "current"
        _check_known(current)
        existing = set(inspect(conn).get_table_names())
        outcome = "upgraded" if current else "adopted" if "images" in existing else "created"
        if outcome == "adopted":
            log.info("catalog made before migrations: creating what it lacks and stamping it")
        command.upgrade(alembic_config(conn), "head")
        conn.commit()
    log.info("catalog schema %s to %s (was %s)", outcome, head, current or "unstamped")
    return outcome


@contextmanager
def sqlite_file_lock(engine: Engine) -> Iterator[None]:
    """For a SQLite file: hold an exclusive ``flock`` on ``<file>.lock`` (other processes opening the
    catalog wait here, however long a creation or migration takes); for anything else, nothing.

    Every open takes it, for the few milliseconds of the revision check: a new file's first
    connections (which switch it to WAL) must never overlap. Where the lock file cannot be created (a
    read-only folder, where no catalog can be created or migrated either) the open goes on without it.
    """
    database = engine.url.database
    if engine.dialect.name != "sqlite" or not database or database == ":memory:" or database.startswith("file:"):
        yield
        return
    handle = _open_lock_file(Path(database + ".lock"))
    if handle is None:
        yield
        return
    with handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _open_lock_file(path: Path) -> IO[bytes] | None:
    try:
        return path.open("ab")
    except OSError:
        try:
            return path.open("rb")  # read-only, but there: flock works on it all the same
        except OSError as exc:
            log.debug("no lock file %s (%s): opening the catalog without it", path, exc)
            return None


def _lock(conn: Connection) -> None:
    """Make this connection's transaction the only migrating one (waits for another to finish)."""
    if conn.dialect.name == "sqlite":
        conn.exec_driver_sql("BEGIN IMMEDIATE")  # the write lock, before the revision is read
    else:
        conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK_KEY})


def _check_known(current: str | None) -> None:
    from alembic.util import CommandError

    if current is None:
        return
    try:
        known = scripts().get_revision(current) is not None
    except CommandError:
        known = False
    if not known:
        raise LibraryError(
            f"the catalog's schema is at revision {current!r}, which this facesearch does not know "
            f"(its newest is {head_revision()!r}): it was upgraded by a newer facesearch; upgrade this one",
            code="catalog_too_new",
        )


def _main() -> None:  # pragma: no cover - a developer's tool
    parser = argparse.ArgumentParser(prog="python -m facesearch.store.migrate", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="what", required=True)
    rev = sub.add_parser("revision", help="autogenerate a new revision from the models (review it!)")
    rev.add_argument("message")
    up = sub.add_parser("upgrade", help="upgrade a catalog (a SQLite file or a database URL) to head")
    up.add_argument("target")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    from alembic import command

    from facesearch.store.database import create_catalog_engine, locate

    if args.what == "upgrade":
        engine = create_catalog_engine(locate(args.target))
        log.info("%s: %s", args.target, upgrade_to_head(engine))
        engine.dispose()
        return
    with tempfile.TemporaryDirectory() as scratch:
        engine = create_catalog_engine(locate(Path(scratch) / "scratch.sqlite"))
        upgrade_to_head(engine)
        with engine.connect() as conn:
            command.revision(alembic_config(conn), message=args.message, autogenerate=True)
        engine.dispose()


if __name__ == "__main__":  # pragma: no cover
    _main()
