"""Issue 15, fewer gallery views: ``jitter_axes`` "y" embeds a face in its plain alignment and the two shifted up and
down (each mirrored: 6 views) instead of the 4 shifts of "xy" (10 views), ~40% less of the ResNet per face.

It is a recipe of its own (its own key, its own calibration): an index never mixes it with "xy", libraries created
before read "xy", a value nobody knows is refused wherever it enters, and every engine embeds the same 6 views.
Faces come from ../shared/data at test time; nothing of a real person is stored in the project.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from facesearch import Library
from facesearch.config import LibraryConfig
from facesearch.errors import LibraryError, ModelError
from facesearch.models.embed.info import DLIB_RESNET_INT8_KEY, DLIB_RESNET_INT8R_KEY, DLIB_RESNET_KEY
from facesearch.models.pipeline import FacePipeline, jitter_shifts
from facesearch.settings import LibrarySpec
from tests.helpers import library_contents, run_cli

XY_KEY = f"{DLIB_RESNET_INT8_KEY}+flip+jitter2.5"
Y_KEY = f"{DLIB_RESNET_INT8_KEY}+flip+jitter2.5y"


@pytest.fixture(scope="module")
def portrait(shared_data: Path) -> np.ndarray:
    from facesearch.media.decode import decode_image

    path = shared_data / "face_recognition_examples" / "by_identity" / "barack_obama" / "obama.jpg"
    return np.asarray(decode_image(path.read_bytes()).rgb)


@pytest.fixture(scope="module")
def lfw_photos(shared_data: Path) -> list[Path]:
    """Four lfw-dev photos (250 x 250, one face each): small enough for two engines' ingests."""
    people = sorted((shared_data / "lfw-dev" / "images").iterdir())
    return [sorted(person.glob("*.jpg"))[0] for person in people[:4]]


def test_the_y_shifts_are_the_vertical_half_of_xy() -> None:
    assert jitter_shifts(2.5, "xy") == ((2.5, 0.0), (-2.5, 0.0), (0.0, 2.5), (0.0, -2.5))
    assert jitter_shifts(2.5, "y") == ((0.0, 2.5), (0.0, -2.5)) == jitter_shifts(2.5, "xy")[2:]
    assert jitter_shifts(0.0, "y") == () == jitter_shifts(0.0, "xy")
    with pytest.raises(ModelError, match="unknown jitter axes 'z'"):
        jitter_shifts(2.5, "z")


def _counting(pipeline: FacePipeline) -> list[int]:
    """Records how many chips each embedding call gets (the real embedder still embeds them)."""
    calls: list[int] = []
    embed = pipeline.embedder.embed_with_stability

    def counted(chips: np.ndarray, *args: object, **kwargs: object):  # type: ignore[no-untyped-def]
        calls.append(len(chips))
        return embed(chips, *args, **kwargs)  # type: ignore[arg-type]

    pipeline.embedder.embed_with_stability = counted  # type: ignore[method-assign]
    return calls


def test_a_y_library_embeds_six_views_the_mean_of_the_same_views_of_xy(tmp_path: Path, portrait: np.ndarray) -> None:
    """3 chips per face (plain, up, down), each mirrored by the embedder: 6 views, not 10. Its chips are exactly xy's
    plain and vertical ones, and its descriptor is the average of those views of an xy pipeline's chips."""
    with (
        Library.open(tmp_path / "y", jitter_axes="y", model=DLIB_RESNET_INT8_KEY) as y,
        Library.open(tmp_path / "xy", jitter_axes="xy", model=DLIB_RESNET_INT8_KEY) as xy,
    ):
        assert y.config.jitter_axes == "y" and y.model_info.key == Y_KEY and "on y only" in y.model_info.name
        assert xy.model_info.key == XY_KEY and "only" not in xy.model_info.name
        y_calls, xy_calls = _counting(y.pipeline), _counting(xy.pipeline)
        (face,) = y.pipeline.analyse(portrait)
        (reference,) = xy.pipeline.analyse(portrait)
        assert y_calls == [3] and xy_calls == [5] and y.pipeline.flip  # x2 mirrored: 6 and 10 views
        assert face.shifted_chips is not None and reference.shifted_chips is not None
        assert len(face.shifted_chips) == 2 and len(reference.shifted_chips) == 4
        np.testing.assert_array_equal(face.chip, reference.chip)
        np.testing.assert_array_equal(face.shifted_chips, reference.shifted_chips[2:])
        views = np.concatenate([reference.chip[None], reference.shifted_chips[2:]])
        vector, stability = xy.embedder.embed_with_stability(views, flip=True, group=3)
        assert face.embedding is not None and reference.embedding is not None
        np.testing.assert_allclose(face.embedding, vector[0], atol=1e-6)
        assert face.stability == pytest.approx(float(stability[0]), abs=1e-6)
        assert float(face.embedding @ reference.embedding) < 0.99999  # another recipe: not the same vector


def test_the_recipe_key_names_the_axes_only_when_there_are_shifted_views() -> None:
    assert LibraryConfig(jitter_axes="xy").recipe_key(DLIB_RESNET_INT8_KEY) == XY_KEY  # unchanged since before
    assert LibraryConfig(jitter_axes="y").recipe_key(DLIB_RESNET_INT8_KEY) == Y_KEY
    for axes in ("xy", "y"):  # jitter 0: no shifted view, so the axes change nothing, nor the key
        assert LibraryConfig(jitter=0, jitter_axes=axes).recipe_key(DLIB_RESNET_KEY) == f"{DLIB_RESNET_KEY}+flip"


def test_a_config_without_jitter_axes_keeps_the_four_shifts(tmp_path: Path, portrait: np.ndarray) -> None:
    """A library created before the setting existed embedded with the 4 shifts: it reads "xy", keeps its key and
    its pipeline still cuts 4 shifted chips."""
    Library.open(tmp_path / "old", jitter_axes="xy").close()
    config = json.loads((tmp_path / "old" / "config.json").read_text())
    del config["jitter_axes"]
    (tmp_path / "old" / "config.json").write_text(json.dumps(config))
    assert LibraryConfig.load(tmp_path / "old").jitter_axes == "xy"
    with Library.open(tmp_path / "old") as lib:
        assert lib.model_info.key == XY_KEY
        (face,) = lib.pipeline.find_faces(portrait)
        assert face.shifted_chips is not None and len(face.shifted_chips) == 4


def test_a_new_library_gets_y_where_its_calibration_ships() -> None:
    """The y recipe of the int8 models has a shipped calibration: new libraries get it (labels calibrated from the
    first search, s-norm + cosine scores), with the 7-bit-weight model (the same descriptors on every CPU). Recipes
    without one keep the 4 shifts: the float model (dlib's embedder, a GPU, or asked for) and jitter 0 (no shifted
    views at all); the 4 shifts asked for get the 8-bit model, the int8 model calibrated for them."""
    from facesearch.search.calibration import default_calibration

    portable = f"{DLIB_RESNET_INT8R_KEY}+flip+jitter2.5y"
    for key in (Y_KEY, portable):
        shipped = default_calibration(key)
        assert shipped is not None and shipped.table("snorm_cos") is not None, key
    assert default_calibration(f"{DLIB_RESNET_INT8R_KEY}+flip+jitter2.5") is None
    config = LibrarySpec().new_config()
    assert (config.jitter_axes, config.model, config.score_normalization) == ("y", DLIB_RESNET_INT8R_KEY, "snorm_cos")
    assert config.recipe_key(config.model) == portable
    for spec, embedder in ((LibrarySpec(), "dlib"), (LibrarySpec(device="cuda"), "onnx")):
        float_config = spec.new_config(embedder)
        assert float_config.model == DLIB_RESNET_KEY and float_config.jitter_axes == "xy"
        assert float_config.recipe_key(DLIB_RESNET_KEY) == f"{DLIB_RESNET_KEY}+flip+jitter2.5"
    assert LibrarySpec(model=DLIB_RESNET_KEY).new_config().jitter_axes == "xy"
    assert LibrarySpec(jitter=0).new_config().jitter_axes == "xy"
    asked = LibrarySpec(jitter_axes="xy").new_config()  # still available when asked for
    assert asked.model == DLIB_RESNET_INT8_KEY and asked.recipe_key(asked.model) == XY_KEY


def test_an_unknown_value_is_refused_everywhere_it_enters(tmp_path: Path, xdg_cache: Path) -> None:
    with pytest.raises(LibraryError, match="jitter_axes 'xz' is not one of xy, y") as raised:
        LibrarySpec(jitter_axes="xz").new_config()
    assert raised.value.code == "bad_request"
    with pytest.raises(LibraryError, match="'xz' is not one of"):
        Library.open(tmp_path / "new", jitter_axes="xz")
    assert not (tmp_path / "new").exists()  # refused before anything is written

    Library.open(tmp_path / "lib").close()
    config = json.loads((tmp_path / "lib" / "config.json").read_text())
    (tmp_path / "lib" / "config.json").write_text(json.dumps({**config, "jitter_axes": "x"}))
    with pytest.raises(LibraryError, match="config.json: jitter_axes 'x' is not one of xy, y"):
        LibraryConfig.load(tmp_path / "lib")

    photo = str(tmp_path / "lib" / "config.json")  # never read: the option is refused first
    result = run_cli("index", photo, "--library", str(tmp_path / "cli"), "--jitter-axes", "xz", "--json")
    assert result.exit_code != 0 and "xz" in result.output and not (tmp_path / "cli").exists()
    env = {"XDG_CACHE_HOME": str(xdg_cache)}
    pairs = tmp_path / "pairs.txt"
    pairs.write_text("1\n")  # never read either
    elsewhere = ["--library", str(tmp_path / "none")]
    for command in (
        ["eval", "verify", "--pairs", str(pairs), *elsewhere],
        ["eval", "identify"],
        ["calibrate", "-o", str(pairs), *elsewhere],
    ):
        result = run_cli(*command, "--images", str(tmp_path), "--jitter-axes", "xz", "--json", env=env)
        assert result.exit_code != 0 and "xz" in result.output, result.output


def test_an_existing_library_keeps_its_axes(tmp_path: Path) -> None:
    """Fixed at creation like the model: asking an xy library for y is refused (Python, CLI); asking what it has, or
    nothing, opens it."""
    Library.open(tmp_path / "lib", jitter_axes="xy").close()
    with pytest.raises(LibraryError, match="jitter axes 'xy', fixed when it was created") as raised:
        Library.open(tmp_path / "lib", jitter_axes="y")
    assert raised.value.code == "bad_request"
    with pytest.raises(LibraryError, match="'q' is not one of"):
        Library.open(tmp_path / "lib", jitter_axes="q")
    Library.open(tmp_path / "lib", jitter_axes="xy").close()
    result = run_cli("index", str(tmp_path), "--library", str(tmp_path / "lib"), "--jitter-axes", "y", "--json")
    assert result.exit_code != 0 and "--jitter-axes can only be set when a library is created" in result.output
    assert LibraryConfig.load(tmp_path / "lib").jitter_axes == "xy"


def test_the_batched_engine_embeds_a_y_library_as_the_worker_does(tmp_path: Path, lfw_photos: list[Path]) -> None:
    """The batched engine aligns in its CPU workers and embeds in this process (ingest/batched_prep.py and
    batched_engine.py read the recipe from the pipeline options): the same 6 views as the local engine's worker."""
    stored = {}
    for engine in ("local", "batched"):
        folder = tmp_path / engine
        with Library.open(folder, jitter_axes="y", model=DLIB_RESNET_INT8_KEY) as lib:
            report = lib.index(lfw_photos, workers=1, engine=engine)
            assert report.indexed == len(lfw_photos) and report.faces >= len(lfw_photos)
            assert [m.key for m in lib.catalog.models()] == [Y_KEY]
        stored[engine] = library_contents(folder)
    assert stored["batched"]["boxes"] == stored["local"]["boxes"]
    np.testing.assert_allclose(stored["batched"]["embeddings"], stored["local"]["embeddings"], atol=1e-5)
    with Library.open(tmp_path / "xy", jitter_axes="xy", model=DLIB_RESNET_INT8_KEY) as xy:
        xy.index(lfw_photos[:1], workers=1)
    other = library_contents(tmp_path / "xy")["embeddings"][0]
    assert float(other @ stored["local"]["embeddings"][0]) < 0.99999  # the y views were embedded, not xy's
