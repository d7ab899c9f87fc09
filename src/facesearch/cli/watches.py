"""``facesearch watch add|list|remove`` and ``facesearch alerts``: watchlists from the command line (issue 13).

Only the command-line layer: the work is governance/watches.py's (the library's ``watches``), imported
inside each command so that ``--help`` and other commands do not pay for it. Commands run as the local
operator (``cli:<user>`` in the audit log), who acts as the library's admin and sees every case's alerts.

Removing a watch stops it for good (a new one can be added), so ``watch remove`` shows the watch it
will stop, asks on a terminal (or takes ``--yes``) and has ``--dry-run``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from facesearch.cli.confirm import DryRunOpt, go_ahead, require_files
from facesearch.cli.support import JsonOpt, LibraryOpt, console, fail, json_out, open_library
from facesearch.errors import FaceSearchError

watch_app = typer.Typer(
    rich_markup_mode=None,
    help="Watchlists: a case watches for a person; later ingests of that person raise alerts.",
    no_args_is_help=True,
)
CaseOpt = Annotated[str | None, typer.Option("--case", help="Only this case's")]
RemoveYesOpt = Annotated[bool, typer.Option("--yes", "-y", help="Remove without asking (for scripts)")]


@watch_app.command("add")
def watch_add(
    photos: Annotated[list[Path], typer.Argument(help="Photos of the person (the largest face of each, fused)")],
    case: Annotated[str, typer.Option("--case", help="The open case that watches")],
    expires: Annotated[str, typer.Option("--expires", help="Last day of the watch, YYYY-MM-DD (at most a year)")],
    label: Annotated[str, typer.Option("--label", help="What the case calls the person")] = "",
    webhook: Annotated[str | None, typer.Option("--webhook", help="http(s) URL POSTed on each alert")] = None,
    library: LibraryOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Watch for a person: every later ingest that stores a face of them raises an alert. Audited."""
    try:
        require_files(*photos)
        with open_library(library) as lib:
            watch = lib.watches.add(case, [str(p) for p in photos], expires=expires, label=label, webhook=webhook)
    except FaceSearchError as exc:
        fail(exc, as_json)
        return
    if not json_out(as_json, watch.to_dict()):
        console.print(
            f"watch {watch.id} added to case [bold]{escape(watch.case_id)}[/] until {watch.expires_at:%Y-%m-%d %H:%M} "
            f"UTC (audit entry {watch.audit_seq})"
        )


@watch_app.command("list")
def watch_list(case: CaseOpt = None, library: LibraryOpt = None, as_json: JsonOpt = False) -> None:
    """The watches (active, expired, removed, of closed cases), oldest first."""
    try:
        with open_library(library) as lib:
            watches = lib.watches.list_watches(case_id=case)
    except FaceSearchError as exc:
        fail(exc, as_json)
        return
    if json_out(as_json, {"watches": [w.to_dict() for w in watches]}):
        return
    if not watches:
        console.print("no watches: add one with facesearch watch add --case C --expires YYYY-MM-DD PHOTO...")
        return
    table = Table("watch", "case", "label", "status", "until", "photos", "webhook", title="watches")
    for w in watches:
        table.add_row(str(w.id), escape(w.case_id), escape(w.label), w.status, f"{w.expires_at:%Y-%m-%d}",
                      str(len(w.photos_sha256)), "yes" if w.webhook_url else "-")  # fmt: skip
    console.print(table)


@watch_app.command("remove")
def watch_remove(
    watch_id: Annotated[int, typer.Argument(help="Watch id (facesearch watch list)")],
    yes: RemoveYesOpt = False,
    dry_run: DryRunOpt = False,
    library: LibraryOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Stop a watch (its record stays, with who removed it and when). Audited."""
    try:
        with open_library(library) as lib:
            watch = lib.watches.get(watch_id)
            if watch.removed_at is not None:
                raise FaceSearchError(f"watch {watch_id} was removed already", code="watch_removed")
            name = escape(watch.label) or "no label"
            shown = f"watch {watch.id} of case {escape(watch.case_id)} ({name}, {watch.status})"
            if not go_ahead(
                watch.to_dict(),
                would=f"would remove {shown}; dry run: nothing changed",
                doing=f"removing {shown}: no alerts from it afterwards",
                question="remove it?",
                done="removed",
                flag="remove the watch",
                yes=yes,
                dry_run=dry_run,
                as_json=as_json,
            ):
                return
            removed = lib.watches.remove(watch.id)
    except FaceSearchError as exc:
        fail(exc, as_json)
        return
    if not json_out(as_json, removed.to_dict()):
        console.print(f"watch {removed.id} removed")


def alerts(case: CaseOpt = None, library: LibraryOpt = None, as_json: JsonOpt = False) -> None:
    """The alerts of the watches, newest first: which new face matched which watched person."""
    try:
        with open_library(library) as lib:
            found = lib.watches.alerts(case_id=case)
    except FaceSearchError as exc:
        fail(exc, as_json)
        return
    if json_out(as_json, {"alerts": [a.to_dict() for a in found]}):
        return
    if not found:
        console.print("no alerts")
        return
    table = Table("alert", "case", "watch", "face", "image", "label", "fmr", "at", "webhook", title="alerts")
    for a in found:
        fmr = f"{a.fmr:.2g}" if a.fmr is not None else "-"
        watch = f"{a.watch_id} {escape(a.watch_label)}"
        hook = escape(a.webhook_status or "-")
        table.add_row(str(a.id), escape(a.case_id), watch, str(a.face_id), str(a.image_id), a.label, fmr,
                      f"{a.at:%Y-%m-%d %H:%M}", hook)  # fmt: skip
    console.print(table)
