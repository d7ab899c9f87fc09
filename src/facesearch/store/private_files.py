"""A library folder is its owner's alone: the folder and its sub-folders 0700, its files 0600.

Why: the catalog holds every face's embedding and thumbnail, ``uploads/`` holds whole photos, the
index and the audit log say who was searched for; issue 12 §6 found ``catalog.sqlite`` and
``uploads/`` readable by every local user. The folder's own mode already keeps other users out,
and the files' modes keep them out too where the folder is later opened up by mistake.

Files are written by many hands (SQLite makes its ``-wal`` and ``-shm`` beside the database, FAISS
and the config are replaced atomically through temporary files, the lock file, Milvus Lite), so
rather than chase each of them with a umask (process-wide: it would change what an application
embedding the library writes elsewhere), :func:`make_private` tightens what is in the folder at the
moments that follow writing: when a library is created or opened, when the write lock is released
and when it is closed. SQLite gives its ``-wal`` and ``-shm`` the database file's own mode.
Uploaded photos are many and are written 0600 from the start (:func:`write_private`), so the walk
does not descend into ``uploads/``'s files.
"""

from __future__ import annotations

import logging
import os
import stat
import threading
from pathlib import Path

log = logging.getLogger(__name__)

PRIVATE_DIR = 0o700
PRIVATE_FILE = 0o600
UNWALKED = frozenset({"uploads"})  # folders whose files are written private already (many files)


def private_dir(path: Path) -> Path:
    """Create ``path`` (and missing parents, with the usual modes) and make it 0700."""
    path.mkdir(parents=True, exist_ok=True)
    _tighten(path, PRIVATE_DIR)
    return path


def make_private(folder: Path) -> None:
    """Make ``folder`` 0700, its sub-folders 0700 and its files 0600 (those of this user; links left alone)."""
    _tighten(folder, PRIVATE_DIR)
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return
    for entry in entries:
        try:
            if entry.is_symlink():
                continue
            if entry.is_dir():
                _tighten(Path(entry.path), PRIVATE_DIR)
                if entry.name in UNWALKED:
                    for child in os.scandir(entry.path):
                        if child.is_dir(follow_symlinks=False):
                            _tighten(Path(child.path), PRIVATE_DIR)
                else:
                    make_private(Path(entry.path))
            elif entry.is_file():
                _tighten(Path(entry.path), PRIVATE_FILE)
        except OSError:  # removed meanwhile (a temporary file renamed): nothing to protect
            continue


def write_private(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically (temporary file, fsync, rename), the file 0600 from its creation."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, PRIVATE_FILE)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)


def _tighten(path: Path, mode: int) -> None:
    try:
        st = os.lstat(path)
    except OSError:
        return
    if st.st_uid != os.getuid() or stat.S_IMODE(st.st_mode) == mode:
        return
    try:
        os.chmod(path, mode)
    except OSError as exc:
        log.warning("could not make %s private (%s)", path, exc)
