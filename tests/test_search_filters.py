"""Issue 13: searching only photos taken in a date range, and "search with this face" (an indexed face as
the probe), over the API and the CLI, through the one audited search path (search/service.py).

The library is a copy of the API tests' (tests/test_api.py: the example gallery, one user per role)
with EXIF dates written into its catalog: Obama's photos taken in 2020, the other portraits' in 2010
but two left undated, the group photos undated.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import pytest
from sqlalchemy import select, update

from facesearch import Library
from facesearch.errors import FaceSearchError
from facesearch.governance.purpose import set_requirements
from facesearch.store.schema import CollectionRow, FaceRow, ImageRow
from tests import test_api
from tests.helpers import cli_ok, run_cli
from tests.test_api import CASE, PROBE, Api

built, examples = test_api.built, test_api.examples

OBAMA_TAKEN = datetime(2020, 6, 1, 12, 0)
OTHERS_TAKEN = datetime(2010, 1, 15, 9, 30)


@pytest.fixture(scope="module")
def dated(built: tuple[Path, dict[str, str]], tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    """The API tests' library with dates, and what the tests need to know of it (face ids per group)."""
    folder = tmp_path_factory.mktemp("dated") / "lib"
    shutil.copytree(built[0], folder)
    with Library.open(folder) as lib, lib.catalog.session() as s:
        images = s.execute(select(ImageRow.id, ImageRow.source, CollectionRow.name).join(CollectionRow)).all()
        portraits = sorted((i, src) for i, src, coll in images if coll == "examples")
        obama = [i for i, src in portraits if "/barack_obama/" in src]
        others = [i for i, src in portraits if "/barack_obama/" not in src]
        undated_portraits = others[:2]
        s.execute(update(ImageRow).where(ImageRow.id.in_(obama)).values(exif_time=OBAMA_TAKEN))
        s.execute(update(ImageRow).where(ImageRow.id.in_(others[2:])).values(exif_time=OTHERS_TAKEN))
        s.commit()
        faces = dict(s.execute(select(FaceRow.id, FaceRow.image_id)).all())
        undated = set(s.scalars(select(ImageRow.id).where(ImageRow.exif_time.is_(None))))  # a photo may have its own
        sha = dict(s.execute(select(ImageRow.id, ImageRow.sha256)).all())
    facts = {
        "obama_faces": sorted(f for f, i in faces.items() if i in obama),
        "undated_faces": sorted(f for f, i in faces.items() if i in undated),
        "undated_portrait_faces": sorted(f for f, i in faces.items() if i in undated and i in undated_portraits),
        "group_faces": sorted(f for f, i in faces.items() if i not in obama and i not in others),
        "image_of": faces,
        "sha": sha,
    }
    return folder, {**facts, "keys": built[1]}


@pytest.fixture
def server(dated: tuple[Path, dict], tmp_path: Path, examples: Path) -> Iterator[Api]:
    yield from test_api.serve((dated[0], dated[1]["keys"]), tmp_path, examples)


def searches(api: Api) -> list[dict]:
    return api.audit(action="search", case_id=CASE["case_id"])


def candidates(body: dict) -> list[int]:
    return [c["face_id"] for f in body["faces"] for c in f["candidates"]]


# the date range ---------------------------------------------------------------------------------


def test_a_date_range_searches_only_photos_taken_in_it_before_ranking(server: Api, dated: tuple[Path, dict]) -> None:
    """Issue 13: filters by date range. Only faces of photos taken in the range are searched (the gallery
    itself is smaller: gallery_size counts them), undated photos are left out and counted, and the audit
    entry records the range."""
    facts = dated[1]
    recent = server.search(server.photo(PROBE), taken_after="2019-01-01", top_k=50)
    assert recent.status_code == 200, recent.text
    body = recent.json()
    assert sorted(candidates(body)) == facts["obama_faces"]  # nothing else was taken after 2019
    assert body["gallery_size"] == len(facts["obama_faces"])
    assert body["undated_excluded"] == len(facts["undated_faces"])
    assert (body["taken_after"], body["taken_before"]) == ("2019-01-01T00:00:00", None)
    entry = next(e for e in searches(server) if e["seq"] == body["audit_sequence"])
    assert entry["details"]["taken_after"] == "2019-01-01T00:00:00"
    assert entry["details"]["undated_excluded"] == len(facts["undated_faces"])

    # The day given as taken_before is included (up to its end); Obama's 2020 photos are not.
    older = server.search(server.photo(PROBE), taken_before="2010-01-15", collection="examples", top_k=50).json()
    shown = candidates(older)
    assert shown and not set(shown) & set(facts["obama_faces"]) and not set(shown) & set(facts["undated_faces"])
    assert older["undated_excluded"] == len(facts["undated_portrait_faces"])  # of the collection searched
    none = server.search(server.photo(PROBE), taken_before="2010-01-14").json()
    assert candidates(none) == [] and none["gallery_size"] == 0

    plain = server.search(server.photo(PROBE)).json()  # no range: the entry and result say nothing of dates
    assert plain["undated_excluded"] is None
    assert "taken_after" not in next(e for e in searches(server) if e["seq"] == plain["audit_sequence"])["details"]


@pytest.mark.parametrize(
    ("fields", "said"),
    [
        ({"taken_after": "2020-13-45"}, "is not a date"),
        ({"taken_before": "last tuesday"}, "is not a date"),
        ({"taken_after": "2021-01-01", "taken_before": "2020-01-01"}, "must be before"),
    ],
)
def test_a_bad_date_is_refused_before_anything_is_searched(server: Api, fields: dict, said: str) -> None:
    before = len(searches(server))
    refused = server.search(server.photo(PROBE), **fields)
    assert refused.status_code == 422, refused.text
    assert refused.json()["error"]["code"] == "bad_date" and said in refused.json()["error"]["message"]
    assert len(searches(server)) == before  # nothing searched, nothing audited


# search with this face ------------------------------------------------------------------------------


def face_search(api: Api, face_id: int, role: str = "investigator", **fields: object) -> object:
    data = {**CASE, "probe_face_id": str(face_id), **{k: str(v) for k, v in fields.items()}}
    return api.post("/v1/search", role, data=data)


def test_an_indexed_face_is_a_probe_audited_with_its_id_and_photo_hash(server: Api, dated: tuple[Path, dict]) -> None:
    """Issue 13: "search with this face". The stored embedding is the probe: the face finds itself first
    and the person's other photos; the audit entry names the face id and its photo's SHA-256."""
    facts = dated[1]
    face_id = facts["obama_faces"][0]
    found = face_search(server, face_id, top_k=5)
    assert found.status_code == 200, found.text
    body = found.json()
    shown = candidates(body)
    assert shown[0] == face_id and body["faces"][0]["candidates"][0]["similarity"] > 0.99
    assert len(set(shown) & set(facts["obama_faces"])) >= 3  # his other portraits (group photos show him too)
    sha = facts["sha"][facts["image_of"][face_id]]
    assert (body["probe_face_id"], body["probe_sha256"]) == (face_id, sha)
    details = next(e for e in searches(server) if e["seq"] == body["audit_sequence"])["details"]
    assert (details["probe_face_id"], details["probe_sha256"]) == (face_id, sha)

    # With a date range too: the same filters as any search.
    dated_only = face_search(server, face_id, taken_before="2015-01-01").json()
    assert not set(candidates(dated_only)) & set(facts["obama_faces"])


def test_a_face_probe_is_refused_for_what_a_search_may_not_do(server: Api, dated: tuple[Path, dict]) -> None:
    """The attacks on "search with this face": an unknown face, a photo and a face at once, a face of a
    collection that demands a legal basis (none stated), a closed case, an opted-out person's face. Each
    is refused with its code, and none is audited as a search."""
    facts = dated[1]
    before = len(searches(server))
    unknown = face_search(server, 10**9)
    assert (unknown.status_code, unknown.json()["error"]["code"]) == (404, "not_found")
    both = server.post(
        "/v1/search",
        "investigator",
        files={"probe": ("p.jpg", server.photo(PROBE), "image/jpeg")},
        data={**CASE, "probe_face_id": str(facts["obama_faces"][0])},
    )
    assert (both.status_code, both.json()["error"]["code"]) == (400, "bad_request")
    nothing = server.post("/v1/search", "investigator", data=CASE)
    assert (nothing.status_code, nothing.json()["error"]["code"]) == (400, "bad_request")

    set_requirements(server.client.app.state.host.catalog, "groups", ["legal_basis"])  # as an admin would
    group_face = facts["group_faces"][0]
    protected = face_search(server, group_face, collection="examples")
    assert (protected.status_code, protected.json()["error"]["code"]) == (422, "purpose_required")
    assert f"face {group_face}" in protected.json()["error"]["message"]
    assert face_search(server, group_face, collection="examples", legal_basis="warrant 12").status_code == 200
    before += 1

    opted = server.post("/v1/optouts", files={"photo": ("me.jpg", server.photo(PROBE))}, data={"note": "req 13"})
    assert opted.status_code == 201, opted.text
    gone = face_search(server, facts["obama_faces"][0], collection="examples")
    assert (gone.status_code, gone.json()["error"]["code"]) == (404, "not_found")  # as for no face at all
    assert len(searches(server)) == before

    case = {"case_id": "C-face", "purpose": "identify the man in the bank camera still"}
    assert server.post("/v1/cases", "investigator", json=case).status_code == 201
    assert server.post("/v1/cases/C-face/close", "investigator").status_code == 200
    other = facts["undated_portrait_faces"][0]
    closed = server.post(
        "/v1/search", "investigator", data={**case, "probe_face_id": str(other), "collection": "examples"}
    )
    assert (closed.status_code, closed.json()["error"]["code"]) == (409, "case_closed")


# the CLI ----------------------------------------------------------------------------------------


def test_the_cli_searches_a_date_range_and_with_an_indexed_face(dated: tuple[Path, dict], tmp_path: Path) -> None:
    facts = dated[1]
    folder = tmp_path / "lib"
    shutil.copytree(dated[0], folder)
    common = ("--case", CASE["case_id"], "--purpose", CASE["purpose"], "--library", str(folder))
    face_id = facts["obama_faces"][0]
    out = json.loads(
        cli_ok("search", "--face-id", str(face_id), "--taken-after", "2019-01-01", *common, "--json").stdout
    )
    assert sorted(candidates(out)) == facts["obama_faces"] and out["probe_face_id"] == face_id
    assert out["undated_excluded"] == len(facts["undated_faces"])
    table = " ".join(
        cli_ok("search", "--face-id", str(face_id), "--taken-after", "2019-01-01", *common).stdout.split()
    )  # unwrapped
    assert f"probe: indexed face {face_id}" in table and "faces without a date left out" in table

    bad = run_cli("search", "--face-id", str(face_id), "--taken-before", "2020-02-30", *common)
    assert bad.exit_code == 2 and "bad_date" in bad.stderr
    neither = run_cli("search", *common)
    assert neither.exit_code == 2 and "--face-id" in neither.stderr
    photo = str(Path(test_api.__file__).parents[1] / "../shared/data/face_recognition_examples" / PROBE)
    both = run_cli("search", photo, "--face-id", str(face_id), *common)
    assert both.exit_code == 2 and "one of them" in both.stderr


def test_the_python_api_takes_dates_and_a_face_id(dated: tuple[Path, dict], tmp_path: Path) -> None:
    """Library.search(..., taken_after=, taken_before=) takes dates (or text) and probe_face_id, as the CLI does."""
    from datetime import date

    from facesearch.governance import SearchPurpose

    facts = dated[1]
    purpose = SearchPurpose(CASE["case_id"], CASE["purpose"])
    with Library.open(shutil.copytree(dated[0], tmp_path / "lib")) as lib:
        found = lib.search(None, purpose=purpose, probe_face_id=facts["obama_faces"][0], taken_after=date(2019, 1, 1))
        assert sorted(c.face_id for c in found.faces[0].candidates) == facts["obama_faces"]
        assert found.taken_after == "2019-01-01T00:00:00" and found.undated_excluded == len(facts["undated_faces"])
        face = facts["obama_faces"][0]
        day = lib.search(None, purpose=purpose, probe_face_id=face, taken_before=date(2020, 6, 1), top_k=50)
        assert set(facts["obama_faces"]) <= {c.face_id for c in day.faces[0].candidates}  # a day: all of it
        noon = lib.search(None, purpose=purpose, probe_face_id=face, taken_before=OBAMA_TAKEN, top_k=50)
        assert not {c.face_id for c in noon.faces[0].candidates} & set(facts["obama_faces"])  # a time: exclusive
        with pytest.raises(FaceSearchError) as refused:
            lib.search(None, purpose=purpose, probe_face_id=facts["obama_faces"][0], taken_after="01/02/2020")
        assert refused.value.code == "bad_date"
