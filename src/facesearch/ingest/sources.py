"""What to ingest: expand files, folders (recursively) and manifests into a stream of sources.

Manifests are CSV (header row) or JSON Lines. Each row names a ``path`` or a ``url``; the optional
``source_url`` (or ``page_url``) is the web page the photo came from; every other column is kept as
free metadata. Relative paths in a manifest are relative to the manifest's folder.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from facesearch.errors import FaceSearchError
from facesearch.media.urls import strip_credentials, web_link

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp", ".gif", ".bmp", ".tif", ".tiff"}
MANIFEST_SUFFIXES = {".csv", ".jsonl", ".ndjson"}
PAGE_COLUMNS = ("source_url", "page_url")
MAX_DEPTH = 16  # nesting of a manifest row's values: metadata is flat; a deeply nested row is an attack


@dataclass(frozen=True)
class Source:
    """One photo to ingest: a local path or a URL, with where it came from and free metadata."""

    location: str
    kind: str  # "file" or "url"
    page_url: str | None = None
    meta: dict = field(default_factory=dict)


class ManifestError(FaceSearchError):
    code = "bad_manifest"


def is_url(text: str) -> bool:
    return text.startswith(("http://", "https://"))


def check_inputs(inputs: Iterable[str | Path]) -> list[str | Path]:
    """The inputs as a list, once every local file, folder or manifest named among them is known to exist.

    A missing one is an error that indexes nothing (issue 12 §7: ``index photos/nope`` exited 0 and
    created a library): the operator typed a path, and a typo must say so rather than record a
    rejection and succeed. Files that a folder or a manifest leads to are still attempted one by one
    (a missing one is a recorded ``not_found`` rejection), as are URLs.
    """
    items = list(inputs)
    missing = [str(item) for item in items if not is_url(str(item)) and not Path(str(item)).exists()]
    if missing:
        named = ", ".join(missing[:10]) + (f" and {len(missing) - 10} more" if len(missing) > 10 else "")
        raise FaceSearchError(f"no such file or folder: {named} (nothing was indexed)", code="not_found")
    return items


def expand(inputs: Iterable[str | Path]) -> Iterator[Source]:
    """Yield every source named by the inputs, in a stable order."""
    for item in inputs:
        text = str(item)
        if is_url(text):
            yield Source(location=strip_credentials(text), kind="url")
            continue
        path = Path(text)
        if path.is_dir():
            for child in sorted(p for p in path.rglob("*") if p.is_file()):
                if child.suffix.lower() in IMAGE_SUFFIXES:
                    yield Source(location=str(child.resolve()), kind="file")
        elif path.suffix.lower() in MANIFEST_SUFFIXES:
            yield from read_manifest(path)
        else:
            # Named explicitly: always attempted, so a bad file gets a recorded reason (a missing one
            # named by the operator is refused before, by check_inputs).
            yield Source(location=str(path.resolve()), kind="file")


def read_manifest(path: Path) -> Iterator[Source]:
    try:
        handle = path.open(newline="", encoding="utf-8")
    except OSError as exc:
        raise ManifestError(f"cannot open manifest {path}: {exc}") from exc
    with handle:
        if path.suffix.lower() == ".csv":
            rows: Iterable[dict] = csv.DictReader(handle)
        else:
            rows = jsonl_rows(handle, str(path))
        number = 0
        try:
            for number, row in enumerate(rows, start=1):
                yield _row_to_source(row, path, number)
        except UnicodeDecodeError as exc:  # a clear error, never a traceback (issue 12 §5)
            raise ManifestError(f"manifest {path} is not UTF-8 text (at row {number + 1})") from exc
        except csv.Error as exc:
            raise ManifestError(f"manifest {path} row {number + 1}: not valid CSV ({exc})") from exc


def jsonl_rows(handle: Iterable[str], where: str) -> Iterator[dict]:
    """The JSON objects of a JSON Lines manifest (blank lines skipped); ManifestError names the line."""
    for number, line in enumerate(handle, start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except ValueError as exc:
            raise ManifestError(f"{where} line {number}: not valid JSON ({exc})") from exc
        except RecursionError as exc:  # Python's parser recurses per level: a 4 KB line can exhaust it
            raise ManifestError(f"{where} line {number}: nested deeper than {MAX_DEPTH} levels") from exc
        if not isinstance(row, dict):
            raise ManifestError(f"{where} line {number}: expected a JSON object")
        if _depth(row) > MAX_DEPTH:
            # Parsed, but it would exhaust the stack later (pickled to a worker, stored as JSON metadata).
            raise ManifestError(f"{where} line {number}: nested deeper than {MAX_DEPTH} levels")
        yield row


def _depth(value: object) -> int:
    """How deeply lists and objects nest in ``value`` (a scalar is 0), without recursing."""
    deepest = 0
    stack: list[tuple[object, int]] = [(value, 0)]
    while stack:
        item, level = stack.pop()
        children = item.values() if isinstance(item, dict) else item if isinstance(item, list) else None
        if children is None:
            continue
        deepest = max(deepest, level + 1)
        if deepest > MAX_DEPTH:
            return deepest
        stack.extend((child, level + 1) for child in children)
    return deepest


def _row_to_source(row: dict, manifest: Path, number: int) -> Source:
    row = {str(k).strip(): v for k, v in row.items() if k is not None}
    url = (row.pop("url", None) or "").strip() if isinstance(row.get("url", ""), str) else ""
    location = (row.pop("path", None) or "").strip() if isinstance(row.get("path", ""), str) else ""
    page = None
    for column in PAGE_COLUMNS:
        value = row.pop(column, None)
        if value and page is None:
            page = web_link(str(value))  # only an http(s) page, without credentials, is kept (issue 12 §6)
    meta = {k: v for k, v in row.items() if v not in (None, "")}
    if url:
        return Source(location=strip_credentials(url), kind="url", page_url=page, meta=meta)
    if location:
        path = Path(location)
        if not path.is_absolute():
            path = manifest.parent / path
        return Source(location=str(path.resolve()), kind="file", page_url=page, meta=meta)
    raise ManifestError(f"{manifest} row {number}: needs a 'path' or a 'url'")
