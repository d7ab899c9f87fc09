"""Issue 12 §6: what stays on disk. Removal leaves nothing readable whichever command ran it, also while
a server holds the catalog open; the library folder is 0700 and its files 0600."""

from __future__ import annotations

import os
import stat
import warnings
from collections.abc import Callable
from pathlib import Path

import pytest
from sqlalchemy import select

from facesearch import Library
from facesearch.api import create_app
from facesearch.api.uploads import UploadStore, check_photo
from facesearch.governance import add_user
from facesearch.governance.erasure import erase
from facesearch.store.schema import FaceRow, ImageRow
from tests.helpers import copy_library
from tests.test_api_auth import tiny_png

with warnings.catch_warnings():
    warnings.simplefilter("ignore")  # starlette's note that it prefers httpx2 to httpx
    from fastapi.testclient import TestClient

CASE = {"case_id": "case-9", "purpose": "find the person in the test photo"}
REMOVED = "by_identity/joe_biden/biden2.jpg"


def disk_bytes(folder: Path) -> bytes:
    """Everything the catalog's files hold on disk now (the database and its write-ahead log)."""
    return b"".join(p.read_bytes() for p in sorted(folder.glob("catalog.sqlite*")) if p.is_file())


def _remove(client: TestClient, admin: str, folder: Path, image_id: int) -> None:
    with Library.open(folder) as other:  # the CLI's or a script's process: another Library on the folder
        other.remove(image_id=image_id, actor="operator")


def _erase(client: TestClient, admin: str, folder: Path, image_id: int) -> None:
    with Library.open(folder) as other:
        erase(other, image_ids=[image_id], actor="operator", reason="request 12")


def _api_remove(client: TestClient, admin: str, folder: Path, image_id: int) -> None:
    response = client.delete(f"/v1/images/{image_id}", headers={"Authorization": f"Bearer {admin}"})
    assert response.status_code == 200, response.text


@pytest.mark.parametrize("removal", [_remove, _erase, _api_remove], ids=["remove", "erase", "api-remove"])
def test_a_removed_photo_leaves_no_path_or_thumbnail_on_disk_while_a_server_holds_the_catalog(
    tmp_path: Path,
    example_gallery: Path,
    shared_data: Path,
    removal: Callable[[TestClient, str, Path, int], None],
) -> None:
    """Issue 12 §6: ``remove`` left a removed face's thumbnail and path in the database file while a
    server held it open. Here the server has the catalog open (and has just searched) during the removal,
    run by another process's Library (remove, erase) or by the server itself."""
    folder = copy_library(example_gallery, tmp_path / "lib")
    with Library.open(folder) as lib:
        _, key = add_user(lib.catalog, "investigator-1", "investigator")
        _, admin = add_user(lib.catalog, "admin-1", "admin")
        with lib.catalog.session() as s:
            image_id, source = s.execute(
                select(ImageRow.id, ImageRow.source).where(ImageRow.source.like(f"%{REMOVED}"))
            ).one()
            thumbnails = list(s.scalars(select(FaceRow.thumbnail).where(FaceRow.image_id == image_id)))
    assert thumbnails and source.endswith(REMOVED)
    traces = [source.encode()] + [t[len(t) // 2 : len(t) // 2 + 64] for t in thumbnails]
    assert all(trace in disk_bytes(folder) for trace in traces)  # the check can see them while they exist

    probe = (shared_data / "face_recognition_examples" / "by_identity" / "joe_biden" / "biden.jpg").read_bytes()
    with TestClient(create_app(folder, rate_limit_per_minute=0, ingest_workers=1)) as client:
        searched = client.post(
            "/v1/search",
            headers={"Authorization": f"Bearer {key}"},
            files={"probe": ("probe.jpg", probe, "image/jpeg")},
            data=CASE,
        )
        assert searched.status_code == 200, searched.text
        removal(client, admin, folder, image_id)
        on_disk = disk_bytes(folder)
        left = [i for i, trace in enumerate(traces) if trace in on_disk]
        assert left == [], f"traces {left} of the removed photo are still on disk (0: its path; others: thumbnails)"
        again = client.post(
            "/v1/search",
            headers={"Authorization": f"Bearer {key}"},
            files={"probe": ("probe.jpg", probe, "image/jpeg")},
            data=CASE,
        )
        paths = [c["image"]["path"] for f in again.json()["faces"] for c in f["candidates"]]
        assert paths and source not in paths


def test_a_new_library_is_private_to_its_owner(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Issue 12 §6: ``catalog.sqlite`` and ``uploads/`` were readable by every local user. A library is
    created 0700 and its files 0600, whatever the umask of the process that created it."""
    monkeypatch.setattr(os, "umask", os.umask)  # restored by monkeypatch if a test changes it
    previous = os.umask(0o022)
    try:
        folder = tmp_path / "lib"
        with Library.open(folder, jitter=0) as lib:
            add_user(lib.catalog, "admin-1", "admin")
            with lib.writer.locked():  # the write lock's file
                pass
        with TestClient(create_app(folder, rate_limit_per_minute=0, ingest_workers=1)) as client:
            uploads: UploadStore = client.app.state.uploads
            uploads.store_photo(check_photo(tiny_png(), "a.png", 10**8))
            uploads.store_manifest('{"url": "https://example.com/a.jpg"}\n')
    finally:
        os.umask(previous)
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    found = list(folder.rglob("*"))
    names = {p.name for p in found}
    assert names >= {"catalog.sqlite", "config.json", "index.faiss", "index.json", "write.lock", "uploads", "manifests"}
    assert any(name.endswith(".png") for name in names)
    for path in found:
        mode = stat.S_IMODE(path.stat().st_mode)
        if path.is_dir():
            assert mode == 0o700, f"{path.relative_to(folder)} is {oct(mode)}"
        else:
            assert mode & 0o077 == 0, f"{path.relative_to(folder)} is {oct(mode)}"
