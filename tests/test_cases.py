"""Issue 13, cases and decisions, through the Python API and the CLI (the REST API: test_api_cases.py).

Each test works on its own copy of the run's example gallery (tests/conftest.py): cases are created,
searched, decided about and closed for real; nothing is mocked.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from facesearch import Library
from facesearch.errors import FaceSearchError
from facesearch.governance import SearchPurpose, add_user
from facesearch.governance.audit import AuditLog
from facesearch.governance.cases import CaseError, close_case, create_case, get_case, list_cases
from facesearch.governance.decisions import (
    AWAITING,
    CONFIRMED,
    CONFIRMED_LEAD,
    case_decisions,
    decide,
    second_review,
    second_review_tasks,
)
from facesearch.governance.errors import PermissionDenied, PurposeRequired
from tests.conftest import GALLERY_PROBE
from tests.helpers import cli_ok, copy_library, run_cli

WHY = "identify the man in the bank camera still"


@pytest.fixture
def folder(example_gallery: Path, tmp_path: Path) -> Path:
    return copy_library(example_gallery, tmp_path / "lib")


@pytest.fixture(scope="module")
def probe(shared_data: Path) -> Path:
    return shared_data / "face_recognition_examples" / GALLERY_PROBE


def search_json(folder: Path, probe: Path, case: str) -> tuple[int, dict]:
    result = run_cli("search", str(probe), "--case", case, "--purpose", WHY, "--library", str(folder), "--json")
    return result.exit_code, json.loads(result.stdout)


# the case record --------------------------------------------------------------------------------


def test_case_create_list_show_close_from_the_cli(folder: Path, probe: Path) -> None:
    """Issue 13: ``facesearch case create|list|show|close`` with --json; show lists the case's searches
    from the audit log; close asks (refused off a terminal without --yes), --dry-run changes nothing."""
    lib = str(folder)
    created = json.loads(cli_ok("case", "create", "C-1", "--purpose", WHY, "--legal-basis", "warrant 7", "-l", lib,
                                "--json").stdout)  # fmt: skip
    assert (created["case_id"], created["status"], created["legal_basis"]) == ("C-1", "open", "warrant 7")
    assert created["created_by"].startswith("cli:") and created["audit_seq"] > 0
    code, body = search_json(folder, probe, "C-1")
    assert code == 0, body
    listed = json.loads(cli_ok("case", "list", "-l", lib, "--json").stdout)["cases"]
    assert [c["case_id"] for c in listed] == ["C-1"]
    shown = json.loads(cli_ok("case", "show", "c-1", "-l", lib, "--json").stdout)  # any spelling finds it
    assert [s["audit_sequence"] for s in shown["searches"]] == [body["audit_sequence"]]
    assert shown["searches"][0]["probe_sha256"] == body["probe_sha256"] and shown["decisions"] == []

    no_yes = run_cli("case", "close", "C-1", "-l", lib, "--json")
    assert no_yes.exit_code == 2 and json.loads(no_yes.stdout)["error"]["code"] == "confirmation_required"
    dry = json.loads(cli_ok("case", "close", "C-1", "--dry-run", "-l", lib, "--json").stdout)
    assert dry == {"dry_run": True, "case_id": "C-1", "searches": 1, "users": []}
    assert json.loads(cli_ok("case", "show", "C-1", "-l", lib, "--json").stdout)["case"]["status"] == "open"
    closed = json.loads(cli_ok("case", "close", "C-1", "--yes", "-l", lib, "--json").stdout)
    assert closed["status"] == "closed" and closed["closed_by"] == created["created_by"] and closed["closed_at"]
    again = run_cli("case", "close", "C-1", "--yes", "-l", lib, "--json")
    assert again.exit_code == 2 and json.loads(again.stdout)["error"]["code"] == "case_closed"
    with Library.open(folder) as opened:
        actions = [(e.action, e.case_id) for e in AuditLog(opened.catalog).entries(limit=None)]
    assert ("case_create", "C-1") in actions and ("case_close", "C-1") in actions
    assert json.loads(cli_ok("audit", "verify", "-l", lib, "--json").stdout)["ok"] is True  # case rows name entries


def test_a_closed_case_refuses_searches_and_verifies_from_the_cli_and_python(folder: Path, probe: Path) -> None:
    """Issue 13: a closed case accepts no new searches (CLI and ``Library.search``) nor verifies; nothing
    is audited for the refused ones. Once a library has cases, an id that names none is refused too
    (otherwise any other id would sidestep a closed case)."""
    with Library.open(folder) as lib:
        create_case(lib.catalog, "C-2", WHY)
        assert lib.search(probe, purpose=SearchPurpose("c-2", WHY)).faces  # open: searches, as "C-2"
        assert AuditLog(lib.catalog).entries(action="search")[-1].case_id == "C-2"
        close_case(lib.catalog, "C-2")
        before = len(AuditLog(lib.catalog).entries(limit=None))
        for case, code in (("C-2", "case_closed"), ("\uff23-2", "case_closed"), ("C-3", "no_case")):
            with pytest.raises(CaseError) as refused:
                lib.search(probe, purpose=SearchPurpose(case, WHY))
            assert refused.value.code == code
        with pytest.raises(CaseError, match="closed") as verify:
            lib.searches.verify(probe, probe, purpose=SearchPurpose("C-2", WHY))
        assert verify.value.code == "case_closed"
        # Nor face views (metadata, thumbnail, whole photo) of the faces its searches showed.
        shown = AuditLog(lib.catalog).entries(action="search")[-1].details["faces"][0]["shown"][0]
        for kind in ({"thumbnail": False}, {"thumbnail": True}, {"thumbnail": False, "photo": True}):
            with pytest.raises(CaseError) as viewed:
                lib.searches.view_face(shown, purpose=SearchPurpose("C-2", WHY), actor=None, **kind)
            assert viewed.value.code == "case_closed"
        assert len(AuditLog(lib.catalog).entries(limit=None)) == before
    code, body = search_json(folder, probe, "C-2")
    assert code == 2 and body["error"]["code"] == "case_closed"


def test_a_library_without_cases_keeps_ad_hoc_case_ids(folder: Path, probe: Path) -> None:
    """Issue 13, backwards compatibility: until the first case is created, searches name any case id."""
    with Library.open(folder) as lib:
        assert list_cases(lib.catalog) == []
        result = lib.search(probe, purpose=SearchPurpose("ad-hoc 17", WHY))
        assert result.audit_sequence is not None


@pytest.mark.parametrize(
    ("case_id", "code"),
    [("\u200b", "purpose_required"), ("\u202e\u2066", "purpose_required"), ("...", "invalid_purpose"),
     ("test", "invalid_purpose"), ("n/a", "invalid_purpose"), ("xxx", "invalid_purpose")],
    ids=["zero-width", "bidi", "dots", "test", "n/a", "xxx"],
)  # fmt: skip
def test_a_case_id_that_says_nothing_is_refused(folder: Path, case_id: str, code: str) -> None:
    """Issue 13: a case cannot be created under an invisible or placeholder id (CLI and Python)."""
    result = run_cli("case", "create", case_id, "--purpose", WHY, "-l", str(folder), "--json")
    assert result.exit_code == 2 and json.loads(result.stdout)["error"]["code"] == code
    with Library.open(folder) as lib:
        with pytest.raises(PurposeRequired):
            create_case(lib.catalog, case_id, WHY)
        assert list_cases(lib.catalog) == []
        with pytest.raises(PurposeRequired) as placeholder_purpose:
            create_case(lib.catalog, "C-9", "test")
        assert placeholder_purpose.value.code == "invalid_purpose"


def test_a_case_id_differing_only_by_case_or_width_is_the_same_case(folder: Path) -> None:
    """Issue 13: "C-1" and "c-1" (or fullwidth "Ｃ-1") cannot be two cases, so the log groups a case whole."""
    with Library.open(folder) as lib:
        create_case(lib.catalog, "C-1", WHY)
        for twin in ("c-1", "\uff23-1", "C-1\u200b"):
            with pytest.raises(CaseError) as exists:
                create_case(lib.catalog, twin, WHY)
            assert exists.value.code == "case_exists"


# who works a case ---------------------------------------------------------------------------------


def test_an_investigator_not_working_a_case_cannot_search_for_it_or_see_it(folder: Path, probe: Path) -> None:
    """Issue 13: the users working a case are the ones who search for it (admins and auditors see all)."""
    with Library.open(folder) as lib:
        alice, _ = add_user(lib.catalog, "alice", "investigator")
        bob, _ = add_user(lib.catalog, "bob", "investigator")
        auditor, _ = add_user(lib.catalog, "audrey", "auditor")
        create_case(lib.catalog, "C-5", WHY, users=["alice"])
        assert lib.search(probe, purpose=SearchPurpose("C-5", WHY), actor=alice).faces
        with pytest.raises(PermissionDenied):
            lib.search(probe, purpose=SearchPurpose("C-5", WHY), actor=bob)
        with pytest.raises(PermissionDenied):
            get_case(lib.catalog, "C-5", bob)
        assert [c.case_id for c in list_cases(lib.catalog, bob)] == []
        assert [c.case_id for c in list_cases(lib.catalog, auditor)] == ["C-5"]
        with pytest.raises(FaceSearchError) as unknown_user:
            create_case(lib.catalog, "C-6", WHY, users=["nobody"])
        assert unknown_user.value.code == "no_user"


# decisions ----------------------------------------------------------------------------------------


def test_a_confirmed_lead_needs_a_blind_second_reviewer_who_is_someone_else(folder: Path, probe: Path) -> None:
    """Issue 13: a decision is about a candidate the case's searches showed; a confirmed lead awaits a
    second reviewer, who is a different user, is shown the probe and candidate but not the first
    decision (neither in the task nor in the case's decision list), and whose own confirmed lead makes it
    confirmed. The decisions survive reopening the library."""
    with Library.open(folder) as lib:
        alice, _ = add_user(lib.catalog, "alice", "investigator")
        bob, _ = add_user(lib.catalog, "bob", "investigator")
        admin, _ = add_user(lib.catalog, "ada", "admin")
        create_case(lib.catalog, "C-7", WHY, users=["alice", "bob"])
        result = lib.search(probe, purpose=SearchPurpose("C-7", WHY), actor=alice, top_k=3)
        face_id = result.faces[0].candidates[0].face_id
        with pytest.raises(CaseError) as not_shown:
            decide(lib.catalog, "C-7", 987654, CONFIRMED_LEAD, "x", actor=alice)
        assert not_shown.value.code == "not_a_candidate"
        with pytest.raises(CaseError) as bad:
            decide(lib.catalog, "C-7", face_id, "maybe", actor=alice)
        assert bad.value.code == "bad_decision"
        first = decide(lib.catalog, "C-7", face_id, CONFIRMED_LEAD, "same scar over the left eye", actor=alice)
        assert first.search_seq == result.audit_sequence

        assert second_review_tasks(lib.catalog, "C-7", alice) == []  # never one's own
        with pytest.raises(CaseError) as same:
            second_review(lib.catalog, "C-7", first.id, CONFIRMED_LEAD, actor=alice)
        assert same.value.code == "same_reviewer"
        with pytest.raises(PermissionDenied):  # an admin reads the first decision in the audit log
            second_review(lib.catalog, "C-7", first.id, CONFIRMED_LEAD, actor=admin)
        tasks = second_review_tasks(lib.catalog, "C-7", bob)
        assert len(tasks) == 1 and tasks[0]["face_id"] == face_id and tasks[0]["probe_sha256"] == result.probe_sha256
        assert tasks[0]["box"] == result.faces[0].box
        assert "scar" not in json.dumps(tasks) and CONFIRMED_LEAD not in json.dumps(tasks) and "alice" not in str(tasks)
        blind = case_decisions(lib.catalog, "C-7", bob)
        assert blind[0]["status"] == AWAITING and blind[0]["decisions"][0]["decision"] is None
        assert "scar" not in json.dumps(blind, default=str) and "alice" not in json.dumps(blind, default=str)
        assert case_decisions(lib.catalog, "C-7", alice)[0]["decisions"][0]["note"] == "same scar over the left eye"

        second_review(lib.catalog, "C-7", first.id, CONFIRMED_LEAD, "the ear matches", actor=bob)
        with pytest.raises(CaseError) as twice:
            second_review(lib.catalog, "C-7", first.id, CONFIRMED_LEAD, actor=bob)
        assert twice.value.code == "already_reviewed"
    with Library.open(folder) as lib:  # reloaded: kept on the server
        decided = case_decisions(lib.catalog, "C-7")
        assert decided[0]["status"] == CONFIRMED
        assert [(d["reviewer"], d["stage"]) for d in decided[0]["decisions"]] == [("alice", "first"), ("bob", "second")]
        close_case(lib.catalog, "C-7")
        with pytest.raises(CaseError) as closed:
            decide(lib.catalog, "C-7", face_id, CONFIRMED_LEAD, actor=alice)
        assert closed.value.code == "case_closed"
    shown = json.loads(cli_ok("case", "show", "C-7", "-l", str(folder), "--json").stdout)
    assert shown["decisions"][0]["status"] == CONFIRMED


def test_an_auditor_rebuilds_the_decisions_from_the_audit_export_alone(
    folder: Path, probe: Path, tmp_path: Path
) -> None:
    """Issue 13 (done when): a case's decisions, who made them and when, are in ``audit export``."""
    with Library.open(folder) as lib:
        alice, _ = add_user(lib.catalog, "alice", "investigator")
        bob, _ = add_user(lib.catalog, "bob", "investigator")
        create_case(lib.catalog, "C-8", WHY, users=["alice", "bob"])
        result = lib.search(probe, purpose=SearchPurpose("C-8", WHY), actor=alice, top_k=3)
        ids = [c.face_id for c in result.faces[0].candidates]
        first = decide(lib.catalog, "C-8", ids[0], CONFIRMED_LEAD, "same scar", actor=alice)
        decide(lib.catalog, "C-8", ids[1], "rejected", "different ears", actor=alice)
        second_review(lib.catalog, "C-8", first.id, CONFIRMED_LEAD, "agree", actor=bob)
        expected = case_decisions(lib.catalog, "C-8")
    export = tmp_path / "log.jsonl"
    cli_ok("audit", "export", "--output", str(export), "-l", str(folder))
    entries = [json.loads(line) for line in export.read_text().splitlines()]
    rebuilt = sorted(
        (e["actor"], d["face_id"], d["stage"], d["decision"], d["note"])
        for e in entries
        if e["action"] == "decision" and e["case_id"] == "C-8"
        for d in [e["details"]]
    )
    stored = sorted(
        (d["reviewer"], d["face_id"], d["stage"], d["decision"], d["note"])
        for item in expected
        for d in item["decisions"]
    )
    assert rebuilt == stored and len(stored) == 3
    assert {e["action"] for e in entries if e["case_id"] == "C-8"} >= {"case_create", "search", "decision"}
