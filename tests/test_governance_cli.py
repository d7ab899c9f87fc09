"""The accountability commands end to end: users, audited searches, tampering caught, opt-out, erasure.

The round trip is split into steps that fail separately, each on its own copy of one indexed library.
"""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from facesearch import Library
from tests.conftest import new_engine_library
from tests.helpers import copy_library, run_cli

if TYPE_CHECKING:
    from click.testing import Result


def cli(*args: str) -> Result:
    """``facesearch ARGS`` in this process (the console script itself is run once, below)."""
    return run_cli(*args)


def console_script() -> list[str]:
    """The installed ``facesearch`` command beside this Python, else the module run as a script."""
    script = Path(sys.executable).parent / "facesearch"
    return [str(script)] if script.is_file() else [sys.executable, "-m", "facesearch.cli"]


@pytest.fixture(scope="module")
def people(shared_data: Path) -> Path:
    return shared_data / "face_recognition_examples" / "by_identity"


@pytest.fixture(scope="module")
def indexed(tmp_path_factory: pytest.TempPathFactory, people: Path) -> Path:
    """Every photo of Obama and Biden, indexed once (closed): each step below works on a copy of its own,
    so that the accountability round trip fails step by step rather than all at once. No jitter, and HOG without
    upsampling (``new_engine_library``; issue 11, the suite's speed): every search detects a full-size probe."""
    folder = new_engine_library(tmp_path_factory.mktemp("accountability") / "lib")
    with Library.open(folder) as lib:
        lib.index([people / "barack_obama", people / "joe_biden"], workers=1)
    return folder


@pytest.fixture
def folder(indexed: Path, tmp_path: Path) -> Path:
    return copy_library(indexed, tmp_path / "lib")


def search_as_case(folder: Path, probe: Path, case: str = "C-1") -> dict:
    found = cli("search", str(probe), "--case", case, "--purpose", "verify a tip", "--json", "-l", str(folder))
    assert found.exit_code == 0, found.output
    return json.loads(found.stdout)


def test_users_add_shows_the_key_once_and_stores_only_its_hash(folder: Path) -> None:
    added = cli("users", "add", "ana", "--role", "investigator", "--json", "-l", str(folder))
    key = json.loads(added.stdout)["api_key"]
    assert added.exit_code == 0 and key.startswith("fs_")
    assert key.encode() not in (folder / "catalog.sqlite").read_bytes()
    assert json.loads(cli("users", "list", "--json", "-l", str(folder)).stdout) == [
        {"name": "ana", "role": "investigator", "revoked": False}
    ]


def test_a_search_needs_a_case_and_is_audited(folder: Path, people: Path) -> None:
    probe = people / "joe_biden" / "biden.jpg"
    missing = cli("search", str(probe), "-l", str(folder))
    assert missing.exit_code == 2 and "--case" in missing.stderr
    found = search_as_case(folder, probe)
    entries = json.loads(cli("audit", "show", "--action", "search", "--json", "-l", str(folder)).stdout)
    assert entries[-1]["case_id"] == "C-1" and entries[-1]["purpose"] == "verify a tip"
    assert found["probe_sha256"] == entries[-1]["details"]["probe_sha256"]
    assert cli("audit", "verify", "-l", str(folder)).exit_code == 0


def test_an_exported_log_verifies_offline_and_an_edit_is_caught(folder: Path, people: Path, tmp_path: Path) -> None:
    assert cli("users", "add", "ana", "--role", "investigator", "-l", str(folder)).exit_code == 0
    search_as_case(folder, people / "joe_biden" / "biden.jpg")
    exported = tmp_path / "audit.jsonl"
    assert cli("audit", "export", "-o", str(exported), "-l", str(folder)).exit_code == 0
    lines = [json.loads(line) for line in exported.read_text().splitlines()]
    actions = [e["action"] for e in lines]  # a new library creates "default"; an ingest opens and closes
    assert actions[:4] == ["collection_create", "ingest_begin", "ingest", "user_add"] and all(
        "hash" in e for e in lines
    )
    assert json.loads(cli("audit", "verify", "--file", str(exported), "--json").stdout)["ok"] is True
    edited = tmp_path / "edited.jsonl"
    edited.write_text(exported.read_text().replace('"C-1"', '"C-7"'))
    offline = cli("audit", "verify", "--file", str(edited), "--json")
    assert offline.exit_code == 1 and json.loads(offline.stdout)["ok"] is False


def test_an_optout_removes_every_photo_of_the_person_and_later_searches_show_nobody(folder: Path, people: Path) -> None:
    # Issue 12 §1 (changed): a destructive --json run needs --yes (it asks otherwise).
    removed = json.loads(
        cli("optout", "add", str(people / "barack_obama" / "obama.jpg"), "--yes", "--json", "-l", str(folder)).stdout
    )
    assert len(removed["face_ids"]) == 6  # every indexed photo of him: obama, obama1-3, two partial faces
    again = search_as_case(folder, people / "barack_obama" / "obama2.jpg", case="C-2")
    assert all(not f["candidates"] for f in again["faces"])


def answering(answer: str, *args: str) -> Result:
    """``facesearch ARGS`` with ``answer`` typed at its prompt."""
    from typer.testing import CliRunner

    from facesearch.cli import app

    return CliRunner().invoke(app, list(args), input=answer)


def face_count(folder: Path) -> int:
    with sqlite3.connect(folder / "catalog.sqlite") as db:
        return int(db.execute("SELECT count(*) FROM faces").fetchone()[0])


def optout_rows(folder: Path) -> int:
    with sqlite3.connect(folder / "catalog.sqlite") as db:
        return int(db.execute("SELECT count(*) FROM optouts").fetchone()[0])


def test_optout_dry_run_lists_what_would_go_and_changes_nothing(folder: Path, people: Path) -> None:
    """Issue 12 §1: an opt-out shows what it will remove before it does (--dry-run changes nothing)."""
    obama = people / "barack_obama"
    faces = face_count(folder)
    shown = cli("optout", "add", str(obama / "obama.jpg"), str(obama / "obama2.jpg"), "--dry-run", "-l", str(folder))
    assert shown.exit_code == 0, shown.output
    assert "would remove 6 faces" in shown.stdout and "nothing was changed" in shown.stdout
    assert shown.stdout.count("the photo") == 6  # each of his 6 photos holds only him: the photo goes
    listed = cli("optout", "add", str(obama / "obama.jpg"), "--dry-run", "--json", "-l", str(folder))
    preview = json.loads(listed.stdout)
    assert preview["dry_run"] is True and len(preview["face_ids"]) == 6 and len(preview["photos_sha256"]) == 1
    assert {Path(i["source"]).parent.name for i in preview["images"]} == {"barack_obama"}
    assert face_count(folder) == faces and optout_rows(folder) == 0


def test_optout_asks_first_and_a_no_changes_nothing(folder: Path, people: Path) -> None:
    """Issue 12 §1: without --yes the opt-out asks; answering no removes nothing and registers nothing."""
    faces = face_count(folder)
    refused = answering("n\n", "optout", "add", str(people / "barack_obama" / "obama.jpg"), "-l", str(folder))
    assert refused.exit_code == 1 and "remove these 6 faces?" in refused.stdout
    assert face_count(folder) == faces and optout_rows(folder) == 0
    agreed = answering("y\n", "optout", "add", str(people / "barack_obama" / "obama.jpg"), "-l", str(folder))
    assert agreed.exit_code == 0, agreed.output
    assert face_count(folder) == faces - 6 and optout_rows(folder) == 1
    json_without_yes = cli("optout", "add", str(people / "joe_biden" / "biden.jpg"), "--json", "-l", str(folder))
    assert json_without_yes.exit_code == 2 and "--yes" in json_without_yes.stderr and optout_rows(folder) == 1


def test_optout_with_several_photos_and_yes(folder: Path, people: Path) -> None:
    """Issue 12 §1: an opt-out takes several photos of the person (one opt-out row, one embedding each)."""
    obama = people / "barack_obama"
    done = cli(
        "optout", "add", str(obama / "obama.jpg"), str(obama / "obama3.jpg"), "--yes", "--json", "-l", str(folder)
    )
    receipt = json.loads(done.stdout)
    assert done.exit_code == 0 and len(receipt["optout_ids"]) == 2 and len(receipt["photos_sha256"]) == 2
    assert len(receipt["face_ids"]) == 6 and receipt["warning"] is None
    assert optout_rows(folder) == 2
    assert len(json.loads(cli("optout", "list", "--json", "-l", str(folder)).stdout)) == 2


def test_optout_warns_when_it_would_remove_nothing(folder: Path, people: Path) -> None:
    """Issue 12 §1: an opt-out that matches no indexed face says so (and still keeps the person out)."""
    photo = str(people / "kit_harington" / "john1.jpg")  # never indexed
    shown = cli("optout", "add", photo, "--dry-run", "-l", str(folder))
    assert shown.exit_code == 0 and "warning" in shown.stderr and "nothing will be removed" in shown.stderr
    done = cli("optout", "add", photo, "--yes", "-l", str(folder))
    assert done.exit_code == 0 and "nothing will be removed" in done.stderr and optout_rows(folder) == 1


def test_erase_by_source(folder: Path, people: Path) -> None:
    source = str(people / "joe_biden" / "biden2.jpg")
    # --yes: off a terminal an erasure is not confirmed otherwise (issue 12 §7)
    erased = json.loads(
        cli("erase", "--source", source, "--reason", "request 9", "--yes", "--json", "-l", str(folder)).stdout
    )
    assert erased["counts"]["images"] == 1


def test_an_edit_of_the_log_behind_facesearchs_back_is_caught(folder: Path, people: Path) -> None:
    search_as_case(folder, people / "joe_biden" / "biden.jpg")
    assert cli("audit", "verify", "--json", "-l", str(folder)).exit_code == 0
    # Someone edits the log behind facesearch's back: verify says so and exits 1.
    with sqlite3.connect(folder / "catalog.sqlite") as db:
        db.execute("DROP TRIGGER IF EXISTS audit_log_no_update")
        triggers = [r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'trigger'")]
        for name in triggers:
            db.execute(f"DROP TRIGGER {name}")
        db.execute("UPDATE audit_log SET case_id = 'C-999' WHERE case_id = 'C-1'")
    tampered = cli("audit", "verify", "--json", "-l", str(folder))
    assert tampered.exit_code == 1 and json.loads(tampered.stdout)["ok"] is False


@pytest.mark.parametrize("role", ["admin", "nobody"])
def test_users_add_validates_the_role(tmp_path: Path, role: str) -> None:
    """A real process through the console script: its exit status, and a JSON error on stdout."""
    command = [*console_script(), "users", "add", "bo", "--role", role, "--json", "-l", str(tmp_path / "lib")]
    out = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert out.returncode == (0 if role == "admin" else 2), out.stderr
    answer = json.loads(out.stdout)
    assert answer["api_key"].startswith("fs_") if role == "admin" else answer["error"]["code"] == "unknown_role"


def test_index_engine_is_chosen_at_creation_and_refused_afterwards(tmp_path: Path, shared_data: Path) -> None:
    photo = shared_data / "face_recognition_examples" / "by_identity" / "joe_biden" / "biden.jpg"
    folder = tmp_path / "lib"
    bad = cli("index", str(photo), "-l", str(folder), "--index-engine", "IVF64,NoSuchCode", "--jitter", "0", "--json")
    assert bad.exit_code != 0 and "unknown index engine" in bad.stdout + bad.stderr
    assert not (folder / "config.json").exists()  # nothing written for a refused engine

    made = cli("index", str(photo), "-l", str(folder), "--index-engine", "IVF64,SQfp16", "--jitter", "0", "--json")
    assert made.exit_code == 0, made.stderr
    assert json.loads((folder / "config.json").read_text())["index_engine"] == "IVF64,SQfp16"
    with Library.open(folder) as lib:
        assert lib.vector_index.engine == "Flat" and len(lib.vector_index) == 1  # exact until it can train

    again = cli("index", str(photo), "-l", str(folder), "--index-engine", "Flat", "--jitter", "0")
    said = " ".join((again.stdout + again.stderr).split())  # the console wraps long lines
    assert again.exit_code != 0 and "--jitter, --index-engine can only be set when a library is created" in said
