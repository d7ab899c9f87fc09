"""Issue 13 over the REST API: cases under /v1/cases, decisions, and the blind second review.

The servers are those of tests/test_api.py (a copy of the run's example gallery with one user per
role); every test here gets a server on a copy of its own (``fresh``), since creating a case changes
what searches of that library must name.
"""

from __future__ import annotations

import json

import pytest

from tests import test_api
from tests.test_api import PROBE, Api

# The fixtures of tests/test_api.py, used here as there.
built, examples, fresh = test_api.built, test_api.examples, test_api.fresh

WHY = "identify the man in the bank camera still"


@pytest.fixture
def two(fresh: Api) -> Api:
    """The server with a second investigator, ``investigator2`` (user ``investigator-2``)."""
    created = fresh.post("/v1/users", "admin", json={"name": "investigator-2", "role": "investigator"})
    assert created.status_code == 201, created.text
    fresh.keys = {**fresh.keys, "investigator2": created.json()["key"]}
    return fresh


def open_case(api: Api, case_id: str, role: str = "investigator", **fields: object) -> dict:
    created = api.post("/v1/cases", role, json={"case_id": case_id, "purpose": WHY, **fields})
    assert created.status_code == 201, created.text
    return created.json()


def test_cases_are_created_listed_shown_and_closed_over_the_api(two: Api) -> None:
    """Issue 13: an investigator opens a case (and works it), sees it, searches for it, closes it; then a
    search for it is 409 ``case_closed`` and nothing is audited. Investigators not working a case neither
    see it nor search for it; auditors read every case."""
    case = open_case(two, "C-1", legal_basis="warrant 7")
    assert (case["status"], case["users"], case["created_by"]) == ("open", ["investigator-1"], "investigator-1")
    assert [c["case_id"] for c in two.get("/v1/cases", "investigator").json()["cases"]] == ["C-1"]
    assert [c["case_id"] for c in two.get("/v1/cases", "auditor").json()["cases"]] == ["C-1"]
    assert two.get("/v1/cases", "investigator2").json()["cases"] == []
    hidden = two.get("/v1/cases/C-1", "investigator2")
    assert (hidden.status_code, hidden.json()["error"]["code"]) == (403, "forbidden")
    outsider = two.search(two.photo(PROBE), role="investigator2", case_id="C-1", purpose=WHY)
    assert (outsider.status_code, outsider.json()["error"]["code"]) == (403, "forbidden")

    searched = two.search(two.photo(PROBE), case_id="c-1", purpose=WHY)
    assert searched.status_code == 200, searched.text
    logged = [e for e in two.audit(action="search") if e["seq"] == searched.json()["audit_sequence"]]
    assert [e["case_id"] for e in logged] == ["C-1"]  # recorded under the case's own spelling
    shown = two.get("/v1/cases/C-1", "auditor").json()
    assert [s["audit_sequence"] for s in shown["searches"]] == [searched.json()["audit_sequence"]]

    unknown = two.search(two.photo(PROBE), case_id="case-42", purpose=WHY)
    assert (unknown.status_code, unknown.json()["error"]["code"]) == (404, "no_case")
    assert two.post("/v1/cases/C-1/close", "auditor").status_code == 403
    closed = two.post("/v1/cases/C-1/close", "investigator")
    assert closed.status_code == 200 and closed.json()["closed_by"] == "investigator-1"
    before = len(two.audit())
    refused = two.search(two.photo(PROBE), case_id="C-1", purpose=WHY)
    assert (refused.status_code, refused.json()["error"]["code"]) == (409, "case_closed")
    photo = ("p.jpg", two.photo(PROBE), "image/jpeg")
    compared = two.post(
        "/v1/verify", "investigator", files={"a": photo, "b": photo}, data={"case_id": "C-1", "purpose": WHY}
    )
    assert (compared.status_code, compared.json()["error"]["code"]) == (409, "case_closed")
    assert len(two.audit()) == before
    actions = {(e["action"], e["actor"]) for e in two.audit(case_id="C-1")}
    assert {("case_create", "investigator-1"), ("case_close", "investigator-1")} <= actions


@pytest.mark.parametrize(
    "case_id", ["\u200b", "\u202e\u2066", "...", "test"], ids=["zero-width", "bidi", "dots", "test"]
)
def test_a_case_id_that_says_nothing_is_refused_over_the_api(two: Api, case_id: str) -> None:
    """Issue 13: invisible or placeholder case ids open no case (422)."""
    refused = two.post("/v1/cases", "investigator", json={"case_id": case_id, "purpose": WHY})
    assert refused.status_code == 422, refused.text
    assert two.get("/v1/cases", "admin").json()["cases"] == []


def test_a_confirmed_lead_is_confirmed_blind_by_a_second_investigator(two: Api) -> None:
    """Issue 13: the first decision is stored on the server; the second reviewer is another user, is shown
    the probe and candidate but not the first decision (task list and decision list alike); the first
    reviewer and an admin (who reads the log) cannot be it; afterwards the lead is confirmed, and an
    auditor finds every decision in the audit export."""
    open_case(two, "C-2", users=["investigator-2"])
    result = two.search(two.photo(PROBE), case_id="C-2", purpose=WHY, top_k=3).json()
    face_id = result["faces"][0]["candidates"][0]["face_id"]
    stranger = 987654
    bad = two.post("/v1/cases/C-2/decisions", "investigator", json={"face_id": stranger, "decision": "rejected"})
    assert (bad.status_code, bad.json()["error"]["code"]) == (422, "not_a_candidate")
    lead = {
        "face_id": face_id,
        "decision": "confirmed lead",
        "note": "same scar",
        "search_seq": result["audit_sequence"],
    }
    first = two.post("/v1/cases/C-2/decisions", "investigator", json=lead)
    assert first.status_code == 201, first.text
    task_id = first.json()["id"]

    assert two.get("/v1/cases/C-2/second-reviews", "investigator").json()["tasks"] == []
    tasks = two.get("/v1/cases/C-2/second-reviews", "investigator2").json()["tasks"]
    assert [(t["task_id"], t["face_id"], t["probe_sha256"]) for t in tasks] == [
        (task_id, face_id, result["probe_sha256"])
    ]
    blind = two.get("/v1/cases/C-2/decisions", "investigator2").json()["candidates"]
    for seen in (json.dumps(tasks), json.dumps(blind)):
        assert "confirmed lead" not in seen and "same scar" not in seen and "investigator-1" not in seen

    answer = {"decision": "confirmed lead", "note": "ears match"}
    same = two.post(f"/v1/cases/C-2/second-reviews/{task_id}", "investigator", json=answer)
    assert (same.status_code, same.json()["error"]["code"]) == (403, "same_reviewer")
    admin = two.post(f"/v1/cases/C-2/second-reviews/{task_id}", "admin", json=answer)
    assert (admin.status_code, admin.json()["error"]["code"]) == (403, "forbidden")
    second = two.post(f"/v1/cases/C-2/second-reviews/{task_id}", "investigator2", json=answer)
    assert second.status_code == 201 and second.json()["first_id"] == task_id

    decided = two.get("/v1/cases/C-2/decisions", "investigator").json()["candidates"]
    assert decided[0]["status"] == "confirmed"
    assert [(d["reviewer"], d["decision"]) for d in decided[0]["decisions"]] == [
        ("investigator-1", "confirmed lead"),
        ("investigator-2", "confirmed lead"),
    ]
    export = two.get("/v1/audit/export", "auditor")
    rows = [json.loads(line) for line in export.text.splitlines()]
    logged = [(e["actor"], e["details"]["stage"], e["details"]["note"]) for e in rows if e["action"] == "decision"]
    assert logged == [("investigator-1", "first", "same scar"), ("investigator-2", "second", "ears match")]
