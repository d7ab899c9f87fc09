"""Reading a local photo with the checks every reader needs (missing, a folder, too large, unreadable)."""

from __future__ import annotations

from pathlib import Path

from facesearch.errors import ImageRejected


def read_file(path: Path, max_bytes: int) -> bytes:
    try:
        size = path.stat().st_size
    except FileNotFoundError as exc:
        raise ImageRejected(f"{path}: no such file", code="not_found") from exc
    except OSError as exc:
        raise ImageRejected(f"{path}: cannot read ({exc.strerror})", code="unreadable") from exc
    if path.is_dir():
        raise ImageRejected(f"{path}: is a folder, not a photo", code="not_a_file")
    if size > max_bytes:
        raise ImageRejected(f"{path}: {size} bytes is over the {max_bytes}-byte limit", code="too_large")
    try:
        return path.read_bytes()
    except OSError as exc:
        raise ImageRejected(f"{path}: cannot read ({exc.strerror})", code="unreadable") from exc
