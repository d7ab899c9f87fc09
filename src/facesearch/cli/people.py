"""``facesearch people ...``: persons in the archive from the command line (issue 14).

Only the command-line layer: the work is people/registry.py's (the library's ``people``), imported inside
the commands through the library. Every command states a case and a purpose (``--case``, ``--purpose``,
``--legal-basis`` where a collection demands one), as a search does: grouping everyone in an archive is
biometric processing, refused without them (exit 2) and audited. Merge and split change what every
re-cluster keeps, so they show what they will do, ask on a terminal (or take ``--yes``) and have
``--dry-run``.
"""

from __future__ import annotations

import csv
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from facesearch.cli.confirm import DryRunOpt, go_ahead
from facesearch.cli.support import (
    CaseOpt,
    JsonOpt,
    LegalBasisOpt,
    LibraryOpt,
    PurposeOpt,
    console,
    fail,
    json_out,
    open_library,
    search_purpose,
)
from facesearch.errors import FaceSearchError

people_app = typer.Typer(
    rich_markup_mode=None,
    help="People in the archive: every indexed face grouped into persons (for a case and a purpose; audited).",
    no_args_is_help=True,
)
PersonArg = Annotated[int, typer.Argument(help="Person id (facesearch people list)")]
ChangeYesOpt = Annotated[bool, typer.Option("--yes", "-y", help="Do it without asking (for scripts)")]
AllOpt = Annotated[bool, typer.Option("--all", help="Hidden persons too")]


def _stated(case: str, purpose: str, legal_basis: str | None) -> Any:
    return search_purpose(case, purpose, legal_basis)


@people_app.command("cluster")
def people_cluster(
    case: CaseOpt,
    purpose: PurposeOpt,
    legal_basis: LegalBasisOpt = None,
    max_fmr: Annotated[
        float | None,
        typer.Option("--max-fmr", help="False match rate per comparison a link may have [default: 1e-4]"),
    ] = None,
    library: LibraryOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Group every indexed face into persons (again), keeping names and corrections; later ingests join them."""
    try:
        with open_library(library, create=False) as lib:
            done = lib.people.cluster(purpose=_stated(case, purpose, legal_basis), max_fmr=max_fmr)
    except FaceSearchError as exc:
        fail(exc, as_json)
        return
    if not json_out(as_json, done):
        console.print(
            f"{done['faces']} faces in {done['persons']} persons ({done['kept']} kept, {done['new']} new, "
            f"{done['gone']} gone) at cosine >= {done['threshold']:.4f} (FMR {done['max_fmr']}); "
            f"audit entry {done['audit_sequence']}"
        )


@people_app.command("list")
def people_list(
    case: CaseOpt,
    purpose: PurposeOpt,
    legal_basis: LegalBasisOpt = None,
    show_all: AllOpt = False,
    library: LibraryOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """The persons, most faces first: id, name, faces, photos, a representative face."""
    try:
        with open_library(library, create=False) as lib:
            found = lib.people.list_persons(purpose=_stated(case, purpose, legal_basis), include_hidden=show_all)
    except FaceSearchError as exc:
        fail(exc, as_json)
        return
    if json_out(as_json, {"persons": [p.to_dict() for p in found]}):
        return
    if not found:
        console.print("no persons: group the library with facesearch people cluster --case C --purpose P")
        return
    table = Table("person", "name", "faces", "photos", "face", "hidden", title="persons")
    for p in found:
        table.add_row(str(p.id), escape(p.name or "-"), str(p.face_count), str(p.photo_count),
                      str(p.representative_face_id), "yes" if p.hidden else "")  # fmt: skip
    console.print(table)


@people_app.command("show")
def people_show(
    person_id: PersonArg,
    case: CaseOpt,
    purpose: PurposeOpt,
    legal_basis: LegalBasisOpt = None,
    library: LibraryOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """One person and its faces (face id, photo, how it got there)."""
    try:
        with open_library(library, create=False) as lib:
            person = lib.people.show(person_id, purpose=_stated(case, purpose, legal_basis))
    except FaceSearchError as exc:
        fail(exc, as_json)
        return
    if json_out(as_json, person.to_dict()):
        return
    title = f"person {person.id}" + (f": {escape(person.name)}" if person.name else "")
    table = Table("face", "image", "photo", "how", title=title)
    for f in person.faces or []:
        table.add_row(str(f.face_id), str(f.image_id), escape(f.image_path or "-"), f.how)
    console.print(table)


@people_app.command("name")
def people_name(
    person_id: PersonArg,
    name: Annotated[str, typer.Argument(help='The name ("" clears it)')],
    case: CaseOpt,
    purpose: PurposeOpt,
    legal_basis: LegalBasisOpt = None,
    library: LibraryOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Name a person (kept through re-clusters). Audited (the entry never holds the name)."""
    try:
        with open_library(library, create=False) as lib:
            seq = lib.people.name(person_id, name, purpose=_stated(case, purpose, legal_basis))
    except FaceSearchError as exc:
        fail(exc, as_json)
        return
    if not json_out(as_json, {"person_id": person_id, "name": name or None, "audit_sequence": seq}):
        console.print(f"person {person_id} named (audit entry {seq})")


@people_app.command("hide")
def people_hide(
    person_id: PersonArg,
    case: CaseOpt,
    purpose: PurposeOpt,
    legal_basis: LegalBasisOpt = None,
    unhide: Annotated[bool, typer.Option("--unhide", help="Show the person again")] = False,
    library: LibraryOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Hide a person from the list (kept through re-clusters; `people list --all` shows it). Audited."""
    try:
        with open_library(library, create=False) as lib:
            seq = lib.people.hide(person_id, not unhide, purpose=_stated(case, purpose, legal_basis))
    except FaceSearchError as exc:
        fail(exc, as_json)
        return
    if not json_out(as_json, {"person_id": person_id, "hidden": not unhide, "audit_sequence": seq}):
        console.print(f"person {person_id} {'shown again' if unhide else 'hidden'} (audit entry {seq})")


@people_app.command("merge")
def people_merge(
    into: Annotated[int, typer.Argument(help="The person that stays")],
    other: Annotated[int, typer.Argument(help="The person merged into it")],
    case: CaseOpt,
    purpose: PurposeOpt,
    legal_basis: LegalBasisOpt = None,
    yes: ChangeYesOpt = False,
    dry_run: DryRunOpt = False,
    library: LibraryOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Merge two persons into one (kept together through re-clusters). Shows the plan, asks. Audited."""
    try:
        with open_library(library, create=False) as lib:
            stated = _stated(case, purpose, legal_basis)
            plan = lib.people.plan_merge(into, other, purpose=stated)
            shown = f"person {plan['merged']} ({plan['faces_moved']} faces) into person {plan['into']}"
            if not go_ahead(
                plan,
                would=f"would merge {shown}; dry run: nothing changed",
                doing=f"merging {shown}: one person from now on, through every re-cluster",
                question="merge them?",
                done="merged",
                flag="merge them",
                yes=yes,
                dry_run=dry_run,
                as_json=as_json,
            ):
                return
            done = lib.people.merge(into, other, purpose=stated)
    except FaceSearchError as exc:
        fail(exc, as_json)
        return
    if not json_out(as_json, {**plan, **done}):
        console.print(f"merged into person {done['person_id']} (audit entry {done['audit_sequence']})")


@people_app.command("split")
def people_split(
    person_id: PersonArg,
    face_ids: Annotated[list[int], typer.Argument(help="The faces to move out into a new person")],
    case: CaseOpt,
    purpose: PurposeOpt,
    legal_basis: LegalBasisOpt = None,
    yes: ChangeYesOpt = False,
    dry_run: DryRunOpt = False,
    library: LibraryOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Move faces out of a person into a new one (kept apart through re-clusters). Shows the plan, asks. Audited."""
    try:
        with open_library(library, create=False) as lib:
            stated = _stated(case, purpose, legal_basis)
            plan = lib.people.plan_split(person_id, face_ids, purpose=stated)
            faces = ", ".join(str(f) for f in plan["faces_moved"])
            shown = f"faces {faces} out of person {plan['person_id']} ({plan['faces_left']} faces stay)"
            if not go_ahead(
                plan,
                would=f"would move {shown}; dry run: nothing changed",
                doing=f"moving {shown} into a new person, kept apart from it from now on",
                question="split them?",
                done="split",
                flag="split the person",
                yes=yes,
                dry_run=dry_run,
                as_json=as_json,
            ):
                return
            done = lib.people.split(person_id, face_ids, purpose=stated)
    except FaceSearchError as exc:
        fail(exc, as_json)
        return
    if not json_out(as_json, {**plan, **done}):
        console.print(f"new person {done['new_person_id']} (audit entry {done['audit_sequence']})")


@people_app.command("not-this-person")
def people_not_this_person(
    face_id: Annotated[int, typer.Argument(help="A face that is not the person it was grouped into")],
    case: CaseOpt,
    purpose: PurposeOpt,
    legal_basis: LegalBasisOpt = None,
    library: LibraryOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Take a face out of its person for good: no re-cluster or ingest puts it back there. Audited."""
    try:
        with open_library(library, create=False) as lib:
            done = lib.people.not_this_person(face_id, purpose=_stated(case, purpose, legal_basis))
    except FaceSearchError as exc:
        fail(exc, as_json)
        return
    if not json_out(as_json, done):
        console.print(f"face {face_id} is not person {done['person_id']}: now person {done['new_person_id']}")


@people_app.command("export")
def people_export(
    case: CaseOpt,
    purpose: PurposeOpt,
    legal_basis: LegalBasisOpt = None,
    export_format: Annotated[str, typer.Option("--format", help="csv (columns face_id,image_path,person_id)")] = "csv",
    output: Annotated[Path | None, typer.Option("--output", "-o", help="Write to this file [default: stdout]")] = None,
    show_all: AllOpt = False,
    library: LibraryOpt = None,
) -> None:
    """Every grouped face as CSV: face_id,image_path,person_id. Audited."""
    try:
        if export_format != "csv":
            raise FaceSearchError(f"unknown format {export_format!r}: csv is the one format", code="bad_request")
        with open_library(library, create=False) as lib:
            rows = lib.people.export(purpose=_stated(case, purpose, legal_basis), include_hidden=show_all)
    except FaceSearchError as exc:
        fail(exc)
        return
    handle = open(output, "w", newline="") if output else sys.stdout  # noqa: SIM115 (stdout is not closed)
    try:
        writer = csv.writer(handle)
        writer.writerow(["face_id", "image_path", "person_id"])
        writer.writerows(rows)
    finally:
        if output:
            handle.close()


@people_app.command("collection")
def people_collection(
    collection: Annotated[str, typer.Argument(help="Collection name")],
    off: Annotated[bool, typer.Option("--off/--on", help="Switch grouping off (its faces leave their persons) or on")],
    library: LibraryOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Switch people grouping off (or on) for a collection: an admin's act, audited."""
    try:
        with open_library(library, create=False) as lib:
            done = lib.people.set_collection(collection, not off)
    except FaceSearchError as exc:
        fail(exc, as_json)
        return
    if not json_out(as_json, done):
        state = "off" if off else "on"
        console.print(f"people grouping {state} for {escape(collection)} ({done['faces_removed']} faces left persons)")
