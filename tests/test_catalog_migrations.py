"""The catalog's schema under Alembic: new databases, catalogs made before migrations, and catalog URLs.

The migrated schema must be exactly what the models declare, on SQLite and PostgreSQL (so the
reviewed initial revision cannot drift from them), and a library made the old way (``create_all``,
no ``alembic_version``) must open with every row kept, gain what it lacks, and be stamped.
"""

from __future__ import annotations

import fcntl
import multiprocessing
import os
import sqlite3
from pathlib import Path

import numpy as np
import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import create_engine, inspect, text

from facesearch.errors import FaceSearchError, LibraryError
from facesearch.governance import AuditLog
from facesearch.store.catalog import Catalog
from facesearch.store.database import locate, server_catalog_url
from facesearch.store.governance_schema import governance_tables
from facesearch.store.migrate import HEAD_REVISION, alembic_config, catalog_metadata, head_revision, scripts
from facesearch.store.schema import Base
from tests.helpers import missing
from tests.process_helpers import wait_for

SQLITE_TRIGGERS = {"audit_log_no_update", "audit_log_no_delete", "audit_head_no_delete"}


def triggers(catalog: Catalog) -> set[str]:
    query = (
        "SELECT name FROM sqlite_master WHERE type = 'trigger'"
        if catalog.is_sqlite
        else "SELECT tgname FROM pg_trigger WHERE NOT tgisinternal"
    )
    with catalog.engine.connect() as conn:
        return set(conn.exec_driver_sql(query).scalars())


def stamped(catalog: Catalog) -> list[str]:
    with catalog.engine.connect() as conn:
        return list(conn.exec_driver_sql("SELECT version_num FROM alembic_version").scalars())


def test_the_head_revision_constant_names_the_newest_script() -> None:
    assert scripts().get_heads() == [HEAD_REVISION] == [head_revision()]  # one line of history, no branches


def test_a_new_catalog_is_migrated_to_exactly_the_models(catalog_target: str | Path) -> None:
    catalog = Catalog(catalog_target)
    try:
        assert catalog.schema_change == "created" and stamped(catalog) == [head_revision()]
        with catalog.engine.connect() as conn:
            differences = compare_metadata(MigrationContext.configure(conn), catalog_metadata())
        assert differences == []
        expected = (
            SQLITE_TRIGGERS
            if catalog.is_sqlite
            else SQLITE_TRIGGERS | {"audit_log_no_truncate", "audit_head_no_truncate"}
        )
        assert triggers(catalog) == expected
    finally:
        catalog.close()


def test_downgrade_removes_everything_and_upgrade_brings_it_back(catalog_target: str | Path) -> None:
    catalog = Catalog(catalog_target)
    try:
        with catalog.engine.begin() as conn:
            command.downgrade(alembic_config(conn), "base")
        assert set(inspect(catalog.engine).get_table_names()) == {"alembic_version"} and triggers(catalog) == set()
    finally:
        catalog.close()
    again = Catalog(catalog_target)
    assert again.schema_change == "created"  # alembic_version is still there, empty
    assert triggers(again) and AuditLog(again).append("x", "test").seq == 1
    again.close()


def test_a_catalog_at_revision_0001_is_upgraded_keeping_its_rows(catalog_target: str | Path) -> None:
    """0001 -> 0002 on a catalog holding faces: the same rows after, ids 64-bit on PostgreSQL."""
    from facesearch.models.embed.info import ModelInfo
    from facesearch.store.catalog import NewFace, NewImage

    catalog = Catalog(catalog_target)
    info = ModelInfo(key="m", name="m", version="1", source="s", licence="l", dim=4, weights_sha256="ab")
    model, collection = catalog.ensure_model(info), catalog.collection_id("c")
    image = NewImage("ab" * 32, "/a.jpg", "file", None, {}, "JPEG", 1, 1, 1, None)
    face = NewFace(0, (0, 0, 1, 1), [[0.0, 0.0]], 1.0, 1.0, np.ones(4, np.float32), b"thumb")
    _, face_ids = catalog.add_image(collection, model, image, [face])
    try:
        with catalog.engine.begin() as conn:
            command.downgrade(alembic_config(conn), "0001")
        kinds = {c["name"]: type(c["type"]).__name__ for c in inspect(catalog.engine).get_columns("faces")}
        assert kinds["id"] == "INTEGER" and kinds["image_id"] == "INTEGER"
    finally:
        catalog.close()
    again = Catalog(catalog_target)
    try:
        assert again.schema_change == "upgraded" and stamped(again) == [head_revision()]
        kinds = {c["name"]: type(c["type"]).__name__ for c in inspect(again.engine).get_columns("faces")}
        assert kinds["id"] == kinds["image_id"] == ("INTEGER" if again.is_sqlite else "BIGINT")
        assert again.face_ids_in_collection(collection).tolist() == face_ids
        np.testing.assert_array_equal(again.embeddings_of(np.asarray(face_ids)), [face.embedding])
        _, more = again.add_image(
            collection, model, NewImage("cd" * 32, "/b.jpg", "file", None, {}, "JPEG", 1, 1, 1, None), [face]
        )
        assert more[0] > face_ids[0]  # the id sequence goes on where it was
    finally:
        again.close()


def _old_style_catalog(path: Path, with_governance: bool) -> None:
    """A catalog as facesearch made it before migrations: ``create_all``, then rows."""
    engine = create_engine(f"sqlite:///{path}")
    tables = [t for t in Base.metadata.sorted_tables if with_governance or t not in governance_tables()]
    Base.metadata.create_all(engine, tables=tables)
    with engine.begin() as conn:
        conn.exec_driver_sql(
            "INSERT INTO models (id, key, name, version, source, licence, dim, weights_sha256, created_at) "
            "VALUES (1, 'm', 'm', '1', 's', 'l', 4, 'ab', '2024-01-01 00:00:00')"
        )
        conn.exec_driver_sql(
            "INSERT INTO collections (id, name, settings, created_at) VALUES (1, 'old', '{}', '2024-01-01')"
        )
        conn.exec_driver_sql(
            "INSERT INTO images (id, collection_id, sha256, source, source_kind, meta, format, width, height, "
            "size_bytes, face_count, ingested_at) VALUES (1, 1, 'aa', '/old.jpg', 'file', '{}', 'JPEG', 1, 1, 1, 1, "
            "'2024-01-01')"
        )
        conn.execute(
            text(
                "INSERT INTO faces (id, image_id, face_index, left, top, width, height, landmarks, det_score, "
                "quality, model_id, embedding, thumbnail) VALUES (1, 1, 0, 0, 0, 1, 1, '[]', 1, 1, 1, :e, :t)"
            ),
            {"e": np.ones(4, np.float32).tobytes(), "t": b"thumb"},
        )
    engine.dispose()


@pytest.mark.parametrize("with_governance", [False, True], ids=["before-governance", "with-governance"])
def test_an_old_style_sqlite_catalog_is_adopted_keeping_its_rows(tmp_path: Path, with_governance: bool) -> None:
    path = tmp_path / "catalog.sqlite"
    _old_style_catalog(path, with_governance)
    with sqlite3.connect(path) as con:
        assert "alembic_version" not in {r[0] for r in con.execute("SELECT name FROM sqlite_master")}

    catalog = Catalog(path)
    assert catalog.schema_change == "adopted" and stamped(catalog) == [head_revision()]
    assert catalog.image_count() == 1 and catalog.known_sources(1) == {"/old.jpg"}
    assert [c.name for c in catalog.collections()] == ["old"] and catalog.models()[0].key == "m"
    assert catalog.embeddings_of(np.asarray([1])).tolist() == [[1.0, 1.0, 1.0, 1.0]]
    assert {t.name for t in governance_tables()} <= set(inspect(catalog.engine).get_table_names())
    assert triggers(catalog) == SQLITE_TRIGGERS
    assert AuditLog(catalog).append("admin", "test").seq == 1 and AuditLog(catalog).verify().ok
    catalog.close()
    reopened = Catalog(path)
    assert reopened.schema_change == "current" and reopened.image_count() == 1
    reopened.close()


def test_a_catalog_from_a_newer_facesearch_is_refused_untouched(tmp_path: Path) -> None:
    path = tmp_path / "catalog.sqlite"
    Catalog(path).close()
    with sqlite3.connect(path) as con:
        con.execute("UPDATE alembic_version SET version_num = '9999'")
    with pytest.raises(LibraryError, match="newer facesearch") as caught:
        Catalog(path)
    assert caught.value.code == "catalog_too_new"
    with sqlite3.connect(path) as con:
        assert con.execute("SELECT version_num FROM alembic_version").fetchall() == [("9999",)]


def _open_once(target: str, barrier: object, results: object) -> None:
    barrier.wait()  # type: ignore[attr-defined]
    catalog = Catalog(target)
    results.put(catalog.schema_change)  # type: ignore[attr-defined]
    catalog.close()


def test_two_processes_creating_one_catalog_at_once_both_succeed(catalog_target: str | Path) -> None:
    target = str(catalog_target) if isinstance(catalog_target, Path) else catalog_target
    ctx = multiprocessing.get_context("spawn")
    barrier, results = ctx.Barrier(2), ctx.Queue()
    workers = [ctx.Process(target=_open_once, args=(target, barrier, results)) for _ in range(2)]
    for p in workers:
        p.start()
    for p in workers:
        p.join(90)
    assert [p.exitcode for p in workers] == [0, 0]
    assert sorted(results.get(timeout=5) for _ in workers) == ["created", "current"]


def _blocked_on(lock: Path) -> bool:
    """Whether some process waits for an flock on ``lock`` (a "->" line of /proc/locks names its inode)."""
    inode = os.stat(lock).st_ino
    lines = Path("/proc/locks").read_text().splitlines()
    return any("->" in line and f":{inode} " in line for line in lines)


def _open_and_report(target: str, results: object) -> None:
    catalog = Catalog(target)
    results.put(catalog.schema_change)  # type: ignore[attr-defined]
    catalog.close()


def test_an_open_waits_while_another_process_creates_or_migrates_the_sqlite_catalog(tmp_path: Path) -> None:
    """The lock beside a SQLite catalog: an opener waits for it (seen in /proc/locks, not guessed by a
    sleep) before touching the database, then opens what the other process made."""
    if not Path("/proc/locks").exists():
        missing("needs Linux's /proc/locks to see a process waiting for a lock")
    path = tmp_path / "catalog.sqlite"
    lock = path.with_name(path.name + ".lock")
    ctx = multiprocessing.get_context("spawn")
    results = ctx.Queue()
    with lock.open("ab") as held:
        fcntl.flock(held, fcntl.LOCK_EX)  # what a process creating or migrating the catalog holds
        opener = ctx.Process(target=_open_and_report, args=(str(path), results))
        opener.start()
        wait_for(lambda: _blocked_on(lock), "the opener to wait for the lock", timeout=120)
        assert not path.exists()  # it has not touched the database
        fcntl.flock(held, fcntl.LOCK_UN)
    opener.join(120)
    assert opener.exitcode == 0 and results.get(timeout=5) == "created"


@pytest.mark.parametrize(
    ("url", "words"),
    [
        ("postgresql+psycopg://ana:secret@db:5432/faces", "must not contain a password"),
        ("postgresql+psycopg://ana:@db/faces", "must not contain a password"),
        ("postgresql+psycopg://ana@db/faces?password=secret", "must not contain a password"),
        ("postgresql+psycopg://ana@db/faces?sslmode=verify-full&sslpassword=x", "must not contain a password"),
        ("postgresql+psycopg2://ana@db/faces", "psycopg 3"),
        ("postgresql+asyncpg://ana@db/faces", "psycopg 3"),
        ("mysql://ana@db/faces", "unsupported catalog database"),
        ("postgresql+psycopg://ana@db", "must name a database"),
        ("sqlite:///:memory:", "must name a file"),
        ("bad url://x", "not a database URL"),
    ],
)
def test_catalog_urls_that_are_refused(url: str, words: str) -> None:
    with pytest.raises(FaceSearchError, match=words) as caught:
        locate(url)
    assert caught.value.code == "bad_request"


def test_catalog_urls_are_normalised_to_psycopg() -> None:
    assert locate("postgresql://ana@db:5432/faces").render() == "postgresql+psycopg://ana@db:5432/faces"
    assert server_catalog_url("postgresql+psycopg://ana@db/faces?sslmode=require").endswith("?sslmode=require")
    assert locate("/x/catalog.sqlite").path == Path("/x/catalog.sqlite")
    with pytest.raises(FaceSearchError, match="catalog.sqlite in its folder"):
        server_catalog_url("sqlite:////x/catalog.sqlite")
    with pytest.raises(FaceSearchError, match="not a database URL"):
        server_catalog_url("/x/catalog.sqlite")


def test_a_missing_driver_is_named_with_its_install_command(monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "psycopg" else real(name, *a))
    with pytest.raises(FaceSearchError, match=r"facesearch\[postgres\]") as caught:
        locate("postgresql+psycopg://ana@db/faces")
    assert caught.value.code == "postgres_missing"


def test_an_unreachable_server_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(LibraryError, match="cannot open the catalog postgresql") as caught:
        Catalog(f"postgresql+psycopg://nobody@127.0.0.1:{_closed_port()}/faces")
    assert caught.value.code == "catalog_unavailable"


def _closed_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])  # closed again once this returns


def test_a_catalog_at_revision_0005_gains_watches_keeping_its_cases(catalog_target: str | Path) -> None:
    """Issue 13 (watchlists): 0005 -> 0006 on a catalog holding a case adds ``watches``, ``alerts`` and
    ``alert_marks``; the case is kept and a watch can name it."""
    from facesearch.governance.cases import create_case, get_case
    from facesearch.store.governance_schema import WatchRow
    from facesearch.store.schema import utcnow

    catalog = Catalog(catalog_target)
    case = create_case(catalog, "C-9", "find the person who robbed the bakery", actor="op")
    try:
        with catalog.engine.begin() as conn:
            command.downgrade(alembic_config(conn), "0005")
        assert not {"watches", "alerts", "alert_marks"} & set(inspect(catalog.engine).get_table_names())
    finally:
        catalog.close()
    again = Catalog(catalog_target)
    try:
        assert again.schema_change == "upgraded" and stamped(again) == [head_revision()]
        assert {"watches", "alerts", "alert_marks"} <= set(inspect(again.engine).get_table_names())
        assert get_case(again, "c-9") == case
        with again.session() as s, s.begin():
            s.add(
                WatchRow(
                    case_pk=1,
                    model_key="m",
                    dim=4,
                    embeddings=b"\0" * 16,
                    expires_at=utcnow(),
                    created_by="op",
                    audit_seq=case.audit_seq,
                )
            )
        with again.engine.connect() as conn:
            assert conn.exec_driver_sql("SELECT case_pk, model_key FROM watches").all() == [(1, "m")]
    finally:
        again.close()


def test_a_catalog_at_revision_0006_gains_people_keeping_its_watches(catalog_target: str | Path) -> None:
    """Issue 14 (people): 0006 -> 0007 adds ``persons``, ``person_faces``, ``person_marks`` and
    ``people_runs``; the rows of 0006's tables are kept, and a person can be stored."""
    from facesearch.governance.cases import create_case, get_case
    from facesearch.store.people_schema import PersonFaceRow, PersonRow

    people = {"persons", "person_faces", "person_marks", "people_runs"}
    catalog = Catalog(catalog_target)
    case = create_case(catalog, "C-7", "find who is in the archive of the club", actor="op")
    try:
        with catalog.engine.begin() as conn:
            command.downgrade(alembic_config(conn), "0006")
        assert not people & set(inspect(catalog.engine).get_table_names())
    finally:
        catalog.close()
    again = Catalog(catalog_target)
    try:
        assert again.schema_change == "upgraded" and stamped(again) == [head_revision()]
        assert people <= set(inspect(again.engine).get_table_names())
        assert get_case(again, "c-7") == case
        with again.session() as s, s.begin():
            s.add(PersonRow(id=1, name="Ann", audit_seq=case.audit_seq))
            s.add(PersonFaceRow(face_id=5, person_id=1, how="manual"))
        with again.engine.connect() as conn:
            assert conn.exec_driver_sql("SELECT p.name, f.how FROM persons p JOIN person_faces f "
                                        "ON f.person_id = p.id").all() == [("Ann", "manual")]  # fmt: skip
    finally:
        again.close()


def test_a_catalog_at_revision_0007_gains_the_id_high_water_mark(catalog_target: str | Path) -> None:
    """0007 -> 0008 adds ``id_high_water``; the faces stay, and from the first photo stored after the upgrade
    an erased photo's ids are never handed out again (SQLite reused them: store/ids.py)."""
    from facesearch.models.embed.info import ModelInfo
    from facesearch.store.catalog import NewFace, NewImage
    from facesearch.store.writer import Deletion

    info = ModelInfo(key="m", name="m", version="1", source="s", licence="l", dim=4, weights_sha256="ab")
    face = NewFace(0, (0, 0, 1, 1), [[0.0, 0.0]], 1.0, 1.0, np.ones(4, np.float32), b"thumb")

    def photo(n: int) -> NewImage:
        return NewImage(f"{n:064x}", f"/{n}.jpg", "file", None, {}, "JPEG", 1, 1, 1, None)

    catalog = Catalog(catalog_target)
    model, collection = catalog.ensure_model(info), catalog.collection_id("c")
    _, kept = catalog.add_image(collection, model, photo(1), [face])
    try:
        with catalog.engine.begin() as conn:
            command.downgrade(alembic_config(conn), "0007")
        assert "id_high_water" not in inspect(catalog.engine).get_table_names()
    finally:
        catalog.close()
    again = Catalog(catalog_target)
    try:
        assert again.schema_change == "upgraded" and stamped(again) == [head_revision()]
        assert again.face_ids_in_collection(collection).tolist() == kept
        newest, newest_faces = again.add_image(collection, model, photo(2), [face, face])
        with again.session() as s, s.begin():
            Deletion(s).images([newest])
        image, faces = again.add_image(collection, model, photo(3), [face])
        assert image > newest and faces[0] > max(newest_faces)
    finally:
        again.close()
