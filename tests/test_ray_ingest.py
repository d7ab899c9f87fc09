"""The Ray engine on a real Ray runtime (2 CPUs, this machine): the same library as the local engine.

One runtime serves the module (starting Ray takes seconds); the engine finds it running, uses it and
leaves it up, as it would a runtime its caller started. The same real photos, a truncated one and a
byte-identical copy go through both engines; images, faces, embeddings, rejections and reports must
match, and a second Ray run must add nothing.
"""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from facesearch import Library
from facesearch.errors import FaceSearchError
from facesearch.ingest.runner import IngestReport
from tests.conftest import EXAMPLES_COLLECTION as COLLECTION
from tests.conftest import new_engine_library
from tests.helpers import comparable_report, library_contents, missing


@pytest.fixture(scope="module")
def ray_runtime() -> Iterator[None]:
    try:
        import ray
    except ImportError:
        missing("ray is not installed (pip install 'facesearch[ray]'; make installs it)")
    ray.init(
        address="local",
        num_cpus=2,
        object_store_memory=200 * 1024 * 1024,
        include_dashboard=False,
        logging_level=logging.WARNING,
        log_to_driver=False,
    )
    try:
        yield
    finally:
        ray.shutdown()


def ingest(folder: Path, inputs: list[Path], engine: str, workers: int) -> IngestReport:
    with Library.open(new_engine_library(folder)) as lib:  # the settings of local_examples, the reference
        report = lib.index(inputs, collection=COLLECTION, workers=workers, engine=engine)
        assert len(lib.vector_index) == lib.catalog.face_count()
    return report


@pytest.fixture(scope="module")
def on_ray(
    tmp_path_factory: pytest.TempPathFactory, example_inputs: list[Path], ray_runtime: None
) -> tuple[Path, IngestReport]:
    folder = tmp_path_factory.mktemp("ray") / "lib"
    return folder, ingest(folder, example_inputs, "ray", workers=2)  # two actors


def test_ray_ingest_equals_local_ingest(
    local_examples: tuple[Path, IngestReport], on_ray: tuple[Path, IngestReport]
) -> None:
    assert comparable_report(on_ray[1]) == comparable_report(local_examples[1])
    assert on_ray[1].indexed == 20 and on_ray[1].faces >= 20 and on_ray[1].duplicates == 1
    assert [(Path(s).name, code) for s, code, _ in on_ray[1].rejected] == [("truncated.jpg", "truncated")]

    ray_lib, local_lib = library_contents(on_ray[0]), library_contents(local_examples[0])
    # Written in input order by the same writer: even the row ids agree.
    assert ray_lib["images"] == local_lib["images"]
    assert ray_lib["boxes"] == local_lib["boxes"]
    np.testing.assert_allclose(ray_lib["embeddings"], local_lib["embeddings"], atol=1e-5)
    assert ray_lib["rejections"] == local_lib["rejections"]
    assert ray_lib["ingests"] == local_lib["ingests"] == 1


def test_second_ray_run_from_the_cli_adds_nothing(
    on_ray: tuple[Path, IngestReport], example_inputs: list[Path]
) -> None:
    from facesearch.cli import app

    before = library_contents(on_ray[0])
    paths = [str(p) for p in example_inputs]
    result = CliRunner().invoke(
        app, ["index", *paths, "-c", COLLECTION, "-l", str(on_ray[0]), "--engine", "ray", "--json"]
    )
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    # Indexed sources are skipped before they are read; the copy is read again (it has no image row)
    # and found a duplicate; the truncated file is tried again and rejected again.
    assert report["already_indexed"] == 20 and report["indexed"] == 0 and report["faces"] == 0
    assert report["duplicates"] == 1 and [r["code"] for r in report["rejected"]] == ["truncated"]

    after = library_contents(on_ray[0])
    assert after["images"] == before["images"] and after["boxes"] == before["boxes"]
    assert after["rejections"] == before["rejections"] and after["ingests"] == 2
    with Library.open(on_ray[0]) as lib:
        assert len(lib.vector_index) == lib.catalog.face_count() == len(before["boxes"])


def test_clear_errors_without_ray_or_with_a_stray_address(
    tmp_path: Path, example_inputs: list[Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    from facesearch.ingest.ray_engine import import_ray

    with Library.open(tmp_path / "lib", jitter=0) as lib:
        with pytest.raises(FaceSearchError) as stray:
            lib.index(example_inputs, ray_address="ray://head:10001")
        assert stray.value.code == "bad_request"
        with pytest.raises(FaceSearchError) as unknown:
            lib.index(example_inputs, engine="spark")
        assert unknown.value.code == "bad_request"

    monkeypatch.setitem(sys.modules, "ray", None)  # what an environment without the extra sees
    with pytest.raises(FaceSearchError) as missing:
        import_ray()
    assert missing.value.code == "ray_missing" and "pip install 'facesearch[ray]'" in str(missing.value)
