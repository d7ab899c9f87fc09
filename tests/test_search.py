"""End-to-end search on real photos (../shared/data/face_recognition_examples)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from facesearch import Library
from facesearch.errors import FaceSearchError, NoFaceFound
from facesearch.search.results import Candidate, SearchResult
from tests.conftest import GALLERY_COLLECTIONS, GALLERY_PROBE, ON_EVERY_VECTOR_STORE
from tests.helpers import PURPOSE, cli_ok, copy_library, copy_on_vector_store, run_cli, store_synthetic_faces

# One probe per person with several photos; the rest of their photos go into the gallery.
PROBES = {
    "barack_obama": "obama.jpg",
    "joe_biden": "biden.jpg",
    "kit_harington": "john1.jpg",
    "rose_leslie": "img1.jpg",
    "alex_lacamoire": "alex_lacamoire1.jpg",
}


PEOPLE = "examples"  # the example gallery's collection of portraits (tests/conftest.py)


def person_of(path: str) -> str:
    return Path(path).parent.name


@pytest.fixture(scope="module")
def examples(shared_data: Path) -> Path:
    return shared_data / "face_recognition_examples"


@pytest.fixture(scope="module")
def library(tmp_path_factory: pytest.TempPathFactory, example_gallery: Path, examples: Path) -> Iterator[Library]:
    """A copy of the run's example gallery with every probe taken out: each probe is a new photo of someone
    in it. Portraits in collection PEOPLE, the three group photos in "groups"."""
    folder = copy_library(example_gallery, tmp_path_factory.mktemp("lib") / "library")
    lib = Library.open(folder)
    probes = [examples / "by_identity" / person / name for person, name in PROBES.items()]
    for probe in probes:
        if probe != examples / GALLERY_PROBE:  # never in the gallery
            assert lib.remove(source=str(probe)).sources == [str(probe)]
    gallery = lib.catalog.known_sources(lib.catalog.collection_id(PEOPLE, create=False))
    assert len(gallery) == GALLERY_COLLECTIONS[PEOPLE] - (len(PROBES) - 1)
    assert not gallery & {str(p) for p in probes}
    yield lib
    lib.close()


@pytest.fixture(scope="module")
def searchable(library: Library, vector_store: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Library]:
    """The library on the test's vector store: FAISS as copied, Milvus rebuilt from a copy's catalog."""
    if vector_store == "faiss":
        yield library
        return
    folder = copy_on_vector_store(library.folder, tmp_path_factory.mktemp(vector_store) / "library", vector_store)
    with Library.open(folder) as lib:
        assert lib.config.vector_store == vector_store and len(lib.vector_index) == library.catalog.face_count()
        yield lib


@pytest.mark.parametrize("person", sorted(PROBES))
def test_right_person_ranks_first(searchable: Library, examples: Path, person: str) -> None:
    probe = examples / "by_identity" / person / PROBES[person]
    result = searchable.search(probe, top_k=5, collection=PEOPLE, purpose=PURPOSE)
    top = result.faces[0].candidates[0]
    assert person_of(top.image.path) == person, f"{probe.name}: top candidate {top.image.path}"
    assert top.passes_threshold
    assert top.similarity > 0.9


def test_every_face_in_group_photos_is_found(library: Library, examples: Path) -> None:
    # obama_and_biden.jpg also shows a child's face low in the frame, half in shadow: a real third face.
    expected = {"kit_with_rose.jpg": 2, "obama_and_biden.jpg": 3, "two_people.jpg": 2}
    found = {photo.name: len(library.faces(photo)) for photo in sorted((examples / "multi_face").iterdir())}
    assert found == expected
    groups = next(c for c in library.stats()["collections"] if c["name"] == "groups")
    assert groups == {"name": "groups", "images": 3, "faces": 7}


def test_group_photo_probe_searches_each_face_and_face_option_picks_one(searchable: Library, examples: Path) -> None:
    probe = examples / "multi_face" / "obama_and_biden.jpg"
    both = searchable.search(probe, top_k=3, collection=PEOPLE, purpose=PURPOSE)
    assert len(both.faces) == 3  # two adults and a child, largest first
    tops = {person_of(f.candidates[0].image.path) for f in both.faces[:2]}
    assert tops == {"barack_obama", "joe_biden"}
    assert all(f.candidates[0].passes_threshold for f in both.faces[:2])
    assert not both.faces[2].candidates[0].passes_threshold, "the child is nobody in the gallery"
    one = searchable.search(probe, top_k=3, face=1, collection=PEOPLE, purpose=PURPOSE)
    assert len(one.faces) == 1 and one.faces[0].face == 1
    assert one.faces[0].candidates[0].face_id == both.faces[1].candidates[0].face_id
    with pytest.raises(FaceSearchError, match="choose a face from 0 to 2"):
        searchable.search(probe, face=3, purpose=PURPOSE)


@ON_EVERY_VECTOR_STORE
def test_collection_filter(searchable: Library, examples: Path) -> None:
    probe = examples / "by_identity" / "barack_obama" / "obama.jpg"
    result = searchable.search(probe, top_k=10, collection="groups", purpose=PURPOSE)
    assert {c.collection for c in result.faces[0].candidates} == {"groups"}
    # Obama appears in two of the group photos (two_people.jpg shows him with another man).
    top_two = {Path(c.image.path).name for c in result.faces[0].candidates[:2]}
    assert top_two == {"obama_and_biden.jpg", "two_people.jpg"}
    assert all(c.passes_threshold for c in result.faces[0].candidates[:2])
    with pytest.raises(FaceSearchError, match="no collection named"):
        searchable.search(probe, collection="nope", purpose=PURPOSE)


def test_verify_same_and_different(library: Library, examples: Path) -> None:
    people = examples / "by_identity"
    same = library.verify(
        people / "barack_obama" / "obama.jpg", people / "barack_obama" / "obama2.jpg", purpose=PURPOSE
    )
    different = library.verify(
        people / "barack_obama" / "obama.jpg", people / "joe_biden" / "biden.jpg", purpose=PURPOSE
    )
    assert same.same_person and not different.same_person
    assert same.similarity > different.similarity + 0.05
    from facesearch.governance import AuditLog

    entry = AuditLog(library.catalog).entries(action="verify", limit=1000)[-1]
    assert entry.details["photos_sha256"] == different.photos_sha256 and len(different.photos_sha256[1]) == 64


# The two negatives whose CNN fallback pass costs most (issue 11, the suite's speed): a 1411x1411 fundus photo
# and a 1000x872 deep field, 4x the pixels once upsampled: 11 s of the 25 s this test took. HOG is checked on
# them with the other negatives (tests/test_eval_detect.py). The street photo wider than the detector's working
# size stays (its downscaling path), as do the animal faces, greyscale and RGBA images, textures and text.
COSTLY_NEGATIVES = {"retina.jpg", "hubble_deep_field.jpg"}


def test_no_face_in_negatives(library: Library, shared_data: Path) -> None:
    """The library's detector (HOG, then the CNN where HOG finds none) finds no face in photos without one."""
    negatives = sorted(
        p
        for p in (shared_data / "negatives").rglob("*")
        if p.suffix.lower() in {".jpg", ".png"} and p.name not in COSTLY_NEGATIVES
    )
    assert len(negatives) >= 20
    assert {"chelsea.png", "dog.jpg", "mmod_cars_test_image2.jpg"} <= {p.name for p in negatives}
    found = {p.name: len(library.faces(p)) for p in negatives}
    assert sum(found.values()) == 0, found
    with pytest.raises(NoFaceFound):
        library.search(negatives[0], purpose=PURPOSE)


def test_cli_search_json_schema(library: Library, examples: Path) -> None:
    probe = examples / "by_identity" / "joe_biden" / "biden.jpg"
    out = cli_ok(
        "search",
        str(probe),
        "--case",
        "T-1",
        "--purpose",
        "compare two photos for the tests",
        "--json",
        "--top-k",
        "3",
        "--collection",
        PEOPLE,
        "-l",
        str(library.folder),
    )
    data = json.loads(out.stdout)
    candidate = data["faces"][0]["candidates"][0]
    assert set(candidate) >= {
        "rank",
        "similarity",
        "passes_threshold",
        "fmr",
        "expected_false_candidates",
        "label",
        "face_id",
        "collection",
        "image",
    }
    assert data["max_fmr"] == 1e-3 and data["calibration"]
    # Issue 12 §2: the search states its 1:N operating point.
    assert data["max_fpir"] == 0.01 and data["gallery_size"] == GALLERY_COLLECTIONS[PEOPLE] - (len(PROBES) - 1)
    assert data["match_fmr"] == pytest.approx(min(1e-3, 0.01 / data["gallery_size"]), rel=0.01)
    assert data["match_threshold"] >= data["threshold"] and data["match_unavailable"] is None
    assert set(candidate["image"]) >= {"image_id", "path", "source_url", "page_url"}
    assert candidate["rank"] == 1 and person_of(candidate["image"]["path"]) == "joe_biden"
    assert len(data["faces"][0]["box"]) == 4

    verify = cli_ok(
        "verify",
        str(probe),
        str(probe),
        "--case",
        "T-1",
        "--purpose",
        "compare the probe with itself",
        "--json",
        "-l",
        str(library.folder),
    )
    answer = json.loads(verify.stdout)
    assert answer["same_person"] is True and answer["similarity"] > 0.99 and "threshold" in answer
    assert answer["label"] == "match" and answer["fmr"] is not None and answer["max_fmr"] == 1e-3


def test_every_result_carries_its_false_match_rate(searchable: Library, examples: Path) -> None:
    probe = examples / "multi_face" / "obama_and_biden.jpg"
    result = searchable.search(probe, top_k=5, collection=PEOPLE, purpose=PURPOSE)
    assert result.max_fmr == 1e-3 and result.calibration
    for face in result.faces:
        for c in face.candidates:
            assert c.fmr is not None and 0 < c.fmr <= 1
            assert c.expected_false_candidates == pytest.approx(c.fmr * result.gallery_size, rel=0.01)
            assert c.passes_threshold == (c.fmr <= result.max_fmr)
            # Issue 12 §2: three labels; a match also expects at most max_fpir strangers in this gallery.
            if c.label == "match":
                assert c.passes_threshold and c.fmr * result.gallery_size <= result.max_fpir
            else:
                assert c.label == ("possible lead" if c.passes_threshold else "no match")
        rates = [c.fmr for c in face.candidates]
        assert rates == sorted(rates), "a better score never has a higher false match rate"
    # The child in the photo is nobody in the gallery: a lead at best, with a high false match rate.
    assert face.candidates[0].fmr > 1e-3 and face.candidates[0].label != "match"


def test_max_fmr_sets_the_threshold(library: Library, examples: Path) -> None:
    probe = examples / "by_identity" / "barack_obama" / "obama.jpg"
    loose = library.search(probe, top_k=10, max_fmr=1e-2, purpose=PURPOSE)
    strict = library.search(probe, top_k=10, max_fmr=1e-5, purpose=PURPOSE)
    assert strict.threshold > loose.threshold
    n_loose = sum(c.passes_threshold for c in loose.faces[0].candidates)
    n_strict = sum(c.passes_threshold for c in strict.faces[0].candidates)
    assert n_loose >= n_strict >= 1, "Obama's best gallery photo is a match even at 1e-5"
    for c in strict.faces[0].candidates:
        assert c.passes_threshold == (c.score >= strict.threshold - 1e-4)
    for bad in (0.0, 1.5, 1e-12):
        with pytest.raises(FaceSearchError) as info:
            library.search(probe, max_fmr=bad, purpose=PURPOSE)
        assert info.value.code == "bad_request"
    people = examples / "by_identity"
    different = library.verify(
        people / "barack_obama" / "obama.jpg", people / "joe_biden" / "biden.jpg", purpose=PURPOSE
    )
    assert different.label == "no match" and different.fmr > 1e-3  # issue 12 §2: verify says no match


def test_every_search_is_audited_and_a_collection_can_demand_a_legal_basis(library: Library, examples: Path) -> None:
    from facesearch.governance import AuditLog, SearchPurpose, set_requirements
    from facesearch.governance.errors import PurposeRequired

    probe = examples / "by_identity" / "joe_biden" / "biden.jpg"
    log = AuditLog(library.catalog)
    before = log.head()
    purpose = SearchPurpose(case_id="CASE-7", purpose="find the source of a leaked photo")
    result = library.search(probe, top_k=3, collection=PEOPLE, purpose=purpose, actor="ana")
    entry = log.entries(action="search", limit=1000)[-1]
    assert log.head() != before and entry.actor == "ana" and entry.case_id == "CASE-7"
    assert result.audit_sequence == entry.seq  # the result names its own entry
    assert entry.details["probe_sha256"] == result.probe_sha256 and len(result.probe_sha256) == 64
    assert entry.details["faces"][0]["shown"] == [c.face_id for c in result.faces[0].candidates]
    assert log.verify().ok
    set_requirements(library.catalog, PEOPLE, ["legal_basis"])
    try:
        with pytest.raises(PurposeRequired, match="legal_basis"):
            library.search(probe, collection=PEOPLE, purpose=purpose)
        with pytest.raises(PurposeRequired):
            library.search(probe, collection=PEOPLE, purpose=PURPOSE)
        lawful = SearchPurpose(case_id="CASE-7", purpose="find the source", legal_basis="court order 12/26")
        assert library.search(probe, top_k=1, collection=PEOPLE, purpose=lawful).faces
    finally:
        set_requirements(library.catalog, PEOPLE, [])


CASE_ARGS = ("--case", "T-12", "--purpose", "compare the photos found for case T-12")
WIDE = {"COLUMNS": "240"}  # the table on one line per row, as on an operator's terminal


def test_cli_search_table_shows_image_ids_beside_face_ids(library: Library, examples: Path) -> None:
    """Issue 12 §7: the table showed face ids only; an operator typed face id 117 into `remove --image` and
    deleted another person's photo. Each row now shows the face id and the image id `remove --image` takes."""
    probe = str(examples / "by_identity" / "barack_obama" / "obama.jpg")
    common = (*CASE_ARGS, "--collection", "groups", "-l", str(library.folder))
    data = json.loads(cli_ok("search", probe, *common, "--json").stdout)
    pairs = [(c["face_id"], c["image"]["image_id"]) for c in data["faces"][0]["candidates"]]
    assert any(face != image for face, image in pairs), "the check needs a face whose id is not its image's id"
    table = cli_ok("search", probe, *common, env=WIDE).stdout
    header = next(line for line in table.splitlines() if "face id" in line)
    columns = [cell.strip() for cell in header.split("┃")]
    assert columns.index("image id") == columns.index("face id") + 1
    rows = [[cell.strip() for cell in line.split("│")] for line in table.splitlines() if line.count("│") > 5]
    shown = [(int(row[columns.index("face id")]), int(row[columns.index("image id")])) for row in rows]
    assert shown == pairs


def test_cli_verify_exits_1_for_different_people_like_grep_and_cmp(library: Library, examples: Path) -> None:
    """Issue 12 §2: `verify` of two different people exited 0. Now: 0 same person, 1 not the same person
    (said in words), 2 an error."""
    people = examples / "by_identity"
    obama, obama2, biden = (
        str(people / p) for p in ("barack_obama/obama.jpg", "barack_obama/obama2.jpg", "joe_biden/biden.jpg")
    )
    common = (*CASE_ARGS, "-l", str(library.folder))
    different = run_cli("verify", obama, biden, *common, env=WIDE)
    assert different.exit_code == 1 and "not the same person" in different.stdout, different.output
    as_json = run_cli("verify", obama, biden, *common, "--json")
    answer = json.loads(as_json.stdout)
    assert as_json.exit_code == 1 and answer["label"] == "no match"
    assert "off by up to 3.85x" in answer["calibration_warning"]  # the --jitter 0 table's held-out check
    same = run_cli("verify", obama, obama2, *common, env=WIDE)
    assert same.exit_code == 0 and "same person" in same.stdout and "not the same" not in same.stdout, same.output
    for bad in ((str(people / "nobody.jpg"), obama), (obama, biden, "--max-fmr", "2")):
        error = run_cli("verify", *bad, *common)
        assert error.exit_code == 2 and "error" in error.stderr, error.output


# Issue 12 §2: a different person under max_fmr, in a large gallery --------------------------------

# Two different people of lfw-dev whose photos score cosine ~0.943 with the --jitter 0 recipe: FMR ~1e-4
# per comparison, under the default max_fmr 1e-3. Found among 300 lfw-dev photos by
# bench/accuracy/heldout_calibration.py's embeddings (only the names are kept here, never embeddings).
STRANGER_INDEXED = "John_Rowe/John_Rowe_0001.jpg"
STRANGER_PROBE = "Dick_Cheney/Dick_Cheney_0003.jpg"
DISTRACTORS = 5_000


def add_distractors(lib: Library, count: int) -> None:
    """``count`` synthetic faces (random unit vectors) stored through the library's one writer, in their own
    collection. LFW has too few people to make a large gallery; these make it large for real (every search
    compares the probe with them, gallery_size counts them) and never outrank a real face."""
    import numpy as np

    vectors = np.random.default_rng(12).normal(size=(count, 128)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    store_synthetic_faces(lib, "distractors", vectors, stem="distractor")


@pytest.fixture(scope="module")
def large_gallery(tmp_path_factory: pytest.TempPathFactory, shared_data: Path) -> Iterator[tuple[Library, Path]]:
    """One real photo of a person (collection "people") among DISTRACTORS synthetic faces, and a probe photo
    of a different person. Cosine scores (no s-norm): the cohort would be drawn from the synthetic faces."""
    images = shared_data / "lfw-dev" / "images"
    folder = tmp_path_factory.mktemp("large") / "library"
    Library.open(folder, jitter=0).close()
    config = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**config, "score_normalization": "none"}))
    with Library.open(folder) as lib:
        lib.create_collection("people")
        assert lib.index([str(images / STRANGER_INDEXED)], collection="people", workers=1).faces >= 1
        add_distractors(lib, DISTRACTORS)
        yield lib, images / STRANGER_PROBE


def stranger(result: SearchResult) -> Candidate:
    """The best candidate from the other person's photo."""
    found = [c for f in result.faces for c in f.candidates if (c.image.path or "").endswith(STRANGER_INDEXED)]
    assert found, "the other person's photo is among the candidates"
    return max(found, key=lambda c: c.score)


def test_a_different_person_under_max_fmr_is_not_a_match_in_a_large_gallery(
    large_gallery: tuple[Library, Path],
) -> None:
    """Issue 12 §2: `match` meant fmr <= 1e-3 per comparison whatever the gallery size, so a different
    person at fmr ~1e-4 was labelled `match` among thousands of faces. Now it is a possible lead there
    (expected strangers 1e-4 x 5,001 >> max_fpir 0.01), and a match only where the gallery is small enough."""
    lib, probe = large_gallery
    result = lib.search(probe, top_k=5, purpose=PURPOSE)
    other = stranger(result)
    assert other.fmr < 1e-3 and other.passes_threshold, "the precondition: a different person under max_fmr"
    assert result.gallery_size == DISTRACTORS + 1 and result.max_fpir == 0.01
    assert other.expected_false_candidates > result.max_fpir
    assert other.label == "possible lead"
    # The shipped table of this recipe (--jitter 0) was off by up to 3.85x on held-out people: every result says so.
    assert "off by up to 3.85x" in (result.calibration_warning or "")
    assert result.match_fmr == pytest.approx(0.01 / result.gallery_size, rel=0.01)
    assert result.match_threshold is not None and result.match_threshold > other.score
    # The same comparison, searching only the one-photo collection: 1 face, fmr ~1e-4 <= 0.01 strangers.
    alone = lib.search(probe, top_k=5, collection="people", purpose=PURPOSE)
    assert alone.gallery_size == 1 and stranger(alone).label == "match"
    # A search may accept more risk, knowingly: max_fpir 0.9 over 5,001 faces.
    loose = lib.search(probe, top_k=5, max_fpir=0.9, purpose=PURPOSE)
    assert stranger(loose).label == "match" and loose.max_fpir == 0.9
    from facesearch.governance import AuditLog

    audited = AuditLog(lib.catalog).entries(action="search", limit=1000)[-1]
    assert audited.details["max_fpir"] == 0.9 and audited.details["faces"][0]["matches"] >= 1


def test_when_the_calibration_cannot_measure_that_low_no_result_is_a_match_and_the_cli_says_why(
    large_gallery: tuple[Library, Path],
) -> None:
    """Issue 12 §2: when max_fpir / gallery size is below the smallest fmr the calibration measures, the
    search labels nothing `match` (not even an identical photo) and says why and how to fix it."""
    lib, probe = large_gallery
    indexed = probe.parents[1] / STRANGER_INDEXED
    same_photo = lib.search(indexed, max_fpir=1e-6, purpose=PURPOSE)  # needs fmr 2e-10; the table resolves 2.2e-8
    top = same_photo.faces[0].candidates[0]
    assert top.similarity > 0.99 and top.label == "possible lead"
    assert same_photo.match_threshold is None and "calibrate on more photos" in (same_photo.match_unavailable or "")
    common = (*CASE_ARGS, "-l", str(lib.folder))
    data = json.loads(cli_ok("search", str(probe), "--max-fpir", "1e-6", "--json", *common).stdout)
    assert data["match_unavailable"] and all(c["label"] != "match" for f in data["faces"] for c in f["candidates"])
    shown = cli_ok("search", str(probe), "--max-fpir", "1e-6", *common, env=WIDE).stdout
    assert "no result can be a match" in shown and "calibrate on more photos" in shown
    assert "calibration warning" in shown and "off by up to 3.85x" in shown
    refused = run_cli("search", str(probe), "--max-fpir", "0", *common)
    assert refused.exit_code == 2 and "max-fpir must be between 0 and 1" in refused.stderr
