"""Issue 12 §7, "A careless operator loses nothing": each test makes one of the mistakes the issue saw.

Users: names that differ only by case, and the last admin revoked or demoted from the command line.
Deletions: a face id taken for an image id, a typo that matches nothing, a look before deleting.
"""

from __future__ import annotations

import json
import os
import pty
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from alembic import command
from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from facesearch import Library
from facesearch.api.app import create_app
from facesearch.errors import FaceSearchError
from facesearch.governance.audit import AuditLog
from facesearch.governance.deletion_plan import NothingMatched, PlanChanged
from facesearch.governance.erasure import erase, preview_erasure
from facesearch.governance.errors import UserError
from facesearch.governance.users import add_user, get_user, list_users, revoke_user, rotate_key, set_role
from facesearch.store.catalog import Catalog
from facesearch.store.governance_schema import UserRow
from facesearch.store.migrate import alembic_config, head_revision
from facesearch.store.schema import FaceRow, ImageRow
from tests.helpers import cli_ok, copy_library, run_cli
from tests.test_governance_cli import console_script


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


def test_a_catalog_holding_two_spellings_migrates_keeping_both_reachable(catalog_target: str | Path) -> None:
    """Issue 12 §7, migration 0004_users: a catalog with "admin" and "Admin" (made before the rule) opens.

    The deterministic resolution: the oldest keeps the name, the later one is kept with the key
    "admin#<id>", still found by its exact name (to be revoked); no third spelling can be added.
    """
    catalog = Catalog(catalog_target)
    with catalog.engine.begin() as conn:
        command.downgrade(alembic_config(conn), "0002")
    with catalog.engine.begin() as conn:
        for user_id, name in ((1, "admin"), (2, "Admin")):
            conn.exec_driver_sql(
                "INSERT INTO governance_users (id, name, role, key_id, key_hash, created_at, created_by) "
                f"VALUES ({user_id}, '{name}', 'admin', 'k{user_id}', 'h', '2026-01-01 00:00:00', 'test')"
            )
    catalog.close()

    again = Catalog(catalog_target)
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


def test_the_api_changes_roles_under_the_same_last_admin_rule(one_admin: Path) -> None:
    """Issue 12 §7: the role change the CLI has is an API route too (PUT /v1/users/{name}/role), with the same
    rule: the last active admin cannot demote themselves, an investigator cannot promote themselves."""
    with Library.open(one_admin) as lib:
        _, root_key = rotate_key(lib.catalog, "root")
        _, ana_key = rotate_key(lib.catalog, "ana")
    root, ana = ({"Authorization": f"Bearer {k}"} for k in (root_key, ana_key))
    with TestClient(create_app(one_admin, rate_limit_per_minute=0, ingest_workers=1)) as client:
        self_promotion = client.put("/v1/users/ana/role", headers=ana, json={"role": "admin"})
        assert self_promotion.status_code == 403
        last = client.put("/v1/users/root/role", headers=root, json={"role": "auditor"})
        assert (last.status_code, last.json()["error"]["code"]) == (409, "last_admin")
        bad = client.put("/v1/users/ana/role", headers=root, json={"role": "superuser"})
        assert bad.status_code == 422
        promoted = client.put("/v1/users/ANA/role", headers=root, json={"role": "admin"})
        assert promoted.status_code == 200 and promoted.json()["role"] == "admin"
        demoted = client.put("/v1/users/root/role", headers=root, json={"role": "auditor"})  # ana is admin now
        assert demoted.status_code == 200 and demoted.json()["role"] == "auditor"
        roles = {u["name"]: u["role"] for u in client.get("/v1/users", headers=ana).json()["users"]}
    assert roles == {"root": "auditor", "ana": "admin"}


# remove and erase: shown first, confirmed, --dry-run, nothing matched -------------------------------


@pytest.fixture
def gallery(example_gallery: Path, tmp_path: Path) -> Path:
    """A copy of the run's example gallery (16 portraits in "examples", 3 group photos in "groups")."""
    return copy_library(example_gallery, tmp_path / "gallery")


def state(folder: Path) -> tuple[dict, int]:
    """What a deletion would change: image and face counts per collection, vectors, and the audit log's length."""
    with Library.open(folder) as lib:
        stats = lib.stats()
        entries = len(AuditLog(lib.catalog).entries(limit=100_000))
    counts = {c["name"]: (c["images"], c["faces"]) for c in stats["collections"]}
    return {"collections": counts, "vectors": stats["index"]["vectors"], "faces": stats["faces"]}, entries


def face_id_that_is_another_photos_image_id(folder: Path) -> tuple[int, str, str]:
    """A face id F whose photo is not image F, while image F exists: the id the operator misread.

    Returns (F, the path of F's own photo, the path of image F).
    """
    with Library.open(folder) as lib, lib.catalog.session() as s:
        images = dict(s.execute(select(ImageRow.id, ImageRow.source)).all())
        for face_id, image_id in s.execute(select(FaceRow.id, FaceRow.image_id).order_by(FaceRow.id)):
            if face_id != image_id and face_id in images and images[face_id] != images[image_id]:
                return face_id, images[image_id], images[face_id]
    pytest.fail("the gallery has no face id that is another photo's image id")


def test_remove_of_a_face_id_shows_the_other_photo_and_needs_confirmation(gallery: Path) -> None:
    """Issue 12 §7: `remove --image 117` (117 a face id) deleted another person's photo with no confirmation.

    Now the photo that would go is shown (image id, path, faces, collection) and, off a terminal and
    without --yes, nothing is deleted (exit 2); --yes deletes exactly that photo.
    """
    face_id, own_photo, other_photo = face_id_that_is_another_photos_image_id(gallery)
    before = state(gallery)
    asked = run_cli("remove", "--image", str(face_id), "-l", str(gallery))
    assert asked.exit_code == 2, asked.output
    shown = " ".join(asked.stdout.split())
    assert Path(other_photo).name in shown and Path(own_photo).name not in shown
    assert "confirmation_required" in asked.stderr and "--yes" in asked.stderr
    assert state(gallery) == before  # nothing deleted, nothing audited

    removed = run_cli("remove", "--image", str(face_id), "--yes", "--json", "-l", str(gallery))
    assert removed.exit_code == 0, removed.output
    assert json.loads(removed.stdout)["removed_images"] == [face_id]
    assert json.loads(removed.stdout)["sources"] == [other_photo]


def test_dry_run_shows_and_deletes_nothing(gallery: Path) -> None:
    """Issue 12 §7: remove and erase have --dry-run: the plan is shown, exit 0, catalog and index unchanged."""
    before = state(gallery)
    lib = str(gallery)
    dry = run_cli("remove", "--collection", "groups", "--dry-run", "--json", "-l", lib)
    assert dry.exit_code == 0, dry.output
    plan = json.loads(dry.stdout)
    assert plan["dry_run"] is True and plan["collection"] == "groups"
    assert plan["counts"]["images"] == 3 and plan["counts"]["faces"] == before[0]["collections"]["groups"][1]
    assert {Path(i["source"]).parent.name for i in plan["images"]} == {"multi_face"}
    shown = run_cli("erase", "--collection", "examples", "--reason", "request 3", "--dry-run", "-l", lib)
    assert shown.exit_code == 0 and "dry run: nothing was deleted" in shown.stdout, shown.output
    assert "from 16 photos (16 deleted whole)" in " ".join(shown.stdout.split())
    assert state(gallery) == before


def test_remove_and_erase_that_match_nothing_exit_1_without_a_receipt(gallery: Path, tmp_path: Path) -> None:
    """Issue 12 §7: `remove --source x.jpg` and `erase --source /nope.jpg` succeeded when nothing matched
    (erase printed a Python dict and issued a receipt for nothing). Now: exit 1, a message, no receipt."""
    before = state(gallery)
    lib = str(gallery)
    for args in (
        ["remove", "--source", "x.jpg"],
        ["remove", "--image", "999999"],
        ["erase", "--source", "/nope.jpg", "--reason", "request 4"],
        ["erase", "--face", "999999", "--reason", "request 5", "--yes"],
    ):
        result = run_cli(*args, "-l", lib)
        assert result.exit_code == 1, (args, result.output)
        assert "nothing matched" in result.stderr and "receipt" not in result.output and "{" not in result.output
        as_json = run_cli(*args, "--json", "-l", lib)
        assert as_json.exit_code == 1 and json.loads(as_json.stdout)["error"]["code"] == "nothing_matched"
    assert state(gallery) == before  # and no audit entry either


def test_a_confirmed_plan_is_exactly_what_is_deleted(gallery: Path) -> None:
    """Issue 12 §7: the Python API previews (preview_removal, preview_erasure); a deletion given the plan an
    operator confirmed refuses when the library changed since, deleting nothing."""
    with Library.open(gallery) as lib:
        plan = lib.preview_removal(collection="groups")
        assert len(plan.image_ids) == 3 and all(i.collection == "groups" for i in plan.images)
        lib.remove(image_id=plan.image_ids[0])  # someone else removes one of them meanwhile
        faces = lib.stats()["faces"]
        with pytest.raises(PlanChanged):
            lib.remove(collection="groups", expected=plan)
        assert lib.stats()["faces"] == faces
        again = lib.preview_removal(collection="groups")
        assert lib.remove(collection="groups", expected=again).image_ids == again.image_ids
        erasure = preview_erasure(lib, source="/nope.jpg")
        assert erasure.empty and "/nope.jpg" in erasure.asked
        with pytest.raises(NothingMatched):
            erase(lib, source="/nope.jpg", actor="admin", reason="request 6")


def test_an_erasure_through_the_api_that_matches_nothing_is_404(gallery: Path) -> None:
    """Issue 12 §7: POST /v1/erasures that matches nothing is 404 nothing_matched, with no receipt."""
    with Library.open(gallery) as lib:
        _, key = add_user(lib.catalog, "admin-1", "admin")
    before = state(gallery)
    headers = {"Authorization": f"Bearer {key}"}
    with TestClient(create_app(gallery, rate_limit_per_minute=0, ingest_workers=1)) as client:
        nothing = client.post("/v1/erasures", headers=headers, json={"source": "/nope.jpg", "reason": "request 7"})
        assert (nothing.status_code, nothing.json()["error"]["code"]) == (404, "nothing_matched")
        assert "/nope.jpg" in nothing.json()["error"]["message"]
    assert state(gallery) == before


@pytest.mark.parametrize("answer", ["n", "y"])
def test_at_a_terminal_remove_asks_and_only_yes_deletes(gallery: Path, answer: str) -> None:
    """Issue 12 §7: on a terminal (a real pseudo-terminal, the console script in its own process) remove asks;
    "n" keeps the photo (exit 1), "y" removes it (exit 0)."""
    face_id, _, other_photo = face_id_that_is_another_photos_image_id(gallery)
    primary, secondary = pty.openpty()
    try:
        process = subprocess.Popen(
            [*console_script(), "remove", "--image", str(face_id), "-l", str(gallery)],
            stdin=secondary,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        os.write(primary, f"{answer}\n".encode())
        out, errors = process.communicate(timeout=120)
    finally:
        os.close(primary)
        os.close(secondary)
    assert Path(other_photo).name in " ".join(out.split())
    assert "Remove 1 photo(s)" in errors
    with Library.open(gallery) as lib:
        still_there = lib.preview_removal(image_id=face_id).image_ids == [face_id]
    assert (process.returncode, still_there) == ((1, True) if answer == "n" else (0, False)), errors


# a missing path: an error that creates nothing ------------------------------------------------------


def test_index_of_a_typod_path_exits_non_zero_and_creates_no_library(tmp_path: Path, shared_data: Path) -> None:
    """Issue 12 §7: `facesearch index photos/nope --library L` (a typo) exited 0 and created a new library."""
    new = tmp_path / "L"
    typo = tmp_path / "photos" / "nope"
    result = run_cli("index", str(typo), "--library", str(new))
    assert result.exit_code == 2 and "no such file or folder" in result.stderr and "nope" in result.stderr
    assert not new.exists()
    # One good path beside the typo: still nothing (the operator sees the typo before anything is indexed).
    good = shared_data / "face_recognition_examples" / "by_identity" / "joe_biden" / "biden.jpg"
    both = run_cli("index", str(good), str(typo), "--json", "--library", str(new))
    assert both.exit_code == 2 and error_of(both)["code"] == "not_found" and not new.exists()


def test_a_typod_path_changes_nothing_in_an_existing_library(empty_library: Path, tmp_path: Path) -> None:
    """Issue 12 §7: a missing path indexes nothing, not even the new collection it named (Python API too)."""
    nope = tmp_path / "nope.jpg"
    result = run_cli("index", str(nope), "--collection", "typo", "--json", "-l", str(empty_library))
    assert result.exit_code == 2 and error_of(result)["code"] == "not_found"
    manifest = run_cli("index", str(tmp_path / "photos.csv"), "-l", str(empty_library))
    assert manifest.exit_code == 2 and "photos.csv" in manifest.stderr
    with Library.open(empty_library) as lib:
        with pytest.raises(FaceSearchError, match="nope.jpg") as refused:
            lib.index([nope], collection="typo-too")
        assert refused.value.code == "not_found"
        # Only the collection every library is created with (issue 12 §3): neither "typo" nor "typo-too".
        assert [c.name for c in lib.catalog.collections()] == ["default"] and lib.stats()["images"] == 0


def test_commands_that_take_a_photo_refuse_a_missing_one_and_create_nothing(tmp_path: Path, shared_data: Path) -> None:
    """Issue 12 §7: verify and faces (which create a library when there is none), search and optout add."""
    photo = str(shared_data / "face_recognition_examples" / "by_identity" / "joe_biden" / "biden.jpg")
    nope = str(tmp_path / "nope.jpg")
    new = tmp_path / "L"
    case = ["--case", "C-1", "--purpose", "check a typo is refused"]
    for args in (
        ["verify", photo, nope, *case],
        ["faces", nope],
        ["search", nope, *case],
    ):
        result = run_cli(*args, "--json", "-l", str(new))
        assert result.exit_code == 2, (args, result.output)
        assert error_of(result)["code"] == "not_found" and "nope.jpg" in error_of(result)["message"]
        assert not new.exists(), args
    Library.open(new, jitter=0).close()
    refused = run_cli("optout", "add", nope, "--json", "-l", str(new))
    assert refused.exit_code == 2 and "nope.jpg" in error_of(refused)["message"], refused.output
    assert json.loads(cli_ok("optout", "list", "--json", "-l", str(new)).stdout) == []
