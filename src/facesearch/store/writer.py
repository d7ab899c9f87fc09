"""The one write path of a library: every change to its catalog and vectors goes through here.

Ingest (every engine), removal, erasure, opt-out and retention all change two things that must stay
in step: the catalog (the truth) and the vector index derived from it, plus what is derived from
the indexed faces in memory (the s-norm cohort). Before this writer each caller did that its own
way, and two processes could each save their own copy of the index over the other's. Now:

* the writer alone holds the library's cross-process lock (``write.lock``, an ``flock``); the lock
  is re-entrant within a process, so a change may run inside a longer one (an ingest);
* under the lock it first reloads the vector index if another process saved it meanwhile
  (:meth:`LiveIndex.refresh`), so it never changes or saves a stale copy;
* it screens new faces against the opt-outs before storing them (a :class:`FaceScreen` given by
  the governance layer: the store layer does not know what an opt-out is);
* it tells its store listeners what faces it has just stored (watchlists compare them with the
  people their cases watch for, issue 13: every ingest path and engine stores through here);
* deletions run in one serialised transaction with ``secure_delete`` (the caller appends its audit
  entry to the same session, so both commit or neither), then the vectors leave the index, the
  index is saved, listeners (the cohort cache) are told, the SQLite WAL is truncated and the
  library's own copies of uploaded photos that no row uses any more are deleted.
"""

from __future__ import annotations

import fcntl
import logging
import threading
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import numpy as np
from sqlalchemy import delete
from sqlalchemy.orm import Session

from facesearch.store.catalog import Catalog, NewFace, NewImage
from facesearch.store.deletion import Removed, checkpoint, delete_faces, delete_images, secure_delete
from facesearch.store.live_index import LiveIndex
from facesearch.store.private_files import make_private
from facesearch.store.schema import CollectionRow, RejectionRow
from facesearch.store.transactions import serialised
from facesearch.store.uploaded_copies import HeldFiles, discard_uploaded_copies

log = logging.getLogger(__name__)

LOCK_NAME = "write.lock"


class FaceScreen(Protocol):
    """Which embeddings belong to people who must not be stored (the opt-outs)."""

    def screens(self) -> bool:
        """False when there is nothing to screen against (no opt-out): storing skips the check."""
        ...

    def refused(self, embeddings: np.ndarray) -> np.ndarray:
        """A boolean mask over the rows of ``embeddings``: True for a face that must not be stored."""
        ...


@dataclass(frozen=True)
class StoredFaces:
    """Faces one :meth:`LibraryWriter.store` call has just committed: their ids, images and embeddings."""

    face_ids: np.ndarray
    image_ids: np.ndarray
    embeddings: np.ndarray


@dataclass
class Stored:
    """One image as stored: its id, its faces' ids, and how many of its faces were refused.

    ``image_id`` is None when every face of the image was refused: the image is not stored at all
    (no row: an opted-out person's photo leaves no trace, and an uploaded copy no row refers to is
    deleted when its job ends).
    """

    image_id: int | None
    face_ids: list[int]
    refused: int = 0


@dataclass
class Deletion:
    """A deletion in progress: rows deleted through it are collected for the index and the copies."""

    session: Session
    removed: Removed = field(default_factory=Removed)

    def faces(self, face_ids: Iterable[int]) -> Removed:
        """Delete single faces (an image left without faces goes too)."""
        done = delete_faces(self.session, face_ids)
        self.removed.merge(done)
        return done

    def images(self, image_ids: Iterable[int]) -> Removed:
        """Delete whole images with all their faces."""
        done = delete_images(self.session, image_ids)
        self.removed.merge(done)
        return done

    def collection(self, collection_id: int) -> None:
        """Drop a collection's row and its rejections (its images must be deleted first)."""
        self.session.execute(delete(RejectionRow).where(RejectionRow.collection_id == collection_id))
        self.session.execute(delete(CollectionRow).where(CollectionRow.id == collection_id))


class LibraryWriter:
    """The single writer of one library folder (see the module docstring)."""

    def __init__(
        self,
        folder: Path,
        catalog: Catalog,
        index: LiveIndex,
        model_id: int,
        *,
        screen: FaceScreen | None = None,
        held_uploads: HeldFiles | None = None,
    ) -> None:
        self.folder = folder
        self.catalog = catalog
        self.index = index
        self.model_id = model_id
        self.screen = screen
        self.held_uploads = held_uploads
        self._listeners: list[Callable[[], None]] = []
        self._store_listeners: list[Callable[[StoredFaces], None]] = []
        self._thread_lock = threading.RLock()
        self._depth = 0
        self._handle: object | None = None

    def on_change(self, listener: Callable[[], None]) -> None:
        """Call ``listener`` after every change of the indexed faces (e.g. to forget a cached cohort)."""
        self._listeners.append(listener)

    def on_store(self, listener: Callable[[StoredFaces], None]) -> None:
        """Call ``listener`` with the faces of every batch stored, after they are committed and indexed.

        Called under the write lock: a listener must not wait on anything slow (a watchlist records
        its alerts and leaves webhooks to a thread). Its failure is logged, never the ingest's: the
        photos are committed already.
        """
        self._store_listeners.append(listener)

    def _changed(self) -> None:
        for listener in self._listeners:
            listener()

    # the lock -------------------------------------------------------------------------------------

    @contextmanager
    def locked(self) -> Iterator[None]:
        """Hold the library's write lock (other processes wait); the index is reloaded if it changed on disk."""
        with self._thread_lock:
            if self._depth == 0:
                handle = open(self.folder / LOCK_NAME, "w")  # noqa: SIM115 (held across the yield)
                try:
                    fcntl.flock(handle, fcntl.LOCK_EX)
                except BaseException:
                    handle.close()
                    raise
                self._handle = handle
            self._depth += 1
            try:
                if self._depth == 1 and self.index.refresh(repair=True):
                    self._changed()
                yield
            finally:
                self._depth -= 1
                if self._depth == 0:
                    make_private(self.folder)  # files this write made (index, lock file) are 0600 too
                    handle = self._handle
                    self._handle = None
                    fcntl.flock(handle, fcntl.LOCK_UN)  # type: ignore[arg-type]
                    handle.close()  # type: ignore[union-attr]

    def _require_lock(self) -> None:
        """Storing needs the lock held by this process (an ingest's writer thread stores while the
        thread that runs the ingest holds it)."""
        if self._depth == 0:
            raise RuntimeError("the library's write lock must be held (LibraryWriter.locked)")

    # adding ---------------------------------------------------------------------------------------

    def record_rejection(self, collection_id: int, source: str, code: str, message: str) -> None:
        self.catalog.record_rejection(collection_id, source, code, message)

    def store(
        self, collection_id: int, batch: list[tuple[NewImage, list[NewFace]]], *, audit_seq: int | None = None
    ) -> list[Stored | None]:
        """Store images with their faces in one catalog transaction and their vectors in one index call.

        ``audit_seq``: the audit entry that opened the ingest, kept on each image (the catalog's
        evidence of what the log must hold).

        Faces the screen refuses are not stored (counted in :attr:`Stored.refused`), nor an image
        whose every face was refused (``Stored.image_id`` None). Returns, per image, what was stored,
        or None when the collection already holds the same bytes.
        """
        self._require_lock()
        refused = [0] * len(batch)
        if self.screen is not None and self.screen.screens():
            kept_batch = []
            for position, (image, faces) in enumerate(batch):
                if faces:
                    mask = self.screen.refused(np.stack([f.embedding for f in faces]))
                    refused[position] = int(mask.sum())
                    faces = [f for f, out in zip(faces, mask, strict=True) if not out]
                kept_batch.append((image, faces))
            batch = kept_batch
        # An image whose every face was refused is not stored (a photo of only opted-out people).
        storing = [position for position, (_, faces) in enumerate(batch) if faces or not refused[position]]
        rows = self.catalog.add_images(collection_id, self.model_id, [batch[p] for p in storing], audit_seq=audit_seq)
        by_position = dict(zip(storing, rows, strict=True))
        out: list[Stored | None] = []
        ids: list[int] = []
        images: list[int] = []
        vectors: list[np.ndarray] = []
        for position, ((_, faces), count) in enumerate(zip(batch, refused, strict=True)):
            if position not in by_position:
                out.append(Stored(None, [], count))
                continue
            row = by_position[position]
            if row is None:
                out.append(None)
                continue
            out.append(Stored(row[0], row[1], count))
            ids += row[1]
            images += [row[0]] * len(row[1])
            vectors += [f.embedding for f in faces]
        if ids:
            self.index.add(np.asarray(ids), np.stack(vectors))
            self._stored(StoredFaces(np.asarray(ids), np.asarray(images), np.stack(vectors)))
            self._changed()
        return out

    def _stored(self, faces: StoredFaces) -> None:
        for listener in self._store_listeners:
            try:
                listener(faces)
            except Exception:  # the photos are committed: a listener's failure must not fail the ingest
                log.exception("a store listener failed on %d new faces", len(faces.face_ids))

    def save_index(self) -> None:
        """Save the vector index (an ingest checkpoints it; a deletion saves it at once)."""
        self.index.save()

    # deleting -------------------------------------------------------------------------------------

    @contextmanager
    def deleting(self) -> Iterator[Deletion]:
        """Delete rows in one serialised transaction (zeroed on SQLite), then bring the index in step.

        The caller deletes through the yielded :class:`Deletion` and appends its audit entry to
        ``deletion.session``; both commit together when the block ends, or neither on an error.
        """
        with self.locked():
            with serialised(self.catalog) as session, secure_delete(session):
                deletion = Deletion(session)
                yield deletion
            removed = deletion.removed
            self.index.remove(np.asarray(sorted(removed.face_ids), dtype=np.int64))
            self.index.save()
            self._changed()
        if removed.face_ids or removed.image_ids:
            checkpoint(self.catalog)
            self.discard_uploaded_copies(removed.sources)

    def discard_uploaded_copies(self, sources: Iterable[str]) -> list[Path]:
        """Delete the library's own copies (uploads/) of photos no image row uses any more."""
        return discard_uploaded_copies(self.catalog, self.folder, sources, self.held_uploads)

    # repairs --------------------------------------------------------------------------------------

    def rebuild_index(self) -> None:
        with self.locked():
            self.index.rebuild()
            self._changed()
