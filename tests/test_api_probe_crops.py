"""Issue 13 over the REST API: ``GET /v1/cases/{id}/searches/{seq}/probe/{face}``, the kept probe crop.

A blind second reviewer "sees the probe and the candidate": the probe's crop (a thumbnail kept for the case's
report, never the probe photo) is served to users who may see the case, each look audited (``probe_view``);
an investigator not on the case gets 403, a crop that was never kept 404. The servers are those of
tests/test_api_cases.py (a copy of the run's example gallery per test, a second investigator).
"""

from __future__ import annotations

import io

from PIL import Image

from tests import test_api, test_api_cases
from tests.test_api import PROBE, Api
from tests.test_api_cases import WHY, open_case

built, examples, fresh, two = test_api.built, test_api.examples, test_api.fresh, test_api_cases.two


def test_the_probe_crop_is_served_to_the_case_audited_and_refused_to_outsiders(two: Api) -> None:
    open_case(two, "C-9", users=["investigator-2"])
    found = two.search(two.photo(PROBE), case_id="C-9", purpose=WHY, top_k=3).json()
    seq = found["audit_sequence"]
    face_id = found["faces"][0]["candidates"][0]["face_id"]
    lead = {"face_id": face_id, "decision": "confirmed lead", "note": "same ears", "search_seq": seq}
    assert two.post("/v1/cases/C-9/decisions", "investigator", json=lead).status_code == 201
    # The case page's searches and the blind reviewer's task name the probe face whose crop they show.
    searches = two.get("/v1/cases/C-9", "investigator").json()["searches"]
    assert [(s["audit_sequence"], s["probe_faces"]) for s in searches] == [(seq, [0])]
    task = two.get("/v1/cases/C-9/second-reviews", "investigator2").json()["tasks"][0]
    assert (task["search_seq"], task["probe_face"]) == (seq, 0)

    crop = two.get(f"/v1/cases/C-9/searches/{seq}/probe/0", "investigator2")
    assert crop.status_code == 200, crop.text
    assert crop.headers["content-type"] == "image/jpeg"
    with Image.open(io.BytesIO(crop.content)) as image:
        assert image.format == "JPEG" and max(image.size) <= 112  # a thumbnail, never the probe photo
    views = [e for e in two.audit(action="probe_view") if e["case_id"] == "C-9"]
    assert [(e["actor"], e["details"]["search_seq"], e["details"]["face"]) for e in views] == [
        ("investigator-2", seq, 0)
    ]
    assert views[0]["details"]["probe_sha256"] == found["probe_sha256"]

    # The same case id spelled otherwise finds the same case; an investigator not working it: 403, not audited.
    assert two.get(f"/v1/cases/c-9/searches/{seq}/probe/0", "auditor").status_code == 200
    open_case(two, "C-10")
    fresh_outsider = two.post("/v1/users", "admin", json={"name": "investigator-3", "role": "investigator"})
    two.keys = {**two.keys, "investigator3": fresh_outsider.json()["key"]}
    outsider = two.get(f"/v1/cases/C-9/searches/{seq}/probe/0", "investigator3")
    assert (outsider.status_code, outsider.json()["error"]["code"]) == (403, "forbidden")
    # No crop for a face the probe does not have, a search of another case, or no search at all: 404.
    for path in (f"C-9/searches/{seq}/probe/5", f"C-10/searches/{seq}/probe/0", f"C-9/searches/{seq + 1000}/probe/0"):
        missing = two.get(f"/v1/cases/{path}", "investigator")
        assert (missing.status_code, missing.json()["error"]["code"]) == (404, "not_found"), path
    assert len([e for e in two.audit(action="probe_view") if e["case_id"] == "C-9"]) == 2
