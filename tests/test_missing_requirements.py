"""The rule behind every "data or tool not found" in the suite (tests/helpers.py ``missing``): in CI a
missing requirement fails the run loudly; only a developer's run outside CI may skip with the reason.
``.ci/run`` sets CI=true, so a clean clone without ../shared/data fails there instead of passing empty."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.helpers import missing


def test_a_missing_requirement_fails_in_ci_and_skips_only_outside_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="photos not found"):
        missing("photos not found")
    monkeypatch.delenv("CI")
    with pytest.raises(pytest.skip.Exception, match="photos not found"):
        missing("photos not found")


def test_the_ci_entry_point_runs_the_suite_as_ci() -> None:
    lines = [line.strip() for line in (Path(__file__).parents[1] / ".ci" / "run").read_text().splitlines()]
    assert "export CI=true" in lines and lines.index("export CI=true") < lines.index("make test")
