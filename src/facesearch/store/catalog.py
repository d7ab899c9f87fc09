"""The catalog: collections, images, faces and rejections through SQLAlchemy 2, in SQLite or PostgreSQL.

By default the catalog is a SQLite file (WAL) in the library folder: only the ingesting process
writes, and readers (searches, worker duplicate checks) never block it thanks to WAL. A library
created with a ``catalog_url`` keeps it in a PostgreSQL database instead (store/database.py), which
several processes, or machines, can write at once. Either way every image is written with all its
faces in one transaction, so a crash leaves either the whole image or nothing, and a re-run resumes
without duplicates (a unique constraint, not a check, guarantees it under concurrent writers).

The schema is managed by Alembic migrations, applied when a catalog opens (store/migrate.py).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import numpy as np
from sqlalchemy import delete, func, insert, select
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.orm import Session, joinedload, sessionmaker

from facesearch.errors import LibraryError
from facesearch.models.embed.info import ModelInfo
from facesearch.store.database import CatalogLocation, create_catalog_engine, locate
from facesearch.store.ids import number_rows, number_values
from facesearch.store.migrate import upgrade_to_head
from facesearch.store.schema import CollectionRow, FaceRow, ImageRow, ModelRow, RejectionRow


@dataclass
class NewFace:
    face_index: int
    box: tuple[int, int, int, int]
    landmarks: list[list[float]]
    det_score: float
    quality: float
    embedding: np.ndarray
    thumbnail: bytes


@dataclass
class NewImage:
    sha256: str
    source: str
    source_kind: str
    page_url: str | None
    meta: dict
    format: str
    width: int
    height: int
    size_bytes: int
    exif_time: datetime | None


@dataclass
class RemovalReceipt:
    """What a removal deleted: the image and face ids, for the caller's records."""

    image_ids: list[int]
    face_ids: list[int]
    sources: list[str]


class Catalog:
    """The catalog of one library: a SQLite file (a path) or a database named by URL.

    Opening it brings its schema up to date (migrations; a no-op read when it already is).
    """

    def __init__(self, target: str | Path) -> None:
        self.location: CatalogLocation = locate(target)
        self.path: Path | None = self.location.path  # the SQLite file; None on a database server
        self.engine = create_catalog_engine(self.location)
        try:
            # "current", "created", "adopted" (made before migrations) or "upgraded": see store/migrate.py.
            self.schema_change = upgrade_to_head(self.engine)
        except OperationalError as exc:  # no server, refused login, unreadable file...
            self.engine.dispose()
            raise LibraryError(f"cannot open the catalog {self.url}: {exc.orig}", code="catalog_unavailable") from exc
        except BaseException:
            self.engine.dispose()
            raise
        self._session = sessionmaker(self.engine, expire_on_commit=False)

    @property
    def url(self) -> str:
        """Where the catalog is, as a URL (never holds a password)."""
        return self.location.render()

    @property
    def is_sqlite(self) -> bool:
        return self.location.is_sqlite

    def session(self) -> Session:
        return self._session()

    def close(self) -> None:
        self.engine.dispose()

    # models and collections -------------------------------------------------------------------

    def ensure_model(self, info: ModelInfo) -> int:
        try:
            with self.session() as s, s.begin():
                row = s.scalar(select(ModelRow).where(ModelRow.key == info.key))
                if row is None:
                    row = ModelRow(
                        key=info.key,
                        name=info.name,
                        version=info.version,
                        source=info.source,
                        licence=info.licence,
                        dim=info.dim,
                        weights_sha256=info.weights_sha256,
                    )
                    s.add(row)
                    s.flush()
                return row.id
        except IntegrityError:  # another process sharing the catalog added it between our SELECT and INSERT
            with self.session() as s:
                return s.scalars(select(ModelRow.id).where(ModelRow.key == info.key)).one()

    def models(self) -> list[ModelRow]:
        with self.session() as s:
            return list(s.scalars(select(ModelRow)))

    def collection_id(self, name: str, create: bool = True) -> int | None:
        try:
            with self.session() as s, s.begin():
                row = s.scalar(select(CollectionRow).where(CollectionRow.name == name))
                if row is None and create:
                    row = CollectionRow(name=name, settings={})
                    s.add(row)
                    s.flush()
                return row.id if row else None
        except IntegrityError:  # created meanwhile by another process sharing the catalog
            return self.collection_id(name, create=False)

    def collections(self) -> list[CollectionRow]:
        with self.session() as s:
            return list(s.scalars(select(CollectionRow).order_by(CollectionRow.name)))

    # ingestion ----------------------------------------------------------------------------------

    def known_sources(self, collection_id: int) -> set[str]:
        """Sources already indexed in a collection (for resuming without re-reading them)."""
        with self.session() as s:
            return set(s.scalars(select(ImageRow.source).where(ImageRow.collection_id == collection_id)))

    def add_image(
        self, collection_id: int, model_id: int, image: NewImage, faces: list[NewFace], audit_seq: int | None = None
    ) -> tuple[int, list[int]] | None:
        """Store an image and its faces atomically; None if the same bytes are already in the collection.

        ``audit_seq``: the audit entry of the ingest that stores it (see ImageRow.audit_seq)."""
        row = self._image_row(collection_id, model_id, image, faces)
        row.audit_seq = audit_seq
        try:
            with self.session() as s, s.begin():
                number_rows(s, "images", [row])  # SQLite: never an erased photo's ids (store/ids.py)
                number_rows(s, "faces", row.faces)
                s.add(row)
                s.execute(
                    delete(RejectionRow).where(
                        RejectionRow.collection_id == collection_id, RejectionRow.source == image.source
                    )
                )
                s.flush()
                return row.id, [f.id for f in row.faces]
        except IntegrityError:
            return None

    def add_images(
        self,
        collection_id: int,
        model_id: int,
        batch: list[tuple[NewImage, list[NewFace]]],
        audit_seq: int | None = None,
    ) -> list[tuple[int, list[int]] | None]:
        """:meth:`add_image` for many images in one transaction, in order: what a fast ingest needs
        (one commit per photo caps a writer at ~1,000 photos/s; docs/benchmarks.md).

        Images whose bytes the collection holds (or an earlier image of the batch has) give None. If
        another writer stores the same bytes meanwhile, the batch is stored image by image instead.
        """
        if not batch:
            return []
        digests = [image.sha256 for image, _ in batch]
        with self.session() as s:
            held = set(
                s.scalars(
                    select(ImageRow.sha256).where(ImageRow.collection_id == collection_id, ImageRow.sha256.in_(digests))
                )
            )
        todo: list[int] = []  # positions of the images to store
        for position, (image, _) in enumerate(batch):
            if image.sha256 not in held:
                held.add(image.sha256)
                todo.append(position)
        out: list[tuple[int, list[int]] | None] = [None] * len(batch)
        if not todo:
            return out
        try:
            with self.session() as s, s.begin():
                # Core-style bulk inserts with RETURNING in parameter order: the ORM's unit of work
                # took most of the writer's time (bench/speed/writer.py).
                image_values = [
                    dict(
                        collection_id=collection_id,
                        face_count=len(batch[p][1]),
                        audit_seq=audit_seq,
                        **batch[p][0].__dict__,
                    )
                    for p in todo
                ]
                number_values(s, "images", image_values)  # SQLite: store/ids.py
                image_ids = list(
                    s.scalars(insert(ImageRow).returning(ImageRow.id, sort_by_parameter_order=True), image_values)
                )
                face_values = [
                    self._face_values(image_id, model_id, face)
                    for image_id, p in zip(image_ids, todo, strict=True)
                    for face in batch[p][1]
                ]
                number_values(s, "faces", face_values)
                face_ids = (
                    list(s.scalars(insert(FaceRow).returning(FaceRow.id, sort_by_parameter_order=True), face_values))
                    if face_values
                    else []
                )
                s.execute(
                    delete(RejectionRow).where(
                        RejectionRow.collection_id == collection_id,
                        RejectionRow.source.in_([batch[p][0].source for p in todo]),
                    )
                )
        except IntegrityError:
            return [self.add_image(collection_id, model_id, image, faces, audit_seq) for image, faces in batch]
        start = 0
        for image_id, p in zip(image_ids, todo, strict=True):
            count = len(batch[p][1])
            out[p] = (image_id, face_ids[start : start + count])
            start += count
        return out

    @staticmethod
    def _face_values(image_id: int, model_id: int, f: NewFace) -> dict:
        return {
            "image_id": image_id,
            "face_index": f.face_index,
            "left": f.box[0],
            "top": f.box[1],
            "width": f.box[2],
            "height": f.box[3],
            "landmarks": f.landmarks,
            "det_score": f.det_score,
            "quality": f.quality,
            "model_id": model_id,
            "embedding": np.asarray(f.embedding, dtype=np.float32).tobytes(),
            "thumbnail": f.thumbnail,
        }

    @staticmethod
    def _image_row(collection_id: int, model_id: int, image: NewImage, faces: list[NewFace]) -> ImageRow:
        row = ImageRow(collection_id=collection_id, face_count=len(faces), **image.__dict__)
        row.faces = [
            FaceRow(
                face_index=f.face_index,
                left=f.box[0],
                top=f.box[1],
                width=f.box[2],
                height=f.box[3],
                landmarks=f.landmarks,
                det_score=f.det_score,
                quality=f.quality,
                model_id=model_id,
                embedding=np.asarray(f.embedding, dtype=np.float32).tobytes(),
                thumbnail=f.thumbnail,
            )
            for f in faces
        ]
        return row

    def record_rejection(self, collection_id: int, source: str, code: str, message: str) -> None:
        with self.session() as s, s.begin():
            old = s.scalar(
                select(RejectionRow).where(RejectionRow.collection_id == collection_id, RejectionRow.source == source)
            )
            if old is None:
                s.add(RejectionRow(collection_id=collection_id, source=source, code=code, message=message))
            else:
                old.code, old.message = code, message

    def rejections(self, collection_id: int | None = None) -> list[RejectionRow]:
        with self.session() as s:
            query = select(RejectionRow).order_by(RejectionRow.id)
            if collection_id is not None:
                query = query.where(RejectionRow.collection_id == collection_id)
            return list(s.scalars(query))

    # reading ------------------------------------------------------------------------------------

    def faces_by_ids(self, ids: Iterable[int]) -> dict[int, FaceRow]:
        ids = [int(i) for i in ids]
        if not ids:
            return {}
        with self.session() as s:
            rows = s.scalars(
                select(FaceRow)
                .where(FaceRow.id.in_(ids))
                .options(joinedload(FaceRow.image).joinedload(ImageRow.collection))
            )
            return {row.id: row for row in rows}

    def face_ids_in_collection(self, collection_id: int) -> np.ndarray:
        with self.session() as s:
            ids = s.scalars(select(FaceRow.id).join(ImageRow).where(ImageRow.collection_id == collection_id)).all()
        return np.asarray(ids, dtype=np.int64)

    def iter_embeddings(self, batch: int = 50_000) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """All stored (face ids, embeddings) in id order, in batches, to rebuild the vector index."""
        last = 0
        with self.session() as s:
            while True:
                rows = s.execute(
                    select(FaceRow.id, FaceRow.embedding).where(FaceRow.id > last).order_by(FaceRow.id).limit(batch)
                ).all()
                if not rows:
                    return
                ids = np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))
                vectors = np.frombuffer(b"".join(r[1] for r in rows), dtype=np.float32).reshape(len(rows), -1)
                last = int(ids[-1])
                yield ids, vectors

    def embeddings_of(self, ids: np.ndarray) -> np.ndarray:
        """Embeddings of the given face ids, in the given order."""
        wanted = [int(i) for i in ids]
        found: dict[int, bytes] = {}
        with self.session() as s:
            for start in range(0, len(wanted), 900):  # under SQLite's bound-parameter limit
                chunk = wanted[start : start + 900]
                query = select(FaceRow.id, FaceRow.embedding).where(FaceRow.id.in_(chunk))
                found.update((row[0], row[1]) for row in s.execute(query))
        return np.stack([np.frombuffer(found[i], dtype=np.float32) for i in wanted if i in found])

    def all_face_ids(self) -> np.ndarray:
        with self.session() as s:
            return np.asarray(s.scalars(select(FaceRow.id).order_by(FaceRow.id)).all(), dtype=np.int64)

    def face_count(self) -> int:
        with self.session() as s:
            return int(s.scalar(select(func.count(FaceRow.id))) or 0)

    def image_count(self) -> int:
        with self.session() as s:
            return int(s.scalar(select(func.count(ImageRow.id))) or 0)

    def stats(self) -> dict:
        with self.session() as s:
            per_collection = s.execute(
                select(
                    CollectionRow.name,
                    func.count(ImageRow.id.distinct()),
                    func.coalesce(func.sum(ImageRow.face_count), 0),
                )
                .join(ImageRow, ImageRow.collection_id == CollectionRow.id, isouter=True)
                .group_by(CollectionRow.id)
                .order_by(CollectionRow.name)
            ).all()
            rejected = int(s.scalar(select(func.count(RejectionRow.id))) or 0)
        return {
            "images": self.image_count(),
            "faces": self.face_count(),
            "rejected": rejected,
            "collections": [{"name": n, "images": int(i), "faces": int(f)} for n, i, f in per_collection],
        }
