"""Issue 12 §3 and §4 over the REST API: purposes that say nothing, uploads into a new collection name,
face views of a collection that demands a legal basis, and a wiped audit log.

The servers are those of tests/test_api.py (a copy of the run's example gallery with one user per
role; ``fresh``: a server on a copy of its own, for tests that change the library).
"""

from __future__ import annotations

import sqlite3

import pytest

from tests import test_api
from tests.test_api import CASE, PROBE, Api, stored_files

# The fixtures of tests/test_api.py, used here as there.
api, built, examples, fresh = test_api.api, test_api.built, test_api.examples, test_api.fresh

VIEW = {"case_id": "case-42", "purpose": "review the candidates of the search"}


@pytest.mark.parametrize(
    ("fields", "code"),
    [
        ({"case_id": "\u200b"}, "purpose_required"),
        ({"case_id": "\u202e\u2066"}, "purpose_required"),
        ({"purpose": "\u200b\u200b\u200b"}, "purpose_required"),
        ({"purpose": "..."}, "invalid_purpose"),
        ({"purpose": "test"}, "invalid_purpose"),
        ({"purpose": "xxxxxxxxxxxxxxx"}, "invalid_purpose"),
    ],
    ids=["invisible-case", "bidi-case", "invisible-purpose", "dots", "test", "xxx"],
)
def test_search_and_verify_refuse_a_case_or_purpose_that_says_nothing(api: Api, fields: dict, code: str) -> None:
    """Issue 12 §3: the API accepted case id "\\u200b", purpose "\\u200b\\u200b\\u200b" and "..."; now a
    422 with the code, for search and verify alike, and nothing is audited."""
    before = len(api.audit())
    searched = api.search(api.photo(PROBE), **fields)
    assert (searched.status_code, searched.json()["error"]["code"]) == (422, code), searched.text
    photo = ("p.jpg", api.photo(PROBE), "image/jpeg")
    compared = api.post("/v1/verify", "investigator", files={"a": photo, "b": photo}, data={**CASE, **fields})
    assert (compared.status_code, compared.json()["error"]["code"]) == (422, code), compared.text
    assert len(api.audit()) == before


def test_an_ingester_cannot_create_a_collection_by_uploading_into_a_new_name(fresh: Api) -> None:
    """Issue 12 §3: an upload or a manifest into a new name created the collection, past the rules an
    admin set. Now 404 ``no_collection`` before anything is stored; an ingester may not create one
    (403); once an admin has, the same upload is indexed."""
    files = [("files", ("p.jpg", fresh.photo(PROBE), "image/jpeg"))]
    upload = fresh.post("/v1/ingest/uploads", "ingester", files=files, data={"collection": "side-door"})
    assert (upload.status_code, upload.json()["error"]["code"]) == (404, "no_collection")
    assert "an admin must create it" in upload.json()["error"]["message"]
    manifest = [("manifest", ("m.csv", b"url\nhttps://example.org/a.jpg\n", "text/csv"))]
    listed = fresh.post("/v1/ingest/manifest", "ingester", files=manifest, data={"collection": "side-door"})
    assert (listed.status_code, listed.json()["error"]["code"]) == (404, "no_collection")
    assert stored_files(fresh.folder) == set() and fresh.get("/v1/jobs", "ingester").json()["jobs"] == []
    names = {c["name"] for c in fresh.get("/v1/collections", "ingester").json()["collections"]}
    assert "side-door" not in names

    denied = fresh.post("/v1/collections", "ingester", json={"name": "side-door"})
    assert (denied.status_code, denied.json()["error"]["code"]) == (403, "forbidden")
    assert fresh.post("/v1/collections", "admin", json={"name": "side-door"}).status_code == 201
    job = fresh.post("/v1/ingest/uploads", "ingester", files=files, data={"collection": "side-door"}).json()
    assert fresh.wait(job["id"])["indexed"] == 1


def test_face_views_of_a_collection_that_demands_a_legal_basis_need_one(fresh: Api) -> None:
    """Issue 12 §3: ``GET /v1/faces/{id}`` and its thumbnail returned a face of a collection that demands
    a legal basis without one, and face ids are sequential. Walking every id without a legal basis now
    shows no face of that collection (422, the collection unnamed); with one, they are shown."""
    changed = fresh.client.put(
        "/v1/collections/groups",
        headers=fresh.headers("admin"),
        json={"require": ["legal_basis"], "retention_days": None},
    )
    assert changed.status_code == 200, changed.text
    with sqlite3.connect(fresh.folder / "catalog.sqlite") as con:
        rows = con.execute(
            "SELECT f.id, c.name FROM faces f JOIN images i ON i.id = f.image_id "
            "JOIN collections c ON c.id = i.collection_id"
        )
        collection_of = dict(rows.fetchall())
    protected = {face for face, name in collection_of.items() if name == "groups"}
    assert protected and len(protected) < len(collection_of)
    shown = set()
    for face_id in range(1, max(collection_of) + 3):
        for path in (f"/v1/faces/{face_id}", f"/v1/faces/{face_id}/thumbnail", f"/v1/faces/{face_id}/photo"):
            response = fresh.get(path, "investigator", params=VIEW)
            if response.status_code == 200:
                shown.add(face_id)
            elif face_id in protected:
                error = response.json()["error"]
                assert (response.status_code, error["code"]) == (422, "purpose_required")
                assert "legal_basis" in error["message"] and "groups" not in error["message"]
            else:
                assert response.status_code == 404
    assert shown == set(collection_of) - protected
    face = min(protected)
    based = {**VIEW, "legal_basis": "court order 2026/12"}
    assert fresh.get(f"/v1/faces/{face}/thumbnail", "investigator", params=based).status_code == 200
    views = [e for e in fresh.audit(action="face_view") if e["details"]["face_id"] == face]
    assert len(views) == 1 and views[0]["details"]["legal_basis"] == "court order 2026/12"
    assert views[0]["purpose"] == VIEW["purpose"]
    nothing = fresh.get(f"/v1/faces/{face}", "investigator", params={**based, "purpose": "..."})
    assert (nothing.status_code, nothing.json()["error"]["code"]) == (422, "invalid_purpose")


def test_the_api_audit_verify_fails_on_a_wiped_log_and_checks_anchors_as_the_cli_does(fresh: Api) -> None:
    """Issue 12 §4: the API's ``/v1/audit/verify`` shares the CLI's checks (AuditLog.verify, check_anchor):
    a log wiped behind the server's back (triggers dropped) fails, and so does the anchor taken before."""
    head = fresh.get("/v1/audit/verify", "auditor").json()
    assert head["ok"] is True
    anchor = {"anchor_seq": head["head_sequence"], "anchor_hash": head["head_hash"]}
    assert fresh.get("/v1/audit/verify", "auditor", params=anchor).json()["ok"] is True
    with sqlite3.connect(fresh.folder / "catalog.sqlite") as con:
        for trigger in ("audit_log_no_delete", "audit_head_no_delete"):
            con.execute(f"DROP TRIGGER {trigger}")
        con.execute("DELETE FROM audit_log")
        con.execute("DELETE FROM audit_head")
    wiped = fresh.get("/v1/audit/verify", "auditor").json()
    assert wiped["ok"] is False and "the audit log is empty" in wiped["problem"]
    anchored = fresh.get("/v1/audit/verify", "auditor", params=anchor).json()
    assert anchored["ok"] is False and "no longer in the log" in anchored["problem"]
