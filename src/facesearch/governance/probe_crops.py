"""The probe's face crops of a case's searches, kept for its report (issue 13: "probe fingerprint and face crop").

A case report shows what was searched for: the probe's SHA-256 (in the audit entry) and a small crop of
each probe face, the same kind of thumbnail the catalog keeps for indexed faces (models/align.py
``thumbnail_jpeg``: the face with a margin, at most 112 px). Never the whole probe photo and never an
embedding: the crop is what a reviewer needs to see, and no more of the probe than that is kept.

Crops are kept only for searches bound to a case that exists in the catalog. Ad-hoc case ids (a
library without cases) have no report, so keeping their probes' faces would only keep faces. A probe
face that is an opted-out person's is not kept either (the caller leaves it out).

Where: ``<library>/cases/<case folder>/probes/<sha256>-<face>.jpg``, the folders 0700 and the files
0600 (store/private_files.py), beside the rest of the library's private data. ``<case folder>`` is
the case's key (governance/cases.py ``case_key``) when it is a plain file name, else a hash of it.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable
from pathlib import Path

from sqlalchemy import select

from facesearch.governance.audit import AuditLog
from facesearch.governance.cases import CaseError, case_key, get_case
from facesearch.governance.events import ProbeViewEvent, record
from facesearch.governance.types import User
from facesearch.store.catalog import Catalog
from facesearch.store.governance_schema import CaseRow
from facesearch.store.private_files import private_dir, write_private

CASES_DIR = "cases"
PROBES_DIR = "probes"
_PLAIN = re.compile(r"[a-z0-9][a-z0-9._-]{0,99}")
_SHA256 = re.compile(r"[0-9a-f]{64}")


def case_folder(folder: Path, case_id: str) -> Path:
    """The case's own folder in the library: its key when that is a plain file name, else ``_`` + a hash
    (a key with a slash, a dot-dot or non-ASCII letters never becomes a path; ``_`` keeps the two apart)."""
    key = case_key(case_id)
    name = key if _PLAIN.fullmatch(key) and ".." not in key else "_" + hashlib.sha256(key.encode()).hexdigest()[:32]
    return folder / CASES_DIR / name


def crop_path(folder: Path, case_id: str, sha256: str, face: int) -> Path:
    """Where the crop of probe face ``face`` of the photo ``sha256`` is kept for ``case_id``."""
    if not _SHA256.fullmatch(sha256) or not isinstance(face, int) or face < 0:
        raise ValueError(f"not a probe: {sha256!r}, face {face!r}")
    return case_folder(folder, case_id) / PROBES_DIR / f"{sha256}-{face}.jpg"


def is_case(catalog: Catalog, case_id: str) -> bool:
    """Whether ``case_id`` names a case of the catalog (not an ad-hoc id of a library without cases)."""
    with catalog.session() as s:
        return s.scalar(select(CaseRow.id).where(CaseRow.case_key == case_key(case_id))) is not None


def keep_probe_crops(
    catalog: Catalog, folder: Path, case_id: str, sha256: str, crops: Iterable[tuple[int, bytes]]
) -> list[Path]:
    """Keep each ``(face number, thumbnail JPEG)`` of a probe searched for ``case_id``; nothing for ad-hoc ids."""
    if not is_case(catalog, case_id):
        return []
    kept = []
    for face, jpeg in crops:
        if not jpeg:  # nothing to keep (never an empty file a report would show as an image)
            continue
        path = crop_path(folder, case_id, sha256, face)
        for level in (folder / CASES_DIR, path.parent.parent, path.parent):
            private_dir(level)
        if not path.is_file():
            write_private(path, jpeg)
        kept.append(path)
    return kept


def read_probe_crop(folder: Path, case_id: str, sha256: str, face: int) -> bytes | None:
    """The kept crop, or None (a search made before crops were kept, or an opted-out person's face)."""
    try:
        return crop_path(folder, case_id, sha256, face).read_bytes()
    except (OSError, ValueError):
        return None


def view_probe_crop(
    catalog: Catalog, folder: Path, case_id: str, search_seq: int, face: int, user: str | User | None
) -> bytes:
    """Issue 13: the kept crop of probe face ``face`` of the case's search ``search_seq``, for a user who may
    see the case (``forbidden`` otherwise; ``no_case``). ``not_found`` when that search is not the case's or
    no crop was kept (before crops were kept, an opted-out person's face, a face-id probe's missing
    thumbnail). Each look is audited (``probe_view``), as a face view is: it shows a face."""
    case = get_case(catalog, case_id, user)
    found = AuditLog(catalog).entries(action="search", case_id=case.case_id, after=search_seq - 1, limit=1)
    digest = found[0].details.get("probe_sha256") if found and found[0].seq == search_seq else None
    crop = read_probe_crop(folder, case.case_id, digest, face) if digest else None
    if crop is None:
        raise CaseError(f"no probe crop {face} is kept for search {search_seq} of case {case.case_id!r}", "not_found")
    record(catalog, ProbeViewEvent(case.case_id, search_seq, face, digest), user)
    return crop
