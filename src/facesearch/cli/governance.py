"""``facesearch users|audit|optout|collections|erase|maintain``: accountability from the command line.

Only the command-line layer (options, tables, exit codes): the work is done by facesearch.governance,
imported inside each command so that ``--help`` and other commands do not pay for SQLAlchemy.

Commands run as the local operating-system user (recorded as ``cli:<user>`` in the audit log):
whoever can run them can read the library's files anyway, so locally they act as the library's
admin (creating collections included). The service checks keys and roles.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from facesearch.cli.confirm import DryRunOpt, YesOpt, confirm, nothing_matched, require_files, show_plan
from facesearch.cli.support import JsonOpt, LibraryOpt, console, err, open_library
from facesearch.cli.support import fail as _fail
from facesearch.cli.support import json_out as _json_out
from facesearch.errors import FaceSearchError

if TYPE_CHECKING:
    from facesearch.governance.optout import OptOutPreview

users_app = typer.Typer(rich_markup_mode=None, help="API users, their roles and keys.", no_args_is_help=True)
audit_app = typer.Typer(
    rich_markup_mode=None, help="The tamper-evident audit log: verify, show, export.", no_args_is_help=True
)
optout_app = typer.Typer(
    rich_markup_mode=None, help="People who asked to be left out of the library.", no_args_is_help=True
)
collections_app = typer.Typer(
    rich_markup_mode=None,
    help="Collections and their rules (an admin's act: ingest never creates one).",
    no_args_is_help=True,
)


@collections_app.command("create")
def collections_create(
    name: Annotated[str, typer.Argument(help="Collection name")],
    require: Annotated[
        list[str] | None, typer.Option("--require", help="What every search of it must state: legal_basis")
    ] = None,
    retention_days: Annotated[
        float | None, typer.Option("--retention-days", help="Photos older than this are purged by maintain")
    ] = None,
    library: LibraryOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Create a collection with its rules, as the library's admin (the local operator). Audited."""
    try:
        with open_library(library) as lib:
            settings = lib.create_collection(name, require=require or [], retention_days=retention_days)
    except FaceSearchError as exc:
        _fail(exc, as_json)
        return
    if not _json_out(as_json, {"collection": name, "settings": settings}):
        console.print(f"collection [bold]{name}[/] created {settings or ''}")


@users_app.command("add")
def users_add(
    name: Annotated[str, typer.Argument(help="User name")],
    role: Annotated[str, typer.Option(help="admin, ingester, investigator or auditor")],
    library: LibraryOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Create a user and print their API key once (only a salted hash is stored)."""
    from facesearch.governance.users import add_user

    try:
        with open_library(library, create=True) as lib:
            user, key = add_user(lib.catalog, name, role)
    except FaceSearchError as exc:
        _fail(exc, as_json)
        return
    if _json_out(as_json, {"name": user.name, "role": user.role, "api_key": key}):
        return
    console.print(f"user [bold]{user.name}[/] ({user.role}) created. API key, shown only this once:")
    print(key)


@users_app.command("list")
def users_list(library: LibraryOpt = None, as_json: JsonOpt = False) -> None:
    """List users (never their keys)."""
    from facesearch.governance.users import list_users

    try:
        with open_library(library) as lib:
            users = list_users(lib.catalog)
    except FaceSearchError as exc:
        _fail(exc, as_json)
        return
    rows = [{"name": u.name, "role": u.role, "revoked": u.revoked_at is not None} for u in users]
    if _json_out(as_json, rows):
        return
    table = Table("name", "role", "revoked", title="users")
    for row in rows:
        table.add_row(row["name"], row["role"], "yes" if row["revoked"] else "")
    console.print(table)


@users_app.command("revoke")
def users_revoke(name: Annotated[str, typer.Argument()], library: LibraryOpt = None, as_json: JsonOpt = False) -> None:
    """Revoke a user's key for good."""
    from facesearch.governance.users import revoke_user

    try:
        with open_library(library) as lib:
            revoke_user(lib.catalog, name)
    except FaceSearchError as exc:
        _fail(exc, as_json)
        return
    if not _json_out(as_json, {"revoked": name}):
        console.print(f"revoked {name}")


@users_app.command("role")
def users_role(
    name: Annotated[str, typer.Argument()],
    role: Annotated[str, typer.Option(help="admin, ingester, investigator or auditor")],
    library: LibraryOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Give a user another role (audited); the last active admin cannot be demoted."""
    from facesearch.governance.users import set_role

    try:
        with open_library(library) as lib:
            user = set_role(lib.catalog, name, role)
    except FaceSearchError as exc:
        _fail(exc, as_json)
        return
    if not _json_out(as_json, {"name": user.name, "role": user.role}):
        console.print(f"{user.name} is now {user.role}")


@audit_app.command("verify")
def audit_verify(
    file: Annotated[
        Path | None, typer.Option("--file", help="Check an export (JSON Lines) instead, without the library")
    ] = None,
    anchor: Annotated[
        str | None,
        typer.Option(
            "--anchor", help="SEQ:HASH printed earlier by 'facesearch audit anchor': the log must still hold it"
        ),
    ] = None,
    library: LibraryOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Re-compute the hash chain: any edited, deleted or reordered entry, a log shorter than what the
    catalog proves happened, or a missing anchor is reported (exit 1)."""
    from facesearch.governance.audit import AuditLog, parse_anchor, verify_jsonl

    try:
        kept = parse_anchor(anchor) if anchor is not None else None
        if file is not None:
            if not file.is_file():
                raise FaceSearchError(f"no such export file: {file}", code="not_found")
            if kept is not None:
                raise FaceSearchError("--anchor checks the library's log, not an export (--file)", code="bad_request")
            result = verify_jsonl(file)
        else:
            with open_library(library) as lib:
                result = AuditLog(lib.catalog).verify(anchor=kept)
    except FaceSearchError as exc:
        _fail(exc, as_json)
        return
    if not _json_out(as_json, result.to_dict()):
        if result.ok:
            console.print(f"[green]ok[/]: {result.entries} entries, chain intact (head {result.head_hash})")
        else:
            console.print(f"[bold red]TAMPERED[/]: {result.problem} (first bad entry: {result.first_bad_sequence})")
    if not result.ok:
        raise typer.Exit(code=1)


@audit_app.command("anchor")
def audit_anchor(library: LibraryOpt = None, as_json: JsonOpt = False) -> None:
    """Print the log's head as SEQ:HASH, to keep elsewhere (a ticket, another machine, paper).

    Later, 'facesearch audit verify --anchor SEQ:HASH' fails unless the log still holds that entry
    with that hash: whoever rewrites the whole database cannot forge what was kept outside it.
    """
    from facesearch.governance.audit import AuditLog

    try:
        with open_library(library) as lib:
            head = AuditLog(lib.catalog).head()
            if head is None or head[0] == 0:
                raise FaceSearchError("the audit log is empty: nothing to anchor yet", code="empty_log")
    except FaceSearchError as exc:
        _fail(exc, as_json)
        return
    if not _json_out(as_json, {"sequence": head[0], "hash": head[1], "anchor": f"{head[0]}:{head[1]}"}):
        print(f"{head[0]}:{head[1]}")


@audit_app.command("show")
def audit_show(
    action: Annotated[str | None, typer.Option(help="Only this action (search, verify, ingest, ...)")] = None,
    case: Annotated[str | None, typer.Option("--case", help="Only this case id")] = None,
    limit: Annotated[int, typer.Option(help="At most this many entries")] = 50,
    library: LibraryOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Show audit entries (who, when, what, case, purpose)."""
    from facesearch.governance.audit import AuditLog

    try:
        with open_library(library) as lib:
            entries = AuditLog(lib.catalog).entries(action=action, case_id=case, limit=limit)
    except FaceSearchError as exc:
        _fail(exc, as_json)
        return
    if _json_out(as_json, [e.to_dict() for e in entries]):
        return
    table = Table("seq", "at", "actor", "action", "case", "purpose", title="audit log")
    for e in entries:
        table.add_row(str(e.seq), e.at, e.actor, e.action, e.case_id or "", e.purpose or "")
    console.print(table)


@audit_app.command("export")
def audit_export(
    output: Annotated[Path | None, typer.Option("--output", "-o", help="File (default: standard output)")] = None,
    library: LibraryOpt = None,
) -> None:
    """Export the whole log as JSON Lines (each line carries its hash; verifiable offline)."""
    from facesearch.governance.audit import AuditLog

    try:
        with open_library(library) as lib:
            count = AuditLog(lib.catalog).export_jsonl(output if output is not None else sys.stdout)
    except FaceSearchError as exc:
        _fail(exc)
        return
    if output is not None:
        console.print(f"{count} entries written to {output}")


@optout_app.command("add")
def optout_add(
    photos: Annotated[
        list[Path],
        typer.Argument(help="Photos of the person: several catch more of their faces (only embeddings are kept)"),
    ],
    note: Annotated[str, typer.Option(help="A reference for the request (no personal data needed)")] = "",
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Show what would be removed; change nothing")] = False,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Remove without asking for confirmation")] = False,
    library: LibraryOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Leave a person out: remove their indexed faces now and keep them out of ingest and search.

    Shows the faces and photos it will remove and asks before removing them (--yes skips the
    question, --dry-run only shows them). A face is the person's when search or verify with one of
    the photos would call it a match (the library's operating point, --max-fmr of search).
    """
    try:
        require_files(*photos)  # before the library is opened (and perhaps created)
        if as_json and not (yes or dry_run):
            raise FaceSearchError("with --json, confirm with --yes (or look first with --dry-run)", code="bad_request")
        with open_library(library) as lib:
            if dry_run or not yes:
                preview = lib.optouts.preview(photos)
                if dry_run:
                    if not _json_out(as_json, {"dry_run": True, **preview.to_dict()}):
                        _show_optout_preview(preview, "would remove")
                        console.print("dry run: nothing was changed")
                    return
                _show_optout_preview(preview, "will remove")
                question = (
                    f"Register the opt-out and remove these {len(preview.face_ids)} faces?"
                    if preview.face_ids
                    else "Register the opt-out anyway (it keeps the person out of later ingests and searches)?"
                )
                if not typer.confirm(question, default=False):
                    err.print("cancelled: nothing was changed")
                    raise typer.Exit(code=1)
            receipt = lib.optouts.add(photos, note=note)
    except FaceSearchError as exc:
        _fail(exc, as_json)
        return
    if _json_out(as_json, receipt.to_dict()):
        return
    if receipt.warning:
        err.print(f"[bold yellow]warning[/]: {receipt.warning}")
    ids = ", ".join(str(i) for i in receipt.optout_ids)
    console.print(
        f"opt-out {ids} recorded (receipt {receipt.receipt_id}): {len(receipt.face_ids)} faces "
        f"removed from {len(receipt.image_ids) + len(receipt.kept_image_ids)} photos"
    )


def _show_optout_preview(preview: OptOutPreview, verb: str) -> None:
    """The faces an opt-out would remove, per photo (a photo left with no face is deleted), or a warning."""
    if preview.warning:
        err.print(f"[bold yellow]warning[/]: {preview.warning}")
        return
    table = Table(
        "image id", "face ids", "source", "what goes", title=f"the opt-out {verb} {len(preview.face_ids)} faces"
    )
    for image in preview.images:
        what = "the photo" if image.deleted else "their face only"
        table.add_row(str(image.image_id), ", ".join(map(str, image.face_ids)), image.source, what)
    console.print(table)
    console.print(f"at {preview.threshold_source}")


@optout_app.command("list")
def optout_list(library: LibraryOpt = None, as_json: JsonOpt = False) -> None:
    """List opt-outs (id, date, note; never a photo)."""
    try:
        with open_library(library) as lib:
            rows = [{"id": o.id, "created_at": str(o.created_at), "note": o.note} for o in lib.optouts.list_optouts()]
    except FaceSearchError as exc:
        _fail(exc, as_json)
        return
    if _json_out(as_json, rows):
        return
    table = Table("id", "created", "note", title="opt-outs")
    for row in rows:
        table.add_row(str(row["id"]), row["created_at"], row["note"])
    console.print(table)


def erase(
    reason: Annotated[str, typer.Option(help="Why (e.g. the request's reference): goes into the audit log")],
    face: Annotated[list[int] | None, typer.Option("--face", help="Face id (repeatable)")] = None,
    image: Annotated[list[int] | None, typer.Option("--image", help="Image id (repeatable)")] = None,
    source: Annotated[str | None, typer.Option(help="Source path or URL")] = None,
    collection: Annotated[str | None, typer.Option(help="A whole collection")] = None,
    yes: YesOpt = False,
    dry_run: DryRunOpt = False,
    library: LibraryOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Erase faces, photos, a source or a collection for good, with a receipt (faces, thumbnails, vectors).

    Shows what will go first and asks; --yes skips the question, --dry-run only shows. Exit 1 (and no
    receipt) when nothing matched or the answer was no.
    """
    from facesearch.governance.deletion_plan import NothingMatched
    from facesearch.governance.erasure import check_reason, preview_erasure
    from facesearch.governance.erasure import erase as erase_now

    which = {"face_ids": face, "image_ids": image, "source": source, "collection": collection}
    try:
        with open_library(library) as lib:
            if not any(which.values()):
                raise FaceSearchError("erase needs --face, --image, --source or --collection", code="bad_request")
            check_reason(reason)
            plan = preview_erasure(lib, **which)
            plan.refuse_if_empty()
            show_plan(plan, title="to erase", as_json=as_json, dry_run=dry_run)
            if dry_run:
                return
            confirm(f"Erase {len(plan.face_ids)} face(s) from {len(plan.images)} photo(s) for good?", yes=yes)
            receipt = erase_now(lib, **which, actor=None, reason=reason, expected=plan)
    except NothingMatched as exc:
        nothing_matched(exc, as_json)
    except FaceSearchError as exc:
        _fail(exc, as_json)
        return
    if not _json_out(as_json, receipt.to_dict()):
        console.print(
            f"erased {len(receipt.image_ids)} photos and {len(receipt.face_ids)} faces"
            + (f", {receipt.rejections_removed} rejections" if receipt.rejections_removed else "")
            + (f", collection {receipt.collection_dropped!r}" if receipt.collection_dropped else "")
            + f"; receipt {receipt.receipt_id} (audit entry {receipt.audit_sequence})"
        )


def maintain(library: LibraryOpt = None, as_json: JsonOpt = False) -> None:
    """Purge photos past their collection's retention period (logged in the audit log).

    On a PostgreSQL catalog it then runs VACUUM (ANALYZE) on the tables deletions touch, so that
    erased rows leave the tables and indexes now rather than whenever autovacuum comes by.
    """
    from facesearch.governance.retention import purge_expired
    from facesearch.store.deletion import reclaim_space

    try:
        with open_library(library) as lib:
            receipt = purge_expired(lib, actor=None)
            vacuum = None if lib.catalog.is_sqlite else reclaim_space(lib.catalog)
    except FaceSearchError as exc:
        _fail(exc, as_json)
        return
    data = receipt.to_dict()
    if vacuum is not None:
        data["vacuum"] = vacuum
    if not _json_out(as_json, data):
        console.print(f"retention purge: {data}")
