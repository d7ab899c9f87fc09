"""The suite's schedule (tests/conftest.py ``LONGEST_FIRST``): issue 11, a suite twice as fast."""

from __future__ import annotations

import re
from pathlib import Path

from tests.conftest import LONGEST_FIRST

TESTS = Path(__file__).parent


def test_every_module_named_longest_first_exists_once() -> None:
    """A module renamed or split must be renamed here too, or it silently drops to the end of the schedule."""
    assert len(set(LONGEST_FIRST)) == len(LONGEST_FIRST)
    assert [name for name in LONGEST_FIRST if not (TESTS / name).is_file()] == []


def test_make_test_keeps_the_order_of_collection() -> None:
    """Without ``--no-loadscope-reorder`` pytest-xdist would sort modules by their number of tests again."""
    makefile = (TESTS.parent / "Makefile").read_text()
    command = re.search(r"^\t\$\(PY\) -m pytest (.*)$", makefile, re.MULTILINE)
    assert command is not None
    assert "--dist loadscope" in command.group(1) and "--no-loadscope-reorder" in command.group(1)
