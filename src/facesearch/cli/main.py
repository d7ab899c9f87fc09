"""The ``facesearch`` app: every command group registered on one Typer application."""

from __future__ import annotations

import logging
from typing import Annotated

import typer

from facesearch.cli import cases, governance, library_cmds, people, watches
from facesearch.cli import eval as eval_cmds

app = typer.Typer(
    rich_markup_mode=None,  # help texts hold [default: ...] and facesearch[extra]: plain text
    help="facesearch: find every indexed photo of a person, with the source of each.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
# Registration order is the order `facesearch --help` lists them: single commands, then groups.
app.command()(eval_cmds.calibrate)
app.command()(governance.erase)
app.command()(governance.maintain)
app.command()(watches.alerts)
for command in library_cmds.COMMANDS:
    app.command()(command)
app.add_typer(eval_cmds.eval_app, name="eval")
app.add_typer(governance.users_app, name="users")
app.add_typer(governance.audit_app, name="audit")
app.add_typer(governance.optout_app, name="optout")
app.add_typer(governance.collections_app, name="collections")
app.add_typer(cases.case_app, name="case")
app.add_typer(watches.watch_app, name="watch")
app.add_typer(people.people_app, name="people")


@app.callback()
def main(verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Log what happens")] = False) -> None:
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s"
    )
