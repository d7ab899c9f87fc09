"""Test helpers: synthetic inputs (never photos of people), library copies, the CLI run in this process."""

from __future__ import annotations

import json
import os
import shutil
import struct
import zlib
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn
from unittest import mock

import pytest

if TYPE_CHECKING:
    from click.testing import Result


def png_header_only(width: int, height: int) -> bytes:
    """A PNG whose header claims ``width`` x ``height`` pixels: a decompression-bomb stand-in."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    idat = zlib.compress(b"\x00" * 64)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


def copy_library(library: Path, destination: Path) -> Path:
    """A copy of a closed library folder (catalog, index, config): a test may change it freely."""
    shutil.copytree(library, destination)
    return destination


def run_cli(*args: str, env: dict[str, str] | None = None) -> Result:
    """``facesearch ARGS`` in this process (Typer's CliRunner): what the console script runs, without
    the seconds a new Python process spends importing facesearch. ``sys.argv`` is set as the script
    would see it (reports quote the command line). Exit code, stdout and stderr are kept apart."""
    from typer.testing import CliRunner

    from facesearch.cli import app

    with mock.patch("sys.argv", ["facesearch", *args]):
        return CliRunner().invoke(app, list(args), env=env)


def cli_ok(*args: str, env: dict[str, str] | None = None) -> Result:
    """:func:`run_cli` that must succeed; on failure the message holds the output and the traceback."""
    import traceback

    result = run_cli(*args, env=env)
    if result.exit_code != 0:
        trace = "".join(traceback.format_exception(result.exception)) if result.exception else ""
        pytest.fail(f"facesearch {' '.join(args)} exited {result.exit_code}:\n{result.output}\n{trace}")
    return result


def copy_on_vector_store(library: Path, destination: Path, vector_store: str) -> Path:
    """A copy of a library whose vectors live in ``vector_store``, rebuilt from its catalog when opened.

    The catalog is the truth and the index is derived, so a library indexed once serves the tests of
    every engine without embedding its photos again (and the engine's rebuild path is exercised).
    """
    config = json.loads((library / "config.json").read_text())
    if config.get("vector_store", "faiss") == vector_store:
        shutil.copytree(library, destination)  # the same engine: its index is copied too
        return destination
    ignore = shutil.ignore_patterns("index.faiss", "index.json", "vectors.milvus.*", ".vectors.milvus.*")
    shutil.copytree(library, destination, ignore=ignore)
    config.update(vector_store=vector_store, milvus_uri=None)
    (destination / "config.json").write_text(json.dumps(config))
    return destination


def missing(message: str) -> NoReturn:
    """Fail in CI (CI=true), where everything must be there; skip with the reason elsewhere."""
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message)
    raise AssertionError("unreachable")  # pytest.skip raises


def library_contents(folder: Path) -> dict[str, Any]:
    """What a library holds, read straight from its SQLite catalog (engines are compared on this)."""
    import sqlite3

    import numpy as np

    db = sqlite3.connect(f"file:{folder / 'catalog.sqlite'}?mode=ro", uri=True)
    try:
        images = db.execute("SELECT id, sha256, source FROM images ORDER BY id").fetchall()
        faces = db.execute(
            "SELECT f.id, i.source, f.face_index, f.left, f.top, f.width, f.height, f.embedding "
            "FROM faces f JOIN images i ON i.id = f.image_id ORDER BY f.id"
        ).fetchall()
        rejections = sorted(db.execute("SELECT source, code FROM rejections").fetchall())
        ingests = db.execute("SELECT COUNT(*) FROM audit_log WHERE action = 'ingest'").fetchone()[0]
    finally:
        db.close()
    return {
        "images": images,
        "boxes": [face[:7] for face in faces],
        "embeddings": np.stack([np.frombuffer(face[7], dtype=np.float32) for face in faces]),
        "rejections": rejections,
        "ingests": ingests,
    }


def comparable_report(report: Any) -> dict:
    """An ingest report without its timing (engines must agree on everything else)."""
    return {k: v for k, v in report.to_dict().items() if k != "seconds"}


def _purpose() -> Any:
    from facesearch.governance.types import SearchPurpose

    return SearchPurpose("test-case", "exercising the search path in the test suite")


# Every search and comparison states a case and a purpose (there is no way around it): the tests' own.
PURPOSE = _purpose()


def store_synthetic_faces(lib: Any, collection: str, vectors: Any, stem: str = "face") -> None:
    """One synthetic face per row of ``vectors`` (unit vectors, never a real person's), each on its own made-up
    150x150 image in ``collection``, stored through the library's one writer and the index saved: a gallery of
    any size without a photo or a model run."""
    from facesearch.store.catalog import NewFace, NewImage

    cid = lib.catalog.collection_id(collection)
    if cid is None:
        raise ValueError(f"no collection {collection!r}")
    batch = [
        (
            NewImage(f"{i:064x}", f"/synthetic/{stem}-{i}.jpg", "file", None, {}, "JPEG", 150, 150, 1, None),
            [NewFace(0, (0, 0, 150, 150), [], 1.0, 1.0, vectors[i], b"")],
        )
        for i in range(len(vectors))
    ]
    with lib.writer.locked():
        lib.writer.store(cid, batch)
        lib.writer.save_index()
