"""Ingestion on real photos: bad files, duplicates, manifests, URLs, and resume after kill -9."""

from __future__ import annotations

import dataclasses
import functools
import json
import logging
import multiprocessing
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from facesearch import Library
from facesearch.errors import FaceSearchError
from facesearch.ingest.runner import IngestReport, IngestRun
from facesearch.ingest.sources import expand
from tests.conftest import EXAMPLES_COLLECTION, new_engine_library
from tests.helpers import PURPOSE, cli_ok, comparable_report, library_contents, png_header_only
from tests.process_helpers import HeldPhoto, children, start_when_allowed, wait_for


@pytest.fixture()
def good_photos(shared_data: Path) -> list[Path]:
    folder = shared_data / "face_recognition_examples" / "by_identity"
    return [
        folder / "barack_obama" / "obama.jpg",
        folder / "joe_biden" / "biden.jpg",
        folder / "rose_leslie" / "img2.jpg",
    ]


def test_bad_files_are_recorded_and_good_ones_indexed(tmp_path: Path, good_photos: list[Path]) -> None:
    batch = tmp_path / "batch"
    batch.mkdir()
    for photo in good_photos:
        shutil.copy(photo, batch / photo.name)
    (batch / "empty.jpg").write_bytes(b"")
    (batch / "truncated.jpg").write_bytes(good_photos[0].read_bytes()[:5000])
    (batch / "notes.jpg").write_text("this is a text file renamed to .jpg\n")
    (batch / "huge.png").write_bytes(png_header_only(100_000, 100_000))
    (batch / "readme.txt").write_text("not a photo suffix: ignored in folders")

    manifest = tmp_path / "more.csv"
    manifest.write_text(f"path\n{tmp_path / 'missing.jpg'}\n")

    with Library.open(new_engine_library(tmp_path / "lib")) as lib:  # the recipe is not the subject (issue 11)
        # Issue 12 §7: a missing path named by the operator is an error that indexes nothing; a missing
        # file that a manifest names is a recorded rejection, as before.
        with pytest.raises(FaceSearchError, match="missing.jpg") as typo:
            lib.index([batch, tmp_path / "missing.jpg"], workers=2)
        assert typo.value.code == "not_found" and lib.stats()["images"] == 0
        report = lib.index([batch, manifest], workers=2)
        reasons = {Path(source).name: code for source, code, _ in report.rejected}
        assert reasons == {
            "empty.jpg": "empty_file",
            "truncated.jpg": "truncated",
            "notes.jpg": "not_an_image",
            "huge.png": "too_many_pixels",
            "missing.jpg": "not_found",
        }
        assert report.indexed == 3 and report.faces == 3
        stored = {Path(r.source).name: r.code for r in lib.catalog.rejections()}
        assert stored == reasons
        assert all(r.message for r in lib.catalog.rejections())

        again = lib.index([batch], workers=1)
        assert again.already_indexed == 3 and again.indexed == 0

        shutil.copy(good_photos[0], batch / "copy_of_obama.jpg")
        dup = lib.index([batch / "copy_of_obama.jpg"], workers=1)
        assert dup.duplicates == 1 and dup.indexed == 0
        assert lib.stats()["faces"] == 3


def test_manifests_keep_page_and_metadata(tmp_path: Path, good_photos: list[Path]) -> None:
    csv_manifest = tmp_path / "photos.csv"
    csv_manifest.write_text(
        f"path,source_url,photographer\n{good_photos[0]},https://example.org/page/1,Alice\n{good_photos[1]},,Bob\n"
    )
    jsonl_manifest = tmp_path / "more.jsonl"
    jsonl_manifest.write_text(
        json.dumps({"path": str(good_photos[2]), "page_url": "https://example.org/p/3", "year": 2011}) + "\n"
    )
    with Library.open(new_engine_library(tmp_path / "lib")) as lib:
        lib.create_collection("press")
        report = lib.index([csv_manifest, jsonl_manifest], collection="press", workers=1)
        assert report.indexed == 3
        result = lib.search(good_photos[0], top_k=1, purpose=PURPOSE)
        image = result.faces[0].candidates[0].image
        assert image.path == str(good_photos[0].resolve()) and image.page_url == "https://example.org/page/1"
        with lib.catalog.session() as s:
            from sqlalchemy import select

            from facesearch.store.schema import ImageRow

            metas = {Path(r.source).name: (r.meta, r.page_url) for r in s.scalars(select(ImageRow))}
        assert metas[good_photos[0].name][0] == {"photographer": "Alice"}
        assert metas[good_photos[1].name] == ({"photographer": "Bob"}, None)
        assert metas[good_photos[2].name] == ({"year": 2011}, "https://example.org/p/3")


@pytest.fixture()
def photo_server(shared_data: Path):
    root = shared_data / "face_recognition_examples"
    handler = functools.partial(SimpleHTTPRequestHandler, directory=str(root))
    handler.log_message = lambda *a, **k: None  # type: ignore[attr-defined]
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def test_urls_need_the_private_flag_on_loopback(tmp_path: Path, photo_server: str) -> None:
    url = f"{photo_server}/by_identity/joe_biden/biden2.jpg"
    manifest = tmp_path / "urls.jsonl"
    manifest.write_text(
        json.dumps({"url": url, "source_url": "https://news.example/story"})
        + "\n"
        + json.dumps({"url": f"{photo_server}/LICENSE_face_recognition_code_MIT.txt"})
        + "\n"
    )
    with Library.open(new_engine_library(tmp_path / "lib")) as lib:
        refused = lib.index([manifest], workers=1)
        assert {code for _, code, _ in refused.rejected} == {"private_address"} and refused.indexed == 0

        allowed = lib.index([manifest], workers=1, allow_private_urls=True)
        assert allowed.indexed == 1 and allowed.faces == 1
        assert [code for _, code, _ in allowed.rejected] == ["bad_content_type"]
        image = lib.search(_download(url, tmp_path), purpose=PURPOSE).faces[0].candidates[0].image
        assert image.source_url == url and image.path is None and image.page_url == "https://news.example/story"


def _download(url: str, folder: Path) -> Path:
    import httpx

    target = folder / "probe.jpg"
    target.write_bytes(httpx.get(url).content)
    return target


def _count(db: Path, table: str) -> int:
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5) as con:
            return con.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0]
    except sqlite3.OperationalError:
        return 0


def test_resume_after_kill_9(tmp_path: Path, shared_data: Path) -> None:
    """A CLI ingest killed by kill -9 midway resumes, losing and duplicating nothing. Issue 12 §4 too: the
    photos it committed before the kill each name an audit entry that exists, its opening ``ingest_begin``
    (written before the first photo; before, the entry came only at the end, so the kill left none)."""
    people = sorted((shared_data / "lfw-dev" / "images").iterdir())[:400]
    photos = [str(p) for person in people for p in sorted(person.iterdir())][:120]
    library = tmp_path / "lib"
    command = [sys.executable, "-m", "facesearch.cli", "index", *photos, "-l", str(library), "--workers", "2"]
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    # The library made first without jitter and with HOG without upsampling (``new_engine_library``): the recipe
    # and the detector are not the subject (issue 11, the suite's speed: LFW's faces are large, and upsampling
    # cost ~4 times the CPU per photo). The killed process and the resuming command both index into it.
    new_engine_library(library)
    proc = subprocess.Popen(
        command,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
        env=env,
    )
    db = library / "catalog.sqlite"
    deadline = time.monotonic() + 300  # bounds a state that must come (slow machines take long)
    while _count(db, "images") < 20 and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.05)  # polling the catalog: the kill lands as soon as 20 photos are in
    done_before_kill = _count(db, "images")
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert 20 <= done_before_kill < len(photos), "the kill must land mid-run"
    with sqlite3.connect(db) as con:
        named = con.execute(
            "SELECT i.audit_seq, a.action FROM images i LEFT JOIN audit_log a ON a.seq = i.audit_seq GROUP BY 1, 2"
        ).fetchall()
    assert len(named) == 1 and named[0][0] is not None and named[0][1] == "ingest_begin", named

    finished = cli_ok(*command[3:], "--json")  # resumed by the same command, here in this process
    report = json.loads(finished.stdout)
    assert report["already_indexed"] >= done_before_kill
    assert report["already_indexed"] + report["indexed"] + report["duplicates"] + len(report["rejected"]) == len(photos)

    with Library.open(library) as lib:
        with sqlite3.connect(db) as con:
            sources = [r[0] for r in con.execute("SELECT source FROM images")]
            faces = con.execute("SELECT COUNT(*) FROM faces").fetchone()[0]
        assert sorted(sources) == sorted(set(sources)), "an image was indexed twice"
        assert set(sources) | {s for s, _, _ in report["rejected"]} == set(photos), "a photo was lost"
        assert lib.doctor(repair=False)["ok"]
        assert len(lib.vector_index) == faces
        probe = photos[7]
        assert lib.search(probe, top_k=1, purpose=PURPOSE).faces[0].candidates[0].image.path == probe


def _same_as_reference(folder: Path, reference: Path) -> None:
    import numpy as np

    got, expected = library_contents(folder), library_contents(reference)
    assert got["images"] == expected["images"] and got["boxes"] == expected["boxes"]
    np.testing.assert_allclose(got["embeddings"], expected["embeddings"], atol=1e-5)
    assert got["rejections"] == expected["rejections"]


def test_a_local_worker_killed_while_starting_is_replaced_and_no_photo_is_blamed(
    tmp_path: Path,
    example_inputs: list[Path],
    local_examples: tuple[Path, Any],
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The local engine's pool: a process killed before it has loaded its models held no photo, so the
    pool starts again and no photo is retried alone or rejected as worker_crashed."""
    allowed = multiprocessing.get_context("spawn").Event()
    real = IngestRun._worker_initializer
    monkeypatch.setattr(IngestRun, "_worker_initializer", lambda self: (start_when_allowed, (real(self), allowed)))
    killed: list[int] = []

    def kill_one_while_starting() -> None:
        try:
            child = wait_for(children, "a worker process")[0]
            child.kill()  # no process can have finished starting: none is allowed yet
            killed.append(child.pid)
        finally:
            allowed.set()

    killer = threading.Thread(target=kill_one_while_starting, daemon=True)
    killer.start()
    folder = tmp_path / "lib"
    with (
        caplog.at_level(logging.WARNING, logger="facesearch.ingest.runner"),
        Library.open(new_engine_library(folder)) as lib,
    ):
        report = lib.index(example_inputs, collection=EXAMPLES_COLLECTION, workers=2)
    killer.join()
    assert killed and any("died while starting" in r.getMessage() for r in caplog.records)
    assert comparable_report(report) == comparable_report(local_examples[1])
    _same_as_reference(folder, local_examples[0])


def test_a_spawn_that_fails_while_a_process_dies_starts_the_pool_again(
    tmp_path: Path, shared_data: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 11 (a suite that never flakes): CPython 3.11's executor, spawning the pool's next process just as
    the killed one's queue is closed, can raise ValueError ("bad value(s) in fds_to_keep") from submit. That
    is a death while starting like the others: the pool starts again and every photo is indexed once. The
    race is rare (2 runs in 19 of the kill test above): the error is raised here, once, at that submit."""
    from concurrent.futures import ProcessPoolExecutor

    from facesearch.ingest.runner import CHUNK_SIZE

    photos = sorted((shared_data / "lfw-dev" / "images").glob("A*/*.jpg"))[: CHUNK_SIZE + 2]  # two chunks
    real_submit = ProcessPoolExecutor.submit
    calls: list[int] = []

    def submit(self: ProcessPoolExecutor, fn: Any, *args: Any, **kwargs: Any) -> Any:
        calls.append(1)
        if len(calls) == 2:  # the first pool's second start-up ping, which spawns its second process
            for process in list(self._processes.values()):  # what the race follows: the first one killed
                process.kill()
                process.join()
            raise ValueError("bad value(s) in fds_to_keep")
        return real_submit(self, fn, *args, **kwargs)

    monkeypatch.setattr(ProcessPoolExecutor, "submit", submit)
    with (
        caplog.at_level(logging.WARNING, logger="facesearch.ingest.runner"),
        Library.open(new_engine_library(tmp_path / "lib")) as lib,
    ):
        report = lib.index(photos, collection=EXAMPLES_COLLECTION, workers=2)
        assert lib.catalog.image_count() == len(photos) == report.indexed and not report.rejected
    assert any("died while starting" in r.getMessage() for r in caplog.records)
    assert children() == []


def test_a_local_worker_killed_mid_chunk_loses_and_duplicates_nothing(
    tmp_path: Path, example_inputs: list[Path], local_examples: tuple[Path, Any]
) -> None:
    """The local engine's pool: the process reading a photo of its chunk (a named pipe, so the kill
    lands while it is known to hold it; a copy of obama.jpg) is killed; everything is done once."""
    held = HeldPhoto(tmp_path / "held_copy_of_obama.jpg", (example_inputs[2] / "same_bytes_as_obama.jpg").read_bytes())
    killer = threading.Thread(target=held.kill_first_reader_then_serve, daemon=True)
    killer.start()
    folder = tmp_path / "lib"
    with Library.open(new_engine_library(folder)) as lib:
        report = lib.index([*example_inputs, held.path], collection=EXAMPLES_COLLECTION, workers=2)
    killer.join()
    assert held.killed, "no worker process read the held photo"
    expected = comparable_report(local_examples[1])
    expected.update(total=expected["total"] + 1, duplicates=expected["duplicates"] + 1)
    assert comparable_report(report) == expected
    _same_as_reference(folder, local_examples[0])


def test_worker_processes_that_keep_dying_while_starting_end_a_local_run_clearly(
    tmp_path: Path, example_inputs: list[Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    allowed = multiprocessing.get_context("spawn").Event()  # never set: no process ever starts
    real = IngestRun._worker_initializer
    monkeypatch.setattr(IngestRun, "_worker_initializer", lambda self: (start_when_allowed, (real(self), allowed)))
    done = threading.Event()

    def kill_every_worker() -> None:
        while not done.is_set():
            for child in children():
                child.kill()
            done.wait(0.01)

    killer = threading.Thread(target=kill_every_worker, daemon=True)
    killer.start()
    try:
        with Library.open(tmp_path / "lib", jitter=0) as lib:
            with pytest.raises(FaceSearchError, match="while starting") as caught:
                lib.index(example_inputs, collection=EXAMPLES_COLLECTION, workers=2)
            assert caught.value.code == "worker_crashed"
            assert lib.catalog.image_count() == 0 and lib.catalog.rejections() == []  # no photo blamed
    finally:
        done.set()
        killer.join()
    assert children() == []


def test_a_start_up_error_in_a_worker_is_raised_as_itself(tmp_path: Path, example_inputs: list[Path]) -> None:
    """A worker whose models cannot load raises that error once (not a crash, not every photo rejected)."""
    with Library.open(tmp_path / "lib", jitter=0) as lib:
        collection = lib.catalog.collection_id("c")
        settings = dataclasses.replace(lib.ingester.worker_settings(False, 2), backend="no-such-backend")
        run = IngestRun(
            settings,
            store=lambda results: lib.ingester.store(collection, results),
            checkpoint=lib.save_index,
            workers=2,
        )
        sources = list(expand(example_inputs))
        with pytest.raises(FaceSearchError, match="no-such-backend") as caught:
            run.run(collection, IngestReport(collection="c", total=len(sources)), sources, None)
        assert caught.value.code == "bad_embedder" and lib.catalog.image_count() == 0
    assert children() == []


def test_a_run_of_one_chunk_of_photos_or_none_starts_no_worker_process(tmp_path: Path, shared_data: Path) -> None:
    """Issue 11 (test suite speed): with the default worker count (one per core), a run never starts more
    processes than it has chunks of photos (CHUNK_SIZE photos each). One chunk, or none left to read, is read
    in this process: a pool would cost ~2.4 s of CPU per process to start. The progress callback runs while
    the run's processes are alive."""
    from facesearch.ingest.runner import CHUNK_SIZE

    people = shared_data / "face_recognition_examples" / "by_identity"
    photo = people / "joe_biden" / "biden.jpg"
    others = [people / "barack_obama" / "obama2.jpg", people / "joe_biden" / "biden2.jpg"]
    assert 1 + len(others) <= CHUNK_SIZE
    processes: list[int] = []

    def progress(event: str, count: int, report: IngestReport) -> None:
        processes.append(len(children()))

    with Library.open(new_engine_library(tmp_path / "lib")) as lib:  # the detector is not the subject (issue 11)
        first = lib.index([photo], progress=progress)
        again = lib.index([photo], progress=progress)  # already indexed: nothing to read
        several = lib.index([photo, *others], progress=progress)  # one chunk to read
    assert first.indexed == 1 and again.already_indexed == 1 and again.indexed == 0
    assert several.indexed == len(others) and several.already_indexed == 1
    assert len(processes) >= 5 and processes == [0] * len(processes)
