"""Where a catalog lives: a SQLite file (the default) or a PostgreSQL database named by URL.

A library's catalog is a SQLite file in its folder unless it was created with a ``catalog_url``
such as ``postgresql+psycopg://facesearch@db.example:5432/faces``. The URL is written to the
library's config.json, so it must never hold a password: one is refused here, wherever the URL comes
from. libpq (under psycopg) finds the password itself, in ``$PGPASSWORD`` or in ``~/.pgpass``
(``$PGPASSFILE``), and the same goes for ingest workers, which inherit the environment.

Only psycopg 3 is supported for PostgreSQL (``pip install 'facesearch[postgres]'``): one driver whose
behaviour the tests pin down, rather than whichever one SQLAlchemy would pick.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import create_engine, event
from sqlalchemy.engine import URL, Engine, make_url
from sqlalchemy.exc import ArgumentError

from facesearch.errors import FaceSearchError

POSTGRES_DRIVER = "postgresql+psycopg"
INSTALL_HINT = "pip install 'facesearch[postgres]'"
BUSY_TIMEOUT_MS = 30_000  # how long a SQLite statement waits for another process's lock before "database is locked"


@dataclass(frozen=True)
class CatalogLocation:
    """A checked catalog location: its URL (never with a password) and, for SQLite, the file."""

    url: URL
    path: Path | None  # the SQLite file; None for a server

    @property
    def dialect(self) -> str:
        return self.url.get_backend_name()

    @property
    def is_sqlite(self) -> bool:
        return self.dialect == "sqlite"

    def render(self) -> str:
        """The URL as text (safe to store and log: it cannot hold a password)."""
        return self.url.render_as_string(hide_password=False)


def locate(target: str | Path) -> CatalogLocation:
    """A SQLite file path, or a ``sqlite:///`` or ``postgresql+psycopg://`` URL, checked and normalised.

    A string without ``://`` is a file path. ``postgresql://`` is taken to mean psycopg 3; other
    PostgreSQL drivers and other databases are refused with ``bad_request``.
    """
    if isinstance(target, Path) or "://" not in target:
        path = Path(target)
        return CatalogLocation(URL.create("sqlite", database=str(path)), path)
    try:
        url = make_url(target)
    except ArgumentError as exc:
        raise FaceSearchError(f"not a database URL: {exc}", code="bad_request") from exc
    if url.get_backend_name() == "sqlite":
        if not url.database or url.database == ":memory:":
            raise FaceSearchError("a SQLite catalog URL must name a file", code="bad_request")
        return CatalogLocation(url, Path(url.database))
    if url.get_backend_name() != "postgresql":
        raise FaceSearchError(
            f"unsupported catalog database {url.get_backend_name()!r}: use SQLite (the default) or PostgreSQL",
            code="bad_request",
        )
    if url.drivername not in ("postgresql", POSTGRES_DRIVER):
        raise FaceSearchError(
            f"unsupported PostgreSQL driver {url.get_driver_name()!r}: facesearch uses psycopg 3 ({POSTGRES_DRIVER}://)",
            code="bad_request",
        )
    if url.password is not None or any("password" in key.lower() for key in url.query):  # sslpassword too
        raise FaceSearchError(
            "the catalog URL must not contain a password (it would be stored in config.json): "
            "give it to libpq in $PGPASSWORD or ~/.pgpass instead",
            code="bad_request",
        )
    if not url.database:
        raise FaceSearchError("the catalog URL must name a database (…/DBNAME)", code="bad_request")
    require_psycopg()
    return CatalogLocation(url.set(drivername=POSTGRES_DRIVER), None)


def server_catalog_url(url: str) -> str:
    """A library's ``catalog_url``, checked and normalised: a PostgreSQL database, never a password.

    (A library's SQLite catalog is always catalog.sqlite in its folder: no URL names it.)
    """
    if "://" not in url:
        raise FaceSearchError(
            f"not a database URL: {url!r} (postgresql+psycopg://user@host:port/dbname)", code="bad_request"
        )
    location = locate(url)
    if location.is_sqlite:
        raise FaceSearchError(
            "catalog_url names a PostgreSQL database; a library's SQLite catalog is catalog.sqlite in its folder",
            code="bad_request",
        )
    return location.render()


def require_psycopg() -> None:
    """Fail with ``postgres_missing`` (and how to install it) when psycopg 3 is not installed."""
    if importlib.util.find_spec("psycopg") is None:
        raise FaceSearchError(f"a PostgreSQL catalog needs the psycopg driver: {INSTALL_HINT}", code="postgres_missing")


def create_catalog_engine(location: CatalogLocation, **kwargs: object) -> Engine:
    """An engine for the catalog: SQLite with the pragmas facesearch relies on (WAL...), or PostgreSQL."""
    if location.is_sqlite:
        engine = create_engine(location.url, **kwargs)
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    # pre_ping: a server restart or an idle-connection reaper must not fail the next request.
    return create_engine(location.url, pool_pre_ping=True, **kwargs)


def _sqlite_pragmas(dbapi_connection, _record) -> None:  # type: ignore[no-untyped-def]
    cursor = dbapi_connection.cursor()
    # The busy timeout first: switching a file to WAL needs its write lock, and must wait for another
    # process for as long as anything else does (not Python's 5 s default).
    cursor.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()
