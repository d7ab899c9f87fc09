"""People in the archive (issue 14), through the Python API: clustering the library into persons,
corrections that survive a re-cluster, incremental assignment on ingest, opt-outs and the per-collection
switch, and the governance every read and change needs. The CLI and the API: tests/test_people_cli.py.

The example gallery (tests/conftest.py): 16 portraits of 6 people in "examples" (Barack Obama 5, Kit
Harington 3, Alex Lacamoire 3, Joe Biden 2, Rose Leslie 2, Lin-Manuel Miranda 1) and 3 two-person photos in
"groups". Real photos from ../shared/data; nothing of them is committed.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import select

from facesearch import Library
from facesearch.errors import FaceSearchError
from facesearch.governance import AuditLog, add_user
from facesearch.governance.cases import create_case
from facesearch.governance.errors import PermissionDenied, PurposeRequired
from facesearch.governance.types import SearchPurpose
from facesearch.people.registry import ASSIGN_ACTOR
from facesearch.store.people_schema import PersonFaceRow, PersonRow
from facesearch.store.schema import CollectionRow, FaceRow, ImageRow
from tests.helpers import PURPOSE, copy_library

PEOPLE = "by_identity"


@pytest.fixture
def lib(example_gallery: Path, tmp_path: Path) -> Iterator[Library]:
    with Library.open(copy_library(example_gallery, tmp_path / "lib"), create=False) as library:
        yield library


def who(path: str) -> str:
    """The person a portrait shows (its folder), or "group" for a two-person photo."""
    parts = Path(path).parts
    return parts[parts.index(PEOPLE) + 1] if PEOPLE in parts else "group"


def persons_by_identity(lib: Library) -> dict[str, list[int]]:
    """identity -> the persons holding its portraits (each portrait's face)."""
    out: dict[str, list[int]] = {}
    for person in lib.people.list_persons(purpose=PURPOSE, include_hidden=True):
        shown = lib.people.show(person.id, purpose=PURPOSE)
        for face in shown.faces or []:
            name = who(face.image_path or "")
            if name != "group" and person.id not in out.setdefault(name, []):
                out[name].append(person.id)
    return out


def person_of(lib: Library, identity: str) -> int:
    found = persons_by_identity(lib)[identity]
    assert len(found) == 1, found
    return found[0]


def faces_of(lib: Library, person_id: int) -> list[int]:
    return [f.face_id for f in lib.people.show(person_id, purpose=PURPOSE).faces or []]


def test_clustering_groups_each_persons_photos_and_nobody_else(lib: Library) -> None:
    """Issue 14: a full clustering puts every portrait of one person in one person, and no two people in one."""
    done = lib.people.cluster(purpose=PURPOSE)
    assert done["max_fmr"] == 1e-4 and done["faces"] == lib.catalog.face_count()
    identities = persons_by_identity(lib)
    assert sorted(identities) == ["alex_lacamoire", "barack_obama", "joe_biden", "kit_harington",
                                  "lin_manuel_miranda", "rose_leslie"]  # fmt: skip
    for name in ("barack_obama", "kit_harington", "joe_biden", "rose_leslie"):
        assert len(identities[name]) == 1, name
    by_person: dict[int, set[str]] = {}
    for name, persons in identities.items():
        for p in persons:
            by_person.setdefault(p, set()).add(name)
    assert all(len(names) == 1 for names in by_person.values()), by_person  # precision first: no merge
    obama = lib.people.show(identities["barack_obama"][0], purpose=PURPOSE)
    assert sum(who(f.image_path or "") == "barack_obama" for f in obama.faces or []) == 5
    assert obama.photo_count >= 5 and obama.representative_face_id in {f.face_id for f in obama.faces or []}
    entries = [e for e in AuditLog(lib.catalog).entries() if e.action == "people_cluster"]
    assert len(entries) == 1 and entries[0].case_id == PURPOSE.case_id and entries[0].details["persons"] >= 6


def test_a_name_and_a_hidden_person_survive_a_re_cluster(lib: Library) -> None:
    """Issue 14: names and "hide" are the user's: a full re-cluster keeps them on the same person."""
    lib.people.cluster(purpose=PURPOSE)
    kit, biden = person_of(lib, "kit_harington"), person_of(lib, "joe_biden")
    lib.people.name(kit, "Kit", purpose=PURPOSE)
    lib.people.hide(biden, purpose=PURPOSE)
    assert biden not in [p.id for p in lib.people.list_persons(purpose=PURPOSE)]
    lib.people.cluster(purpose=PURPOSE)
    assert person_of(lib, "kit_harington") == kit and lib.people.show(kit, purpose=PURPOSE).name == "Kit"
    assert person_of(lib, "joe_biden") == biden and lib.people.show(biden, purpose=PURPOSE).hidden
    assert biden not in [p.id for p in lib.people.list_persons(purpose=PURPOSE)]
    naming = [e for e in AuditLog(lib.catalog).entries() if e.action == "people_name"]
    assert naming[0].details == {"person_id": kit, "named": True}  # never the name: the log cannot forget it


def test_a_manual_split_survives_a_re_cluster(lib: Library) -> None:
    """Issue 14 ("Done when": a manual split survives a re-cluster): faces moved out stay out, together."""
    lib.people.cluster(purpose=PURPOSE)
    obama = person_of(lib, "barack_obama")
    faces = faces_of(lib, obama)
    moved = faces[:2]
    plan = lib.people.plan_split(obama, moved, purpose=PURPOSE)
    assert plan == {"person_id": obama, "faces_moved": moved, "faces_left": len(faces) - 2}
    new = lib.people.split(obama, moved, purpose=PURPOSE)["new_person_id"]
    lib.people.cluster(purpose=PURPOSE)  # the algorithm alone would put all five back together
    assert sorted(faces_of(lib, new)) == sorted(moved)
    assert sorted(faces_of(lib, obama)) == sorted(set(faces) - set(moved))
    with pytest.raises(FaceSearchError) as refused:
        lib.people.merge(obama, new, purpose=PURPOSE)  # undoing the split silently is refused
    assert refused.value.code == "conflict"


def test_a_merge_survives_a_re_cluster(lib: Library) -> None:
    """Issue 14: two persons merged by hand stay one through a re-cluster (and the merge can be previewed)."""
    lib.people.cluster(purpose=PURPOSE)
    biden, rose = person_of(lib, "joe_biden"), person_of(lib, "rose_leslie")
    assert lib.people.plan_merge(biden, rose, purpose=PURPOSE)["faces_moved"] == len(faces_of(lib, rose)) >= 2
    assert person_of(lib, "rose_leslie") == rose  # a plan changes nothing
    lib.people.merge(biden, rose, purpose=PURPOSE)
    lib.people.cluster(purpose=PURPOSE)
    assert persons_by_identity(lib)["rose_leslie"] == [biden] == persons_by_identity(lib)["joe_biden"]
    with pytest.raises(FaceSearchError) as gone:
        lib.people.show(rose, purpose=PURPOSE)
    assert gone.value.code == "no_person"


def test_a_face_marked_not_this_person_is_never_re_attached(lib: Library, shared_data: Path) -> None:
    """Issue 14: "not this person" holds through a re-cluster and through incremental assignment."""
    lib.people.cluster(purpose=PURPOSE)
    obama = person_of(lib, "barack_obama")
    face = faces_of(lib, obama)[0]
    done = lib.people.not_this_person(face, purpose=PURPOSE)
    assert done["person_id"] == obama and face not in faces_of(lib, obama)
    lib.people.cluster(purpose=PURPOSE)
    assert face not in faces_of(lib, obama) and len(faces_of(lib, obama)) >= 4
    lib.index([shared_data / "face_recognition_examples/by_identity/barack_obama/obama.jpg"], collection="examples")
    lib.people.cluster(purpose=PURPOSE)
    assert face not in faces_of(lib, obama)


def test_a_later_ingest_joins_a_known_person_and_a_stranger_gets_a_new_one(lib: Library, shared_data: Path) -> None:
    """Issue 14 (incremental): after a clustering, every ingest's faces are assigned as they are stored: a new
    photo of Barack Obama joins his person, an LFW stranger starts a person of their own."""
    lib.people.cluster(purpose=PURPOSE)
    obama = person_of(lib, "barack_obama")
    before = len(faces_of(lib, obama))
    persons = {p.id for p in lib.people.list_persons(purpose=PURPOSE)}
    stranger = shared_data / "lfw-dev" / "images" / "Aaron_Eckhart" / "Aaron_Eckhart_0001.jpg"
    lib.index([shared_data / "face_recognition_examples/by_identity/barack_obama/obama.jpg", stranger],
              collection="examples", workers=1)  # fmt: skip
    shown = lib.people.show(obama, purpose=PURPOSE)
    assert len(shown.faces or []) == before + 1
    assert any((f.image_path or "").endswith("/obama.jpg") for f in shown.faces or [])
    new = [p for p in lib.people.list_persons(purpose=PURPOSE) if p.id not in persons]
    assert len(new) == 1
    assert [(f.image_path or "").split("/")[-1] for f in lib.people.show(new[0].id, purpose=PURPOSE).faces or []] == [
        "Aaron_Eckhart_0001.jpg"
    ]
    entry = [e for e in AuditLog(lib.catalog).entries() if e.action == "people_assign"][-1]
    assert entry.actor == ASSIGN_ACTOR and entry.details["faces"] == 2 and entry.details["new"] == 1


def test_nothing_is_assigned_before_the_library_was_clustered(lib: Library, shared_data: Path) -> None:
    """Issue 14: grouping starts with a stated case and purpose (a full clustering), never by an ingest alone."""
    lib.index([shared_data / "face_recognition_examples/by_identity/barack_obama/obama.jpg"], collection="examples")
    with lib.catalog.session() as s:
        assert s.scalar(select(PersonRow.id).limit(1)) is None
    assert not [e for e in AuditLog(lib.catalog).entries() if e.action.startswith("people_")]


def test_an_opted_out_person_is_never_clustered_or_shown(lib: Library, shared_data: Path) -> None:
    """Issue 14 ("Done when": an opted-out person never appears): after Barack Obama opts out, no person
    holds a face of him, in the list, a person's page, the export, or after a re-cluster."""
    lib.people.cluster(purpose=PURPOSE)
    obama = person_of(lib, "barack_obama")
    lib.optouts.add(shared_data / "face_recognition_examples/by_identity/barack_obama/obama3.jpg", actor="admin")
    lib.people.cluster(purpose=PURPOSE)
    assert "barack_obama" not in persons_by_identity(lib)
    assert not [r for r in lib.people.export(purpose=PURPOSE) if who(r[1]) == "barack_obama"]
    with pytest.raises(FaceSearchError) as gone:
        lib.people.show(obama, purpose=PURPOSE)
    assert gone.value.code == "no_person"


def group_faces(lib: Library) -> set[int]:
    with lib.catalog.session() as s:
        query = select(FaceRow.id).join(ImageRow).join(CollectionRow).where(CollectionRow.name == "groups")
        return set(s.scalars(query))


def test_a_collection_switched_off_is_never_clustered(lib: Library, shared_data: Path) -> None:
    """Issue 14: an admin switches grouping off for "groups": its faces leave their persons, a re-cluster and
    a later ingest into it leave them out, and an API user who is not an admin may not switch it."""
    lib.people.cluster(purpose=PURPOSE)
    assert [r for r in lib.people.export(purpose=PURPOSE) if who(r[1]) == "group"]
    before = len(group_faces(lib))
    user, _ = add_user(lib.catalog, "ivy", "investigator")
    with pytest.raises(PermissionDenied):
        lib.people.set_collection("groups", False, actor=user)
    done = lib.people.set_collection("groups", False)
    assert done["faces_removed"] == before and done["settings"]["people"] is False
    assert not [r for r in lib.people.export(purpose=PURPOSE) if who(r[1]) == "group"]
    lib.people.cluster(purpose=PURPOSE)
    lib.index([shared_data / "face_recognition_examples/by_identity/joe_biden/biden.jpg"], collection="groups")
    rows = lib.people.export(purpose=PURPOSE)
    groups = group_faces(lib)
    assert len(groups) == before + 1 and not groups & {r[0] for r in rows}
    lib.people.set_collection("groups", True)
    lib.people.cluster(purpose=PURPOSE)
    assert groups <= {r[0] for r in lib.people.export(purpose=PURPOSE)}


def test_grouping_needs_a_purpose_an_open_case_and_the_permission(lib: Library) -> None:
    """Issue 14: grouping an archive is biometric processing of everyone in it: bound like a search."""
    with pytest.raises(PurposeRequired):
        lib.people.cluster(purpose=None)
    with pytest.raises(PurposeRequired):
        lib.people.list_persons(purpose=SearchPurpose("c-1", "x"))
    auditor, _ = add_user(lib.catalog, "aud", "auditor")
    with pytest.raises(PermissionDenied):
        lib.people.cluster(purpose=PURPOSE, actor=auditor)
    ivy, _ = add_user(lib.catalog, "ivy", "investigator")
    other, _ = add_user(lib.catalog, "olga", "investigator")
    create_case(lib.catalog, "C-1", "who is in the archive of the club", users=["ivy"], actor="op")
    with pytest.raises(FaceSearchError) as unknown:
        lib.people.cluster(purpose=PURPOSE)  # "test-case" is no case once the library has cases
    assert unknown.value.code == "no_case"
    stated = SearchPurpose("c-1", "who is in the archive of the club")
    with pytest.raises(PermissionDenied):
        lib.people.cluster(purpose=stated, actor=other)  # does not work the case
    assert lib.people.cluster(purpose=stated, actor=ivy)["persons"] >= 6
    assert not [e for e in AuditLog(lib.catalog).entries() if e.action == "people_cluster" and e.actor != "ivy"]


# Incremental assignment links what a full clustering links (synthetic unit vectors, no person's face) -----


def unit(angle: float) -> np.ndarray:
    """A unit vector at ``angle`` (radians) from the first axis, in the plane of the first two (128-d)."""
    v = np.zeros(128, np.float32)
    v[0], v[1] = np.cos(angle), np.sin(angle)
    return v


def store(lib: Library, vectors: list[np.ndarray], first: int) -> list[int]:
    """Store one synthetic photo per vector through the writer (what every ingest path does); its face ids."""
    from facesearch.ingest.sources import Source
    from facesearch.ingest.worker import ItemResult
    from facesearch.store.catalog import NewFace, NewImage

    batch = []
    for i, v in enumerate(vectors, first):
        image = NewImage(sha256=f"{i:064x}", source=f"/synthetic/{i}.jpg", source_kind="file", page_url=None, meta={},
                         format="JPEG", width=250, height=250, size_bytes=1000, exif_time=None)  # fmt: skip
        face = NewFace(face_index=0, box=(60, 60, 120, 120), landmarks=[[100.0, 100.0]] * 5, det_score=1.0,
                       quality=0.8, embedding=v, thumbnail=bytes(10))  # fmt: skip
        batch.append(ItemResult(Source(image.source, "file"), "indexed", image=image, faces=[face]))
    collection = lib.catalog.collection_id("examples", create=False)
    with lib.writer.locked():
        stored = lib.ingester.store(collection, batch)
    return [f for row in stored if row is not None for f in row[1]]


def person_ids(lib: Library, faces: list[int]) -> list[int | None]:
    with lib.catalog.session() as s:
        found = dict(s.execute(select(PersonFaceRow.face_id, PersonFaceRow.person_id)).all())
    return [found.get(f) for f in faces]


@pytest.fixture
def half_angle(lib: Library) -> float:
    """An angle whose cosine passes the clustering threshold while twice it does not: a, a+h, a+2h chain,
    and a+2h's mean similarity to {a, a+h} still passes it (the clustering joins groups on average linkage,
    people/clustering.py: a face that reaches a group through one member only, far from the rest, stays out)."""
    threshold, _, _ = lib.people.threshold()
    half = float(np.arccos(threshold)) * 0.55
    assert np.cos(half) >= threshold > np.cos(2 * half)
    assert (np.cos(half) + np.cos(2 * half)) / 2 >= threshold
    return half


def test_a_new_face_reaching_a_person_only_through_another_new_face_joins_it(lib: Library, half_angle: float) -> None:
    """Issue 14 (incremental gives the persons a full re-cluster gives): in one ingest batch, b links to the
    person of a only through the new face m; both join that person, as a full clustering would place them."""
    (a,) = store(lib, [unit(0.0)], 1000)
    lib.people.cluster(purpose=PURPOSE)
    m, b = store(lib, [unit(half_angle), unit(2 * half_angle)], 2000)
    assert person_ids(lib, [a, m, b]) == [person_ids(lib, [a])[0]] * 3
    lib.people.cluster(purpose=PURPOSE)
    assert len(set(person_ids(lib, [a, m, b]))) == 1


def test_a_new_face_linking_two_untouched_persons_merges_them_but_never_a_named_one(
    lib: Library, half_angle: float
) -> None:
    """Issue 14: a new face linking two persons at the threshold makes them one, as a full clustering would,
    unless a user has touched one of them (here: named it): then only a full re-cluster may."""
    a, b = store(lib, [unit(0.0), unit(2 * half_angle)], 1000)
    c, d = store(lib, [unit(np.pi / 2), unit(np.pi / 2 + 2 * half_angle)], 3000)
    lib.people.cluster(purpose=PURPOSE)
    assert len(set(person_ids(lib, [a, b, c, d]))) == 4
    (m,) = store(lib, [unit(half_angle)], 2000)
    assert len(set(person_ids(lib, [a, m, b]))) == 1
    lib.people.name(person_ids(lib, [c])[0], "Named", purpose=PURPOSE)  # type: ignore[arg-type]
    (n,) = store(lib, [unit(np.pi / 2 + half_angle)], 4000)
    assert len(set(person_ids(lib, [c, n, d]))) == 2


def test_an_ingested_stranger_does_not_join_a_tight_person_it_merely_passes_the_threshold_to(lib: Library) -> None:
    """Issue 14: the ingest's assignment is the full clustering's rule (people/clustering.place, the one the
    eval's --batches simulation measures), cohesion bar included: 12 faces of one person alike at ~0.9999, then
    a stranger at the threshold + 0.01 to every one of them. It starts a person of its own; a face alike to the
    person (cosine 0.999) joins it."""
    threshold, _, _ = lib.people.threshold()
    rng = np.random.default_rng(11)
    person = [unit(0.0) + rng.normal(scale=0.001, size=128).astype(np.float32) for _ in range(12)]
    faces = store(lib, [v / np.linalg.norm(v) for v in person], 1000)
    lib.people.cluster(purpose=PURPOSE)
    (known,) = set(person_ids(lib, faces))
    stranger, alike = store(lib, [unit(float(np.arccos(threshold + 0.01))), unit(float(np.arccos(0.999)))], 2000)
    assert person_ids(lib, [alike]) == [known]
    assert person_ids(lib, [stranger])[0] not in (None, known)


def test_people_on_both_catalog_databases(catalog_target: str | Path, tmp_path: Path) -> None:
    """Issue 14 on SQLite and PostgreSQL (migration 0007's tables in use): a split kept by a re-cluster, a
    "not this person" mark kept, and a removed photo's face leaving its person (an emptied person goes)."""
    url = str(catalog_target) if isinstance(catalog_target, str) else None
    with Library.open(tmp_path / "lib", catalog_url=url) as lib:
        lib.create_collection("examples")
        threshold, _, _ = lib.people.threshold()
        half = float(np.arccos(threshold)) * 0.55  # as the half_angle fixture: a chain average linkage joins
        a, m, b = store(lib, [unit(0.0), unit(half), unit(2 * half)], 1000)
        (z,) = store(lib, [unit(np.pi / 2)], 5000)
        lib.people.cluster(purpose=PURPOSE)
        (person,) = set(person_ids(lib, [a, m, b]))
        new = lib.people.split(person, [b], purpose=PURPOSE)["new_person_id"]  # type: ignore[arg-type]
        lib.people.not_this_person(m, purpose=PURPOSE)
        lib.people.cluster(purpose=PURPOSE)
        pa, pm, pb = person_ids(lib, [a, m, b])
        assert pa == person and pb == new and pm != person  # m may join b: it is only not person a's
        with lib.catalog.session() as s:
            image = s.scalar(select(FaceRow.image_id).where(FaceRow.id == z))
        lonely = person_ids(lib, [z])[0]
        lib.remove(image_id=image)
        with lib.catalog.session() as s:
            assert s.get(PersonRow, lonely) is None and s.get(PersonFaceRow, z) is None
        assert len(lib.people.list_persons(purpose=PURPOSE)) == len({pa, pm, pb})
