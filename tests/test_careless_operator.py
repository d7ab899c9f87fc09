"""Issue 12 §7, "A careless operator loses nothing": each test makes one of the mistakes the issue saw.

Users: names that differ only by case, and the last admin revoked or demoted from the command line.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from alembic import command
from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from facesearch import Library
from facesearch.api.app import create_app
from facesearch.governance.errors import UserError
from facesearch.governance.users import add_user, get_user, list_users, revoke_user, set_role
from facesearch.store.catalog import Catalog
from facesearch.store.governance_schema import UserRow
from facesearch.store.migrate import alembic_config, head_revision
from tests.helpers import cli_ok, run_cli


@pytest.fixture
def empty_library(tmp_path: Path) -> Path:
    folder = tmp_path / "lib"
    Library.open(folder, jitter=0).close()
    return folder


def error_of(result: object) -> dict:
    return json.loads(result.stdout)["error"]  # type: ignore[attr-defined]


# users: one name whatever its case -----------------------------------------------------------------


def test_admin_and_Admin_cannot_both_be_added_from_the_command_line(empty_library: Path) -> None:  # noqa: N802
    """Issue 12 §7: users "Admin" and "admin" coexisted; a second spelling of a name is now refused."""
    lib = str(empty_library)
    cli_ok("users", "add", "Admin", "--role", "admin", "-l", lib)
    for spelling in ("admin", "ADMIN", "ａｄｍｉｎ"):  # the last one in fullwidth letters (NFKC folds it)
        again = run_cli("users", "add", spelling, "--role", "investigator", "--json", "-l", lib)
        if spelling == "ａｄｍｉｎ":
            assert again.exit_code == 2 and error_of(again)["code"] == "bad_name"  # not even a valid name
            continue
        assert again.exit_code == 2 and error_of(again)["code"] == "user_exists", again.output
        assert "'Admin'" in error_of(again)["message"]
    assert [(u["name"], u["role"]) for u in json.loads(cli_ok("users", "list", "--json", "-l", lib).stdout)] == [
        ("Admin", "admin")
    ]


def test_admin_and_Admin_cannot_both_be_added_through_the_api(empty_library: Path) -> None:  # noqa: N802
    """Issue 12 §7: the same through POST /v1/users (409 user_exists); the name is found whatever its case."""
    with Library.open(empty_library) as lib:
        _, key = add_user(lib.catalog, "admin-1", "admin")
    headers = {"Authorization": f"Bearer {key}"}
    with TestClient(create_app(empty_library, rate_limit_per_minute=0, ingest_workers=1)) as client:
        refused = client.post("/v1/users", headers=headers, json={"name": "Admin-1", "role": "investigator"})
        assert (refused.status_code, refused.json()["error"]["code"]) == (409, "user_exists")
        added = client.post("/v1/users", headers=headers, json={"name": "Ana", "role": "investigator"})
        assert added.status_code == 201
        revoked = client.delete("/v1/users/ANA", headers=headers)  # another spelling finds her
        assert revoked.status_code == 200 and revoked.json()["name"] == "Ana" and revoked.json()["active"] is False
        names = [u["name"] for u in client.get("/v1/users", headers=headers).json()["users"]]
    assert sorted(names) == ["Ana", "admin-1"]


def test_the_database_itself_refuses_a_second_spelling(empty_library: Path) -> None:
    """Issue 12 §7: uniqueness holds even for a writer that skips governance (two processes racing)."""
    with Library.open(empty_library) as lib:
        add_user(lib.catalog, "bo", "auditor")
        with pytest.raises(IntegrityError), lib.catalog.session() as s:
            s.add(UserRow(name="BO", name_key="bo", role="admin", key_id="0" * 12, key_hash="x", created_by="t"))
            s.commit()
        with lib.catalog.session() as s:
            assert s.scalars(select(UserRow.name)).all() == ["bo"]


def test_a_catalog_holding_two_spellings_migrates_keeping_both_reachable(tmp_path: Path) -> None:
    """Issue 12 §7, migration 0003_users: a catalog with "admin" and "Admin" (made before the rule) opens.

    The deterministic resolution: the oldest keeps the name, the later one is kept with the key
    "admin#<id>", still found by its exact name (to be revoked); no third spelling can be added.
    """
    path = tmp_path / "catalog.sqlite"
    catalog = Catalog(path)
    with catalog.engine.begin() as conn:
        command.downgrade(alembic_config(conn), "0002")
    with catalog.engine.begin() as conn:
        for user_id, name in ((1, "admin"), (2, "Admin")):
            conn.exec_driver_sql(
                "INSERT INTO governance_users (id, name, role, key_id, key_hash, created_at, created_by) "
                f"VALUES ({user_id}, '{name}', 'admin', 'k{user_id}', 'h', '2026-01-01 00:00:00', 'test')"
            )
    catalog.close()

    again = Catalog(path)
    try:
        assert again.schema_change == "upgraded"
        with again.engine.connect() as conn:
            assert conn.exec_driver_sql("SELECT version_num FROM alembic_version").scalar() == head_revision()
            keys = dict(conn.exec_driver_sql("SELECT name, name_key FROM governance_users").all())
        assert keys == {"admin": "admin", "Admin": "admin#2"}
        assert get_user(again, "Admin").id == 2 and get_user(again, "admin").id == 1
        with pytest.raises(UserError, match="already exists"):
            add_user(again, "ADMIN", "auditor")
        assert revoke_user(again, "Admin").revoked_at is not None  # one admin ("admin") is left
        assert [u.name for u in list_users(again, include_revoked=False)] == ["admin"]
    finally:
        again.close()


# users: the last admin stays ------------------------------------------------------------------------


@pytest.fixture
def one_admin(empty_library: Path) -> Iterator[Path]:
    cli_ok("users", "add", "root", "--role", "admin", "-l", str(empty_library))
    cli_ok("users", "add", "ana", "--role", "investigator", "-l", str(empty_library))
    yield empty_library


def test_the_command_line_cannot_revoke_or_demote_the_last_admin(one_admin: Path) -> None:
    """Issue 12 §7: the CLI let the last admin be revoked (only the API refused); now governance refuses."""
    lib = str(one_admin)
    revoked = run_cli("users", "revoke", "root", "--json", "-l", lib)
    assert revoked.exit_code == 2 and error_of(revoked)["code"] == "last_admin", revoked.output
    demoted = run_cli("users", "role", "ROOT", "--role", "auditor", "--json", "-l", lib)
    assert demoted.exit_code == 2 and error_of(demoted)["code"] == "last_admin", demoted.output
    listed = json.loads(cli_ok("users", "list", "--json", "-l", lib).stdout)
    assert {u["name"]: (u["role"], u["revoked"]) for u in listed} == {
        "root": ("admin", False),
        "ana": ("investigator", False),
    }
    # With a second admin, both changes are allowed (and audited); the survivor is then protected.
    cli_ok("users", "role", "ana", "--role", "admin", "-l", lib)
    cli_ok("users", "role", "root", "--role", "auditor", "-l", lib)
    last = run_cli("users", "revoke", "ana", "--json", "-l", lib)
    assert last.exit_code == 2 and error_of(last)["code"] == "last_admin"
    actions = [e["action"] for e in json.loads(cli_ok("audit", "show", "--json", "-l", lib).stdout)]
    assert actions.count("user_role") == 2


def test_the_last_admin_rule_holds_in_the_python_api(one_admin: Path) -> None:
    """Issue 12 §7: the rule lives in governance, so a caller of the Python API meets it too."""
    with Library.open(one_admin) as lib:
        with pytest.raises(UserError, match="last active admin") as refused:
            revoke_user(lib.catalog, "root")
        assert refused.value.code == "last_admin"
        with pytest.raises(UserError, match="last active admin"):
            set_role(lib.catalog, "root", "ingester")
        assert revoke_user(lib.catalog, "ana").revoked_at is not None  # anyone else may go
        assert get_user(lib.catalog, "root").active
