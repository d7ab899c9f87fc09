"""Library behaviour: removal, doctor, embedder backends, pluggable models (real photos)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from facesearch import Library
from facesearch.errors import FaceSearchError, LibraryError
from facesearch.ingest.runner import IngestReport
from facesearch.models.embed.factory import converted_dlib_resnet
from tests.conftest import new_engine_library
from tests.helpers import PURPOSE, cli_ok, copy_library, copy_on_vector_store, run_cli


@pytest.fixture(scope="module")
def people(shared_data: Path) -> Path:
    return shared_data / "face_recognition_examples" / "by_identity"


@pytest.fixture(scope="module")
def gallery(people: Path) -> list[str]:
    return [str(people / "barack_obama" / name) for name in ("obama1.jpg", "obama2.jpg", "obama3.jpg")] + [
        str(people / "joe_biden" / "biden2.jpg"),
        str(people / "rose_leslie" / "img2.jpg"),
    ]


@pytest.fixture(scope="module")
def indexed(tmp_path_factory: pytest.TempPathFactory, gallery: list[str]) -> tuple[Path, IngestReport]:
    """The gallery indexed once (closed): tests about what a library does with its faces work on copies of it
    (tests.helpers: copy_library, copy_on_vector_store). No jitter, HOG without upsampling (``new_engine_library``):
    the recipe and the detector are not what these tests are about (issue 11, the suite's speed)."""
    folder = tmp_path_factory.mktemp("indexed") / "lib"
    with Library.open(new_engine_library(folder)) as lib:
        report = lib.index(gallery, workers=1)
        assert report.indexed == len(gallery) and len(lib.vector_index) == lib.catalog.face_count()
    return folder, report


def copy_on_index_engine(library: Path, destination: Path, engine: str) -> Path:
    """A copy of a FAISS library whose index is rebuilt from the catalog with another FAISS ``engine`` on open."""
    copy_library(library, destination)
    config = json.loads((destination / "config.json").read_text())
    (destination / "config.json").write_text(json.dumps({**config, "index_engine": engine}))
    (destination / "index.faiss").unlink()
    return destination


def top_paths(lib: Library, probe: Path, **kwargs: object) -> list[str]:
    return [c.image.path for c in lib.search(probe, top_k=10, purpose=PURPOSE, **kwargs).faces[0].candidates]


@pytest.mark.parametrize("engine", ["Flat", "HNSW32", "milvus"])
def test_removal_takes_effect_at_once_and_survives_reopen(
    tmp_path: Path, people: Path, gallery: list[str], indexed: tuple[Path, IngestReport], engine: str
) -> None:
    probe = people / "barack_obama" / "obama.jpg"
    if engine == "milvus":
        copy_on_vector_store(indexed[0], tmp_path / "lib", "milvus")
    else:
        copy_on_index_engine(indexed[0], tmp_path / "lib", engine)
    with Library.open(tmp_path / "lib") as lib:
        assert lib.vector_index.engine == ("milvus:FLAT" if engine == "milvus" else engine)
        before = top_paths(lib, probe)
        assert before[0] in gallery[:3]
        receipt = lib.remove(source=before[0])
        assert receipt.sources == [before[0]] and len(receipt.face_ids) == 1
        after = top_paths(lib, probe)
        assert before[0] not in after and len(after) == len(before) - 1
        assert lib.catalog.faces_by_ids(receipt.face_ids) == {}
        assert lib.stats()["faces"] == 4
    with Library.open(tmp_path / "lib") as reopened:
        assert before[0] not in top_paths(reopened, probe)
        assert reopened.doctor(repair=False)["ok"]


def test_remove_by_image_and_collection(tmp_path: Path, people: Path, gallery: list[str]) -> None:
    with Library.open(new_engine_library(tmp_path / "lib")) as lib:  # the recipe is not the subject (issue 11)
        for name in ("a", "b"):
            lib.create_collection(name)  # ingest never creates one (issue 12 §3)
        lib.index(gallery[:3], collection="a", workers=1)
        lib.index(gallery[3:], collection="b", workers=1)
        hit = lib.search(people / "joe_biden" / "biden.jpg", top_k=1, purpose=PURPOSE).faces[0].candidates[0]
        assert hit.collection == "b"
        assert lib.remove(image_id=hit.image.image_id).image_ids == [hit.image.image_id]
        gone = lib.remove(collection="a")
        assert len(gone.image_ids) == 3
        assert [c["name"] for c in lib.stats()["collections"]] == ["b", "default"]  # a new library has "default"
        with pytest.raises(FaceSearchError, match="no collection named 'a'"):
            lib.search(people / "barack_obama" / "obama.jpg", collection="a", purpose=PURPOSE)
        with pytest.raises(FaceSearchError, match="exactly one"):
            lib.remove(source="x", collection="b")


def test_doctor_rebuilds_a_missing_or_corrupt_index(
    tmp_path: Path, people: Path, gallery: list[str], indexed: tuple[Path, IngestReport]
) -> None:
    folder = copy_library(indexed[0], tmp_path / "lib")
    (folder / "index.faiss").unlink()
    check = run_cli("doctor", "--check-only", "--json", "-l", str(folder))
    assert check.exit_code == 1
    assert "missing or unreadable" in json.loads(check.stdout)["problems"][0]
    fixed = cli_ok("doctor", "--json", "-l", str(folder))
    assert json.loads(fixed.stdout)["repaired"] is True
    with Library.open(folder) as lib:
        assert lib.doctor(repair=False) == {
            "ok": True,
            "problems": [],
            "repaired": False,
            "faces": 5,
            "vectors": 5,
            "warnings": [],
        }

    (folder / "index.faiss").write_bytes(b"\x00" * 100)  # corrupt: opening rebuilds it from the catalog
    with Library.open(folder) as lib:
        assert len(lib.vector_index) == 5
        assert top_paths(lib, people / "barack_obama" / "obama.jpg")[0] in gallery[:3]


def test_dlib_backend_gives_the_same_answers(tmp_path: Path, people: Path, gallery: list[str]) -> None:
    folder = tmp_path / "lib"
    probe = people / "barack_obama" / "obama.jpg"
    # The float model, which dlib runs; no jitter, HOG without upsampling (``new_engine_library``; issue 11, the
    # suite's speed): both backends embed the same chips, and averaging views is shared code (Embedder.embed).
    with Library.open(new_engine_library(folder, embedder="onnx", model="dlib_resnet_v1")) as lib:
        lib.index(gallery[:3], workers=1)
        onnx_result = lib.search(probe, purpose=PURPOSE)
    with Library.open(folder, embedder="dlib") as lib:
        lib.index(gallery[3:], workers=1)  # indexed by dlib itself into the same index
        dlib_result = lib.search(probe, purpose=PURPOSE)
        assert lib.embedder.backend == "dlib"
    onnx_top = {c.face_id: c.similarity for c in onnx_result.faces[0].candidates}
    dlib_top = {c.face_id: c.similarity for c in dlib_result.faces[0].candidates if c.face_id in onnx_top}
    assert len(dlib_top) == 3
    assert max(abs(onnx_top[i] - dlib_top[i]) for i in dlib_top) <= 2e-4
    out = cli_ok(
        "verify",
        str(probe),
        gallery[0],
        "--case",
        "T-1",
        "--purpose",
        "compare two photos for the tests",
        "--embedder",
        "dlib",
        "--json",
        "-l",
        str(folder),
    )
    assert json.loads(out.stdout)["same_person"] is True


def test_another_onnx_model_plugs_in_by_configuration(tmp_path: Path, people: Path, gallery: list[str]) -> None:
    # A real ONNX face model supplied by the operator: here our own converted file, copied elsewhere and
    # described only by configuration (path, chip size, preprocessing), as an ArcFace file would be.
    model_file = tmp_path / "operator-models" / "my-face-model.onnx"
    model_file.parent.mkdir()
    shutil.copy(converted_dlib_resnet(tmp_path / "cache"), model_file)
    spec = {
        "key": "operator-model-1",
        "path": str(model_file),
        "chip_size": 150,
        "chip_padding": 0.25,
        "input_format": "uint8_nhwc",
        "licence": "CC0-1.0",
    }
    folder = tmp_path / "lib"
    with Library.open(folder, onnx_model=spec) as lib:
        lib.index(gallery, workers=1)
        key = "operator-model-1+flip+jitter2.5"  # the default recipe: flip-averaged and jittered
        assert lib.model_info.key == key and lib.model_info.dim == 128
        assert [m.key for m in lib.catalog.models()] == [key]
        assert top_paths(lib, people / "barack_obama" / "obama.jpg")[0] in gallery[:3]
    with pytest.raises(LibraryError, match="never mixes models"):
        Library.open(folder, onnx_model=dict(spec, key="another-model"))
    with Library.open(folder) as again:  # reopening without options keeps the configured model
        assert again.model_info.key == key


def test_float_nchw_preprocessing_matches_the_graph_normalisation(tmp_path: Path) -> None:
    from facesearch.models.embed.info import OnnxModelSpec
    from facesearch.models.embed.onnx_embedder import OnnxEmbedder

    spec = OnnxModelSpec(
        key="k",
        path=str(converted_dlib_resnet(tmp_path)),
        chip_size=150,
        input_format="float_nchw",
        mean=(1.0, 2.0, 3.0),
        std=(2.0, 2.0, 2.0),
        channel_order="BGR",
    )
    chips = np.random.default_rng(0).integers(0, 255, size=(2, 150, 150, 3), dtype=np.uint8)
    x = OnnxEmbedder.__new__(OnnxEmbedder)
    x.spec = spec
    feed = x._preprocess(chips)
    assert feed.shape == (2, 3, 150, 150)
    assert np.isclose(feed[0, 0, 0, 0], (chips[0, 0, 0, 2] - 1.0) / 2.0)


def test_refuses_a_folder_that_is_not_a_library(tmp_path: Path) -> None:
    (tmp_path / "stuff.txt").write_text("mine")
    with pytest.raises(LibraryError, match="not a facesearch library"):
        Library.open(tmp_path)
    with pytest.raises(LibraryError, match="no facesearch library"):
        Library.open(tmp_path / "nothing", create=False)


def test_a_library_keeps_the_recipe_it_was_created_with(tmp_path: Path) -> None:
    from facesearch.config import LibraryConfig

    with Library.open(tmp_path / "new") as lib:
        assert lib.config.flip_average is True and lib.config.jitter == 2.5
        assert lib.model_info.key == "dlib_resnet_v1_int8r+flip+jitter2.5y"  # issue 15: int8 (7-bit weights), 6 views
        assert lib.pipeline.fallback is not None and lib.pipeline.fallback.name == "dlib_cnn_mmod"
    with Library.open(tmp_path / "plain", flip_average=False, jitter=0) as lib:
        assert lib.model_info.key == "dlib_resnet_v1"
    # A config written before these settings existed has no such keys: it embedded without them.
    config = json.loads((tmp_path / "plain" / "config.json").read_text())
    for key in ("flip_average", "jitter", "detector_fallback"):
        del config[key]
    (tmp_path / "plain" / "config.json").write_text(json.dumps(config))
    old = LibraryConfig.load(tmp_path / "plain")
    assert old.flip_average is False and old.jitter == 0 and old.detector_fallback == "none"


def test_min_quality_leaves_out_poor_faces_and_counts_them(
    tmp_path: Path, gallery: list[str], indexed: tuple[Path, IngestReport]
) -> None:
    everything = indexed[1]  # the same photos and recipe, indexed with no quality floor
    with Library.open(tmp_path / "good") as lib:
        # The three Obama photos are small, soft faces (quality 0.72-0.81); Biden's and Rose's score 0.89+.
        good = lib.index(gallery, workers=1, min_quality=0.85)
        kept = lib.stats()["faces"]
        with pytest.raises(FaceSearchError, match="between 0 and 1"):
            lib.index(gallery, min_quality=1.5)
    assert everything.low_quality_faces == 0 and everything.faces == len(gallery)
    assert good.indexed == everything.indexed, "a photo whose faces are all left out is still recorded"
    assert good.faces == kept == 2 and good.low_quality_faces == 3
    assert good.faces + good.low_quality_faces == everything.faces
    assert good.to_dict()["low_quality_faces"] == good.low_quality_faces


def test_cnn_fallback_finds_the_face_hog_misses(tmp_path: Path, shared_data: Path) -> None:
    # HOG finds no face in this LFW photo (a turned head); dlib's CNN does, and only then is it run.
    photo = shared_data / "lfw-dev" / "images" / "Andy_Roddick" / "Andy_Roddick_0005.jpg"
    with Library.open(tmp_path / "plain", flip_average=False, jitter=0) as lib:
        assert lib.pipeline.detector.detect(np.asarray(Image.open(photo).convert("RGB"))) == []
        faces = lib.faces(photo)
        assert len(faces) == 1 and 60 < faces[0]["box"][2] < 160
        report = lib.index([str(photo)], workers=1)
        assert report.faces == 1
    with Library.open(tmp_path / "old") as lib:
        lib.config.detector_fallback = "none"
        lib._pipeline = None
        assert lib.faces(photo) == []


def test_jitter_averages_shifted_alignments(tmp_path: Path, people: Path) -> None:
    from facesearch.media.decode import decode_image

    rgb = decode_image((people / "barack_obama" / "obama.jpg").read_bytes()).rgb
    with Library.open(tmp_path / "j") as jittered, Library.open(tmp_path / "p", jitter=0) as plain:
        face_j = jittered.pipeline.analyse(rgb)[0]
        face_p = plain.pipeline.analyse(rgb)[0]
    # issue 15: a new library shifts up and down only (jitter_axes "y"; the 4 shifts of "xy": test_jitter_axes.py)
    assert face_j.shifted_chips is not None and face_j.shifted_chips.shape == (2, 150, 150, 3)
    assert face_p.shifted_chips is None
    assert not np.array_equal(face_j.shifted_chips[0], face_j.chip), "a shifted chip differs from the centre one"
    similarity = float(face_j.embedding @ face_p.embedding)
    assert 0.97 < similarity < 0.99999, "jitter changes the embedding a little, never the person"
    assert np.isclose(np.linalg.norm(face_j.embedding), 1.0, atol=1e-5)
    # The jittered views agree closely on a sharp frontal face; the quality score then includes that.
    assert face_p.stability is None and face_j.stability is not None and 0.99 < face_j.stability < 1.0
    assert face_j.quality != face_p.quality and 0.0 <= face_j.quality <= 1.0


def test_a_model_cache_folder_set_in_the_environment_is_shared_by_libraries(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """$FACESEARCH_MODEL_CACHE: converted networks go to (and are read from) one folder, not each library's."""
    cache = tmp_path / "shared-models"
    monkeypatch.setenv("FACESEARCH_MODEL_CACHE", str(cache))
    with Library.open(tmp_path / "a", jitter=0) as a, Library.open(tmp_path / "b", jitter=0) as b:
        assert a.models_dir == b.models_dir == cache
        assert a.recipe.pipeline().models_dir == str(cache)
        assert a.pipeline.fallback is not None  # building the pipeline converts the ResNet and the CNN detector
        converted = sorted(p.name for p in cache.glob("*.onnx"))
        assert [name.split("-")[0] for name in converted] == ["dlib_mmod_human_face_v1", "dlib_resnet_v1"]
        stamps = [p.stat().st_mtime_ns for p in sorted(cache.glob("*.onnx"))]
        assert b.pipeline.fallback is not None  # the second library reads the same files: nothing converted again
        assert [p.stat().st_mtime_ns for p in sorted(cache.glob("*.onnx"))] == stamps
    assert not (tmp_path / "a" / "models").exists() and not (tmp_path / "b" / "models").exists()
    monkeypatch.setenv("FACESEARCH_MODEL_CACHE", "")  # empty: unset
    with Library.open(tmp_path / "a") as a:
        assert a.models_dir == tmp_path / "a" / "models"


def test_max_fpir_is_a_library_setting_kept_with_the_library(tmp_path: Path) -> None:
    """Issue 12 §2: max_fpir is set when a library is created (Python, `index --max-fpir`), stored in its
    config.json like max_fmr, and libraries created before the setting existed get the default, 0.01."""
    folder = tmp_path / "lib"
    with Library.open(folder, max_fpir=0.001) as lib:
        assert lib.config.max_fpir == 0.001 and lib.scoring.max_fpir(None) == 0.001
        assert lib.scoring.max_fpir(0.05) == 0.05  # one search's own choice
    assert json.loads((folder / "config.json").read_text())["max_fpir"] == 0.001
    with Library.open(folder) as lib:
        assert lib.config.max_fpir == 0.001
    with pytest.raises(LibraryError, match="has max FPIR 0.001"):
        Library.open(folder, max_fpir=0.2)
    older = json.loads((folder / "config.json").read_text())
    del older["max_fpir"]
    (folder / "config.json").write_text(json.dumps(older))
    with Library.open(folder) as lib:
        assert lib.config.max_fpir == 0.01
    (tmp_path / "photos").mkdir()  # a real folder: a missing one is refused first (issue 12 §7)
    refused = run_cli("index", str(tmp_path / "photos"), "--max-fpir", "0", "-l", str(tmp_path / "new"))
    assert refused.exit_code == 2 and "max-fpir must be between 0 and 1" in refused.stderr
    assert not (tmp_path / "new").exists()
