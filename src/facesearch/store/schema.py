"""The catalog's tables (SQLAlchemy 2 ORM). The catalog is the source of truth; the vector index
is derived from the embeddings stored here and can always be rebuilt from them.

The tables are created and changed by Alembic migrations (store/migrations/), never by
``create_all``: a change here needs a new revision (``python -m facesearch.store.migrate revision``).
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import JSON, BigInteger, ForeignKey, Index, Integer, LargeBinary, String, UniqueConstraint
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship


def utcnow() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


# Image and face ids: 64-bit on PostgreSQL (a gallery of billions outgrows INTEGER; migration 0002),
# INTEGER on SQLite, whose INTEGER PRIMARY KEY is already 64-bit (and must be spelled so to be the rowid).
ID64 = BigInteger().with_variant(Integer(), "sqlite")


class Base(DeclarativeBase):
    pass


class ModelRow(Base):
    """An embedding model: name, version, source and licence of what made each embedding."""

    __tablename__ = "models"
    id: Mapped[int] = mapped_column(primary_key=True)
    key: Mapped[str] = mapped_column(String(100), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    version: Mapped[str] = mapped_column(String(50))
    source: Mapped[str] = mapped_column(String(500))
    licence: Mapped[str] = mapped_column(String(200))
    dim: Mapped[int]
    weights_sha256: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class CollectionRow(Base):
    __tablename__ = "collections"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    settings: Mapped[dict] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class ImageRow(Base):
    """One photo. The same bytes are stored once per collection (SHA-256 of the file)."""

    __tablename__ = "images"
    __table_args__ = (UniqueConstraint("collection_id", "sha256"), Index("ix_images_source", "source"))
    id: Mapped[int] = mapped_column(ID64, primary_key=True)
    collection_id: Mapped[int] = mapped_column(ForeignKey("collections.id", ondelete="CASCADE"), index=True)
    sha256: Mapped[str] = mapped_column(String(64), index=True)
    source: Mapped[str] = mapped_column(String(4000))
    source_kind: Mapped[str] = mapped_column(String(10))  # "file" or "url"
    page_url: Mapped[str | None] = mapped_column(String(4000))
    meta: Mapped[dict] = mapped_column(JSON, default=dict)
    format: Mapped[str] = mapped_column(String(20))
    width: Mapped[int]
    height: Mapped[int]
    size_bytes: Mapped[int]
    exif_time: Mapped[datetime | None]
    face_count: Mapped[int] = mapped_column(default=0)
    ingested_at: Mapped[datetime] = mapped_column(default=utcnow)
    # The audit entry of the ingest that stored it (written before its first photo; migration 0003):
    # the catalog's proof that the log cannot be shorter than this. NULL: stored before 0003.
    audit_seq: Mapped[int | None] = mapped_column(ID64, index=True)
    faces: Mapped[list[FaceRow]] = relationship(back_populates="image", cascade="all, delete-orphan")
    collection: Mapped[CollectionRow] = relationship()


class FaceRow(Base):
    __tablename__ = "faces"
    id: Mapped[int] = mapped_column(ID64, primary_key=True)  # also the vector's id in the index
    image_id: Mapped[int] = mapped_column(ID64, ForeignKey("images.id", ondelete="CASCADE"), index=True)
    face_index: Mapped[int]
    left: Mapped[int]
    top: Mapped[int]
    width: Mapped[int]
    height: Mapped[int]
    landmarks: Mapped[list] = mapped_column(JSON)
    det_score: Mapped[float]
    quality: Mapped[float]
    model_id: Mapped[int] = mapped_column(ForeignKey("models.id"))
    embedding: Mapped[bytes] = mapped_column(LargeBinary)
    thumbnail: Mapped[bytes] = mapped_column(LargeBinary)
    image: Mapped[ImageRow] = relationship(back_populates="faces")

    @property
    def box(self) -> tuple[int, int, int, int]:
        return (self.left, self.top, self.width, self.height)


class RejectionRow(Base):
    """A source that could not be indexed, with the reason. Kept so that nothing is lost silently."""

    __tablename__ = "rejections"
    __table_args__ = (UniqueConstraint("collection_id", "source"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    collection_id: Mapped[int] = mapped_column(ForeignKey("collections.id", ondelete="CASCADE"))
    source: Mapped[str] = mapped_column(String(4000))
    code: Mapped[str] = mapped_column(String(50))
    message: Mapped[str] = mapped_column(String(2000))
    at: Mapped[datetime] = mapped_column(default=utcnow)


class IdHighWaterRow(Base):
    """The highest id ever given out, per table (images, faces, persons, opt-outs; SQLite only; migration 0008).

    SQLite gives a new row the largest id in the table plus one, so erasing the newest photo handed its
    image and face ids to the next photo stored: an audit entry, a case's evidence or an alert that named
    the erased face then showed somebody else's (measured: erase the newest photo, store another, same ids).
    ``Catalog`` takes ids above this mark instead (:func:`facesearch.store.ids.reserve_ids`); PostgreSQL's
    sequences never reuse one, so its rows stay unused there.
    """

    __tablename__ = "id_high_water"
    name: Mapped[str] = mapped_column(String(50), primary_key=True)
    high: Mapped[int] = mapped_column(ID64)
