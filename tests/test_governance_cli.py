"""The accountability commands end to end: users, audited searches, tampering caught, opt-out, erasure."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from facesearch import Library
from tests.helpers import run_cli

if TYPE_CHECKING:
    from click.testing import Result


def cli(*args: str) -> Result:
    """``facesearch ARGS`` in this process (the console script itself is run once, below)."""
    return run_cli(*args)


def console_script() -> list[str]:
    """The installed ``facesearch`` command beside this Python, else the module run as a script."""
    script = Path(sys.executable).parent / "facesearch"
    return [str(script)] if script.is_file() else [sys.executable, "-m", "facesearch.cli"]


def test_cli_accountability_round_trip(tmp_path: Path, shared_data: Path) -> None:
    people = shared_data / "face_recognition_examples" / "by_identity"
    folder = tmp_path / "lib"
    with Library.open(folder, jitter=0) as lib:
        lib.index([people / "barack_obama", people / "joe_biden"], workers=1)
    lib_opt = ["-l", str(folder)]

    added = cli("users", "add", "ana", "--role", "investigator", "--json", *lib_opt)
    key = json.loads(added.stdout)["api_key"]
    assert added.exit_code == 0 and key.startswith("fs_")
    assert key.encode() not in (folder / "catalog.sqlite").read_bytes()
    assert json.loads(cli("users", "list", "--json", *lib_opt).stdout) == [
        {"name": "ana", "role": "investigator", "revoked": False}
    ]

    probe = str(people / "joe_biden" / "biden.jpg")
    missing = cli("search", probe, *lib_opt)
    assert missing.exit_code == 2 and "--case" in missing.stderr
    found = cli("search", probe, "--case", "C-1", "--purpose", "verify a tip", "--json", *lib_opt)
    assert found.exit_code == 0, found.stderr
    entries = json.loads(cli("audit", "show", "--action", "search", "--json", *lib_opt).stdout)
    assert entries[-1]["case_id"] == "C-1" and entries[-1]["purpose"] == "verify a tip"
    assert json.loads(found.stdout)["probe_sha256"] == entries[-1]["details"]["probe_sha256"]
    assert cli("audit", "verify", *lib_opt).exit_code == 0

    exported = tmp_path / "audit.jsonl"
    assert cli("audit", "export", "-o", str(exported), *lib_opt).exit_code == 0
    lines = [json.loads(line) for line in exported.read_text().splitlines()]
    assert [e["action"] for e in lines][:2] == ["ingest", "user_add"] and all("hash" in e for e in lines)
    assert json.loads(cli("audit", "verify", "--file", str(exported), "--json").stdout)["ok"] is True
    edited = tmp_path / "edited.jsonl"
    edited.write_text(exported.read_text().replace('"C-1"', '"C-7"'))
    offline = cli("audit", "verify", "--file", str(edited), "--json")
    assert offline.exit_code == 1 and json.loads(offline.stdout)["ok"] is False

    removed = json.loads(cli("optout", "add", str(people / "barack_obama" / "obama.jpg"), "--json", *lib_opt).stdout)
    assert len(removed["face_ids"]) == 6  # every indexed photo of him: obama, obama1-3, two partial faces
    again = json.loads(
        cli(
            "search",
            str(people / "barack_obama" / "obama2.jpg"),
            "--case",
            "C-2",
            "--purpose",
            "x y z",
            "--json",
            *lib_opt,
        ).stdout
    )
    assert all(not f["candidates"] for f in again["faces"])

    erased = json.loads(
        cli(
            "erase", "--source", str(people / "joe_biden" / "biden2.jpg"), "--reason", "request 9", "--json", *lib_opt
        ).stdout
    )
    assert erased["counts"]["images"] == 1

    # Someone edits the log behind facesearch's back: verify says so and exits 1.
    with sqlite3.connect(folder / "catalog.sqlite") as db:
        db.execute("DROP TRIGGER IF EXISTS audit_log_no_update")
        triggers = [r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'trigger'")]
        for name in triggers:
            db.execute(f"DROP TRIGGER {name}")
        db.execute("UPDATE audit_log SET case_id = 'C-999' WHERE case_id = 'C-1'")
    tampered = cli("audit", "verify", "--json", *lib_opt)
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
