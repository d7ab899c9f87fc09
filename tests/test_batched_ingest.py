"""The batched engine (ingest/batched_engine.py) on this machine's CPU: the local engine's library.

On a GPU the engine runs the CNN detector and the ResNet there; here the same code runs them on the
CPU (the detector through PyTorch, as on a GPU; the ResNet through ONNX Runtime), so what is checked
is the orchestration: worker processes holding photos while the device batches them, score maps
routed back to the right process, fallbacks, embedding in large batches, writing in input order,
and a worker process killed mid-run. The libraries must equal the local engine's row for row.
"""

from __future__ import annotations

import json
import logging
import multiprocessing
import threading
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from facesearch import Library
from facesearch.errors import FaceSearchError
from facesearch.ingest.batched_engine import BatchedIngestRun, BatchSizes
from facesearch.ingest.runner import IngestReport
from facesearch.ingest.sources import expand
from tests.conftest import EXAMPLES_COLLECTION as COLLECTION
from tests.conftest import new_engine_library
from tests.helpers import comparable_report, library_contents
from tests.process_helpers import HeldPhoto, children, start_when_allowed, wait_for


@pytest.fixture(scope="module")
def batched_examples(tmp_path_factory: pytest.TempPathFactory, example_inputs: list[Path]) -> tuple[Path, IngestReport]:
    folder = tmp_path_factory.mktemp("batched") / "lib"
    with Library.open(new_engine_library(folder)) as lib:
        report = lib.index(example_inputs, collection=COLLECTION, workers=2, engine="batched")
        assert len(lib.vector_index) == lib.catalog.face_count()
    return folder, report


def assert_same_library(folder: Path, reference: Path) -> None:
    got, expected = library_contents(folder), library_contents(reference)
    assert got["images"] == expected["images"]  # written in input order: even the row ids agree
    assert got["boxes"] == expected["boxes"]
    np.testing.assert_allclose(got["embeddings"], expected["embeddings"], atol=1e-5)
    assert got["rejections"] == expected["rejections"]
    assert got["ingests"] == expected["ingests"] == 1


def test_batched_ingest_equals_local_ingest(
    local_examples: tuple[Path, IngestReport], batched_examples: tuple[Path, IngestReport]
) -> None:
    """The default recipe (but jitter and HOG's upsampling: ``new_engine_library``): HOG in the workers, the CNN
    only where HOG finds no face, flip-averaged embeddings."""
    report = batched_examples[1]
    assert comparable_report(report) == comparable_report(local_examples[1])
    assert report.indexed == 20 and report.faces >= 20 and report.duplicates == 1
    assert [(Path(s).name, code) for s, code, _ in report.rejected] == [("truncated.jpg", "truncated")]
    assert_same_library(batched_examples[0], local_examples[0])


def test_second_batched_run_from_the_cli_adds_nothing(
    batched_examples: tuple[Path, IngestReport], example_inputs: list[Path]
) -> None:
    from facesearch.cli import app

    before = library_contents(batched_examples[0])
    paths = [str(p) for p in example_inputs]
    args = ["index", *paths, "-c", COLLECTION, "-l", str(batched_examples[0]), "--engine", "batched", "--json"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["already_indexed"] == 20 and report["indexed"] == 0 and report["faces"] == 0
    assert report["duplicates"] == 1 and [r["code"] for r in report["rejected"]] == ["truncated"]
    after = library_contents(batched_examples[0])
    assert after["images"] == before["images"] and after["boxes"] == before["boxes"] and after["ingests"] == 2


def test_a_worker_killed_mid_run_loses_and_duplicates_nothing(
    tmp_path: Path,
    example_inputs: list[Path],
    local_examples: tuple[Path, IngestReport],
    caplog: pytest.LogCaptureFixture,
) -> None:
    """SIGKILL the worker process that is reading a photo of its chunk: the chunk's photos are done
    again elsewhere, nothing twice. The photo is a named pipe (tests/process_helpers.py), so the kill
    lands while the worker is known to hold it; its content is a copy of obama.jpg (a duplicate)."""
    held = HeldPhoto(tmp_path / "held_copy_of_obama.jpg", (example_inputs[2] / "same_bytes_as_obama.jpg").read_bytes())
    killer = threading.Thread(target=held.kill_first_reader_then_serve, daemon=True)
    killer.start()
    folder = tmp_path / "lib"
    with (
        caplog.at_level(logging.WARNING, logger="facesearch.ingest.batched_engine"),
        Library.open(new_engine_library(folder)) as lib,
    ):
        report = lib.index([*example_inputs, held.path], collection=COLLECTION, workers=2, engine="batched")
        assert len(lib.vector_index) == lib.catalog.face_count()
    killer.join()
    assert held.killed, "no worker process read the held photo"
    assert any("worker process died" in r.getMessage() for r in caplog.records), "the kill was not noticed"
    expected = comparable_report(local_examples[1])
    expected.update(total=expected["total"] + 1, duplicates=expected["duplicates"] + 1)
    assert comparable_report(report) == expected
    assert_same_library(folder, local_examples[0])


def test_a_worker_killed_while_starting_is_replaced_and_no_photo_is_blamed(
    tmp_path: Path,
    example_inputs: list[Path],
    local_examples: tuple[Path, IngestReport],
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """SIGKILL a worker process before it has loaded its models: it held no photo, so it is replaced
    and the library is complete (no photo retried or rejected for it)."""
    allowed = multiprocessing.get_context("spawn").Event()
    real = BatchedIngestRun._worker_initializer
    monkeypatch.setattr(
        BatchedIngestRun, "_worker_initializer", lambda self, prep: (start_when_allowed, (real(self, prep), allowed))
    )
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
        caplog.at_level(logging.WARNING, logger="facesearch.ingest.batched_engine"),
        Library.open(new_engine_library(folder)) as lib,
    ):
        report = lib.index(example_inputs, collection=COLLECTION, workers=2, engine="batched")
    killer.join()
    messages = [r.getMessage() for r in caplog.records]
    assert killed and any("died while starting" in m for m in messages), messages
    assert not any("retrying its photos" in m for m in messages)  # no photo was held by it
    assert comparable_report(report) == comparable_report(local_examples[1])
    assert_same_library(folder, local_examples[0])


def test_worker_processes_that_keep_dying_while_starting_end_the_run_clearly(
    tmp_path: Path, example_inputs: list[Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every worker killed before it starts: the run ends as worker_crashed (no photo rejected for it),
    leaves no process behind and writes nothing."""
    allowed = multiprocessing.get_context("spawn").Event()  # never set: no process ever starts
    real = BatchedIngestRun._worker_initializer
    monkeypatch.setattr(
        BatchedIngestRun, "_worker_initializer", lambda self, prep: (start_when_allowed, (real(self, prep), allowed))
    )
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
                lib.index(example_inputs, collection=COLLECTION, workers=2, engine="batched")
            assert caught.value.code == "worker_crashed"
            assert lib.catalog.image_count() == 0 and lib.catalog.face_count() == 0
    finally:
        done.set()
        killer.join()
    assert children() == []


def test_clear_errors_for_engine_precision_and_detector(tmp_path: Path, example_inputs: list[Path]) -> None:
    from facesearch.cli import app

    with Library.open(tmp_path / "lib", jitter=0) as lib:
        with pytest.raises(FaceSearchError) as cpu_precision:
            lib.index(example_inputs, engine="batched", precision="bfloat16")  # no GPU: ONNX float32 embeds
        assert cpu_precision.value.code == "bad_request" and "--device cuda" in str(cpu_precision.value)
        with pytest.raises(FaceSearchError) as bad_precision:
            lib.index(example_inputs, engine="batched", precision="float8")
        assert bad_precision.value.code == "bad_request"
        with pytest.raises(FaceSearchError) as unknown:
            lib.index(example_inputs, engine="spark")
        assert "'batched'" in str(unknown.value)
        assert lib.catalog.face_count() == 0
    with pytest.raises(FaceSearchError) as bad_detector:
        Library.open(tmp_path / "other", detector="yolo")
    assert bad_detector.value.code == "bad_request" and not (tmp_path / "other").exists()
    result = CliRunner().invoke(
        app, ["index", str(example_inputs[0]), "-l", str(tmp_path / "lib"), "--detector", "cnn"]
    )
    assert result.exit_code != 0 and "--detector can only be set when a library is created" in result.output


def test_a_failing_writer_stops_the_run_with_its_error_and_leaves_no_process(
    tmp_path: Path, example_inputs: list[Path]
) -> None:
    """The writer runs on its own thread: its failure (here a full disk, which cannot be caused for
    real on this machine) must reach the caller, not hang the engine or leave worker processes behind."""
    calls: list[int] = []
    # No jitter, HOG without upsampling (``new_engine_library``; issue 11, the suite's speed): the workers read
    # ahead of the writer, and the detector is not the subject.
    with Library.open(new_engine_library(tmp_path / "lib")) as lib:
        collection = lib.catalog.collection_id("c")

        def store_then_fail(results: list) -> list:
            calls.append(len(results))
            if len(calls) == 2:
                raise OSError(28, "No space left on device")
            return lib.ingester.store(collection, results)

        run = BatchedIngestRun(
            lib.ingester.worker_settings(False, 2),
            store=store_then_fail,
            checkpoint=lib.save_index,
            workers=2,
            sizes=BatchSizes(chunk=2, detect=2, embed=4, write=2, open_photos=6, held_bytes=2**30),
        )
        sources = list(expand(example_inputs))
        with lib.writer.locked(), pytest.raises(OSError, match="No space left"):
            run.run(collection, IngestReport(collection="c", total=len(sources)), sources, None)
        assert len(calls) >= 2 and lib.catalog.image_count() == calls[0]  # the first batch was written
        assert len(lib.vector_index) == lib.catalog.face_count()
    assert multiprocessing.active_children() == []
