"""The catalog's operations, each on SQLite and on PostgreSQL (``catalog_target``).

Synthetic rows only (random unit vectors, placeholder thumbnails): what is checked is that both
databases store and return exactly the same things, refuse the same duplicates and delete alike.
"""

from __future__ import annotations

import sqlite3
from datetime import datetime
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import delete, inspect, select
from sqlalchemy.exc import DBAPIError

from facesearch.governance import add_user, authenticate, list_users
from facesearch.governance.db import ensure_governance_tables, immediate
from facesearch.governance.users import revoke_user, rotate_key
from facesearch.ingest.duplicates import DigestLookup
from facesearch.models.embed.info import ModelInfo
from facesearch.store.catalog import Catalog, NewFace, NewImage
from facesearch.store.deletion import checkpoint, delete_faces, reclaim_space, secure_delete
from facesearch.store.schema import FaceRow, ImageRow
from facesearch.store.writer import Deletion

MODEL = ModelInfo(
    key="test-model", name="test", version="1", source="synthetic", licence="CC0", dim=128, weights_sha256="0" * 64
)
RNG = np.random.default_rng(7)


@pytest.fixture
def catalog(catalog_target: str | Path) -> Catalog:
    catalog = Catalog(catalog_target)
    yield catalog
    catalog.close()


def new_image(n: int, source: str | None = None) -> NewImage:
    return NewImage(
        sha256=f"{n:064x}",
        source=source or f"/photos/{n}.jpg",
        source_kind="file",
        page_url=None,
        meta={"n": n, "tags": ["a", "é"]},
        format="JPEG",
        width=640,
        height=480,
        size_bytes=1000 + n,
        exif_time=datetime(2024, 5, 1, 12, 30, 15, 250_000),
    )


def new_faces(count: int) -> list[NewFace]:
    faces = []
    for i in range(count):
        vector = RNG.normal(size=128).astype(np.float32)
        faces.append(
            NewFace(
                face_index=i,
                box=(10 * i, 20, 30, 40),
                landmarks=[[1.5, 2.25], [3.0, 4.0]],
                det_score=0.9876,
                quality=0.123456789012345,
                embedding=vector / np.linalg.norm(vector),
                thumbnail=bytes(range(256)) * 4 + bytes([i]),
            )
        )
    return faces


def test_the_catalog_says_where_it_is(catalog: Catalog, catalog_target: str | Path) -> None:
    assert catalog.schema_change == "created"
    if isinstance(catalog_target, Path):
        assert catalog.is_sqlite and catalog.path == catalog_target and catalog.url.startswith("sqlite:///")
    else:
        assert not catalog.is_sqlite and catalog.path is None and catalog.url == catalog_target
    again = Catalog(catalog_target)
    assert again.schema_change == "current"  # a second open only reads the revision
    again.close()


def test_models_collections_images_faces_and_stats(catalog: Catalog) -> None:
    model = catalog.ensure_model(MODEL)
    assert catalog.ensure_model(MODEL) == model and [m.key for m in catalog.models()] == ["test-model"]
    a = catalog.collection_id("archive")
    assert catalog.collection_id("archive") == a and catalog.collection_id("missing", create=False) is None
    b = catalog.collection_id("Beta")
    faces = new_faces(3)
    image_id, face_ids = catalog.add_image(a, model, new_image(1), faces)
    assert len(face_ids) == 3
    assert catalog.add_image(a, model, new_image(1, source="/elsewhere/copy.jpg"), new_faces(1)) is None  # same bytes
    assert catalog.add_image(b, model, new_image(1), new_faces(1)) is not None  # another collection may hold them
    catalog.add_image(a, model, new_image(2), [])  # a photo without faces is kept too
    assert catalog.known_sources(a) == {"/photos/1.jpg", "/photos/2.jpg"}

    rows = catalog.faces_by_ids(face_ids)
    first = rows[face_ids[0]]
    assert first.box == (0, 20, 30, 40) and first.landmarks == [[1.5, 2.25], [3.0, 4.0]]
    assert first.det_score == 0.9876 and first.quality == 0.123456789012345  # doubles round-trip exactly
    assert first.thumbnail == faces[0].thumbnail and first.image.collection.name == "archive"
    assert first.image.meta == {"n": 1, "tags": ["a", "é"]} and first.image.exif_time == new_image(1).exif_time
    np.testing.assert_array_equal(np.frombuffer(first.embedding, np.float32), faces[0].embedding)
    np.testing.assert_array_equal(catalog.embeddings_of(np.asarray(face_ids[::-1])), [f.embedding for f in faces[::-1]])
    assert catalog.face_ids_in_collection(a).tolist() == face_ids

    assert catalog.stats() == {
        "images": 3,
        "faces": 4,
        "rejected": 0,
        "collections": [{"name": "Beta", "images": 1, "faces": 1}, {"name": "archive", "images": 2, "faces": 3}],
    }
    assert [c.name for c in catalog.collections()] == ["Beta", "archive"]


def test_add_images_stores_a_batch_in_order_as_add_image_would(catalog: Catalog) -> None:
    """One transaction per batch (what a fast ingest writes): bytes already held, or held by an earlier
    image of the batch, give None; ids follow the batch's order; a stored image clears its rejection."""
    model, collection = catalog.ensure_model(MODEL), catalog.collection_id("c")
    held_id, _ = catalog.add_image(collection, model, new_image(4), new_faces(1))
    catalog.record_rejection(collection, "/photos/2.jpg", "unreadable", "was locked")
    faces = {n: new_faces(n % 3) for n in (1, 2, 3)}
    batch = [
        (new_image(1), faces[1]),
        (new_image(2), faces[2]),
        (new_image(1, source="/copies/1.jpg"), new_faces(1)),  # same bytes as the first: not stored
        (new_image(4, source="/copies/4.jpg"), new_faces(1)),  # bytes already in the collection
        (new_image(3), faces[3]),  # no face: kept as an image
    ]
    stored = catalog.add_images(collection, model, batch)
    assert [s is None for s in stored] == [False, False, True, True, False]
    image_ids = [s[0] for s in stored if s is not None]
    assert image_ids == sorted(image_ids) and image_ids[0] > held_id
    assert [len(s[1]) for s in stored if s is not None] == [1, 2, 0]
    face_ids = [i for s in stored if s is not None for i in s[1]]
    assert face_ids == sorted(face_ids)
    expected = [f.embedding for n in (1, 2) for f in faces[n]]
    np.testing.assert_array_equal(catalog.embeddings_of(np.asarray(face_ids)), expected)
    assert catalog.rejections(collection) == [] and catalog.image_count() == 4
    assert catalog.add_images(collection, model, []) == []
    assert catalog.add_images(collection, model, [(new_image(3), [])]) == [None]


def test_add_images_falls_back_to_one_by_one_when_another_writer_races_it(
    catalog: Catalog, catalog_target: str | Path
) -> None:
    """Another process stores the same bytes between the batch's duplicate check and its insert: the
    batch's transaction fails on the unique constraint and is stored image by image instead. (The other
    writer runs just before the batch's first write: on SQLite that is the id reservation, which holds the
    write lock from then on.)"""
    from sqlalchemy import event

    model, collection = catalog.ensure_model(MODEL), catalog.collection_id("c")
    other = Catalog(catalog_target)
    raced: list[int] = []

    def store_first_elsewhere(conn, cursor, statement, parameters, context, executemany) -> None:  # noqa: ANN001
        first_write = ("INSERT INTO IMAGES", "INSERT OR IGNORE INTO ID_HIGH_WATER")
        if not raced and statement.lstrip().upper().startswith(first_write):
            raced.append(other.add_image(collection, model, new_image(11, source="/elsewhere/11.jpg"), [])[0])

    event.listen(catalog.engine, "before_cursor_execute", store_first_elsewhere)
    try:
        stored = catalog.add_images(collection, model, [(new_image(n), new_faces(1)) for n in (10, 11, 12)])
    finally:
        event.remove(catalog.engine, "before_cursor_execute", store_first_elsewhere)
        other.close()
    assert raced, "the other writer never ran"
    assert [s is None for s in stored] == [False, True, False]
    assert catalog.known_sources(collection) == {"/photos/10.jpg", "/elsewhere/11.jpg", "/photos/12.jpg"}
    assert catalog.face_count() == 2


def test_image_and_face_ids_go_past_32_bits(catalog: Catalog) -> None:
    """A gallery of billions: ids beyond 2,147,483,647 (PostgreSQL's INTEGER; migration 0002 makes
    them BIGINT there) are stored, found and returned as they were."""

    model, collection = catalog.ensure_model(MODEL), catalog.collection_id("c")
    image_id, face_id = 3_000_000_000, 5_000_000_007
    face = new_faces(1)[0]
    row = catalog._image_row(collection, model, new_image(77), [face])
    row.id, row.faces[0].id = image_id, face_id
    with catalog.session() as s, s.begin():
        s.add(row)
    assert catalog.face_ids_in_collection(collection).tolist() == [face_id]
    np.testing.assert_array_equal(catalog.embeddings_of(np.asarray([face_id])), [face.embedding])
    assert catalog.faces_by_ids([face_id])[face_id].image.id == image_id
    assert catalog.all_face_ids().dtype == np.int64


def test_an_erased_photos_ids_are_never_given_to_another(catalog: Catalog) -> None:
    """SQLite numbered a new row as the largest id plus one: erasing the newest photo handed its image and
    face ids to the next photo, and whatever named them (audit log, a case's evidence, an alert) then showed
    somebody else. Both insert paths, one photo and a batch, on each database."""
    model, collection = catalog.ensure_model(MODEL), catalog.collection_id("c")
    catalog.add_image(collection, model, new_image(1), new_faces(1))
    erased_image, erased_faces = catalog.add_image(collection, model, new_image(2), new_faces(2))
    with catalog.session() as s, s.begin():
        Deletion(s).images([erased_image])
    image, faces = catalog.add_image(collection, model, new_image(3), new_faces(2))
    assert image > erased_image and min(faces) > max(erased_faces)
    with catalog.session() as s, s.begin():
        Deletion(s).images([image])
    stored = catalog.add_images(collection, model, [(new_image(4), new_faces(1)), (new_image(5), new_faces(2))])
    batch_images = [entry[0] for entry in stored if entry]
    batch_faces = [f for entry in stored if entry for f in entry[1]]
    assert min(batch_images) > image and min(batch_faces) > max(faces)
    assert batch_faces == sorted(batch_faces) and len(set(batch_faces)) == 3


def test_a_deleted_persons_id_is_never_given_to_another(catalog: Catalog) -> None:
    """Persons (issue 14) are named in URLs and the audit log; an emptied person is deleted, and SQLite gave
    its id to the next person made. New persons take ids above the high-water mark too, on each database."""
    from facesearch.governance.audit import AuditLog
    from facesearch.people.grouping import new_persons
    from facesearch.store.people_schema import PersonRow

    seq = AuditLog(catalog).append("people_cluster", "test").seq
    with catalog.session() as s, s.begin():
        made = new_persons(s, [0, 1, 2], seq)
    newest = max(made.values())
    with catalog.session() as s, s.begin():
        s.execute(delete(PersonRow).where(PersonRow.id == newest))
    with catalog.session() as s, s.begin():
        again = new_persons(s, [7], seq)
    assert again[7] > newest and sorted(made.values()) == list(range(min(made.values()), newest + 1))


def test_two_writers_on_one_sqlite_file_never_share_an_id(tmp_path: Path) -> None:
    """The reservation is one UPDATE ... RETURNING in the writer's transaction: two processes' writers (two
    catalogs here, on threads) interleaving stores and erasures get disjoint ids."""
    import threading

    first = Catalog(tmp_path / "catalog.db")
    second = Catalog(tmp_path / "catalog.db")
    model, collection = first.ensure_model(MODEL), first.collection_id("c")
    given: list[int] = []
    lock = threading.Lock()

    def write(catalog: Catalog, start: int) -> None:
        for n in range(start, start + 15):
            image, faces = catalog.add_image(collection, model, new_image(n), new_faces(2))
            with lock:
                given.extend(faces)
            if n % 4 == 0:
                with catalog.session() as s, s.begin():
                    Deletion(s).images([image])

    threads = [threading.Thread(target=write, args=(c, start)) for c, start in ((first, 100), (second, 200))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(given) == 60 and len(set(given)) == 60  # every face id handed out once, erased ones included
    first.close()
    second.close()


def test_iter_embeddings_pages_in_id_order(catalog: Catalog) -> None:
    model, collection = catalog.ensure_model(MODEL), catalog.collection_id("c")
    stored = {}
    for n in range(7):
        faces = new_faces(n % 3 + 1)
        _, ids = catalog.add_image(collection, model, new_image(n), faces)
        stored.update(zip(ids, (f.embedding for f in faces), strict=True))
    batches = list(catalog.iter_embeddings(batch=4))
    assert [len(ids) for ids, _ in batches] == [4, 4, 4, 1]  # 13 faces
    ids = np.concatenate([i for i, _ in batches])
    assert ids.tolist() == sorted(stored) == catalog.all_face_ids().tolist()
    np.testing.assert_array_equal(np.concatenate([v for _, v in batches]), [stored[i] for i in ids.tolist()])
    assert catalog.face_count() == 13 and catalog.image_count() == 7


def test_rejections_are_kept_updated_and_cleared_by_a_later_success(catalog: Catalog) -> None:
    model, collection = catalog.ensure_model(MODEL), catalog.collection_id("c")
    catalog.record_rejection(collection, "/photos/9.jpg", "corrupt", "truncated file")
    catalog.record_rejection(collection, "/photos/9.jpg", "too_large", "over the limit")  # replaced, not added
    catalog.record_rejection(collection, "/photos/10.jpg", "no_face", "none found")
    assert [(r.source, r.code) for r in catalog.rejections(collection)] == [
        ("/photos/9.jpg", "too_large"),
        ("/photos/10.jpg", "no_face"),
    ]
    catalog.add_image(collection, model, new_image(9, source="/photos/9.jpg"), new_faces(1))
    assert [r.source for r in catalog.rejections()] == ["/photos/10.jpg"]
    assert catalog.stats()["rejected"] == 1


def test_remove_images_by_id_source_and_collection(catalog: Catalog) -> None:
    """The writer's deletion steps (store/writer.py Deletion), on each database: whole images with their
    faces, and a collection with its rejections. (Catalog.remove_images, a second way to delete that
    bypassed the writer, is gone.)"""
    model = catalog.ensure_model(MODEL)
    a, b = catalog.collection_id("a"), catalog.collection_id("b")
    first, first_faces = catalog.add_image(a, model, new_image(1), new_faces(2))
    _, second_faces = catalog.add_image(a, model, new_image(2), new_faces(1))
    third, _ = catalog.add_image(b, model, new_image(3), new_faces(1))
    catalog.record_rejection(b, "/bad.jpg", "corrupt", "x")

    with catalog.session() as s, s.begin():
        receipt = Deletion(s).images([first])
    assert receipt.image_ids == [first] and receipt.face_ids == first_faces and receipt.sources == ["/photos/1.jpg"]
    assert catalog.faces_by_ids(first_faces) == {}
    with catalog.session() as s, s.begin():
        by_source = s.scalars(select(ImageRow.id).where(ImageRow.source == "/photos/2.jpg")).all()
        assert Deletion(s).images(by_source).face_ids == second_faces
    with catalog.session() as s, s.begin():
        deletion = Deletion(s)
        dropped = deletion.images([third])
        deletion.collection(b)
    assert dropped.sources == ["/photos/3.jpg"] and [c.name for c in catalog.collections()] == ["a"]
    assert catalog.rejections() == [] and catalog.face_count() == 0
    assert not hasattr(catalog, "remove_images")


def test_governance_deletes_faces_on_both_databases(catalog: Catalog) -> None:
    """secure_delete and the WAL checkpoint are SQLite's; on PostgreSQL they are no-ops, VACUUM is offered."""
    model, collection = catalog.ensure_model(MODEL), catalog.collection_id("c")
    image_id, face_ids = catalog.add_image(collection, model, new_image(1), new_faces(2))
    with immediate(catalog) as s, secure_delete(s):
        removed = delete_faces(s, face_ids[:1])
    assert removed.face_ids == face_ids[:1] and removed.kept_image_ids == [image_id]
    assert checkpoint(catalog)
    with catalog.session() as s:
        assert s.scalars(select(FaceRow.id)).all() == face_ids[1:]
    report = reclaim_space(catalog)
    assert report["database"] == ("sqlite" if catalog.is_sqlite else "postgresql")
    assert bool(report["vacuumed"]) == (not catalog.is_sqlite)


def test_users_and_keys(catalog: Catalog) -> None:
    user, key = add_user(catalog, "ana", "investigator", actor="admin-setup")
    assert authenticate(catalog, key).name == "ana" and authenticate(catalog, key + "x") is None
    _, new_key = rotate_key(catalog, "ana", actor="admin-setup")
    assert authenticate(catalog, key) is None and authenticate(catalog, new_key).name == "ana"
    revoke_user(catalog, "ana", actor="admin-setup")
    assert authenticate(catalog, new_key) is None
    assert [(u.name, u.active) for u in list_users(catalog)] == [("ana", False)]
    with catalog.engine.connect() as conn:
        stored = " ".join(str(v) for row in conn.exec_driver_sql("SELECT * FROM governance_users") for v in row)
    assert key not in stored and new_key not in stored  # only salted hashes are kept


def test_ensure_governance_tables_costs_nothing_on_a_migrated_catalog(catalog: Catalog) -> None:
    statements: list[str] = []

    def count(*args: object) -> None:
        statements.append(str(args[2]))

    from sqlalchemy import event

    event.listen(catalog.engine, "before_cursor_execute", count)
    ensure_governance_tables(catalog)
    event.remove(catalog.engine, "before_cursor_execute", count)
    assert statements == []
    tables = set(inspect(catalog.engine).get_table_names())
    assert {"governance_users", "audit_log", "audit_head", "optouts", "alembic_version"} <= tables


def test_the_workers_duplicate_check_reads_either_database_and_only_reads(catalog: Catalog) -> None:
    model, collection = catalog.ensure_model(MODEL), catalog.collection_id("c")
    catalog.add_image(collection, model, new_image(1), new_faces(1))
    lookup = DigestLookup(str(catalog.path or ""), None if catalog.is_sqlite else catalog.url)
    try:
        assert lookup.exists(collection, f"{1:064x}")
        assert not lookup.exists(collection, f"{2:064x}") and not lookup.exists(collection + 1, f"{1:064x}")
        with pytest.raises((sqlite3.OperationalError, DBAPIError), match="read-only|readonly"):
            if catalog.is_sqlite:
                lookup._sqlite.execute("DELETE FROM images")
            else:
                with lookup._engine.connect() as conn:
                    conn.exec_driver_sql("DELETE FROM images")
    finally:
        lookup.close()
    assert catalog.image_count() == 1
