"""Manifests sent to the API: CSV or JSON Lines rows naming photos by URL, checked before a job starts.

The CLI's manifests may name local files (``path``); one sent over the network may not: a path
would let an API client index any photo the server can read. Rows must have an http(s) ``url``;
``source_url``/``page_url`` and other columns are kept as the photo's metadata, as in the CLI.
URLs are fetched by the ingest workers with their usual guards (no private addresses, size, type
and time limits), and each one that fails becomes a rejected item of the job, with its code.
"""

from __future__ import annotations

import csv
import io
import itertools
import json
from typing import Any

from facesearch.api.errors import ApiError
from facesearch.ingest.sources import PAGE_COLUMNS, ManifestError, jsonl_rows
from facesearch.media.urls import strip_credentials, web_link

MAX_ROWS = 100_000
MAX_URL = 4000


class ManifestRefused(ApiError):
    code = "bad_manifest"


def parse_manifest(data: bytes, fmt: str | None = None) -> list[dict[str, Any]]:
    """The rows of a CSV or JSONL manifest (``fmt`` None: JSONL if it starts with ``{``), checked."""
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ManifestRefused("the manifest is not UTF-8 text") from exc
    if fmt is None:
        fmt = "jsonl" if text.lstrip().startswith("{") else "csv"
    rows = _jsonl(text) if fmt == "jsonl" else _csv(text)
    if not rows:
        raise ManifestRefused("the manifest has no rows")
    if len(rows) > MAX_ROWS:
        raise ManifestRefused(f"the manifest has more than {MAX_ROWS} rows: split it")
    return [_checked(row, number) for number, row in enumerate(rows, start=1)]


def to_jsonl(rows: list[dict[str, Any]]) -> str:
    return "".join(json.dumps(row, ensure_ascii=False, sort_keys=True) + "\n" for row in rows)


def _jsonl(text: str) -> list[dict[str, Any]]:
    try:
        return list(itertools.islice(jsonl_rows(text.splitlines(), "manifest"), MAX_ROWS + 1))
    except ManifestError as exc:
        raise ManifestRefused(str(exc)) from exc


def _csv(text: str) -> list[dict[str, Any]]:
    try:
        reader = csv.DictReader(io.StringIO(text, newline=""))
        rows = []
        for row in reader:
            rows.append({k: v for k, v in row.items() if k is not None})
            if len(rows) > MAX_ROWS:
                break
        return rows
    except csv.Error as exc:
        raise ManifestRefused(f"the manifest is not valid CSV: {exc}") from exc


def _checked(row: dict[str, Any], number: int) -> dict[str, Any]:
    row = {str(k).strip(): v for k, v in row.items()}
    if row.get("path") not in (None, ""):
        raise ApiError(
            f"manifest row {number} names a local path: manifests sent to the API may only name URLs",
            code="path_not_allowed",
        )
    row.pop("path", None)
    url = row.get("url")
    if not isinstance(url, str) or not url.strip():
        raise ManifestRefused(f"manifest row {number} has no 'url'")
    url = url.strip()
    if len(url) > MAX_URL or not url.lower().startswith(("http://", "https://")):
        raise ManifestRefused(f"manifest row {number}: 'url' must be an http(s) URL of at most {MAX_URL} characters")
    row["url"] = strip_credentials(url)  # never stored (job manifest, catalog), fetched with, or shown
    for column in PAGE_COLUMNS:
        if row.get(column) not in (None, ""):
            page = web_link(str(row[column]))
            if page is None:
                row.pop(column)  # a javascript: or other non-web "page" is not kept: it would become a link
            else:
                row[column] = page
    return row
