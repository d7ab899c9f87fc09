"""The catalog: collections, images, faces and rejections in SQLite (WAL) through SQLAlchemy 2.

Only the ingesting process writes; readers (searches, worker duplicate checks) never block it
thanks to WAL. Every image is written with all its faces in one transaction, so a crash leaves
either the whole image or nothing, and a re-run resumes without duplicates.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import numpy as np
from sqlalchemy import create_engine, delete, event, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, joinedload, sessionmaker

from facesearch.models.embedder import ModelInfo
from facesearch.store.schema import Base, CollectionRow, FaceRow, ImageRow, ModelRow, RejectionRow


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
    def __init__(self, path: Path) -> None:
        self.path = path
        self.engine = create_engine(f"sqlite:///{path}", future=True)
        event.listen(self.engine, "connect", _sqlite_pragmas)
        Base.metadata.create_all(self.engine)
        self._session = sessionmaker(self.engine, expire_on_commit=False)

    def session(self) -> Session:
        return self._session()

    def close(self) -> None:
        self.engine.dispose()

    # models and collections -------------------------------------------------------------------

    def ensure_model(self, info: ModelInfo) -> int:
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

    def models(self) -> list[ModelRow]:
        with self.session() as s:
            return list(s.scalars(select(ModelRow)))

    def collection_id(self, name: str, create: bool = True) -> int | None:
        with self.session() as s, s.begin():
            row = s.scalar(select(CollectionRow).where(CollectionRow.name == name))
            if row is None and create:
                row = CollectionRow(name=name, settings={})
                s.add(row)
                s.flush()
            return row.id if row else None

    def collections(self) -> list[CollectionRow]:
        with self.session() as s:
            return list(s.scalars(select(CollectionRow).order_by(CollectionRow.name)))

    # ingestion ----------------------------------------------------------------------------------

    def known_sources(self, collection_id: int) -> set[str]:
        """Sources already indexed in a collection (for resuming without re-reading them)."""
        with self.session() as s:
            return set(s.scalars(select(ImageRow.source).where(ImageRow.collection_id == collection_id)))

    def add_image(
        self, collection_id: int, model_id: int, image: NewImage, faces: list[NewFace]
    ) -> tuple[int, list[int]] | None:
        """Store an image and its faces atomically; None if the same bytes are already in the collection."""
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
        try:
            with self.session() as s, s.begin():
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
            for start in range(0, len(wanted), 900):  # SQLite's bound-parameter limit
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

    # removal ------------------------------------------------------------------------------------

    def remove_images(
        self,
        *,
        image_ids: Iterable[int] | None = None,
        source: str | None = None,
        collection_id: int | None = None,
        drop_collection: bool = False,
    ) -> RemovalReceipt:
        """Delete images (and their faces, embeddings and thumbnails) matching one criterion."""
        with self.session() as s, s.begin():
            query = select(ImageRow.id, ImageRow.source)
            if image_ids is not None:
                query = query.where(ImageRow.id.in_([int(i) for i in image_ids]))
            elif source is not None:
                query = query.where(ImageRow.source == source)
            elif collection_id is not None:
                query = query.where(ImageRow.collection_id == collection_id)
            else:
                raise ValueError("remove_images needs image_ids, source or collection_id")
            found = s.execute(query).all()
            ids = [r[0] for r in found]
            face_ids = list(s.scalars(select(FaceRow.id).where(FaceRow.image_id.in_(ids)))) if ids else []
            if ids:
                s.execute(delete(FaceRow).where(FaceRow.image_id.in_(ids)))
                s.execute(delete(ImageRow).where(ImageRow.id.in_(ids)))
            if drop_collection and collection_id is not None:
                s.execute(delete(RejectionRow).where(RejectionRow.collection_id == collection_id))
                s.execute(delete(CollectionRow).where(CollectionRow.id == collection_id))
        return RemovalReceipt(image_ids=ids, face_ids=face_ids, sources=[r[1] for r in found])


def _sqlite_pragmas(dbapi_connection, _record) -> None:  # type: ignore[no-untyped-def]
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()
