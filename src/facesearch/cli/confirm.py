"""What destructive commands share: show what will go, ask (or ``--yes``), ``--dry-run``, exit codes;
and the check that a path an operator typed exists before anything is opened or created.

Issue 12 §7: ``facesearch remove --image 117`` deleted someone else's photo without a word, and
``erase`` of a path that matched nothing printed a receipt. Now a command that deletes shows the
plan governance worked out (image id, path, faces, collection), asks on a terminal, and deletes
exactly that plan. Exit codes: 0 done (or shown, with ``--dry-run``), 1 nothing matched or the
operator said no, 2 an error, including "not a terminal and no ``--yes``": a script that forgot
``--yes`` must not delete, nor hang on a question nobody sees.

Like every command module, only Typer and Rich at the top; the governance types are only named.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, NoReturn

import typer
from rich.markup import escape
from rich.table import Column, Table

from facesearch.cli.support import console, err, json_out
from facesearch.errors import FaceSearchError

if TYPE_CHECKING:
    from facesearch.governance.deletion_plan import DeletionPlan

YesOpt = Annotated[bool, typer.Option("--yes", "-y", help="Delete what is shown without asking (for scripts)")]
DryRunOpt = Annotated[bool, typer.Option("--dry-run", help="Only show what would be deleted; change nothing")]

SHOWN_ROWS = 50


def show_plan(plan: DeletionPlan, *, title: str, as_json: bool, dry_run: bool) -> None:
    """Print the plan: a table of photos on stdout, or (``--dry-run --json``) the plan as JSON."""
    if as_json:
        if dry_run:
            print(json.dumps({"dry_run": True, **plan.to_dict()}, indent=2))
        return
    table = Table("image", Column("path", overflow="fold"), "faces", "collection", title=title)
    for item in plan.images[:SHOWN_ROWS]:
        faces = str(item.faces) if item.whole else f"{item.faces} of {item.face_total} (photo kept)"
        table.add_row(str(item.image_id), escape(item.source), faces, escape(item.collection))
    if plan.images:
        console.print(table)
    if len(plan.images) > SHOWN_ROWS:
        console.print(f"... and {len(plan.images) - SHOWN_ROWS} more photos (--dry-run --json lists them all)")
    summary = f"{len(plan.face_ids)} faces from {len(plan.images)} photos ({len(plan.image_ids)} deleted whole)"
    if plan.collection is not None:
        summary += f"; collection {plan.collection!r} dropped"
    if plan.rejections:
        summary += f"; {plan.rejections} recorded rejections"
    console.print(summary)
    missing = [f"image {i}" for i in plan.missing_image_ids] + [f"face {i}" for i in plan.missing_face_ids]
    if missing:
        console.print(f"[yellow]not in the library[/]: {', '.join(missing)}")
    if dry_run:
        console.print("[dim]dry run: nothing was deleted[/]")


def confirm(question: str, *, yes: bool, done: str = "deleted", flag: str = "delete what is shown") -> None:
    """Go on with ``--yes`` or a "y" typed at a terminal; refuse off a terminal; exit 1 on "no".

    ``done`` names what did not happen ("nothing was closed"), ``flag`` what ``--yes`` does.
    """
    if yes:
        return
    if not sys.stdin.isatty():
        raise FaceSearchError(
            f"nothing was {done}: standard input is not a terminal, so nobody can confirm; "
            f"pass --yes to {flag}, or --dry-run to only show it",
            code="confirmation_required",
        )
    if not typer.confirm(question, default=False, err=True):
        err.print(f"nothing was {done}")
        raise typer.Exit(code=1)


def go_ahead(
    plan: dict, *, would: str, doing: str, question: str, done: str, flag: str, yes: bool, dry_run: bool, as_json: bool
) -> bool:
    """The steps every planned change shares: with ``--dry-run`` show the plan (``would``, or the plan as JSON)
    and answer False (nothing changes); otherwise say what is being done (``doing``) and :func:`confirm`."""
    if dry_run:
        if not json_out(as_json, {"dry_run": True, **plan}):
            console.print(would)
        return False
    if not as_json:
        console.print(doing)
    confirm(question, yes=yes, done=done, flag=flag)
    return True


def require_files(*paths: Path) -> None:
    """Refuse a photo path that does not exist before anything is opened or created (issue 12 §7)."""
    missing = [str(p) for p in paths if not p.exists()]
    if missing:
        raise FaceSearchError(f"no such file: {', '.join(missing)} (nothing was done)", code="not_found")


def nothing_matched(exc: FaceSearchError, as_json: bool) -> NoReturn:
    """Nothing to delete: a clear message (JSON too with --json), exit status 1 (as grep without a match)."""
    if as_json:
        print(json.dumps({"error": {"code": exc.code, "message": str(exc)}}))
    err.print(f"[bold yellow]{escape(str(exc))}[/]")
    raise typer.Exit(code=1)
