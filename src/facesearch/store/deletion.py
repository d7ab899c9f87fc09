"""Deleting faces and images for opt-out, erasure and retention, with the vector index kept in step.

Unlike ``Catalog.remove_images`` (whole images only), this can delete single faces: an opt-out must
remove one person from a group photo without erasing the other people in it. An image left with no
face is deleted too. All deletes run inside the caller's ``immediate`` transaction (so they commit
with their audit entry).

What "deleted" means on disk depends on the catalog's database:

* SQLite (the default): ``secure_delete`` is on for these deletes, so the freed pages are
  overwritten with zeros rather than left readable in the file; afterwards the WAL is checkpointed
  and truncated, so erased embeddings and thumbnails do not linger there either.
* PostgreSQL: neither exists, and both helpers here do nothing. A deleted row is invisible to every
  query once the transaction commits, but its bytes (embedding, thumbnail, landmarks, source) stay in
  the table's files as a dead tuple until VACUUM prunes it, and even then the freed space is marked
  reusable with no promise that the old bytes are overwritten; copies also remain in the write-ahead
  log until its segments are recycled, and in any base backup, WAL archive or replica.
  ``facesearch maintain`` runs VACUUM on the tables deletions touch (:func:`reclaim_space`), which
  removes dead tuples from the tables, their indexes and their TOAST data so that nothing can reach
  them; it does not make the bytes leave the disk. (VACUUM FULL rewrites a table into new files, but
  holds an exclusive lock meanwhile, and the file system does not zero the blocks it frees either.)
  Where erasure from the disk itself is required, keep the database on encrypted storage and bound
  the retention of backups and WAL archives.

The catalog is the truth and commits first; then the vectors leave the in-memory index (HNSW is
compacted, so they are not kept as tombstones) and the index file is rewritten. A crash in between
is repaired when the library is next opened (the index is reconciled with the catalog), and search
never shows a face whose row is gone.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from sqlalchemy import delete, func, select, update
from sqlalchemy.orm import Session

from facesearch.store.catalog import Catalog
from facesearch.store.people_schema import forget_faces
from facesearch.store.schema import FaceRow, ImageRow

log = logging.getLogger(__name__)

_CHUNK = 900  # under SQLite's bound-parameter limit (PostgreSQL's is far higher)


@dataclass
class Removed:
    """What one removal deleted (ids and sources; never embeddings)."""

    face_ids: list[int] = field(default_factory=list)
    image_ids: list[int] = field(default_factory=list)  # images deleted with all their faces
    kept_image_ids: list[int] = field(default_factory=list)  # images that lost faces but keep other people's
    sources: list[str] = field(default_factory=list)  # of every image affected
    image_sha256: list[str] = field(default_factory=list)

    def merge(self, other: Removed) -> Removed:
        for name in ("face_ids", "image_ids", "kept_image_ids", "sources", "image_sha256"):
            mine = getattr(self, name)
            mine.extend(x for x in getattr(other, name) if x not in mine)
        self.kept_image_ids = [i for i in self.kept_image_ids if i not in self.image_ids]
        return self


def _chunks(ids: Iterable[int]) -> Iterator[list[int]]:
    values = sorted({int(i) for i in ids})
    for start in range(0, len(values), _CHUNK):
        yield values[start : start + _CHUNK]


def delete_images(session: Session, image_ids: Iterable[int]) -> Removed:
    """Delete whole images with all their faces (embeddings and thumbnails are in the face rows)."""
    removed = Removed()
    for chunk in _chunks(image_ids):
        for image_id, source, sha in session.execute(
            select(ImageRow.id, ImageRow.source, ImageRow.sha256).where(ImageRow.id.in_(chunk)).order_by(ImageRow.id)
        ):
            removed.image_ids.append(image_id)
            removed.sources.append(source)
            removed.image_sha256.append(sha)
        removed.face_ids += list(session.scalars(select(FaceRow.id).where(FaceRow.image_id.in_(chunk))))
        session.execute(delete(FaceRow).where(FaceRow.image_id.in_(chunk)))
        session.execute(delete(ImageRow).where(ImageRow.id.in_(chunk)))
    removed.face_ids.sort()
    forget_faces(session, removed.face_ids)  # issue 14: deleted faces leave their persons
    return removed


def delete_faces(session: Session, face_ids: Iterable[int]) -> Removed:
    """Delete single faces; an image left without faces is deleted, the others get their face count updated."""
    removed = Removed()
    touched: set[int] = set()
    for chunk in _chunks(face_ids):
        for face_id, image_id in session.execute(select(FaceRow.id, FaceRow.image_id).where(FaceRow.id.in_(chunk))):
            removed.face_ids.append(face_id)
            touched.add(image_id)
        session.execute(delete(FaceRow).where(FaceRow.id.in_(chunk)))
    for image_id in sorted(touched):
        left = int(session.scalar(select(func.count(FaceRow.id)).where(FaceRow.image_id == image_id)) or 0)
        source, sha = session.execute(select(ImageRow.source, ImageRow.sha256).where(ImageRow.id == image_id)).one()
        removed.sources.append(source)
        removed.image_sha256.append(sha)
        if left:
            session.execute(update(ImageRow).where(ImageRow.id == image_id).values(face_count=left))
            removed.kept_image_ids.append(image_id)
        else:
            session.execute(delete(ImageRow).where(ImageRow.id == image_id))
            removed.image_ids.append(image_id)
    removed.face_ids.sort()
    forget_faces(session, removed.face_ids)  # issue 14: deleted faces leave their persons
    return removed


@contextmanager
def secure_delete(session: Session) -> Iterator[None]:
    """SQLite: overwrite deleted content with zeros for the deletes made inside (this connection only).

    PostgreSQL has no such setting: nothing is done (see the module docstring for what that means).
    """
    conn = session.connection()
    if conn.dialect.name != "sqlite":
        yield
        return
    conn.exec_driver_sql("PRAGMA secure_delete=ON")
    try:
        yield
    finally:
        conn.exec_driver_sql("PRAGMA secure_delete=OFF")


def checkpoint(catalog: Catalog) -> bool:
    """SQLite: copy the WAL into the database and truncate it; False (logged) when a reader kept it from finishing.

    PostgreSQL: nothing to do here (its WAL is the server's, recycled on its own schedule): True.
    """
    if not catalog.is_sqlite:
        return True
    with catalog.engine.connect() as conn:
        busy, *_ = conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)").one()
    if busy:
        log.warning("WAL checkpoint incomplete (a reader is active): deleted pages stay in the WAL until the next one")
    return not busy


# The tables whose rows erasure, opt-out, retention and removal delete (personal data).
VACUUMED_TABLES = (
    "faces",
    "images",
    "rejections",
    "optouts",
    "collections",
    "governance_users",
    "persons",
    "person_faces",
)


def reclaim_space(catalog: Catalog) -> dict[str, object]:
    """PostgreSQL: VACUUM (ANALYZE) the tables deletions touch, so dead tuples leave them now.

    That makes deleted rows' space reusable and removes them from the indexes and TOAST tables
    sooner than autovacuum would; it does not promise to overwrite the freed space, nor touch the WAL
    or backups (see the module docstring). SQLite needs nothing: its deletes are already zeroed.
    """
    if catalog.is_sqlite:
        return {"database": "sqlite", "vacuumed": [], "note": "secure_delete zeroes deleted rows as they go"}
    # VACUUM cannot run inside a transaction block: an autocommit connection of its own.
    with catalog.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        for table in VACUUMED_TABLES:
            conn.exec_driver_sql(f"VACUUM (ANALYZE) {table}")
    log.info("VACUUM (ANALYZE) ran on %s", ", ".join(VACUUMED_TABLES))
    return {
        "database": "postgresql",
        "vacuumed": list(VACUUMED_TABLES),
        "note": "dead tuples removed from tables and indexes; the freed space is not guaranteed to be "
        "overwritten, and WAL segments, archives and backups keep their copies until they expire",
    }
