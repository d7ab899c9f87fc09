"""A case report as one printable HTML file (issue 13), the twin of its JSON: the same facts.

Self-contained, so that it reads the same on a machine with no network, in ten years, and in a court:
inline CSS (with a print stylesheet), images as ``data:`` URIs, no scripts, no links to anything
outside the file (a source URL is shown as text, never as a link), nothing fetched when it opens. Every
piece of text from the catalog or the log is escaped (a note or a file name cannot inject markup).
"""

from __future__ import annotations

from html import escape
from typing import Any

CSS = """
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",sans-serif;color:#111;margin:2rem auto;max-width:60rem;
padding:0 1rem}
h1{font-size:1.6rem;margin:0 0 .3rem}h2{font-size:1.2rem;margin:2rem 0 .5rem;border-bottom:2px solid #333}
h3{font-size:1rem;margin:1.2rem 0 .3rem}
table{border-collapse:collapse;width:100%;margin:.3rem 0}th,td{border:1px solid #bbb;padding:.25rem .45rem;
text-align:left;vertical-align:top}th{background:#eee;width:14rem}
.mono{font-family:ui-monospace,Menlo,Consolas,monospace;font-size:.85em;word-break:break-all}
.crop{width:112px;height:auto;border:1px solid #888;display:block}
.card{border:1px solid #999;padding:.6rem;margin:.8rem 0;display:grid;grid-template-columns:120px 1fr;gap:.8rem;
break-inside:avoid}
.status{font-weight:bold}.removed{color:#a00;font-style:italic}.muted{color:#555}
@media print{body{margin:0;max-width:none;font-size:11pt}h2{break-after:avoid}.card,tr{break-inside:avoid}
th{background:#eee !important;-webkit-print-color-adjust:exact;print-color-adjust:exact}}
@media (max-width:480px){.card{grid-template-columns:1fr}th{width:auto}}
"""


def _t(value: Any) -> str:
    """Escaped text for any value (None as a dash)."""
    return "–" if value is None else escape(str(value), quote=True)


def _rows(pairs: list[tuple[str, Any]], mono: frozenset[str] = frozenset()) -> str:
    cells = "".join(f"<tr><th>{_t(k)}</th><td{' class=mono' if k in mono else ''}>{_t(v)}</td></tr>" for k, v in pairs)
    return f"<table>{cells}</table>"


def _img(uri: Any, alt: str) -> str:
    if isinstance(uri, str) and uri.startswith("data:image/jpeg;base64,"):
        return f'<img class="crop" src="{escape(uri, quote=True)}" alt="{_t(alt)}">'
    what = "removed from the library" if uri == "removed" else "not kept"
    return f'<p class="removed">crop {what}</p>'


def _search(s: dict[str, Any]) -> str:
    op = s["operating_point"]
    out = [f"<h3>Search, audit entry {_t(s['audit_seq'])}</h3>"]
    out.append(
        _rows(
            [
                ("when", s["at"]),
                ("who", s["actor"]),
                ("purpose", s["purpose"]),
                ("probe SHA-256", ", ".join(s["probes_sha256"])),
                ("score", op["score"]),
                ("threshold", op["threshold"]),
                ("max FMR", op["max_fmr"]),
                ("max FPIR", op["max_fpir"]),
                ("gallery size", op["gallery_size"]),
                ("model", op["model"]),
                ("calibration", op["calibration"]),
                ("top k", op["top_k"]),
                ("collection", op["collection"] or "all"),
            ],
            frozenset({"probe SHA-256"}),
        )
    )
    for face in s["probe_faces"]:
        shown = face["shown"]
        fmrs, labels = face.get("fmr") or [None] * len(shown), face.get("labels") or [None] * len(shown)
        each = zip(shown, fmrs, labels, strict=False)
        listed = "; ".join(f"face {_t(i)} ({_t(lb)}, fmr {_t(f)})" for i, f, lb in each)
        out.append(
            f'<div class="card"><div>{_img(face["crop"], "probe face")}</div><div><b>probe face {_t(face["face"])}</b>'
            f" box {_t(face['box'])}<br><span class=muted>shown:</span> {listed or 'nobody'}</div></div>"
        )
    return "".join(out)


def _candidate(c: dict[str, Any]) -> str:
    facts = _rows(
        [
            ("status", c["status"]),
            ("fmr", c["fmr"]),
            ("label", c["label"]),
            ("shown by search", c["search_seq"]),
            ("source", c["source"]),
            ("page", c["page_url"]),
            ("collection", c["collection"]),
            ("photo date", c["photo_date"]),
        ],
        frozenset({"source", "page"}),
    )
    decisions = "".join(
        f"<tr><td>{_t(d['stage'])}</td><td>{_t(d['decision'] or 'hidden until the second review')}</td>"
        f"<td>{_t(d['reviewer'])}</td><td>{_t(d['at'])}</td><td>{_t(d['audit_seq'])}</td><td>{_t(d['note'])}</td></tr>"
        for d in c["decisions"]
    )
    head = "<tr><th>stage</th><th>decision</th><th>who</th><th>when</th><th>audit entry</th><th>note</th></tr>"
    return (
        f'<div class="card"><div>{_img(c["crop"], "candidate face")}</div><div>'
        f'<b>face {_t(c["face_id"])}</b>: <span class="status">{_t(c["status"])}</span>{facts}'
        f"<table>{head}{decisions}</table></div></div>"
    )


def render_html(facts: dict[str, Any]) -> str:
    """The whole page."""
    case = facts["case"]
    head = facts["audit"]["chain_head"] or {}
    record = _rows(
        [
            ("case id", case["case_id"]),
            ("purpose", case["purpose"]),
            ("legal basis", case["legal_basis"]),
            ("status", case["status"]),
            ("users", ", ".join(case["users"]) or None),
            ("created", f"{case['created_at']} by {case['created_by']}"),
            ("closed", f"{case['closed_at']} by {case['closed_by']}" if case["closed_at"] else None),
        ]
    )
    export = _rows(
        [
            ("made at", facts["generated_at"]),
            ("made by", facts["generated_by"]),
            ("audit chain head", f"{head.get('seq')}:{head.get('hash')}"),
            ("check", "facesearch case verify-report FILE (this file, unchanged)"),
        ],
        frozenset({"audit chain head"}),
    )
    entries = "".join(
        f"<tr><td>{_t(e['seq'])}</td><td>{_t(e['action'])}</td><td>{_t(e['at'])}</td><td>{_t(e['actor'])}</td></tr>"
        for e in facts["audit"]["entries"]
    )
    log = f"<table><tr><th>audit entry</th><th>action</th><th>when</th><th>who</th></tr>{entries}</table>"
    searches = "".join(_search(s) for s in facts["searches"]) or "<p>no searches</p>"
    candidates = "".join(_candidate(c) for c in facts["candidates"]) or "<p>no candidate was decided about</p>"
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width,initial-scale=1">'
        f"<title>Case report {_t(case['case_id'])}</title><style>{CSS}</style></head><body>"
        f"<h1>Case report: {_t(case['case_id'])}</h1>"
        "<p class=muted>A candidate is a lead for people to review, never an identification on its own.</p>"
        f"<h2>The case</h2>{record}<h2>This report</h2>{export}"
        f"<h2>Searches ({len(facts['searches'])})</h2>{searches}"
        f"<h2>Reviewed candidates ({len(facts['candidates'])})</h2>{candidates}"
        f"<h2>The case's audit entries</h2>{log}"
        "</body></html>\n"
    )
