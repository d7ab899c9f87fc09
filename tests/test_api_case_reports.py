"""Issue 13 over the REST API: ``GET /v1/cases/{id}/report`` and ``POST /v1/cases/verify-report``.

The servers are those of tests/test_api.py and tests/test_api_cases.py (a copy of the run's example gallery
with one user per role, and a second investigator), each test on a copy of its own.
"""

from __future__ import annotations

import hashlib
import json

from tests import test_api, test_api_cases
from tests.test_api import PROBE, Api
from tests.test_api_cases import WHY, open_case

# The fixtures of tests/test_api.py and tests/test_api_cases.py, used here as there.
built, examples, fresh, two = test_api.built, test_api.examples, test_api.fresh, test_api_cases.two


def test_a_case_report_downloads_audited_and_verifies_and_outsiders_are_forbidden(two: Api) -> None:
    """Issue 13: an investigator working the case downloads its report (HTML and JSON, as an attachment);
    each download is a ``case_report`` entry with the file's SHA-256; ``verify-report`` accepts the file
    and rejects it after one byte changed; an investigator not on the case gets 403 for both."""
    open_case(two, "C-3")
    found = two.search(two.photo(PROBE), case_id="C-3", purpose=WHY, top_k=3).json()
    face_id = found["faces"][0]["candidates"][0]["face_id"]
    decision = {"face_id": face_id, "decision": "rejected", "note": "different ears"}
    assert two.post("/v1/cases/C-3/decisions", "investigator", json=decision).status_code == 201

    html = two.get("/v1/cases/C-3/report", "investigator")
    assert html.status_code == 200, html.text
    assert html.headers["content-type"].startswith("text/html")
    disposition = html.headers["content-disposition"]
    assert disposition.startswith("attachment;") and disposition.endswith('.html"')
    digest = hashlib.sha256(html.content).hexdigest()
    assert html.headers["x-report-sha256"] == digest and "different ears" in html.text
    as_json = two.get("/v1/cases/C-3/report", "investigator", params={"format": "json"})
    facts = json.loads(as_json.content)
    assert [(c["face_id"], c["status"]) for c in facts["candidates"]] == [(face_id, "rejected")]
    assert [s["audit_seq"] for s in facts["searches"]] == [found["audit_sequence"]]
    logged = [e for e in two.audit(action="case_report") if e["case_id"] == "C-3"]
    assert [(e["actor"], e["details"]["format"], e["details"]["sha256"]) for e in logged] == [
        ("investigator-1", "html", digest),
        ("investigator-1", "json", hashlib.sha256(as_json.content).hexdigest()),
    ]

    def verify(data: bytes, role: str) -> object:
        return two.post("/v1/cases/verify-report", role, files={"file": ("r.html", data, "text/html")})

    ok = verify(html.content, "auditor")
    assert ok.status_code == 200, ok.text
    verdict = ok.json()
    assert (verdict["valid"], verdict["case_id"], verdict["exported_by"]) == (True, "C-3", "investigator-1")
    assert verdict["audit_seq"] == logged[0]["seq"]
    changed = bytearray(html.content)
    changed[100] ^= 0x01
    refused = verify(bytes(changed), "investigator")
    assert refused.status_code == 200 and refused.json()["valid"] is False and refused.json()["problem"]

    for response in (two.get("/v1/cases/C-3/report", "investigator2"), verify(html.content, "investigator2")):
        assert (response.status_code, response.json()["error"]["code"]) == (403, "forbidden")
    assert two.get("/v1/cases/C-3/report", "ingester").status_code == 403  # no read_cases permission
    bad = two.get("/v1/cases/C-3/report", "investigator", params={"format": "pdf"})
    assert bad.status_code == 422
    assert len([e for e in two.audit(action="case_report") if e["case_id"] == "C-3"]) == 2  # refusals not logged
