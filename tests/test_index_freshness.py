"""Issue 12 §5: two ``facesearch index`` runs on one library, and a server that must never serve a stale index.

Seen: two index runs at once; the second saved its stale copy of the vector index over the first's
(``ntotal: 0`` with 14 faces in the catalog), and a running server served the empty index, silently,
until restarted. Here the runs are a real ``facesearch index`` process and a Library opened in this
process *before* it (so it holds the stale, empty copy), and the server is a FastAPI app opened on
the library before either run.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import warnings
from pathlib import Path

from facesearch import Library
from facesearch.api import create_app
from facesearch.governance import add_user
from facesearch.store.catalog import Catalog
from tests.conftest import new_engine_library

with warnings.catch_warnings():
    warnings.simplefilter("ignore")  # starlette's note that it prefers httpx2 to httpx
    from fastapi.testclient import TestClient

ROOT = Path(__file__).resolve().parents[1]
CASE = {"case_id": "case-7", "purpose": "find the person in the test photo"}


def saved_ntotal(folder: Path) -> int:
    return int(json.loads((folder / "index.json").read_text())["ntotal"])


def face_count(folder: Path) -> int:
    catalog = Catalog(folder / "catalog.sqlite")
    try:
        return catalog.face_count()
    finally:
        catalog.close()


def cli_index(folder: Path, photos: Path) -> dict:
    """``facesearch index`` in a process of its own (this worktree's code, the run's model cache)."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), os.environ.get("PYTHONPATH", "")])}
    done = subprocess.run(
        [sys.executable, "-m", "facesearch.cli", "index", str(photos), "--library", str(folder), "--json"],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return json.loads(done.stdout)


def test_a_second_index_run_never_saves_its_stale_copy_and_a_server_answers_from_the_full_index(
    tmp_path: Path, shared_data: Path
) -> None:
    """Issue 12 §5: the index is changed only under the write lock after reloading what is on disk, and
    a running server notices the change (and repairs a stale file) before it answers."""
    examples = shared_data / "face_recognition_examples"
    folder = tmp_path / "lib"
    # No jitter, HOG without upsampling (``new_engine_library``; issue 11, the suite's speed): the index's
    # freshness is the subject, not the recipe or the detector; the CLI's process indexes with these settings too.
    with Library.open(new_engine_library(folder)) as lib:
        _, key = add_user(lib.catalog, "investigator-1", "investigator")
    empty_index = {name: (folder / name).read_bytes() for name in ("index.faiss", "index.json")}
    assert saved_ntotal(folder) == 0

    with TestClient(create_app(folder, rate_limit_per_minute=0, ingest_workers=1)) as client:
        second = Library.open(folder)  # the second run: its (empty) copy of the index is loaded now
        try:
            first = cli_index(folder, examples / "by_identity" / "joe_biden")
            assert first["faces"] >= 2 and saved_ntotal(folder) == first["faces"]
            report = second.index([examples / "multi_face" / "kit_with_rose.jpg"], workers=1)
            assert report.faces >= 1
        finally:
            second.close()
        faces = face_count(folder)
        assert faces == first["faces"] + report.faces
        assert saved_ntotal(folder) == faces  # the second run's save kept the first's faces

        probe = (examples / "by_identity" / "joe_biden" / "biden.jpg").read_bytes()

        def biden_candidates() -> list[dict]:
            response = client.post(
                "/v1/search",
                headers={"Authorization": f"Bearer {key}"},
                files={"probe": ("probe.jpg", probe, "image/jpeg")},
                data={**CASE, "top_k": "50"},
            )
            assert response.status_code == 200, response.text
            body = response.json()
            assert body["gallery_size"] == faces
            return [c for f in body["faces"] for c in f["candidates"]]

        found = biden_candidates()
        assert len(found) == faces and sum("/joe_biden/" in (c["image"]["path"] or "") for c in found) == 2
        served = client.app.state.host  # the server's own Library, as it answers
        with served.reading() as library:
            assert len(library.vector_index) == faces

        # The "Seen" damage itself: a stale (empty) copy saved over the full index while the server runs.
        for name, data in empty_index.items():
            staged = folder / f"{name}.stale"
            staged.write_bytes(data)
            shutil.move(staged, folder / name)
        assert saved_ntotal(folder) == 0
        found = biden_candidates()
        assert len(found) == faces
        with served.reading() as library:
            assert len(library.vector_index) == faces
