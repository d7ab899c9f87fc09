"""Shared fixtures. Real photos come from ../shared/data (override with FACESEARCH_DATA).

The photos are never copied into the project. When the folder is missing the tests fail loudly
in CI (CI=true) and are skipped with a clear message elsewhere. The same goes for PostgreSQL's
server programs (Debian's ``postgresql``; ``make postgres`` installs it), which the tests of the
catalog on PostgreSQL run as a private cluster for the session (tests/pg_cluster.py).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import missing
from tests.pg_cluster import INSTALL, PostgresCluster, find_bindir

ROOT = Path(__file__).resolve().parents[1]
VECTOR_STORES = ["faiss", "milvus"]
CATALOG_DATABASES = ["sqlite", "postgresql"]


def data_dir() -> Path:
    return Path(os.environ.get("FACESEARCH_DATA", ROOT.parent / "shared" / "data")).resolve()


@pytest.fixture(scope="session")
def shared_data() -> Path:
    path = data_dir()
    if not (path / "face_recognition_examples").is_dir():
        missing(f"real face photos not found at {path} (set FACESEARCH_DATA)")
    return path


EXAMPLES_COLLECTION = "examples"


@pytest.fixture(scope="session")
def example_inputs(tmp_path_factory: pytest.TempPathFactory, shared_data: Path) -> list[Path]:
    """20 real photos (17 portraits, 3 group photos), a truncated JPEG and a copy of one portrait:
    what every ingest engine is compared on (tests/test_ray_ingest.py, tests/test_batched_ingest.py)."""
    import shutil

    examples = shared_data / "face_recognition_examples"
    extra = tmp_path_factory.mktemp("extra")
    obama = examples / "by_identity" / "barack_obama" / "obama.jpg"
    (extra / "truncated.jpg").write_bytes(obama.read_bytes()[:5000])
    shutil.copy(obama, extra / "same_bytes_as_obama.jpg")
    return [examples / "by_identity", examples / "multi_face", extra]


@pytest.fixture(scope="session")
def local_examples(tmp_path_factory: pytest.TempPathFactory, example_inputs: list[Path]) -> tuple[Path, Any]:
    """The examples indexed by the local engine in this process (flip-only recipe): the reference."""
    from facesearch import Library

    folder = tmp_path_factory.mktemp("local") / "lib"
    with Library.open(folder, jitter=0) as lib:
        report = lib.index(example_inputs, collection=EXAMPLES_COLLECTION, workers=1)
        assert len(lib.vector_index) == lib.catalog.face_count()
    return folder, report


@pytest.fixture(scope="module", params=VECTOR_STORES)
def vector_store(request: pytest.FixtureRequest) -> str:
    """Each vector store engine in turn: tests that search, remove or filter run on every one."""
    return request.param


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresCluster]:
    """A private PostgreSQL cluster for the whole run (started on first use, stopped at the end).

    Its password reaches libpq through ``$PGPASSFILE``, set for this process and the ones it starts
    (ingest workers, concurrent writers), exactly as an operator would set it up.
    """
    bindir = find_bindir()
    if bindir is None:
        missing(f"PostgreSQL's server programs (initdb, pg_ctl) not found: {INSTALL}")
    try:
        import psycopg  # noqa: F401
    except ImportError:
        missing("psycopg is not installed: pip install -e '.[postgres]'")
    cluster = PostgresCluster(bindir)
    cluster.start()
    previous = os.environ.get("PGPASSFILE")
    os.environ["PGPASSFILE"] = str(cluster.passfile)
    try:
        yield cluster
    finally:
        if previous is None:
            os.environ.pop("PGPASSFILE", None)
        else:
            os.environ["PGPASSFILE"] = previous
        cluster.stop()


@pytest.fixture
def postgres_url(postgres: PostgresCluster) -> str:
    """A fresh, empty database of the session's cluster, as a catalog URL (no password in it)."""
    return postgres.create_database()


@pytest.fixture(params=CATALOG_DATABASES)
def catalog_target(request: pytest.FixtureRequest, tmp_path: Path) -> str | Path:
    """Where a new catalog goes, on each database in turn: a SQLite file, then a PostgreSQL URL."""
    if request.param == "sqlite":
        return tmp_path / "catalog.sqlite"
    return request.getfixturevalue("postgres_url")
