"""Uploaded photos: read within limits, checked before anything is written, stored by content.

An uploaded photo is kept as ``<library>/uploads/<sha256>.<ext>``: the name comes from the bytes
and the extension from the decoded format, never from the client's file name, so a name such as
``../../x.jpg`` cannot choose where anything is written (it is echoed back in the response only).
Every file of a request is read and decoded *before* the first one is saved: a request with one bad
file stores nothing. The same bytes uploaded twice are one file.

The library's copy of a photo must go when its last image row goes (erasure, opt-out, a photo that
turned out to be a duplicate or was rejected): governance/uploaded_copies.py deletes such files,
except those a queued or running job still needs (``held``); the library does it after every
erasure, opt-out and retention purge, whichever interface ran it.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from facesearch.api.errors import PayloadTooLarge
from facesearch.governance.events import UploadsSweptEvent, record
from facesearch.media.decode import decode_image, sha256_hex
from facesearch.store.catalog import Catalog
from facesearch.store.private_files import private_dir, write_private
from facesearch.store.uploaded_copies import (
    HeldFiles,
    discard_orphaned_copies,
    discard_uploaded_copies,
    uploads_root,
)

log = logging.getLogger(__name__)

MANIFESTS_DIR = "manifests"
MAX_NAME_ECHO = 255
_SHA256 = re.compile(r"[0-9a-f]{64}")
EXTENSIONS = {"JPEG": ".jpg", "PNG": ".png", "WEBP": ".webp", "GIF": ".gif", "BMP": ".bmp", "TIFF": ".tif"}


@dataclass(frozen=True)
class CheckedPhoto:
    """A photo that decoded: its bytes, hash and container format, and the client's name for it (echo only)."""

    data: bytes
    sha256: str
    format: str
    name: str


def read_limited(stream: BinaryIO, limit: int, what: str) -> bytes:
    """Read a whole upload, or :class:`PayloadTooLarge` (413) as soon as it is longer than ``limit`` bytes."""
    data = stream.read(limit + 1)
    if len(data) > limit:
        raise PayloadTooLarge(f"{what} is larger than the limit of {limit} bytes")
    return data


def check_photo(data: bytes, name: str | None, max_pixels: int) -> CheckedPhoto:
    """Decode the bytes to be sure they are a usable photo; raises ImageRejected with its code otherwise."""
    decoded = decode_image(data, max_pixels=max_pixels)
    return CheckedPhoto(data, sha256_hex(data), decoded.format, (name or "")[:MAX_NAME_ECHO])


class UploadStore:
    """The library's uploads/ folder, and which of its files queued or running jobs still need."""

    def __init__(self, library_folder: Path) -> None:
        self.root = uploads_root(library_folder)
        self.held = HeldFiles()  # files queued or running jobs still need
        self._lock = threading.Lock()

    def path_for(self, photo: CheckedPhoto) -> Path:
        """uploads/<sha256>.<ext>: named by content and decoded format, never by the client."""
        return self.root / f"{photo.sha256}{EXTENSIONS.get(photo.format, '.img')}"

    def store_photo(self, photo: CheckedPhoto) -> Path:
        """Write the photo at :meth:`path_for` (atomically; kept as is when already there); returns the path."""
        private_dir(self.root)
        path = self.path_for(photo)
        with self._lock:
            if not path.exists():
                _write_atomic(path, photo.data)
        return path

    def store_manifest(self, text: str) -> Path:
        """Write a checked, re-serialised manifest for a job, named by its content."""
        folder = private_dir(self.root / MANIFESTS_DIR)
        data = text.encode("utf-8")
        path = folder / f"{sha256_hex(data)}.jsonl"
        with self._lock:
            _write_atomic(path, data)
        return path

    def hold(self, paths: Iterable[Path]) -> None:
        """Mark files as needed by a job: call before saving them, :meth:`release` when the job ends."""
        self.held.hold(paths)

    def release(self, paths: Iterable[Path]) -> None:
        self.held.release(paths)

    def is_held(self, path: Path) -> bool:
        return self.held.is_held(path)

    def discard_unreferenced(self, catalog: Catalog, sources: Iterable[str]) -> list[Path]:
        """Delete the library's copies of photos (in uploads/) that no image row refers to any more,
        except files a pending job holds (see governance/uploaded_copies.py)."""
        return discard_uploaded_copies(catalog, self.root.parent, sources, self.held)


def sweep_orphans(uploads: UploadStore, catalog: Catalog, actor: str = "server") -> list[Path]:
    """Delete the files in uploads/ that no image row and no held job refers to, and audit it (a server
    calls this when it starts: see store/uploaded_copies.py ``discard_orphaned_copies``)."""
    deleted = discard_orphaned_copies(catalog, uploads.root.parent, uploads.held)
    if deleted:
        hashes = sorted({p.stem for p in deleted if p.parent == uploads.root and _SHA256.fullmatch(p.stem)})
        record(catalog, UploadsSweptEvent(files=len(deleted), sha256=hashes), actor)
    return deleted


def _write_atomic(path: Path, data: bytes) -> None:
    write_private(path, data)  # 0600 from the start: an uploaded photo is never readable by other users
