"""Issue 13: docs/investigation.md and its screenshots stay true.

The guide's commands must be real: every ``facesearch`` command in its shell blocks names an existing
command and only options that command has (a renamed option would otherwise rot the guide
silently). The screenshots it shows must exist and stay small, and the script that makes them must
leave no real pixel in them: its drawn faces replace a real photo's bytes, in the API's answers and in
a report's ``data:`` images alike.
"""

from __future__ import annotations

import base64
import re
import shlex
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
GUIDE = ROOT / "docs" / "investigation.md"
SHOTS = ("case-page.png", "case-page-phone.png", "case-report.png")


def guide_commands() -> list[list[str]]:
    """Each ``facesearch ...`` command of the guide's ``sh`` blocks, as words (continuations joined)."""
    blocks = re.findall(r"```sh\n(.*?)```", GUIDE.read_text(), flags=re.S)
    commands = []
    for block in blocks:
        for line in block.replace("\\\n", " ").splitlines():
            if not line.startswith("facesearch "):
                continue  # another program (jq) or a variable
            words = shlex.split(line, comments=True)
            while "facesearch" in words:
                words = words[words.index("facesearch") + 1 :]
                end = words.index("&&") if "&&" in words else len(words)
                commands.append(words[:end])
                words = words[end:]
    return commands


def test_every_command_of_the_guide_exists_with_the_options_it_shows() -> None:
    from typer.main import get_command

    from facesearch.cli import app

    root = get_command(app)
    commands = guide_commands()
    assert len(commands) >= 20, commands  # the guide's steps: cases, searches, reports, watches, audit
    checked = set()
    for words in commands:
        command = root  # Typer's own click: a group is what has subcommands
        path = []
        while hasattr(command, "commands") and words and words[0] in command.commands:
            path.append(words[0])
            command = command.commands[words.pop(0)]
        assert not hasattr(command, "commands"), f"`facesearch {' '.join(path)}` is not a command"
        known = {opt for param in command.params for opt in (*param.opts, *param.secondary_opts)}
        for word in words:
            if word.startswith("-") and word != "-":
                assert word.split("=")[0] in known, f"`facesearch {' '.join(path)}` has no option {word}"
        checked.add(" ".join(path))
    for expected in ("case create", "case report", "case verify-report", "case close", "search", "watch add", "alerts"):
        assert expected in checked


def test_the_guide_shows_the_screenshots_and_they_are_small() -> None:
    text = GUIDE.read_text()
    for name in SHOTS:
        path = ROOT / "docs" / "img" / name
        assert f"img/{name}" in text
        assert path.read_bytes().startswith(b"\x89PNG"), name
        assert path.stat().st_size < 300_000, name


@pytest.fixture
def real_photo(shared_data: Path) -> bytes:
    return (shared_data / "face_recognition_examples" / "by_identity" / "joe_biden" / "biden.jpg").read_bytes()


def test_a_real_photo_becomes_a_drawn_face_of_its_size(real_photo: bytes) -> None:
    import io

    from PIL import Image

    from scripts.docs_screenshots import DrawnFaces

    faces = DrawnFaces()
    drawn = faces.like(real_photo)
    assert faces.is_drawn(drawn)
    assert not faces.is_drawn(real_photo)  # what assert_only_drawn refuses to photograph
    with Image.open(io.BytesIO(real_photo)) as real, Image.open(io.BytesIO(drawn)) as shape:
        assert shape.size == real.size  # the page's layout is the real one


def test_no_data_image_of_a_report_survives(real_photo: bytes) -> None:
    from scripts.docs_screenshots import DrawnFaces, drawn_report

    real = base64.b64encode(real_photo)
    report = b'<img class="crop" src="data:image/jpeg;base64,' + real + b'"><p>x</p><img src="data:image/png;base64,'
    report += real + b'">'
    faces = DrawnFaces()
    out = drawn_report(report, faces)
    assert real[:200] not in out
    images = re.findall(rb"data:image/[a-z]+;base64,([A-Za-z0-9+/=]+)", out)
    assert len(images) == 2
    assert all(faces.is_drawn(base64.b64decode(data)) for data in images)
