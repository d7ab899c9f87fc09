"""The ``facesearch`` command line (Typer + Rich): one module per command group.

- main.py          the app: assembles the groups, the ``--verbose`` callback
- support.py       what every command shares: consoles, common options, JSON output, errors
- library_cmds.py  index, search, verify, faces, remove, stats, doctor, serve
- governance.py    users, audit, optout, erase, maintain
- eval.py          eval (verify, identify, groups, detect) and calibrate

Start-up cost matters (every command pays it): these modules import only Typer, Rich and
facesearch.errors at the top; the library, the models, numpy and the stores are imported inside
the command that uses them. tests/test_cli_startup.py guards it.
"""

from __future__ import annotations

from facesearch.cli.main import app

__all__ = ["app"]
