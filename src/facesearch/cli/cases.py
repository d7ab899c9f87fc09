"""``facesearch case create|list|show|close``: cases from the command line (issue 13).

Only the command-line layer: the work is done by facesearch.governance.cases and .decisions, imported
inside each command so that ``--help`` and other commands do not pay for SQLAlchemy. Commands run as
the local operator (``cli:<user>`` in the audit log), who acts as the library's admin.

Closing is not undone, so ``case close`` shows what it will close, asks on a terminal (or takes
``--yes``) and has ``--dry-run``.
"""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from facesearch.cli.case_reports import case_report, case_verify_report
from facesearch.cli.confirm import DryRunOpt, go_ahead
from facesearch.cli.support import JsonOpt, LibraryOpt, console, fail, json_out, open_library
from facesearch.errors import FaceSearchError

case_app = typer.Typer(
    rich_markup_mode=None, help="Cases: what searches and decisions belong to; open, then closed.", no_args_is_help=True
)
CloseYesOpt = Annotated[bool, typer.Option("--yes", "-y", help="Close without asking (for scripts)")]


def _searches(catalog: Any, case_id: str) -> list[dict[str, Any]]:
    """The case's searches, from the audit log (what an auditor would read there too)."""
    from facesearch.governance.audit import AuditLog

    rows = AuditLog(catalog).entries(action="search", case_id=case_id, limit=None)
    return [
        {
            "audit_sequence": e.seq,
            "at": e.at,
            "actor": e.actor,
            "probe_sha256": e.details.get("probe_sha256"),
            "shown": sum(len(f.get("shown", [])) for f in e.details.get("faces", [])),
        }
        for e in rows
    ]


@case_app.command("create")
def case_create(
    case_id: Annotated[str, typer.Argument(help="Case id (e.g. the case number of your file)")],
    purpose: Annotated[str, typer.Option("--purpose", help="What the case is for (written to the audit log)")],
    legal_basis: Annotated[str | None, typer.Option("--legal-basis", help="The legal basis of the case")] = None,
    user: Annotated[list[str] | None, typer.Option("--user", help="An API user working the case (repeat)")] = None,
    library: LibraryOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Open a case. Once a library has a case, every search must name an open case of it. Audited."""
    from facesearch.governance.cases import create_case

    try:
        with open_library(library) as lib:
            case = create_case(lib.catalog, case_id, purpose, legal_basis=legal_basis, users=user or [])
    except FaceSearchError as exc:
        fail(exc, as_json)
        return
    if not json_out(as_json, case.to_dict()):
        console.print(f"case [bold]{escape(case.case_id)}[/] opened (audit entry {case.audit_seq})")


@case_app.command("list")
def case_list(
    status: Annotated[str | None, typer.Option("--status", help="Only open or closed cases")] = None,
    library: LibraryOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """The library's cases, oldest first."""
    from facesearch.governance.cases import list_cases

    try:
        if status not in (None, "open", "closed"):
            raise FaceSearchError("--status must be open or closed", code="bad_request")
        with open_library(library) as lib:
            cases = list_cases(lib.catalog, status=status)
    except FaceSearchError as exc:
        fail(exc, as_json)
        return
    if json_out(as_json, {"cases": [c.to_dict() for c in cases]}):
        return
    if not cases:
        console.print("no cases yet: open one with facesearch case create ID --purpose ...")
        return
    table = Table("case", "status", "purpose", "users", "created", title="cases")
    for c in cases:
        table.add_row(escape(c.case_id), c.status, escape(c.purpose), ", ".join(c.users), f"{c.created_at:%Y-%m-%d}")
    console.print(table)


@case_app.command("show")
def case_show(
    case_id: Annotated[str, typer.Argument(help="Case id")], library: LibraryOpt = None, as_json: JsonOpt = False
) -> None:
    """A case: its record, its searches (from the audit log) and the decisions about its candidates."""
    from facesearch.governance.cases import get_case
    from facesearch.governance.decisions import case_decisions

    try:
        with open_library(library) as lib:
            case = get_case(lib.catalog, case_id)
            searches = _searches(lib.catalog, case.case_id)
            decisions = case_decisions(lib.catalog, case.case_id)
    except FaceSearchError as exc:
        fail(exc, as_json)
        return
    if json_out(as_json, {"case": case.to_dict(), "searches": searches, "decisions": decisions}):
        return
    closed = f", closed by {case.closed_by} at {case.closed_at}" if case.closed_at else ""
    console.print(f"case [bold]{escape(case.case_id)}[/] ({case.status}{closed})")
    console.print(f"purpose: {escape(case.purpose)}; legal basis: {escape(case.legal_basis or '-')}")
    console.print(f"opened by {case.created_by} at {case.created_at}; users: {', '.join(case.users) or '-'}")
    console.print(f"{len(searches)} searches: " + ", ".join(f"#{s['audit_sequence']}" for s in searches))
    table = Table("face", "status", "decisions", title="decisions")
    for item in decisions:
        told = "; ".join(f"{d['reviewer']}: {d['decision']}" for d in item["decisions"])
        table.add_row(str(item["face_id"]), item["status"], escape(told))
    console.print(table if decisions else "no decisions yet")


@case_app.command("close")
def case_close(
    case_id: Annotated[str, typer.Argument(help="Case id")],
    yes: CloseYesOpt = False,
    dry_run: DryRunOpt = False,
    library: LibraryOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Close a case: afterwards no search, verify or decision may name it (it cannot be reopened). Audited."""
    from facesearch.governance.cases import close_case, get_case

    try:
        with open_library(library) as lib:
            case = get_case(lib.catalog, case_id)
            if case.status != "open":
                raise FaceSearchError(f"case {case.case_id!r} is closed already", code="case_closed")
            searches = len(_searches(lib.catalog, case.case_id))
            plan = {"case_id": case.case_id, "searches": searches, "users": case.users}
            if not go_ahead(
                plan,
                would=f"would close case {escape(case.case_id)} ({searches} searches); nothing changed",
                doing=f"closing case [bold]{escape(case.case_id)}[/]: {searches} searches, no new ones after",
                question="close it for good?",
                done="closed",
                flag="close the case",
                yes=yes,
                dry_run=dry_run,
                as_json=as_json,
            ):
                return
            closed = close_case(lib.catalog, case.case_id)
    except FaceSearchError as exc:
        fail(exc, as_json)
        return
    if not json_out(as_json, closed.to_dict()):
        console.print(f"case {escape(closed.case_id)} closed")


# reports (cli/case_reports.py), registered here so that they are ``case`` subcommands

case_app.command("report")(case_report)
case_app.command("verify-report")(case_verify_report)
