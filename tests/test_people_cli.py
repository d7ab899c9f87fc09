"""People in the archive (issue 14) through the command line and the REST API: the same persons, the
same governance (a case and a purpose, the ``people`` permission; CLI exit 2, API 403/422), the
destructive corrections shown first, and an opted-out person in none of them.

The library is a copy of the run's example gallery (tests/conftest.py); the API servers are those of
tests/test_api.py (one user per role). Real photos from ../shared/data; nothing of them is committed.
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any

import pytest

from facesearch import Library
from tests import test_api, test_api_cases
from tests.helpers import cli_ok, copy_library, run_cli
from tests.test_api import Api
from tests.test_api_cases import WHY, open_case

built, examples, fresh, two = test_api.built, test_api.examples, test_api.fresh, test_api_cases.two

STATED = ["--case", "club-1", "--purpose", "find who is in the club archive"]
BODY = {"case_id": "C-1", "purpose": WHY}
OBAMA = "barack_obama"


@pytest.fixture
def folder(example_gallery: Path, tmp_path: Path) -> str:
    return str(copy_library(example_gallery, tmp_path / "lib"))


def people(folder: str, *args: str) -> Any:
    return json.loads(cli_ok("people", *args, *STATED, "-l", folder, "--json").stdout)


def export(folder: str) -> list[dict[str, str]]:
    out = cli_ok("people", "export", "--format", "csv", *STATED, "-l", folder).stdout
    return list(csv.DictReader(io.StringIO(out)))


def person_with(rows: list[dict[str, str]], identity: str) -> set[str]:
    return {r["person_id"] for r in rows if f"/{identity}/" in r["image_path"]}


def test_the_cli_clusters_lists_shows_and_exports(folder: str) -> None:
    """Issue 14: `people cluster`, `list --json` (id, name, face count, photo count, representative face),
    `show ID --json`, `export --format csv` (face_id,image_path,person_id), `name`."""
    done = people(folder, "cluster")
    assert done["persons"] >= 6 and done["max_fmr"] == 1e-4
    listed = people(folder, "list")["persons"]
    assert {"id", "name", "face_count", "photo_count", "representative_face_id"} <= set(listed[0])
    rows = export(folder)
    assert list(rows[0]) == ["face_id", "image_path", "person_id"] and len(rows) == done["faces"]
    (obama,) = person_with(rows, OBAMA)
    cli_ok("people", "name", obama, "Barack", *STATED, "-l", folder)
    shown = people(folder, "show", obama)
    assert shown["name"] == "Barack" and sum(f"/{OBAMA}/" in f["image_path"] for f in shown["faces"]) == 5
    assert shown["face_count"] == len(shown["faces"]) == max(p["face_count"] for p in listed)


def test_merge_and_split_show_the_plan_ask_and_have_a_dry_run(folder: str) -> None:
    """Issue 14: destructive corrections: --dry-run changes nothing, no terminal and no --yes refuses
    (exit 2, confirmation_required), --yes does it; a re-cluster keeps the split."""
    people(folder, "cluster")
    rows = export(folder)
    (obama,) = person_with(rows, OBAMA)
    (biden,) = person_with(rows, "joe_biden")
    faces = [r["face_id"] for r in rows if r["person_id"] == obama]
    plan = people(folder, "split", obama, faces[0], "--dry-run")
    assert plan == {"dry_run": True, "person_id": int(obama), "faces_moved": [int(faces[0])],
                    "faces_left": len(faces) - 1}  # fmt: skip
    refused = run_cli("people", "merge", obama, biden, *STATED, "-l", folder, "--json")
    assert refused.exit_code == 2 and json.loads(refused.stdout)["error"]["code"] == "confirmation_required"
    assert export(folder) == rows  # neither the plan nor the refusal changed anything
    split = people(folder, "split", obama, faces[0], "--yes")
    people(folder, "cluster")
    after = export(folder)
    assert {r["person_id"] for r in after if r["face_id"] == faces[0]} == {str(split["new_person_id"])}
    merged = people(folder, "merge", obama, biden, "--yes")
    assert merged["faces_moved"] == sum(r["person_id"] == biden for r in after) and merged["person_id"] == int(obama)
    assert not [r for r in export(folder) if r["person_id"] == biden]


def test_the_cli_refuses_without_a_case_and_purpose(folder: str) -> None:
    """Issue 14: grouping is bound like a search: a placeholder purpose, or an unknown case once the library
    has cases, is exit 2 with the error's code, and nothing is clustered."""
    bad = run_cli("people", "cluster", "--case", "c", "--purpose", "x", "-l", folder, "--json")
    assert bad.exit_code == 2 and json.loads(bad.stdout)["error"]["code"] in ("invalid_purpose", "purpose_required")
    cli_ok("case", "create", "C-9", "--purpose", "find who is in the club archive", "-l", folder)
    unknown = run_cli("people", "list", *STATED, "-l", folder, "--json")
    assert unknown.exit_code == 2 and json.loads(unknown.stdout)["error"]["code"] == "no_case"
    with Library.open(folder, create=False) as lib:
        assert not lib.people.clustered()


def test_an_opted_out_person_is_in_no_interface(folder: str, shared_data: Path) -> None:
    """Issue 14 ("Done when"): after Barack Obama opts out, the CLI's list, show and export hold none of him."""
    people(folder, "cluster")
    (obama,) = person_with(export(folder), OBAMA)
    with Library.open(folder, create=False) as lib:
        lib.optouts.add(shared_data / "face_recognition_examples/by_identity/barack_obama/obama3.jpg", actor="admin")
    assert not person_with(export(folder), OBAMA)
    gone = run_cli("people", "show", obama, *STATED, "-l", folder, "--json")
    assert gone.exit_code == 2 and json.loads(gone.stdout)["error"]["code"] == "no_person"
    listed = people(folder, "list", "--all")["persons"]
    assert str(obama) not in {str(p["id"]) for p in listed}
    people(folder, "cluster")
    assert not person_with(export(folder), OBAMA)


def test_the_api_serves_people_for_a_case_to_those_allowed(two: Api) -> None:
    """Issue 14 over /v1/people: an investigator clusters, lists, shows, names, splits and merges for a case
    they work, sees a person's representative face (a face_view entry); an auditor or ingester is 403, a
    request without a purpose 422, an investigator not working the case 403, and every read is audited."""
    open_case(two, "C-1")
    for role in ("auditor", "ingester"):
        assert two.post("/v1/people/cluster", role, json=BODY).status_code == 403
    assert two.post("/v1/people/cluster", "investigator", json={"case_id": "C-1"}).status_code == 422
    outsider = two.post("/v1/people/cluster", "investigator2", json=BODY)
    assert (outsider.status_code, outsider.json()["error"]["code"]) == (403, "forbidden")
    done = two.post("/v1/people/cluster", "investigator", json=BODY)
    assert done.status_code == 200 and done.json()["persons"] >= 6
    listed = two.get("/v1/people", "investigator", params=BODY).json()["persons"]
    shown = {p["id"]: two.get(f"/v1/people/{p['id']}", "investigator", params=BODY).json() for p in listed}
    (obama,) = [i for i, p in shown.items() if any(f"/{OBAMA}/" in f["image_path"] for f in p["faces"])]
    thumb = two.get(f"/v1/people/{obama}/thumbnail", "investigator", params=BODY)
    assert thumb.status_code == 200 and thumb.headers["content-type"] == "image/jpeg"
    views = two.audit(action="face_view")
    assert views[-1]["details"]["face_id"] == shown[obama]["representative_face_id"]
    assert two.post(f"/v1/people/{obama}/name", "investigator", json={**BODY, "name": "B"}).status_code == 200
    faces = [f["face_id"] for f in shown[obama]["faces"]]
    plan = two.post(f"/v1/people/{obama}/split", "investigator", json={**BODY, "face_ids": faces[:1], "dry_run": True})
    assert plan.json()["dry_run"] and plan.json()["faces_left"] == len(faces) - 1
    split = two.post(f"/v1/people/{obama}/split", "investigator", json={**BODY, "face_ids": faces[:1]}).json()
    again = two.post(f"/v1/people/{obama}/merge", "investigator", json={**BODY, "other": split["new_person_id"]})
    assert (again.status_code, again.json()["error"]["code"]) == (409, "conflict")
    csv_rows = list(csv.DictReader(io.StringIO(two.get("/v1/people/export", "investigator", params=BODY).text)))
    assert {r["person_id"] for r in csv_rows if r["face_id"] == str(faces[0])} == {str(split["new_person_id"])}
    assert two.get(f"/v1/people/{obama}", "investigator", params=BODY).json()["name"] == "B"
    reads = two.audit(action="people_read")
    assert reads and all(e["case_id"] == "C-1" for e in reads)


def test_the_api_never_shows_an_opted_out_person(fresh: Api) -> None:
    """Issue 14: after an opt-out by photo, no /v1/people route shows Barack Obama: list, show, thumbnail, export."""
    body = {"case_id": "case-7", "purpose": "find who is in the club archive"}
    fresh.post("/v1/people/cluster", "admin", json=body)
    listed = fresh.get("/v1/people", "admin", params=body).json()["persons"]
    shown = {p["id"]: fresh.get(f"/v1/people/{p['id']}", "admin", params=body).json() for p in listed}
    (obama,) = [i for i, p in shown.items() if any(f"/{OBAMA}/" in f["image_path"] for f in p["faces"])]
    photo = ("p.jpg", fresh.photo("by_identity/barack_obama/obama3.jpg"), "image/jpeg")
    assert fresh.post("/v1/optouts", "admin", files={"photo": photo}).status_code in (200, 201)
    for path in (f"/v1/people/{obama}", f"/v1/people/{obama}/thumbnail"):
        gone = fresh.get(path, "admin", params=body)
        assert (gone.status_code, gone.json()["error"]["code"]) == (404, "no_person")
    again = fresh.get("/v1/people", "admin", params={**body, "include_hidden": True}).json()["persons"]
    assert obama not in {p["id"] for p in again}
    assert f"/{OBAMA}/" not in fresh.get("/v1/people/export", "admin", params=body).text
