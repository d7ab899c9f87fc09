"""A case's report, to hand to a supervisor or a court, and its check against the audit log (issue 13).

:func:`build_report` gathers the facts: the case record; each search of the case (from its audit
entry: who, when, the probe's SHA-256, the operating point and the calibration's source) with the
crop kept of each probe face (governance/probe_crops.py); each candidate a decision was made about
(governance/decisions.py ``case_decisions``), with its crop, source and photo date from the catalog
and its fmr and label from the search entry that showed it; the audit sequence numbers of the case's
entries and the chain head when the report was made. A candidate whose face was removed or erased
since is still listed from the log, its crop and source ``removed`` (an erased photo's path is never
kept). The facts come from the log where the log holds them, so ``audit export`` alone rebuilds the
candidates, their fmr, labels and decisions.

:func:`export_report` renders them (JSON, or a printable self-contained HTML page: governance/report_html.py)
and, once the bytes are final, appends a ``case_report`` entry with their SHA-256, size and the head the
report states. A report holds biometric crops: only a user who may see the case (its users, admins,
auditors) may make one, and every one is audited. :func:`verify_report` takes a report's bytes, finds
the entry holding their SHA-256 and checks the whole chain, including that the head the report states
is still in it: one byte changed, or a hash never logged, and it fails.
"""

from __future__ import annotations

import base64
import hashlib
import json
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from facesearch.governance.audit import AuditEntry, AuditLog, utc_iso
from facesearch.governance.cases import Case, get_case
from facesearch.governance.decisions import case_decisions
from facesearch.governance.events import ReportEvent, record
from facesearch.governance.probe_crops import read_probe_crop
from facesearch.governance.types import User, actor_name
from facesearch.store.catalog import Catalog
from facesearch.store.schema import FaceRow

FORMATS = ("json", "html")
REMOVED = "removed"
REPORT_KIND = "facesearch case report"
MEDIA_TYPES = {"json": "application/json", "html": "text/html; charset=utf-8"}


@dataclass(frozen=True)
class ExportedReport:
    """A report's final bytes and the audit entry that holds their SHA-256."""

    case_id: str
    format: str
    data: bytes
    sha256: str
    audit_seq: int


def _iso(moment: datetime | None) -> str | None:
    return utc_iso(moment) if moment is not None else None


def _data_uri(jpeg: bytes | None) -> str | None:
    return "data:image/jpeg;base64," + base64.b64encode(jpeg).decode("ascii") if jpeg else None


def _case_record(case: Case) -> dict[str, Any]:
    return {
        "case_id": case.case_id,
        "purpose": case.purpose,
        "legal_basis": case.legal_basis,
        "status": case.status,
        "users": list(case.users),
        "created_at": _iso(case.created_at),
        "created_by": case.created_by,
        "closed_at": _iso(case.closed_at),
        "closed_by": case.closed_by,
    }


def _search(entry: AuditEntry, folder: Path, case_id: str) -> dict[str, Any]:
    """One search as its audit entry states it, with the crop kept of each probe face."""
    d = entry.details
    digest = d.get("probe_sha256")
    faces = []
    for face in d.get("faces", []):
        crop = read_probe_crop(folder, case_id, digest, face.get("face")) if digest else None
        faces.append(
            {
                "face": face.get("face"),
                "box": face.get("box"),
                "crop": _data_uri(crop),
                "shown": face.get("shown", []),
                "fmr": face.get("fmr"),
                "labels": face.get("labels"),
            }
        )
    return {
        "audit_seq": entry.seq,
        "at": entry.at,
        "actor": entry.actor,
        "purpose": entry.purpose,
        "probe_sha256": digest,
        "probes_sha256": d.get("probes_sha256") or ([digest] if digest else []),
        "operating_point": {
            "score": d.get("score"),
            "threshold": d.get("threshold"),
            "max_fmr": d.get("max_fmr"),
            "max_fpir": d.get("max_fpir"),
            "gallery_size": d.get("gallery_size"),
            "model": d.get("model"),
            "calibration": d.get("calibration"),
            "top_k": d.get("top_k"),
            "collection": d.get("collection"),
        },
        "probe_faces": faces,
    }


def shown_by(search: dict[str, Any] | None, face_id: int) -> tuple[float | None, str | None]:
    """The fmr and label a search gave ``face_id`` (the first probe face that showed it)."""
    for face in (search or {}).get("probe_faces", []):
        if face_id in face["shown"]:
            at = face["shown"].index(face_id)
            fmr, labels = face.get("fmr"), face.get("labels")
            return (fmr[at] if fmr else None), (labels[at] if labels else None)
    return None, None


def _candidate(item: dict[str, Any], search: dict[str, Any] | None, row: FaceRow | None) -> dict[str, Any]:
    fmr, label = shown_by(search, item["face_id"])
    image = row.image if row is not None else None
    return {
        "face_id": item["face_id"],
        "search_seq": item["search_seq"],
        "status": item["status"],
        "fmr": fmr,
        "label": label,
        "crop": _data_uri(row.thumbnail) if row is not None else REMOVED,
        "source": image.source if image is not None else REMOVED,
        "page_url": image.page_url if image is not None else None,
        "collection": image.collection.name if image is not None else None,
        "photo_date": _iso(image.exif_time) if image is not None else None,
        "decisions": [
            {
                "id": d["id"],
                "stage": d["stage"],
                "first_id": d["first_id"],
                "decision": d["decision"],
                "note": d["note"],
                "reviewer": d["reviewer"],
                "at": _iso(d["at"]),
                "audit_seq": d["audit_seq"],
            }
            for d in item["decisions"]
        ],
    }


def build_report(catalog: Catalog, folder: Path, case_id: str, user: str | User | None = None) -> dict[str, Any]:
    """The facts of a case's report (``forbidden`` unless ``user`` may see the case; closed cases too).

    A confirmed lead awaiting its second review keeps its first decision hidden from a user who could
    still review it blind (governance/decisions.py), in the report as on the case page.
    """
    case = get_case(catalog, case_id, user)
    log = AuditLog(catalog)
    entries = log.entries(case_id=case.case_id, limit=None)
    searches = [_search(e, folder, case.case_id) for e in entries if e.action == "search"]
    by_seq = {s["audit_seq"]: s for s in searches}
    decided = case_decisions(catalog, case.case_id, user)
    rows = catalog.faces_by_ids(item["face_id"] for item in decided)
    candidates = [_candidate(i, by_seq.get(i["search_seq"]), rows.get(i["face_id"])) for i in decided]
    head = log.head()
    return {
        "report": REPORT_KIND,
        "version": 1,
        "generated_at": utc_iso(),
        "generated_by": actor_name(user),
        "case": _case_record(case),
        "searches": searches,
        "candidates": candidates,
        "audit": {
            "entries": [{"seq": e.seq, "action": e.action, "at": e.at, "actor": e.actor} for e in entries],
            "chain_head": {"seq": head[0], "hash": head[1]} if head else None,
        },
    }


def render(facts: dict[str, Any], fmt: str) -> bytes:
    """The report's bytes: canonical, indented JSON, or the printable HTML page."""
    if fmt == "json":
        return (json.dumps(facts, indent=2, sort_keys=True, ensure_ascii=False) + "\n").encode("utf-8")
    if fmt == "html":
        from facesearch.governance.report_html import render_html

        return render_html(facts).encode("utf-8")
    raise ValueError(f"unknown report format {fmt!r}; one of: {', '.join(FORMATS)}")


def export_report(
    catalog: Catalog, folder: Path, case_id: str, fmt: str, actor: str | User | None = None
) -> ExportedReport:
    """Build and render the report, then record its SHA-256 (``case_report``) once the bytes are final."""
    if fmt not in FORMATS:
        from facesearch.errors import FaceSearchError

        raise FaceSearchError(f"unknown report format {fmt!r}; one of: {', '.join(FORMATS)}", code="bad_request")
    facts = build_report(catalog, folder, case_id, actor)
    data = render(facts, fmt)
    digest = hashlib.sha256(data).hexdigest()
    head = facts["audit"]["chain_head"] or {"seq": None, "hash": None}
    case = facts["case"]["case_id"]
    entry = record(catalog, ReportEvent(case, fmt, digest, len(data), head["seq"], head["hash"]), actor)
    return ExportedReport(case, fmt, data, digest, entry.seq)


def verify_report(catalog: Catalog, data: bytes) -> dict[str, Any]:
    """Whether ``data`` is a report this library's log vouches for: an entry holds its SHA-256 and the chain
    verifies to the head, the head the report states still in it. ``valid`` False says why (``problem``)."""
    digest = hashlib.sha256(data).hexdigest()
    log = AuditLog(catalog)
    entry = next((e for e in log.entries(action="case_report", limit=None) if e.details.get("sha256") == digest), None)
    verdict: dict[str, Any] = {"valid": False, "sha256": digest, "size": len(data)}
    if entry is None:
        problem = "no case_report entry of the audit log holds this file's SHA-256: changed, or never exported here"
        return {**verdict, "problem": problem}
    d = entry.details
    stated = (d["head_seq"], d["head_hash"]) if d.get("head_seq") is not None else None
    chain = log.verify(anchor=stated)
    return {
        **verdict,
        "valid": chain.ok,
        "case_id": entry.case_id,
        "format": d.get("format"),
        "exported_by": entry.actor,
        "exported_at": entry.at,
        "audit_seq": entry.seq,
        "chain_head": {"seq": d.get("head_seq"), "hash": d.get("head_hash")},
        "chain": chain.to_dict(),
        "problem": chain.problem,
    }
