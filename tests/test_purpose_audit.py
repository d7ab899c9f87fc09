"""Issue 12 §3 and §4 from the command line and the Python API: purposes that say nothing, collections
created by ingest, and an audit log wiped, cut short or rewritten behind the library's back.

Each test performs the attack or the mistake of the issue's "Seen" on a copy of the run's example
gallery (tests/conftest.py): 16 portraits in "examples", 3 group photos in "groups".
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from facesearch import Library
from facesearch.errors import NoCollection
from facesearch.governance import PurposeRequired, SearchPurpose
from facesearch.governance.audit import GENESIS_HASH, canonical_json, entry_hash
from facesearch.governance.purpose import validate_purpose
from tests.conftest import GALLERY_PROBE
from tests.helpers import PURPOSE, cli_ok, copy_library, run_cli

TRIGGERS = ("audit_log_no_update", "audit_log_no_delete", "audit_head_no_delete")


@pytest.fixture
def lib(example_gallery: Path, tmp_path: Path) -> Path:
    return copy_library(example_gallery, tmp_path / "lib")


@pytest.fixture
def probe(shared_data: Path) -> Path:
    return shared_data / "face_recognition_examples" / GALLERY_PROBE


def untriggered(folder: Path) -> sqlite3.Connection:
    """The catalog opened with sqlite3 directly, the append-only triggers dropped: the attacker's tool."""
    con = sqlite3.connect(folder / "catalog.sqlite")
    for name in TRIGGERS:
        con.execute(f"DROP TRIGGER IF EXISTS {name}")
    return con


def verify(folder: Path, *extra: str) -> tuple[int, dict]:
    result = run_cli("audit", "verify", *extra, "--json", "-l", str(folder))
    return result.exit_code, json.loads(result.stdout)


# §4: a log that cannot be wiped quietly ------------------------------------------------------------


def test_a_wiped_audit_log_fails_verification(lib: Path) -> None:
    """Issue 12 §4: with the append-only triggers dropped and every audit row deleted (head included),
    ``audit verify`` said "ok, 0 entries" while the catalog held photos; now it fails, saying why."""
    assert verify(lib)[0] == 0
    with untriggered(lib) as con:
        con.execute("DELETE FROM audit_log")
        con.execute("DELETE FROM audit_head")
    code, body = verify(lib)
    assert code == 1 and body["ok"] is False and body["entries"] == 0
    assert "the audit log is empty, but the catalog holds 19 image rows" in body["problem"]
    words = run_cli("audit", "verify", "-l", str(lib))
    assert words.exit_code == 1 and "TAMPERED" in words.stdout and "empty" in words.stdout


@pytest.mark.parametrize("rewrite_head", [False, True], ids=["head-kept", "head-rewritten"])
def test_a_log_cut_short_fails_verification(lib: Path, rewrite_head: bool) -> None:
    """Issue 12 §4: the last entries deleted (the last ingest's opening entry among them). With the head
    row kept, the head shows it; with the head rewritten to match the shortened chain, the images that
    name the deleted entry show it."""
    with untriggered(lib) as con:
        last = con.execute("SELECT MAX(seq) FROM audit_log").fetchone()[0]
        named = con.execute("SELECT MAX(audit_seq) FROM images").fetchone()[0]
        assert named is not None and named <= last
        cut = last - named + 1  # every entry from the one the group photos name
        con.execute("DELETE FROM audit_log WHERE seq > ?", (last - cut,))
        if rewrite_head:
            seq, digest = con.execute("SELECT seq, hash FROM audit_log ORDER BY seq DESC LIMIT 1").fetchone()
            con.execute("UPDATE audit_head SET seq = ?, hash = ?, count = ?", (seq, digest, seq))
    code, body = verify(lib)
    assert code == 1 and body["ok"] is False and body["first_bad_sequence"] == last - cut + 1
    if rewrite_head:
        assert f"an image row names entry {named}" in body["problem"]
    else:
        assert "missing from the end" in body["problem"]


def test_an_anchor_printed_earlier_catches_a_log_rewritten_as_a_whole(lib: Path, probe: Path) -> None:
    """Issue 12 §4: ``audit anchor`` prints the head as SEQ:HASH; ``audit verify --anchor`` passes while
    the log holds it (after more entries too), and fails once the log was rewritten, even consistently."""
    anchor = cli_ok("audit", "anchor", "-l", str(lib)).stdout.strip()
    seq, digest = anchor.split(":")
    assert int(seq) >= 1 and len(digest) == 64
    assert verify(lib, "--anchor", anchor) == (0, verify(lib)[1])
    search = ("search", str(probe), "--case", "C-1", "--purpose", "find the person in the still", "--json")
    cli_ok(*search, "-l", str(lib))
    assert verify(lib, "--anchor", anchor)[0] == 0  # the log grew: the anchor is still in it

    code, body = verify(lib, "--anchor", f"{seq}:{'0' * 64}")
    assert code == 1 and "differs from the anchor" in body["problem"]
    code, body = verify(lib, "--anchor", f"{int(seq) + 1000}:{digest}")
    assert code == 1 and "no longer in the log" in body["problem"]
    malformed = run_cli("audit", "verify", "--anchor", "12-abc", "--json", "-l", str(lib))
    assert malformed.exit_code == 2 and json.loads(malformed.stdout)["error"]["code"] == "bad_anchor"

    # A forger who rewrites the first entry and recomputes every hash and the head: the chain is intact,
    # only the anchor kept elsewhere shows it.
    with untriggered(lib) as con:
        rows = con.execute("SELECT seq, at, actor, action, case_id, purpose, details FROM audit_log ORDER BY seq")
        prev = GENESIS_HASH
        for number, (s, at, actor, action, case_id, purpose, details) in enumerate(list(rows)):
            if number == 0:
                details = canonical_json({**json.loads(details), "forged": True})
            digest_now = entry_hash(prev, s, at, actor, action, case_id, purpose, details)
            con.execute(
                "UPDATE audit_log SET details = ?, prev_hash = ?, hash = ? WHERE seq = ?",
                (details, prev, digest_now, s),
            )
            prev = digest_now
        con.execute("UPDATE audit_head SET hash = ?", (prev,))
    assert verify(lib)[0] == 0  # consistent: nothing in the database can tell
    code, body = verify(lib, "--anchor", anchor)
    assert code == 1 and "differs from the anchor" in body["problem"]


def test_an_ingest_writes_its_entry_before_its_photos_and_each_names_it(lib: Path, shared_data: Path) -> None:
    """Issue 12 §4: every image an ingest stores names the ingest's opening entry (written before the
    first photo), which the closing entry names too. (A CLI ingest killed by kill -9 midway:
    tests/test_ingest.py::test_resume_after_kill_9.)"""
    photos = sorted((shared_data / "lfw-dev" / "images").iterdir())[0]
    with Library.open(lib) as library:
        before = library.catalog.image_count()
        report = library.index([photos], workers=1)
        assert report.indexed >= 1
        with sqlite3.connect(lib / "catalog.sqlite") as con:
            named = {r[0] for r in con.execute("SELECT audit_seq FROM images ORDER BY id LIMIT -1 OFFSET ?", (before,))}
            begin = con.execute("SELECT seq, action FROM audit_log WHERE action = 'ingest_begin' ORDER BY seq DESC")
            opening = begin.fetchone()
            closing = con.execute("SELECT seq, details FROM audit_log ORDER BY seq DESC LIMIT 1").fetchone()
    assert named == {opening[0]} and opening[0] < closing[0]
    assert json.loads(closing[1])["started"] == opening[0]


# §3: purposes that say nothing -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("case", "purpose", "code"),
    [
        ("\u200b", "find the person in the still", "purpose_required"),
        ("\u2066\u202e\ufeff\u2060", "find the person in the still", "purpose_required"),
        ("C-1", "\u200b\u200b\u200b", "purpose_required"),
        ("C-1", "...", "invalid_purpose"),
        ("C-1", "test", "invalid_purpose"),
        ("C-1", "n/a", "invalid_purpose"),
        ("C-1", "xxxxxxxxxxxxxxxx", "invalid_purpose"),
        ("C-1", "none none none none", "invalid_purpose"),
        ("C-1", "purpose", "invalid_purpose"),
        ("C-1", "\u200bt\u200be\u200bs\u200bt\u200b", "invalid_purpose"),
    ],
    ids=["invisible-case", "bidi-case", "invisible-purpose", "dots", "test", "n/a", "xxx", "none", "purpose", "hidden"],
)
def test_the_cli_refuses_a_case_or_purpose_that_says_nothing(
    lib: Path, probe: Path, case: str, purpose: str, code: str
) -> None:
    """Issue 12 §3: case id "\\u200b", purpose "\\u200b\\u200b\\u200b" and "..." were accepted by the CLI;
    now search and verify exit 2 with the code and message, and nothing is audited."""
    with sqlite3.connect(lib / "catalog.sqlite") as con:
        before = con.execute("SELECT COUNT(*) FROM audit_log").fetchone()[0]
    for command in (["search", str(probe)], ["verify", str(probe), str(probe)]):
        result = run_cli(*command, "--case", case, "--purpose", purpose, "--json", "-l", str(lib))
        assert result.exit_code == 2, result.output
        error = json.loads(result.stdout)["error"]
        assert error["code"] == code and ("case_id" in error["message"] or "purpose" in error["message"])
    with sqlite3.connect(lib / "catalog.sqlite") as con:
        assert con.execute("SELECT COUNT(*) FROM audit_log").fetchone()[0] == before


def test_purposes_are_normalised_once_for_every_interface() -> None:
    """Issue 12 §3: NFKC, invisible and bidi characters removed, spaces collapsed; what is recorded is
    what can be read. A purpose of 10 letters or more that is not a placeholder is kept as written."""
    stated = validate_purpose(SearchPurpose("\ufeffＣＡＳＥ\u200b-１7", "find  the\u2066 witness\u2069 of the robbery"))
    assert stated == SearchPurpose("CASE-17", "find the witness of the robbery")
    with pytest.raises(PurposeRequired, match="at least 10") as caught:
        validate_purpose(SearchPurpose("C-1", "to check"))
    assert caught.value.code == "invalid_purpose"
    with pytest.raises(PurposeRequired, match="legal_basis") as caught:
        validate_purpose(SearchPurpose("C-1", "find the witness of the robbery", legal_basis="\u200b\u200b"))
    assert caught.value.code == "invalid_purpose"


@pytest.mark.parametrize("purpose", ["asdfasdfasdf", "abcabcabcabc", "lorem ipsum dolor sit amet", "Test TEST test"])
def test_keyboard_runs_and_filler_text_are_placeholders(purpose: str) -> None:
    """Issue 12 §3: a short run of letters typed over and over, or filler text, says nothing about why."""
    with pytest.raises(PurposeRequired) as caught:
        validate_purpose(SearchPurpose("C-1", purpose))
    assert caught.value.code == "invalid_purpose"
    assert validate_purpose(SearchPurpose("C-1", "see the case file")).purpose == "see the case file"


def test_the_python_api_refuses_the_same_purposes(lib: Path, probe: Path) -> None:
    """Issue 12 §3: ``Library.search``/``verify`` go through the same check (no purpose, or one that
    says nothing, is refused before the probe is read)."""
    with Library.open(lib) as library:
        for purpose in (None, SearchPurpose("\u200b", "find the person in the still"), SearchPurpose("C-1", "...")):
            with pytest.raises(PurposeRequired):
                library.search(probe, purpose=purpose)
            with pytest.raises(PurposeRequired):
                library.verify(probe, probe, purpose=purpose)
        assert library.search(probe, purpose=PURPOSE, top_k=1).audit_sequence is not None
        with pytest.raises(PurposeRequired):
            library.view_face(1, purpose=SearchPurpose("C-1", "\u200b"))
        assert library.view_face(1, purpose=PURPOSE) is not None


# §3: only admins create collections ------------------------------------------------------------------


def test_ingest_into_a_new_collection_name_is_refused(lib: Path, probe: Path) -> None:
    """Issue 12 §3: ingesting into a new name created the collection, past its rules. Now the CLI and
    the Python API refuse it (nothing stored, no collection made) until an admin creates it: the local
    operator with ``collections create`` or ``index --create-collection`` (audited as theirs)."""
    refused = run_cli("index", str(probe), "-c", "fresh-name", "--json", "-l", str(lib))
    assert refused.exit_code == 2
    error = json.loads(refused.stdout)["error"]
    assert error["code"] == "no_collection" and "an admin must create it" in error["message"]
    with Library.open(lib) as library:
        with pytest.raises(NoCollection, match="an admin must create it"):
            library.index([probe], collection="fresh-name", workers=1)
        assert library.catalog.collection_id("fresh-name", create=False) is None
        assert library.catalog.image_count() == 19

    created = cli_ok("collections", "create", "fresh-name", "--require", "legal_basis", "--json", "-l", str(lib))
    assert json.loads(created.stdout)["settings"] == {"require": ["legal_basis"]}
    assert json.loads(cli_ok("index", str(probe), "-c", "fresh-name", "--json", "-l", str(lib)).stdout)["indexed"] == 1
    again = run_cli("collections", "create", "fresh-name", "--json", "-l", str(lib))
    assert again.exit_code == 2 and json.loads(again.stdout)["error"]["code"] == "collection_exists"
    once = cli_ok("index", str(probe), "-c", "one-step", "--create-collection", "--json", "-l", str(lib))
    assert json.loads(once.stdout)["indexed"] == 1
    entries = json.loads(cli_ok("audit", "show", "--action", "collection_create", "--json", "-l", str(lib)).stdout)
    made = {e["details"]["collection"]: e for e in entries}
    assert made["fresh-name"]["details"]["require"] == ["legal_basis"] and made["one-step"]["actor"].startswith("cli:")
