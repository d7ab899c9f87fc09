"""The library's own copies of uploaded photos go when the last image row that uses them goes.

Photos uploaded through the API are kept as ``<library>/uploads/<sha256>.<ext>`` (api/uploads.py).
Erasure, opt-out, retention and removal delete image rows; whichever interface ran them (API, CLI,
``facesearch maintain``), the copy must go too, or the "erased" photo would still sit on disk. Only
files inside uploads/ are the library's to delete: an indexed path elsewhere is the operator's own
file and is never touched.

A server's queued or running ingest jobs need their uploaded files until they finish: those are
registered in a :class:`HeldFiles` (per process) and skipped. A CLI erasure in another process cannot
see a server's held files; in that rare race (the same photo erased by the CLI while re-uploaded to
the server) the job reports the file as unreadable, and nothing erased survives.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable
from pathlib import Path

from sqlalchemy import select

from facesearch.store.catalog import Catalog
from facesearch.store.schema import ImageRow

log = logging.getLogger(__name__)

UPLOADS_DIR = "uploads"


class HeldFiles:
    """Files that queued or running jobs of this process still need (counted: two jobs may hold one file)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self._count: dict[Path, int] = {}

    def hold(self, paths: Iterable[Path]) -> None:
        with self.lock:
            for path in paths:
                self._count[path] = self._count.get(path, 0) + 1

    def release(self, paths: Iterable[Path]) -> None:
        with self.lock:
            for path in paths:
                left = self._count.get(path, 0) - 1
                if left > 0:
                    self._count[path] = left
                else:
                    self._count.pop(path, None)

    def is_held(self, path: Path) -> bool:
        with self.lock:
            return path in self._count

    def held_unlocked(self, path: Path) -> bool:
        """For callers already holding :attr:`lock`."""
        return path in self._count


def uploads_root(library_folder: Path) -> Path:
    return (Path(library_folder) / UPLOADS_DIR).resolve()


def discard_uploaded_copies(
    catalog: Catalog, library_folder: Path, sources: Iterable[str], held: HeldFiles | None = None
) -> list[Path]:
    """Delete the library's copies (in uploads/) of ``sources`` that no image row refers to any more.

    ``sources`` are image sources as stored (absolute paths; URLs and paths outside uploads/ are
    ignored). Files in ``held`` are kept. Returns what was deleted.
    """
    root = uploads_root(library_folder)
    lock = held.lock if held is not None else threading.Lock()
    deleted: list[Path] = []
    for source in dict.fromkeys(sources):
        if "://" in source:
            continue
        path = Path(source)
        if path.parent != root or not path.is_file():
            continue
        with lock:
            if held is not None and held.held_unlocked(path):
                continue
            with catalog.session() as s:
                if s.scalar(select(ImageRow.id).where(ImageRow.source == str(path)).limit(1)) is not None:
                    continue
            path.unlink(missing_ok=True)
        deleted.append(path)
    if deleted:
        log.info("deleted %d uploaded photos no longer in the library", len(deleted))
    return deleted


def discard_orphaned_copies(catalog: Catalog, library_folder: Path, held: HeldFiles | None = None) -> list[Path]:
    """Delete every file in uploads/ (photos, job manifests, half-written temporary files) that no image
    row refers to and no job of this process holds; returns what was deleted.

    Run when a server starts: a server killed during an upload job (``kill -9``, a power cut) leaves
    photos that no row refers to and nothing else would ever remove (issue 12 §5). One server serves a
    library at a time; a second server's queued uploads would look orphaned to the first.
    """
    root = uploads_root(library_folder)
    if not root.is_dir():
        return []
    lock = held.lock if held is not None else threading.Lock()
    candidates = [p for p in sorted(root.rglob("*")) if p.is_file() and not p.is_symlink()]
    deleted: list[Path] = []
    for path in candidates:
        with lock:
            if held is not None and held.held_unlocked(path):
                continue
            with catalog.session() as s:
                if s.scalar(select(ImageRow.id).where(ImageRow.source == str(path)).limit(1)) is not None:
                    continue
            path.unlink(missing_ok=True)
        deleted.append(path)
    if deleted:
        log.warning("deleted %d files in %s that no photo and no job referred to", len(deleted), root)
    return deleted
