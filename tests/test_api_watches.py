"""Issue 13 over the REST API: a case's watches, the alerts an upload raises, and who may see them.

The servers are those of tests/test_api.py (a copy of the run's example gallery with one user per
role, PROBE = obama.jpg never indexed); an investigator's case watches for Barack Obama from another
of his photos, and an ingester's upload job of obama.jpg and of a stranger raises exactly one alert.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

from facesearch.governance.watches import MAX_PHOTOS
from facesearch.store.schema import utcnow
from tests import test_api, test_api_cases
from tests.test_api import PROBE, Api
from tests.test_api_cases import open_case

# The fixtures of tests/test_api.py and tests/test_api_cases.py, used here as there.
built, examples, fresh, two = test_api.built, test_api.examples, test_api.fresh, test_api_cases.two

WATCHED = "by_identity/barack_obama/obama1.jpg"


def delete(api: Api, path: str, role: str) -> Any:
    return api.client.delete(path, headers=api.headers(role))


def add_watch(api: Api, case_id: str, role: str = "investigator", **fields: str) -> Any:
    expires = (utcnow() + timedelta(days=30)).date().isoformat()
    files = [("photo", ("p.jpg", api.photo(WATCHED), "image/jpeg"))]
    return api.post(f"/v1/cases/{case_id}/watches", role, files=files, data={"expires": expires, **fields})


def test_an_upload_of_the_watched_person_alerts_the_case_users_only(two: Api, shared_data: Path) -> None:
    """Issue 13: the ingester's upload job raises one alert (not for the stranger uploaded with it); the
    case's investigator and admins see it with an unseen count, another investigator gets nothing (403
    for the case), the ingester and the auditor cannot list alerts (the auditor reads the audit log)."""
    open_case(two, "C-1")
    outsider = add_watch(two, "C-1", role="investigator2")
    assert (outsider.status_code, outsider.json()["error"]["code"]) == (403, "forbidden")
    created = add_watch(two, "C-1", label="suspect 1")
    assert created.status_code == 201, created.text
    watch = created.json()
    assert (watch["case_id"], watch["status"], watch["label"]) == ("C-1", "active", "suspect 1")

    stranger = (shared_data / "lfw-dev" / "images" / "Aaron_Eckhart" / "Aaron_Eckhart_0001.jpg").read_bytes()
    files = [("files", ("new.jpg", two.photo(PROBE), "image/jpeg")), ("files", ("other.jpg", stranger, "image/jpeg"))]
    job = two.post("/v1/ingest/uploads", "ingester", files=files, data={"collection": "examples"}).json()
    done = two.wait(job["id"])
    assert done["indexed"] == 2 and "alert" not in str(done)  # the ingester is not told

    mine = two.get("/v1/alerts", "investigator").json()
    assert [(a["watch_id"], a["case_id"], a["watch_label"]) for a in mine["alerts"]] == [
        (watch["id"], "C-1", "suspect 1")
    ]
    assert mine["alerts"][0]["label"] in ("match", "possible lead") and mine["unseen"] == 1
    assert two.get("/v1/alerts", "admin").json()["alerts"] == mine["alerts"]
    assert two.get("/v1/alerts", "investigator2").json() == {"alerts": [], "unseen": 0, "last_seen": 0}
    for path in ("/v1/alerts?case_id=C-1", "/v1/cases/C-1/watches"):
        hidden = two.get(path, "investigator2")
        assert (hidden.status_code, hidden.json()["error"]["code"]) == (403, "forbidden")
    for role in ("ingester", "auditor"):
        assert two.get("/v1/alerts", role).status_code == 403
    logged = two.audit(action="watch_alert")
    assert [(e["case_id"], e["details"]["alert_id"]) for e in logged] == [("C-1", mine["alerts"][0]["id"])]

    seen = two.post("/v1/alerts/seen", "investigator", json={"up_to": mine["alerts"][0]["id"]}).json()
    assert seen == {"last_seen": mine["alerts"][0]["id"], "unseen": 0}
    assert two.get("/v1/alerts", "investigator").json()["unseen"] == 0
    assert two.get("/v1/alerts", "admin").json()["unseen"] == 1  # each user's own mark

    assert delete(two, f"/v1/watches/{watch['id']}", "investigator2").status_code == 403
    removed = delete(two, f"/v1/watches/{watch['id']}", "investigator")
    assert removed.status_code == 200 and removed.json()["status"] == "removed"
    listed = two.get("/v1/cases/C-1/watches", "investigator").json()["watches"]
    assert [(w["id"], w["status"], w["removed_by"]) for w in listed] == [(watch["id"], "removed", "investigator-1")]
    again = delete(two, f"/v1/watches/{watch['id']}", "investigator")
    assert (again.status_code, again.json()["error"]["code"]) == (409, "watch_removed")


def test_a_watch_needs_a_valid_future_expiry_and_webhook(two: Api) -> None:
    """Issue 13: bad expiry dates and webhooks are refused with their codes (422), and nothing is added; only
    an admin may give a watch a webhook (403 for an investigator)."""
    open_case(two, "C-1")
    past = add_watch(two, "C-1", expires="2020-01-01")
    assert (past.status_code, past.json()["error"]["code"]) == (422, "bad_expiry")
    hook = add_watch(two, "C-1", webhook="ftp://hooks.example/x")
    assert (hook.status_code, hook.json()["error"]["code"]) == (422, "bad_webhook")
    # A webhook makes the server send requests to any address: an investigator may not set one.
    probing = add_watch(two, "C-1", webhook="http://127.0.0.1:5432/")
    assert (probing.status_code, probing.json()["error"]["code"]) == (403, "forbidden")
    # More photos than a watch takes (once met only by the fuzzing): refused before any is read.
    expires = (utcnow() + timedelta(days=30)).date().isoformat()
    files = [("photo", (f"p{n}.jpg", b"not read", "image/jpeg")) for n in range(MAX_PHOTOS + 1)]
    many = two.post("/v1/cases/C-1/watches", "investigator", files=files, data={"expires": expires})
    assert (many.status_code, many.json()["error"]["code"]) == (400, "bad_request"), many.text
    assert f"at most {MAX_PHOTOS} photos per watch" in many.text
    assert two.get("/v1/cases/C-1/watches", "investigator").json()["watches"] == []
    by_admin = add_watch(two, "C-1", role="admin", webhook="http://127.0.0.1:9/hook")
    assert by_admin.status_code == 201, by_admin.text
    assert by_admin.json()["webhook_url"] == "http://127.0.0.1:9/hook"
