"""``facesearch case report`` and ``facesearch case verify-report`` (issue 13), registered on ``case_app``.

A report holds biometric crops: it is written 0600 and never over an existing file unless ``--force``;
making one is audited (a ``case_report`` entry holding its SHA-256). ``verify-report`` tells whether a
file is a report this library's log vouches for: exit 0 valid, 1 not (changed, never logged, or the
chain broken), 2 when the file cannot be read. The work is governance/case_report.py's.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from facesearch.cli.support import JsonOpt, LibraryOpt, console, err, fail, json_out, open_library
from facesearch.errors import FaceSearchError

FormatOpt = Annotated[str, typer.Option("--format", "-f", help="html (printable, self-contained) or json")]
OutputOpt = Annotated[Path | None, typer.Option("--output", "-o", help="Write to FILE (default: standard output)")]
ForceOpt = Annotated[bool, typer.Option("--force", help="Replace an existing FILE")]
MAX_REPORT_BYTES = 512 * 1024 * 1024


def _write_new(path: Path, data: bytes, force: bool) -> None:
    """Write the report 0600: a new file (refused if one exists, even one made meanwhile), or, with
    ``force``, atomically in place of the old one."""
    from facesearch.store.private_files import write_private

    if force:
        write_private(path, data)
        return
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)


def case_report(
    case_id: Annotated[str, typer.Argument(help="Case id")],
    fmt: FormatOpt = "html",
    output: OutputOpt = None,
    force: ForceOpt = False,
    library: LibraryOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """The case's report: its record, searches (probe crop and operating point), reviewed candidates and
    decisions, and the audit chain head. Its SHA-256 goes to the audit log; check it with verify-report."""
    from facesearch.governance.case_report import FORMATS, export_report

    try:
        if fmt not in FORMATS:
            raise FaceSearchError(f"--format must be one of: {', '.join(FORMATS)}", code="bad_request")
        if output is not None and output.exists() and not force:
            raise FaceSearchError(f"{output} exists: nothing written (pass --force to replace it)", code="file_exists")
        with open_library(library) as lib:
            report = export_report(lib.catalog, lib.folder, case_id, fmt)
        if output is not None:
            try:
                _write_new(output, report.data, force)
            except FileExistsError as exc:
                raise FaceSearchError(f"{output} appeared meanwhile: nothing written", code="file_exists") from exc
            except OSError as exc:
                raise FaceSearchError(f"cannot write {output}: {exc.strerror}", code="unwritable") from exc
    except FaceSearchError as exc:
        fail(exc, as_json)
        return
    facts = {"case_id": report.case_id, "format": fmt, "sha256": report.sha256, "size": len(report.data),
             "audit_seq": report.audit_seq, "file": str(output) if output is not None else None}  # fmt: skip
    if output is None:
        typer.echo(report.data, nl=False)  # the exact bytes whose SHA-256 was logged
        err.print(f"case report {report.sha256} (audit entry {report.audit_seq})")
    elif not json_out(as_json, facts):
        console.print(
            f"case report of {escape(report.case_id)} written to {escape(str(output))} ({len(report.data)} bytes, "
            f"SHA-256 {report.sha256}, audit entry {report.audit_seq})"
        )


def case_verify_report(
    file: Annotated[Path, typer.Argument(help="A report made by facesearch case report")],
    library: LibraryOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Check a report against the audit log: an entry holds its SHA-256 and the chain verifies up to the head
    it states. Exit 0 valid, 1 not valid (one byte changed, never logged, chain broken), 2 unreadable file."""
    from facesearch.governance.case_report import verify_report

    try:
        try:
            if not file.is_file():
                raise FaceSearchError(f"{file} is not a file", code="not_found")
            if file.stat().st_size > MAX_REPORT_BYTES:
                raise FaceSearchError(f"{file} is larger than any report ({MAX_REPORT_BYTES} bytes)", code="too_large")
            data = file.read_bytes()
        except OSError as exc:
            raise FaceSearchError(f"cannot read {file}: {exc.strerror}", code="unreadable") from exc
        with open_library(library) as lib:
            verdict = verify_report(lib.catalog, data)
    except FaceSearchError as exc:
        fail(exc, as_json)
        return
    if not json_out(as_json, verdict):
        if verdict["valid"]:
            console.print(
                f"valid: case {escape(verdict['case_id'])}, exported by {escape(verdict['exported_by'])} at "
                f"{verdict['exported_at']}, audit seq {verdict['audit_seq']}",
                soft_wrap=True,  # one line, for scripts
            )
        else:
            problem = escape(verdict["problem"] or "unknown")
            err.print(f"[bold red]not valid[/]: {problem} (SHA-256 {verdict['sha256']})")
    if not verdict["valid"]:
        raise typer.Exit(code=1)
