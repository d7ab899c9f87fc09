"""Issue 13, case reports: ``facesearch case report`` (JSON and printable HTML), ``case verify-report``, the
probe crops they show, and an auditor rebuilding a report's candidates from ``audit export`` alone.

Each test works on its own copy of the run's example gallery (tests/conftest.py), searched with a real
photo of someone in it; cases, decisions and reports are made for real; nothing is mocked. The REST API's
report routes are tested in tests/test_api_case_reports.py.
"""

from __future__ import annotations

import hashlib
import io
import json
import stat
from dataclasses import dataclass
from html import escape
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from facesearch import Library
from facesearch.governance import SearchPurpose, add_user
from facesearch.governance.audit import AuditLog
from facesearch.governance.case_report import build_report, render
from facesearch.governance.cases import close_case, create_case
from facesearch.governance.decisions import (
    AWAITING,
    CONFIRMED,
    CONFIRMED_LEAD,
    DISPUTED,
    INCONCLUSIVE,
    REJECTED,
    decide,
    second_review,
)
from facesearch.governance.errors import PermissionDenied
from facesearch.governance.probe_crops import CASES_DIR, crop_path
from facesearch.governance.users import get_user
from tests.conftest import GALLERY_PROBE
from tests.helpers import cli_ok, copy_library, run_cli

WHY = "identify the man in the bank camera still"
SNEAKY_NOTE = 'not him <script>alert(1)</script><img src="http://evil.example/x.png">'


@dataclass
class Worked:
    """A library with case C-1 (alice and bob work it), one search and five decided candidates."""

    folder: Path
    probe: Path
    search_seq: int
    faces: list[int]  # the first five candidates, in rank order
    statuses: dict[int, str]


@pytest.fixture(scope="module")
def probe(shared_data: Path) -> Path:
    return shared_data / "face_recognition_examples" / GALLERY_PROBE


@pytest.fixture
def worked(example_gallery: Path, tmp_path: Path, probe: Path) -> Worked:
    """Every status a candidate can have: confirmed, disputed, awaiting second review, rejected, inconclusive."""
    folder = copy_library(example_gallery, tmp_path / "lib")
    with Library.open(folder) as lib:
        alice, _ = add_user(lib.catalog, "alice", "investigator")
        bob, _ = add_user(lib.catalog, "bob", "investigator")
        create_case(lib.catalog, "C-1", WHY, legal_basis="warrant 7", users=["alice", "bob"])
        result = lib.search(probe, purpose=SearchPurpose("C-1", WHY), actor=alice, top_k=5)
        faces = [c.face_id for c in result.faces[0].candidates]
        assert len(faces) == 5
        cat = lib.catalog
        confirmed = decide(cat, "C-1", faces[0], CONFIRMED_LEAD, "same scar over the left eye", actor=alice)
        second_review(cat, "C-1", confirmed.id, CONFIRMED_LEAD, "agree: scar and ear", actor=bob)
        disputed = decide(cat, "C-1", faces[1], CONFIRMED_LEAD, "looks like him", actor=alice)
        second_review(cat, "C-1", disputed.id, REJECTED, "different nose", actor=bob)
        decide(cat, "C-1", faces[2], CONFIRMED_LEAD, "likely", actor=alice)
        decide(cat, "C-1", faces[3], REJECTED, SNEAKY_NOTE, actor=alice)
        decide(cat, "C-1", faces[4], INCONCLUSIVE, "too blurred", actor=bob)
    statuses = dict(zip(faces, [CONFIRMED, DISPUTED, AWAITING, REJECTED, INCONCLUSIVE], strict=True))
    return Worked(folder, probe, result.audit_sequence or 0, faces, statuses)


def report_file(worked: Worked, fmt: str, out: Path, *extra: str) -> Path:
    cli_ok("case", "report", "C-1", "--format", fmt, "-o", str(out), "-l", str(worked.folder), *extra)
    return out


class Resources(HTMLParser):
    """Every tag and every attribute that could fetch or run something, from a parsed page."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[str] = []
        self.urls: list[str] = []
        self.styles: list[str] = []
        self.text: list[str] = []
        self._in_style = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        self._in_style = tag == "style"
        for name, value in attrs:
            if name in {"src", "href", "srcset", "action", "poster", "data", "formaction", "background"}:
                self.urls.append(value or "")
            if name == "style" or name.startswith("on"):
                self.styles.append(f"{name}={value}")

    def handle_endtag(self, tag: str) -> None:
        self._in_style = False

    def handle_data(self, data: str) -> None:
        (self.styles if self._in_style else self.text).append(data)


# the report ---------------------------------------------------------------------------------------


def test_the_report_in_json_and_html_lists_searches_candidates_decisions_and_statuses(
    worked: Worked, tmp_path: Path
) -> None:
    """Issue 13: ``case report`` in both formats: the case record, the search with its operating point,
    calibration source and probe crop, each reviewed candidate with crop, source, date, fmr, label, status
    and decisions (who, when, note), the audit entries and the chain head; written 0600, never over an
    existing file without --force; its SHA-256 and the head it states are in a ``case_report`` entry."""
    data = json.loads(report_file(worked, "json", tmp_path / "r.json").read_bytes())
    case = data["case"]
    assert (case["case_id"], case["status"], case["legal_basis"], case["users"]) == ("C-1", "open", "warrant 7",
                                                                                   ["alice", "bob"])  # fmt: skip
    assert case["created_by"].startswith("cli:") and case["created_at"]
    [search] = data["searches"]
    assert search["audit_seq"] == worked.search_seq and search["actor"] == "alice"
    assert search["probe_sha256"] == hashlib.sha256(worked.probe.read_bytes()).hexdigest()
    point = search["operating_point"]
    assert point["calibration"] and point["model"] and point["max_fmr"] == 0.001 and point["gallery_size"] > 5
    assert search["probe_faces"][0]["crop"].startswith("data:image/jpeg;base64,")
    assert search["probe_faces"][0]["shown"] == worked.faces
    assert {c["face_id"]: c["status"] for c in data["candidates"]} == worked.statuses
    by_face = {c["face_id"]: c for c in data["candidates"]}
    top = by_face[worked.faces[0]]
    assert top["crop"].startswith("data:image/jpeg;base64,") and top["source"].endswith(".jpg")
    assert top["label"] == search["probe_faces"][0]["labels"][0] and top["fmr"] == search["probe_faces"][0]["fmr"][0]
    assert [(d["stage"], d["decision"], d["reviewer"]) for d in top["decisions"]] == [
        ("first", CONFIRMED_LEAD, "alice"), ("second", CONFIRMED_LEAD, "bob")]  # fmt: skip
    assert all(d["at"] and d["audit_seq"] for d in top["decisions"])
    assert any(c["photo_date"] for c in data["candidates"])  # images.exif_time, where the photo has one
    seqs = [e["seq"] for e in data["audit"]["entries"]]
    assert worked.search_seq in seqs and all(d["audit_seq"] in seqs for c in data["candidates"] for d in c["decisions"])

    json_path = tmp_path / "r.json"
    assert stat.S_IMODE(json_path.stat().st_mode) == 0o600
    with Library.open(worked.folder) as lib:
        [entry] = AuditLog(lib.catalog).entries(action="case_report")
    assert entry.case_id == "C-1" and entry.details["sha256"] == hashlib.sha256(json_path.read_bytes()).hexdigest()
    assert entry.details["size"] == json_path.stat().st_size and entry.details["format"] == "json"
    head = data["audit"]["chain_head"]
    assert (entry.details["head_seq"], entry.details["head_hash"]) == (head["seq"], head["hash"])

    html_path = report_file(worked, "html", tmp_path / "r.html")
    page = html_path.read_text("utf-8")
    for face, status in worked.statuses.items():
        assert f"<b>face {face}</b>" in page and status in page
    assert "same scar over the left eye" in page and "alice" in page and "bob" in page
    assert f"Search, audit entry {worked.search_seq}" in page and point["calibration"] in page
    for c in data["candidates"]:  # the same facts as the JSON twin
        for fact in (c["source"], c["fmr"], c["label"], c["photo_date"], c["crop"], *[d["at"] for d in c["decisions"]]):
            assert fact is None or escape(str(fact)) in page, fact
    for e in data["audit"]["entries"]:
        assert f"<td>{e['seq']}</td><td>{e['action']}</td><td>{escape(e['at'])}</td>" in page
    assert search["probe_faces"][0]["crop"] in page
    with Library.open(worked.folder) as lib:
        html_entry = AuditLog(lib.catalog).entries(action="case_report")[-1]
    assert html_entry.details["format"] == "html" and f"{head['seq']}:{head['hash']}" not in page  # a later head
    assert f"{html_entry.details['head_seq']}:{html_entry.details['head_hash']}" in page

    piped = cli_ok("case", "report", "C-1", "--format", "json", "-l", str(worked.folder))  # to standard output
    with Library.open(worked.folder) as lib:
        piped_entry = AuditLog(lib.catalog).entries(action="case_report")[-1]
    assert piped_entry.details["sha256"] == hashlib.sha256(piped.stdout_bytes).hexdigest()
    assert json.loads(piped.stdout_bytes)["candidates"] == data["candidates"]

    before = html_path.read_bytes()
    again = run_cli("case", "report", "C-1", "-o", str(html_path), "-l", str(worked.folder), "--json")
    assert again.exit_code == 2 and json.loads(again.stdout)["error"]["code"] == "file_exists"
    assert html_path.read_bytes() == before
    report_file(worked, "html", html_path, "--force")
    assert html_path.read_bytes() != before and stat.S_IMODE(html_path.stat().st_mode) == 0o600


def test_the_html_report_is_self_contained_and_escapes_every_text(worked: Worked, tmp_path: Path) -> None:
    """Issue 13: the HTML report fetches nothing and runs nothing (no script, link, iframe; every src or
    href a data: URI or #; no url() in its CSS), has a print stylesheet, and a note holding markup is
    shown as text, not as markup."""
    page = report_file(worked, "html", tmp_path / "r.html").read_text("utf-8")
    parsed = Resources()
    parsed.feed(page)
    assert not {"script", "link", "iframe", "object", "embed", "base", "frame", "audio", "video"} & set(parsed.tags)
    assert parsed.urls and all(u.startswith("data:") or u.startswith("#") for u in parsed.urls)
    assert len([u for u in parsed.urls if u.startswith("data:image/jpeg;base64,")]) == 6  # probe + 5 candidates
    css = " ".join(parsed.styles).lower()
    assert "@media print" in css and "url(" not in css and "@import" not in css
    assert "http-equiv" not in page.lower() and "url(http" not in page.lower()
    assert SNEAKY_NOTE in "".join(parsed.text)  # the note, as text
    assert "<script>" not in page and 'src="http://evil.example' not in page


def test_a_removed_candidate_is_still_listed_from_the_log(worked: Worked) -> None:
    """Issue 13: a candidate whose photo was removed since is still in the report, from the log: its
    decisions, fmr and label, its crop and source ``removed``. A closed case is reported too."""
    rejected = worked.faces[3]
    with Library.open(worked.folder) as lib:
        image_id = lib.catalog.faces_by_ids([rejected])[rejected].image_id
        lib.remove(image_id=image_id)
        close_case(lib.catalog, "C-1")
        facts = build_report(lib.catalog, lib.folder, "C-1")
    assert facts["case"]["status"] == "closed" and facts["case"]["closed_by"] and len(facts["candidates"]) == 5
    gone = next(c for c in facts["candidates"] if c["face_id"] == rejected)
    assert (gone["crop"], gone["source"], gone["status"]) == ("removed", "removed", REJECTED)
    assert gone["label"] and gone["fmr"] is not None and gone["decisions"][0]["note"] == SNEAKY_NOTE
    assert "crop removed from the library" in render(facts, "html").decode()


def test_a_report_is_only_for_those_who_may_see_the_case_and_keeps_a_lead_blind(worked: Worked) -> None:
    """Issue 13: a report holds biometric crops: a user not on the case gets ``forbidden``; a user of the
    case who could still review a lead blind does not read its first decision in the report either."""
    with Library.open(worked.folder) as lib:
        carol, _ = add_user(lib.catalog, "carol", "investigator")
        bob = get_user(lib.catalog, "bob")
        with pytest.raises(PermissionDenied):
            build_report(lib.catalog, lib.folder, "C-1", carol)
        facts = build_report(lib.catalog, lib.folder, "C-1", bob)
    awaiting = next(c for c in facts["candidates"] if c["status"] == AWAITING)
    assert (awaiting["decisions"][0]["decision"], awaiting["decisions"][0]["note"]) == (None, None)


# verify-report ------------------------------------------------------------------------------------


def test_verify_report_accepts_the_file_and_rejects_a_changed_or_unlogged_one(worked: Worked, tmp_path: Path) -> None:
    """Issue 13: ``case verify-report`` exits 0 naming the case, who exported it, when and the audit entry;
    1 when one byte changed, when the file's SHA-256 was never logged, or when the chain was edited since;
    2 for a missing file."""
    lib = str(worked.folder)
    for fmt in ("html", "json"):
        path = report_file(worked, fmt, tmp_path / f"r.{fmt}")
        ok = run_cli("case", "verify-report", str(path), "-l", lib)
        assert ok.exit_code == 0, ok.output
        verdict = json.loads(cli_ok("case", "verify-report", str(path), "-l", lib, "--json").stdout)
        assert verdict["valid"] is True and verdict["format"] == fmt and verdict["chain"]["ok"] is True
        assert verdict["exported_by"].startswith("cli:") and verdict["case_id"] == "C-1"
        said = f"valid: case C-1, exported by {verdict['exported_by']} at {verdict['exported_at']}, audit seq "
        assert ok.stdout.strip() == said + str(verdict["audit_seq"])

        changed = bytearray(path.read_bytes())
        changed[len(changed) // 2] ^= 0x01
        bad = tmp_path / f"changed.{fmt}"
        bad.write_bytes(bytes(changed))
        refused = run_cli("case", "verify-report", str(bad), "-l", lib, "--json")
        assert refused.exit_code == 1 and json.loads(refused.stdout)["valid"] is False

    with Library.open(worked.folder) as opened:  # the same facts, rendered but never exported: not logged
        unlogged = render(build_report(opened.catalog, opened.folder, "C-1"), "json")
    (tmp_path / "unlogged.json").write_bytes(unlogged)
    never = run_cli("case", "verify-report", str(tmp_path / "unlogged.json"), "-l", lib, "--json")
    assert never.exit_code == 1 and "no case_report entry" in json.loads(never.stdout)["problem"]

    missing = run_cli("case", "verify-report", str(tmp_path / "nope.html"), "-l", lib, "--json")
    assert missing.exit_code == 2 and json.loads(missing.stdout)["error"]["code"] == "not_found"

    with Library.open(worked.folder) as opened, opened.catalog.engine.begin() as con:  # an edit behind its back
        for (name,) in con.exec_driver_sql("SELECT name FROM sqlite_master WHERE type = 'trigger'").fetchall():
            con.exec_driver_sql(f"DROP TRIGGER {name}")
        con.exec_driver_sql(f"UPDATE audit_log SET actor = 'mallory' WHERE seq = {worked.search_seq}")
    broken = run_cli("case", "verify-report", str(tmp_path / "r.html"), "-l", lib, "--json")
    assert broken.exit_code == 1
    assert json.loads(broken.stdout)["chain"]["first_bad_sequence"] == worked.search_seq


# an auditor with the export alone -----------------------------------------------------------------


def rebuild(entries: list[dict[str, Any]], case_id: str) -> list[dict[str, Any]]:
    """A case's reviewed candidates as an auditor rebuilds them from exported entries alone: the latest
    first decision per face, its second reviews, the status they give, and the fmr and label of the face
    in the search that showed it."""
    mine = [e for e in entries if e["case_id"] == case_id]
    searches = {e["seq"]: e["details"] for e in mine if e["action"] == "search"}
    decisions = [e for e in mine if e["action"] == "decision"]
    firsts: dict[int, dict[str, Any]] = {}
    for e in decisions:
        if e["details"]["stage"] == "first":
            firsts[e["details"]["face_id"]] = e
    out = []
    for face, first in firsts.items():
        d = first["details"]
        seconds = [e for e in decisions if e["details"]["first_id"] == d["decision_id"]]
        if d["decision"] != CONFIRMED_LEAD:
            status = d["decision"]
        elif not seconds:
            status = AWAITING
        else:
            status = CONFIRMED if seconds[0]["details"]["decision"] == CONFIRMED_LEAD else DISPUTED
        shown = next(f for f in searches[d["search_seq"]]["faces"] if face in f["shown"])
        at = shown["shown"].index(face)
        made = [(e["details"]["decision_id"], e["details"]["stage"], e["details"]["first_id"],
                 e["details"]["decision"], e["details"]["note"], e["actor"], e["seq"])
                for e in [first, *seconds]]  # fmt: skip
        out.append({"face_id": face, "search_seq": d["search_seq"], "status": status, "fmr": shown["fmr"][at],
                    "label": shown["labels"][at], "decisions": made})  # fmt: skip
    return out


def test_an_auditor_rebuilds_the_reports_candidates_and_decisions_from_audit_export_alone(
    worked: Worked, tmp_path: Path
) -> None:
    """Issue 13 (done when): the candidate list and decisions of the JSON report, fmr and labels included,
    are rebuilt from ``audit export`` alone, and the export holds the report's SHA-256."""
    report_path = report_file(worked, "json", tmp_path / "r.json")
    report = json.loads(report_path.read_bytes())
    export = tmp_path / "audit.jsonl"
    cli_ok("audit", "export", "-o", str(export), "-l", str(worked.folder))
    entries = [json.loads(line) for line in export.read_text().splitlines()]

    rebuilt = rebuild(entries, "C-1")
    stated = [{"face_id": c["face_id"], "search_seq": c["search_seq"], "status": c["status"], "fmr": c["fmr"],
               "label": c["label"], "decisions": [(d["id"], d["stage"], d["first_id"], d["decision"], d["note"],
                                                   d["reviewer"], d["audit_seq"]) for d in c["decisions"]]}
              for c in report["candidates"]]  # fmt: skip
    assert rebuilt == stated and len(rebuilt) == 5
    assert {c["status"] for c in rebuilt} == {CONFIRMED, DISPUTED, AWAITING, REJECTED, INCONCLUSIVE}
    digest = hashlib.sha256(report_path.read_bytes()).hexdigest()
    assert [e["details"]["sha256"] for e in entries if e["action"] == "case_report"] == [digest]


# probe crops --------------------------------------------------------------------------------------


def test_the_probe_crop_is_kept_only_for_real_cases_and_is_not_the_whole_photo(
    example_gallery: Path, tmp_path: Path, probe: Path
) -> None:
    """Issue 13: a search of a real case keeps each probe face's crop (a thumbnail, 0600 in a 0700 folder),
    never the photo; an ad-hoc case id of a library without cases keeps nothing."""
    folder = copy_library(example_gallery, tmp_path / "lib")
    digest = hashlib.sha256(probe.read_bytes()).hexdigest()
    with Library.open(folder) as lib:
        lib.search(probe, purpose=SearchPurpose("ad-hoc 17", WHY))
        assert not (folder / CASES_DIR).exists()
        create_case(lib.catalog, "C-9/../x", WHY)  # a case id that is no file name
        lib.search(probe, purpose=SearchPurpose("C-9/../x", WHY))
    crop = crop_path(folder, "C-9/../x", digest, 0)
    assert crop.is_file() and crop.parent.parent.parent == folder / CASES_DIR and ".." not in crop.parts
    assert stat.S_IMODE(crop.stat().st_mode) == 0o600
    for level in (folder / CASES_DIR, crop.parent.parent, crop.parent):
        assert stat.S_IMODE(level.stat().st_mode) == 0o700
    with Image.open(io.BytesIO(crop.read_bytes())) as small, Image.open(probe) as whole:
        assert small.format == "JPEG" and max(small.size) <= 112 and max(whole.size) > 3 * max(small.size)
    assert len(list((folder / CASES_DIR).rglob("*.jpg"))) == 1


def test_no_crop_is_kept_of_an_opted_out_persons_probe_face(example_gallery: Path, tmp_path: Path, probe: Path) -> None:
    """Issue 13 with issue 12's promise: a probe face that is an opted-out person's gets no candidates, and
    its crop is not kept in the case either (an opt-out must not leave their face in a case folder)."""
    folder = copy_library(example_gallery, tmp_path / "lib")
    with Library.open(folder) as lib:
        lib.optouts.add(probe.parent / "obama3.jpg", actor="admin")
        create_case(lib.catalog, "C-4", WHY)
        result = lib.search(probe, purpose=SearchPurpose("C-4", WHY))
        facts = build_report(lib.catalog, lib.folder, "C-4")
    assert result.faces and not result.faces[0].candidates
    assert not list((folder / CASES_DIR).rglob("*.jpg"))
    assert facts["searches"][0]["probe_faces"][0]["crop"] is None
    assert "crop not kept" in render(facts, "html").decode()


def test_a_search_with_an_indexed_face_keeps_that_faces_crop_as_the_probes(
    example_gallery: Path, tmp_path: Path, probe: Path
) -> None:
    """Issue 13: "search with this face" (a face id as the probe) has no photo to crop; the report shows the
    indexed face's own thumbnail as the probe's crop, never an empty image."""
    folder = copy_library(example_gallery, tmp_path / "lib")
    with Library.open(folder) as lib:
        create_case(lib.catalog, "C-5", WHY)
        first = lib.search(probe, purpose=SearchPurpose("C-5", WHY), top_k=1)
        face_id = first.faces[0].candidates[0].face_id
        again = lib.search(None, purpose=SearchPurpose("C-5", WHY), probe_face_id=face_id, top_k=3)
        stored = lib.catalog.faces_by_ids([face_id])[face_id]
        thumbnail, image_sha256 = bytes(stored.thumbnail), stored.image.sha256
        facts = build_report(lib.catalog, lib.folder, "C-5")
    assert again.probe_sha256 == image_sha256
    kept = crop_path(folder, "C-5", image_sha256, 0)
    assert kept.read_bytes() == thumbnail and len(thumbnail) > 100
    assert facts["searches"][1]["probe_faces"][0]["crop"] is not None
