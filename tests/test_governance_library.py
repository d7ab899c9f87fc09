"""Opt-out, erasure and retention on a real library of real photos (face_recognition_examples).

The library is the run's example gallery (tests/conftest.py; embedded without jitter: the recipe does
not matter here) and each test works on its own copy of the folder, so tests do not depend on each
other's removals. Opt-out and erasure, whose subject includes removing vectors from the store, run on
every vector store; retention and later ingests on FAISS.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import select, update

from facesearch import Library
from facesearch.errors import FaceSearchError, NoFaceFound
from facesearch.governance import AuditLog, erase, purge_expired, set_retention
from facesearch.store.schema import FaceRow, ImageRow
from tests.conftest import GALLERY_PROBE, ON_EVERY_VECTOR_STORE
from tests.helpers import PURPOSE, copy_library, copy_on_vector_store

OPTOUT_PHOTO = "barack_obama/obama.jpg"  # never indexed: the person brings a photo of their own


@pytest.fixture(scope="module")
def examples(shared_data: Path) -> Path:
    return shared_data / "face_recognition_examples"


@pytest.fixture(scope="module")
def built(example_gallery: Path) -> Path:
    """The run's example gallery (16 portraits in "examples", 3 group photos in "groups"): only ever copied."""
    assert "by_identity/" + OPTOUT_PHOTO == GALLERY_PROBE
    return example_gallery


@pytest.fixture
def lib(built: Path, tmp_path: Path, vector_store: str) -> Iterator[Library]:
    """A copy of the library on the test's vector store (Milvus: rebuilt from the copy's catalog)."""
    folder = copy_on_vector_store(built, tmp_path / "lib", vector_store)
    with Library.open(folder) as library:
        assert library.config.vector_store == vector_store
        yield library


def faces_by_path(lib: Library) -> dict[int, tuple[str, np.ndarray]]:
    with lib.catalog.session() as s:
        rows = s.execute(select(FaceRow.id, ImageRow.source, FaceRow.embedding).join(ImageRow)).all()
    return {r[0]: (r[1], np.frombuffer(r[2], np.float32)) for r in rows}


def obama_face_ids(lib: Library) -> set[int]:
    """Ground truth: every face in his own folder, and in group photos the face that resembles those clearly.

    (In the group photos his faces score >= 0.95 with his folder's mean, everyone else <= 0.88.)
    """
    faces = faces_by_path(lib)
    own = {i for i, (path, _) in faces.items() if "/barack_obama/" in path}
    mean = np.mean([faces[i][1] for i in own], axis=0)
    mean /= np.linalg.norm(mean)
    groups = {i for i, (path, vec) in faces.items() if "/multi_face/" in path and float(vec @ mean) > 0.92}
    return own | groups


def pieces_on_disk(lib: Library, data: bytes, size: int = 32) -> float:
    """The fraction of ``data``'s 32-byte pieces found anywhere in the catalog's files (WAL included)."""
    disk = b"".join(p.read_bytes() for p in lib.folder.glob("catalog.sqlite*"))
    pieces = [data[i : i + size] for i in range(0, len(data) - size + 1, size)]
    return sum(piece in disk for piece in pieces) / len(pieces)


def shown(lib: Library, probe: Path, **kwargs: object) -> list[tuple[int, str]]:
    result = lib.search(probe, top_k=50, purpose=PURPOSE, **kwargs)
    return [(c.face_id, c.image.path) for f in result.faces for c in f.candidates]


@ON_EVERY_VECTOR_STORE
def test_optout_removes_the_person_everywhere_and_keeps_everyone_else(lib: Library, examples: Path) -> None:
    people = examples / "by_identity"
    obama = obama_face_ids(lib)
    assert len(obama) == 7  # 5 photos of his own + 1 in each of two group photos
    before = shown(lib, people / "barack_obama" / "obama2.jpg")
    assert before[0][0] in obama and any(i in obama for i, _ in before[1:])  # he is found before
    faces_before = lib.catalog.face_count()

    registry = lib.optouts
    # Issue 12 §1: the library's match operating point (search's), no stricter one.
    assert registry.threshold == lib.scoring.operating_point("cosine", None)[1]
    receipt = registry.add(people / OPTOUT_PHOTO, note="request 2024-001", actor="admin-ana")

    assert set(receipt.face_ids) == obama  # exactly his faces: nobody else's
    own_images = {s for s in receipt.sources if "/barack_obama/" in s}
    assert len(own_images) == 5 and len(receipt.image_ids) == 5
    assert len(receipt.kept_image_ids) == 2  # the group photos stay, without him
    assert all(str(people / OPTOUT_PHOTO) != s for s in receipt.sources)
    assert lib.catalog.face_count() == faces_before - 7
    assert lib.catalog.faces_by_ids(obama) == {}
    assert not set(lib.vector_index.ids().tolist()) & obama
    with lib.catalog.session() as s:
        query = select(ImageRow.source, ImageRow.face_count).where(ImageRow.id.in_(receipt.kept_image_ids))
        counts = {source: count for source, count in s.execute(query).all()}
    assert sorted(counts.values()) == [1, 2]  # two_people keeps Biden; obama_and_biden keeps 2 others

    for photo in sorted((people / "barack_obama").iterdir()):  # every photo of him, the opt-out photo too
        hits = shown(lib, photo)
        assert not {i for i, _ in hits} & obama
        assert not [p for _, p in hits if "/barack_obama/" in (p or "")]
    biden = shown(lib, people / "joe_biden" / "biden.jpg")
    assert "biden" in biden[0][1] or "two_people" in biden[0][1]  # others are still found

    with Library.open(lib.folder) as reopened:  # the saved index no longer holds his vectors either
        assert not set(reopened.vector_index.ids().tolist()) & obama
        assert reopened.doctor(repair=False)["ok"]

    entry = AuditLog(lib.catalog).entries(action="optout_add")[0]
    assert entry.actor == "admin-ana" and set(entry.details["face_ids"]) == obama
    assert "barack_obama" not in str(entry.details)  # no paths in the permanent log
    assert registry.list_optouts()[0].photo_sha256 == receipt.photo_sha256
    assert AuditLog(lib.catalog).verify().ok


def test_optout_keeps_the_person_out_of_later_ingest_and_search(
    lib: Library, examples: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    people = examples / "by_identity"
    registry = lib.optouts
    embeddings = np.stack(
        [
            lib.searches.largest_face(people / "barack_obama" / "obama3.jpg")[0],
            lib.searches.largest_face(people / "joe_biden" / "biden.jpg")[0],
        ]
    )
    assert registry.is_opted_out(embeddings).tolist() == [False, False]  # no opt-outs yet

    registry.add(people / "barack_obama" / "obama1.jpg", note="request 2")
    assert registry.is_opted_out(embeddings).tolist() == [True, False]
    with Library.open(lib.folder) as other:  # another process's registry reads it from the database
        assert other.optouts.is_opted_out(embeddings).tolist() == [True, False]

    # Ingest never stores his face again, and searching for him shows nobody.
    lib.create_collection("late")
    report = lib.index([people / OPTOUT_PHOTO], collection="late", workers=1)
    # Issue 12 §1 (changed): a photo whose every face is refused is not stored at all (it was a row with 0 faces).
    assert (report.indexed, report.faces, report.opted_out_faces, report.opted_out_photos) == (0, 0, 1, 1)
    assert lib.catalog.face_ids_in_collection(lib.catalog.collection_id("late", create=False)).tolist() == []
    with lib.catalog.session() as s:
        assert s.scalar(select(ImageRow.id).where(ImageRow.source == str(people / OPTOUT_PHOTO))) is None
    probe = people / "barack_obama" / "obama2.jpg"
    assert all(not f.candidates for f in lib.search(probe, top_k=50, purpose=PURPOSE).faces)
    lib.remove(collection="late")

    # A photo of him indexed by a path that did not screen (an older facesearch, say: simulated by
    # switching the writer's screen off): search excludes his face before ranking, sweep removes it.
    monkeypatch.setattr(registry, "screens", lambda: False)
    lib.create_collection("late")  # remove(collection=) dropped it
    lib.index([people / OPTOUT_PHOTO], collection="late", workers=1)
    monkeypatch.undo()
    late = lib.catalog.face_ids_in_collection(lib.catalog.collection_id("late", create=False)).tolist()
    assert len(late) == 1 and registry.suppressed_face_ids().tolist() == late
    biden = lib.search(people / "joe_biden" / "biden.jpg", top_k=50, purpose=PURPOSE)
    shown_ids = [c.face_id for c in biden.faces[0].candidates]
    assert late[0] not in shown_ids and [c.rank for c in biden.faces[0].candidates] == list(
        range(1, len(shown_ids) + 1)
    )
    assert all(not f.candidates for f in lib.search(probe, top_k=50, purpose=PURPOSE).faces)  # his probe: nobody
    sweep = registry.sweep(actor="admin")
    assert sweep.face_ids == late and sweep.sources == [str(people / OPTOUT_PHOTO)]
    assert lib.catalog.faces_by_ids(late) == {}

    registry.remove_optout(registry.list_optouts()[0].id, actor="admin")
    assert registry.list_optouts() == [] and registry.is_opted_out(embeddings).tolist() == [False, False]
    actions = [e.action for e in AuditLog(lib.catalog).entries() if e.action.startswith("optout")]
    assert actions == ["optout_add", "optout_sweep", "optout_remove"]
    with pytest.raises(NoFaceFound):  # a photo without a face registers nothing
        registry.add((examples.parent / "negatives" / "skimage" / "brick.png").read_bytes())
    assert registry.list_optouts() == []


@ON_EVERY_VECTOR_STORE
def test_erasure_receipt_and_nothing_erased_is_found_again(lib: Library, examples: Path) -> None:
    people = examples / "by_identity"
    biden2 = str(people / "joe_biden" / "biden2.jpg")
    faces = faces_by_path(lib)
    rose_in_group = max(
        (i for i, (p, _) in faces.items() if p.endswith("kit_with_rose.jpg")),
        key=lambda i: float(faces[i][1] @ faces[next(j for j, (p, _) in faces.items() if "rose_leslie/img1" in p)][1]),
    )
    biden2_face = next(i for i, (p, _) in faces.items() if p == biden2)
    with lib.catalog.session() as s:
        thumbnail = s.scalar(select(FaceRow.thumbnail).where(FaceRow.id == biden2_face))
    erased = faces[biden2_face][1].tobytes() + thumbnail[1024:]  # past the JPEG header all thumbnails share
    assert pieces_on_disk(lib, erased) > 0.8  # a row may straddle pages: look for 32-byte pieces

    receipt = erase(lib, source=biden2, face_ids=[rose_in_group], actor="admin-ana", reason="data subject request 7")
    assert receipt.face_ids == sorted([biden2_face, rose_in_group])
    assert len(receipt.image_ids) == 1 and len(receipt.kept_image_ids) == 1  # the group photo keeps Kit
    assert biden2 in receipt.sources and receipt.counts == {"images": 1, "faces": 2, "rejections": 0}
    assert receipt.to_dict()["counts"]["faces"] == 2 and '"receipt_id"' in receipt.to_json()
    assert lib.catalog.faces_by_ids(receipt.face_ids) == {}
    assert not set(lib.vector_index.ids().tolist()) & set(receipt.face_ids)
    for probe in (people / "joe_biden" / "biden2.jpg", people / "rose_leslie" / "img1.jpg"):
        assert not {i for i, _ in shown(lib, probe)} & set(receipt.face_ids)
    # The erased embedding is gone from the database file (secure delete + WAL truncated).
    assert pieces_on_disk(lib, erased) == 0

    entry = AuditLog(lib.catalog).entries(action="erase")[0]
    assert (entry.seq, entry.hash) == (receipt.audit_sequence, receipt.audit_hash)
    assert entry.details["receipt_id"] == receipt.receipt_id and "biden2" not in str(entry.details)

    group = erase(lib, collection="groups", actor="admin-ana", reason="collection withdrawn")
    assert len(group.image_ids) == 3 and group.collection_dropped == "groups"
    assert [c.name for c in lib.catalog.collections()] == ["default", "examples"]  # "default": made with the library
    assert not {i for i, p in shown(lib, people / "kit_harington" / "john1.jpg") if "multi_face" in (p or "")}
    assert not set(lib.vector_index.ids().tolist()) & set(group.face_ids)

    # Issue 12 §7: an erasure that finds nothing is an error, with no receipt and no audit entry.
    entries = len(AuditLog(lib.catalog).entries(limit=1000))
    with pytest.raises(FaceSearchError, match="nothing matched source '/nowhere/x.jpg'") as nothing:
        erase(lib, source="/nowhere/x.jpg", actor="admin-ana", reason="request 8")
    assert nothing.value.code == "nothing_matched" and len(AuditLog(lib.catalog).entries(limit=1000)) == entries
    with pytest.raises(FaceSearchError, match="needs face_ids"):
        erase(lib, actor="x", reason="r")
    with pytest.raises(FaceSearchError, match="reason"):
        erase(lib, image_ids=[1], actor="x", reason=" ")
    with pytest.raises(FaceSearchError, match="no collection"):
        erase(lib, collection="groups", actor="x", reason="again")
    assert AuditLog(lib.catalog).verify().ok


def test_retention_purges_images_older_than_the_collection_period(lib: Library) -> None:
    with pytest.raises(FaceSearchError):
        set_retention(lib.catalog, "examples", 0)
    with pytest.raises(FaceSearchError, match="no collection"):
        set_retention(lib.catalog, "missing", 30)
    set_retention(lib.catalog, "examples", 30, actor="admin-ana")
    examples_id = lib.catalog.collection_id("examples", create=False)
    with lib.catalog.session() as s, s.begin():
        old = s.scalars(select(ImageRow.id).where(ImageRow.collection_id == examples_id).limit(4)).all()
        s.execute(
            update(ImageRow).where(ImageRow.id.in_(old)).values(ingested_at=datetime(2020, 1, 1))  # long ago
        )
        faces_of_old = set(s.scalars(select(FaceRow.id).where(FaceRow.image_id.in_(old))))
    assert len(faces_of_old) == 4 and faces_of_old <= set(lib.vector_index.ids().tolist())

    receipt = purge_expired(lib, actor="cron")  # now: only the four old photos are over 30 days
    assert receipt.image_ids == sorted(old) and set(receipt.face_ids) == faces_of_old
    assert receipt.collections[0].retention_days == 30 and receipt.audit_sequence is not None
    assert lib.catalog.image_count() == 19 - 4
    assert not set(lib.vector_index.ids().tolist()) & faces_of_old
    assert purge_expired(lib).image_ids == []  # nothing else is due
    assert purge_expired(lib, now=datetime.now(UTC) + timedelta(days=29)).image_ids == []  # nor in 29 days

    later = datetime.now(UTC) + timedelta(days=31)  # a fake "now": everything in examples has expired
    receipt = purge_expired(lib, now=later)
    assert len(receipt.image_ids) == 12 and receipt.collections[0].collection == "examples"
    remaining = {c["name"]: c["images"] for c in lib.stats()["collections"]}
    assert remaining == {"default": 0, "examples": 0, "groups": 3}  # groups has no retention period
    log = AuditLog(lib.catalog)
    assert [e.action for e in log.entries()][-4:] == ["retention_purge"] * 4
    assert log.entries(action="collection_retention")[0].details == {"collection": "examples", "retention_days": 30.0}
    assert log.verify().ok


def test_erasure_leaves_no_hnsw_tombstone_behind(built: Path, tmp_path: Path) -> None:
    folder = tmp_path / "hnsw"
    shutil.copytree(built, folder)
    config = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**config, "index_engine": "HNSW32"}))
    (folder / "index.faiss").unlink()  # rebuilt from the catalog as HNSW on open
    with Library.open(folder) as lib:
        assert lib.vector_index.engine == "HNSW32"
        receipt = erase(lib, image_ids=[1, 2], actor="admin", reason="request 9")
        assert len(receipt.face_ids) == 2
        assert lib.vector_index.tombstones == set()  # compacted: the vectors are gone, not just hidden
        assert not set(lib.vector_index.ids().tolist()) & set(receipt.face_ids)
    with Library.open(folder) as reopened:
        assert len(reopened.vector_index) == reopened.catalog.face_count() == 23 - 2
        assert not set(reopened.vector_index.ids().tolist()) & set(receipt.face_ids)


# Issue 12 §1: the opt-out at search's operating point, on people the project was not tuned on ------------

SEEN_PERSON = "Ari_Fleischer"  # 13 photos in lfw-dev: 11 indexed + an EXIF-rotated copy of one = 12, as in the issue
SEEN_OPTOUT, SEEN_PROBE, SEEN_ROTATED = 1, 6, 2  # photo numbers: the opt-out's, the third photo, the copy turned
SEEN_OTHERS = ["Al_Gore", "Bill_Graham", "Bob_Hope", "Colin_Farrell", "Dick_Cheney", "Elton_John", "Harrison_Ford"]


def lfw_photo(shared_data: Path, name: str, number: int) -> Path:
    return shared_data / "lfw-dev" / "images" / name / f"{name}_{number:04d}.jpg"


def exif_rotated(photo: Path, out: Path) -> Path:
    """A copy of ``photo`` stored on its side with an EXIF Orientation tag (6: turn 90 degrees clockwise
    to show), as a phone saves a photo taken upright; cropped to 200x250 so that the upright shape shows."""
    from PIL import Image

    with Image.open(photo) as image:
        upright = image.crop((25, 0, 225, 250))
        exif = Image.Exif()
        exif[0x0112] = 6
        upright.transpose(Image.Transpose.ROTATE_90).save(out, "JPEG", quality=95, exif=exif)
    return out


@pytest.fixture(scope="module")
def seen(shared_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """12 photos of one person (one an EXIF-rotated copy) and one photo each of 7 others, indexed (closed)."""
    if not (shared_data / "lfw-dev" / "images" / SEEN_PERSON).is_dir():
        pytest.fail(f"lfw-dev not found under {shared_data}")
    root = tmp_path_factory.mktemp("seen")
    his = [lfw_photo(shared_data, SEEN_PERSON, n) for n in range(1, 14) if n not in (SEEN_OPTOUT, SEEN_PROBE)]
    rotated = exif_rotated(lfw_photo(shared_data, SEEN_PERSON, SEEN_ROTATED), root / "turned.jpg")
    others = [lfw_photo(shared_data, name, 1) for name in SEEN_OTHERS]
    with Library.open(root / "lib", jitter=0) as library:
        report = library.index([*his, rotated, *others], workers=1)
        assert (report.indexed, report.faces) == (19, 19)  # 12 of him, 7 others
    return root / "lib"


def his_faces(lib: Library) -> set[int]:
    return {i for i, (path, _) in faces_by_path(lib).items() if SEEN_PERSON in path or path.endswith("turned.jpg")}


def test_a_running_server_sees_a_new_optout_made_after_the_newest_was_withdrawn(
    seen: Path, shared_data: Path, tmp_path: Path
) -> None:
    """Two handles on one library (a server, and the CLI beside it). Other processes notice opt-outs by the
    table's (count, largest id); SQLite gave a withdrawn newest opt-out's id to the next one, so after
    "withdraw A, opt out B" the server still matched A and not B: B stayed searchable there."""
    root = copy_library(seen, tmp_path / "lib")
    first, second = lfw_photo(shared_data, SEEN_OTHERS[0], 1), lfw_photo(shared_data, SEEN_OTHERS[1], 1)
    with Library.open(root) as server, Library.open(root) as cli:
        a, b = server.optouts.embed(first)[0], server.optouts.embed(second)[0]
        withdrawn = cli.optouts.add(first, actor="admin").optout_ids[0]
        assert server.optouts.is_opted_out(np.stack([a, b])).tolist() == [True, False]  # the server caches it
        cli.optouts.remove_optout(withdrawn, actor="admin")
        added = cli.optouts.add(second, actor="admin").optout_ids[0]
        assert server.optouts.is_opted_out(np.stack([a, b])).tolist() == [False, True]
        assert added > withdrawn


def test_an_optout_removes_every_face_search_would_call_a_match_exif_rotated_copies_too(
    seen: Path, shared_data: Path, tmp_path: Path
) -> None:
    """Issue 12 §1, the attack seen: 12 photos of one person indexed, an opt-out with another photo of
    them (here an EXIF-rotated one), a search with a third. At FMR 1e-5 the opt-out left photos that
    search labelled ``match``; at the library's operating point it removes all 12, and nobody else."""
    from facesearch.media.decode import decode_image

    with Library.open(copy_library(seen, tmp_path / "lib")) as lib:
        his = his_faces(lib)
        assert len(his) == 12  # the rotated copy's face was found: the gallery applies the EXIF orientation
        probe = lfw_photo(shared_data, SEEN_PERSON, SEEN_PROBE)
        before = lib.search(probe, top_k=50, purpose=PURPOSE).faces[0].candidates
        assert len({c.face_id for c in before if c.label == "match"} & his) >= 10  # search finds him

        photo = exif_rotated(lfw_photo(shared_data, SEEN_PERSON, SEEN_OPTOUT), tmp_path / "optout.jpg")
        assert decode_image(photo.read_bytes()).rgb.shape[:2] == (250, 200)  # upright once decoded
        receipt = lib.optouts.add(photo, note="issue 12", actor="admin")
        assert set(receipt.face_ids) == his  # every photo of him, the rotated copy included; nobody else
        assert receipt.warning is None and len(receipt.optout_ids) == 1

        after = lib.search(probe, top_k=50, purpose=PURPOSE)
        assert [f.candidates for f in after.faces] == [[]]  # his probe: nobody is shown
        for name in SEEN_OTHERS[:3]:  # searches for other people never return him
            shown_ids = {
                c.face_id
                for f in lib.search(lfw_photo(shared_data, name, 1), purpose=PURPOSE).faces
                for c in f.candidates
            }
            assert shown_ids and not shown_ids & his
        assert lib.catalog.face_count() == 7


def test_an_optout_with_several_photos_keeps_the_person_out_of_ingest_rotated_or_not(
    seen: Path, shared_data: Path, tmp_path: Path
) -> None:
    """Issue 12 §1: an opt-out takes several photos; afterwards ingest refuses the person's faces, an
    EXIF-rotated copy too, and a photo whose every face was refused is not stored (no row)."""
    with Library.open(copy_library(seen, tmp_path / "lib")) as lib:
        photos = [lfw_photo(shared_data, SEEN_PERSON, n) for n in (SEEN_OPTOUT, SEEN_ROTATED)]
        preview = lib.optouts.preview(photos, actor="admin")
        assert set(preview.face_ids) == his_faces(lib) and lib.optouts.count() == 0  # a preview changes nothing
        receipt = lib.optouts.add(photos, actor="admin")
        assert len(receipt.optout_ids) == 2 and receipt.face_ids == preview.face_ids
        late = [
            lfw_photo(shared_data, SEEN_PERSON, SEEN_PROBE),
            exif_rotated(lfw_photo(shared_data, SEEN_PERSON, SEEN_PROBE), tmp_path / "turned-probe.jpg"),
            lfw_photo(shared_data, SEEN_OTHERS[0], 2),
        ]
        lib.create_collection("late")
        report = lib.index(late, collection="late", workers=1)
        assert (report.indexed, report.faces, report.opted_out_photos, report.opted_out_faces) == (1, 1, 2, 2)
        with lib.catalog.session() as s:
            sources = set(s.scalars(select(ImageRow.source)))
        assert str(late[0]) not in sources and str(late[1]) not in sources and str(late[2]) in sources
        again = lib.optouts.preview([lfw_photo(shared_data, SEEN_PERSON, 3)], actor="admin")
        assert again.face_ids == [] and again.warning is not None  # nothing of him left to remove


def test_the_optout_rule_scores_s_norm_as_search_does_against_the_cohort_without_the_person(
    seen: Path, shared_data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 12 §1: one rule, search's score. With a cohort (here allowed from 10 faces, so that the
    small library has one), the opt-out's s-norm is search's s-norm (search/normalize.py), scored against
    the cohort without the person: with their own faces in it they look ordinary and would stay."""
    import facesearch.search.normalize as normalize
    from facesearch.search.scoring import _snorm_hits

    monkeypatch.setattr(normalize, "MIN_LIBRARY_FACES", 10)
    with Library.open(copy_library(seen, tmp_path / "lib")) as lib:
        normalizer = lib.scoring.normalizer
        assert normalizer is not None and len(normalizer.cohort) == 19  # every face, 12 of them his
        point = lib.scoring.same_person_point()
        assert point.snorm is not None and "s-norm" in lib.optouts.threshold_source
        reference = lib.searches.largest_face(lfw_photo(shared_data, SEEN_PERSON, SEEN_OPTOUT))[0][None]
        faces = np.stack([vec for _, vec in faces_by_path(lib).values()])
        raw = faces @ reference.T
        searched = normalizer.normalize(raw[:, 0].astype(np.float64), reference[0], faces) >= point.snorm
        assert (_snorm_hits(normalizer, reference, faces, raw, point.snorm) == searched).all()

        without = lib.scoring._cohort_without(normalizer, reference, point)
        assert len(without.cohort) == 7  # his 12 faces left the cohort; the 7 others stay
        mask = lib.scoring.same_person(reference, faces)
        his = his_faces(lib)
        assert {i for i, hit in zip(faces_by_path(lib), mask, strict=True) if hit} == his
        assert set(lib.optouts.add(lfw_photo(shared_data, SEEN_PERSON, SEEN_OPTOUT), actor="admin").face_ids) == his
        probe = lfw_photo(shared_data, SEEN_PERSON, SEEN_PROBE)
        result = lib.search(probe, top_k=50, purpose=PURPOSE)
        assert [f.candidates for f in result.faces] == [[]]  # (7 faces left: too few for a cohort now)
