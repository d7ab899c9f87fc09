"""The batched engine (ingest/batched_engine.py) with the CNN detector run in batches through PyTorch on the CPU:
the same boxes and embeddings as the local engine, photo by photo with ONNX Runtime.

A module apart from tests/test_batched_ingest.py (issue 11, the suite's speed): its tests build their own
libraries (no module fixture in common) and are among the longest of the suite; pytest-xdist
(``--dist loadscope``) schedules a module as one unit, so apart they can run beside the other batched tests.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from facesearch import Library
from facesearch.ingest.batched_engine import BatchedIngestRun, BatchSizes
from facesearch.ingest.runner import IngestReport
from facesearch.ingest.sources import expand
from tests.helpers import comparable_report, library_contents, missing


def lfw_photos(shared_data: Path, count: int) -> list[Path]:
    """LFW photos (250x250: one batch shape) of several people, some with two photos."""
    images = shared_data / "lfw-dev" / "images"
    people = sorted(p for p in images.iterdir() if len(list(p.iterdir())) >= 2)[:count]
    return [sorted(person.iterdir())[i] for person in people for i in range(2)][:count]


def test_cnn_library_batched_on_the_device_equals_local(tmp_path: Path, shared_data: Path) -> None:
    """A CNN-detector library: the detector runs through PyTorch in batches of same-size photos, its
    score maps go back to the process holding each photo; boxes and embeddings equal the local engine's."""
    try:
        import torch  # noqa: F401
    except ImportError:
        missing("PyTorch is not installed (pip install 'facesearch[gpu]'; make installs the CPU build)")
    photos = lfw_photos(shared_data, 12)
    # Other sizes (partial batches; no faces), small ones (issue 11, the suite's speed): the CNN upsamples each
    # photo 2x, three times here; the first three negatives (up to 773x576) took ~7 s of CPU of this test.
    negatives = [shared_data / "negatives" / "skimage" / name for name in ("chelsea.png", "coins.png", "text.png")]
    inputs = [*photos, *negatives]
    folders = {}
    reports = {}
    for engine in ("local", "batched"):
        folders[engine] = tmp_path / engine
        with Library.open(folders[engine], jitter=0, detector="cnn") as lib:
            assert lib.config.detector_kind == "cnn" and lib.config.detector_fallback == "none"
            lib.create_collection("lfw")
            reports[engine] = lib.index(inputs, collection="lfw", workers=1 if engine == "local" else 2, engine=engine)
    # The same engine squeezed: batches of 2, 4 photos open, no room for pixels (each photo is held
    # alone and flushed at once): slower, never stuck, the same library.
    folders["squeezed"] = tmp_path / "squeezed"
    with Library.open(folders["squeezed"], jitter=0, detector="cnn") as lib:
        collection = lib.catalog.collection_id("lfw")
        run = BatchedIngestRun(
            lib.ingester.worker_settings(False, 2),
            store=lambda results: lib.ingester.store(collection, results),
            checkpoint=lib.save_index,
            workers=2,
            sizes=BatchSizes(chunk=2, detect=2, embed=3, write=3, open_photos=4, held_bytes=1),
        )
        sources = list(expand(inputs))
        with lib.writer.locked():  # what Library.index holds around a run
            reports["squeezed"] = run.run(collection, IngestReport(collection="lfw", total=len(sources)), sources, None)
        assert len(lib.vector_index) == lib.catalog.face_count()
    assert comparable_report(reports["batched"]) == comparable_report(reports["local"])
    assert reports["batched"].indexed == len(inputs) and reports["batched"].faces >= len(photos)
    for engine in ("batched", "squeezed"):
        got, expected = library_contents(folders[engine]), library_contents(folders["local"])
        assert got["images"] == expected["images"] and got["boxes"] == expected["boxes"], engine
        np.testing.assert_allclose(got["embeddings"], expected["embeddings"], atol=1e-5)
    assert reports["squeezed"].faces == reports["local"].faces and run.timings["detect_s"] > 0


def test_a_worker_detects_its_chunk_in_one_batch_when_the_detector_can(tmp_path: Path, shared_data: Path) -> None:
    """What a GPU actor of the Ray engine does: the chunk's photos decoded first, the CNN run on them
    together (here through PyTorch on the CPU), the same faces as photo by photo with ONNX Runtime."""
    try:
        from facesearch.models.detect.torch_batch import TorchBatchDetector
    except ImportError:
        missing("PyTorch is not installed (pip install 'facesearch[gpu]'; make installs the CPU build)")
    from facesearch.ingest.sources import Source
    from facesearch.ingest.worker import Worker

    photos = lfw_photos(shared_data, 5)
    (tmp_path / "broken.jpg").write_bytes(photos[0].read_bytes()[:3000])
    negative = shared_data / "negatives" / "skimage" / "chelsea.png"  # another size: a batch of its own
    sources = [Source(str(p), "file") for p in [*photos[:3], tmp_path / "broken.jpg", negative, *photos[3:]]]
    with Library.open(tmp_path / "lib", jitter=0, detector="cnn") as lib:
        settings = lib.ingester.worker_settings(False, 1)
        collection = lib.catalog.collection_id("c")
    one_by_one = Worker(settings)
    batched = Worker(settings)
    batched.pipeline.detector = TorchBatchDetector(batched.pipeline.detector.settings, device="cpu")
    assert batched.pipeline.detects_in_batches and not one_by_one.pipeline.detects_in_batches
    expected, got = one_by_one.process(collection, sources), batched.process(collection, sources)
    assert [(r.status, r.code) for r in got] == [(r.status, r.code) for r in expected]
    assert [r.code for r in got if r.status == "rejected"] == ["truncated"]
    assert sum(len(r.faces) for r in got) >= len(photos)
    for mine, theirs in zip(got, expected, strict=True):
        assert [f.box for f in mine.faces] == [f.box for f in theirs.faces]
        for a, b in zip(mine.faces, theirs.faces, strict=True):
            np.testing.assert_allclose(a.embedding, b.embedding, atol=1e-5)
