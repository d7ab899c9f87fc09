"""How the suite runs fast (tests/conftest.py: ``LONGEST_FIRST``, OpenMP's wait policy): issue 11, a suite twice
as fast."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

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


def test_openmp_threads_of_the_processes_tests_start_sleep_when_idle() -> None:
    """tests/conftest.py sets OMP_WAIT_POLICY=PASSIVE: libgomp (PyTorch's and FAISS's copies) then spins 0 rounds
    (GOMP_SPINCOUNT 0; 300000 by default) in a process a test starts, as in this one."""
    pytest.importorskip("torch")  # the tests that need it say so; here only what libgomp reads matters
    shown = subprocess.run(
        [sys.executable, "-c", "import faiss, torch"],
        env={**os.environ, "OMP_DISPLAY_ENV": "VERBOSE"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert shown.returncode == 0, shown.stderr
    spins = re.findall(r"GOMP_SPINCOUNT = '(\d+)'", shown.stderr)
    assert spins == ["0", "0"], shown.stderr
