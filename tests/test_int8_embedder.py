"""Issue 15, "a faster embedder at the same answers": dlib's ResNet quantised to int8 as its own model key.

The float model stays the reference: every check here compares the int8 model with it. Faces come from
../shared/data at test time (dlib's johns chips, the example portraits): no face or embedding is stored
in the project.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest

from facesearch import Library
from facesearch.errors import FaceSearchError, ModelError
from facesearch.models.convert.dlib_format import read_dlib_network
from facesearch.models.convert.dlib_resnet_onnx import INPUT_NAME, build_resnet_onnx
from facesearch.models.convert.resnet_int8 import Int8Ranges, fold_affine, quantise_resnet, shipped_ranges
from facesearch.models.embed.factory import converted_builtin, create_embedder
from facesearch.models.embed.info import DLIB_RESNET_INT8_KEY, DLIB_RESNET_INT8R_KEY, DLIB_RESNET_KEY
from facesearch.models.runtime import onnx_session
from facesearch.models.weights import DLIB_RESNET, dlib_model_path
from tests.conftest import GALLERY_PROBE, new_engine_library
from tests.helpers import cli_ok, library_contents, run_cli


@pytest.fixture(scope="module")
def float_model():  # type: ignore[no-untyped-def]
    return build_resnet_onnx(read_dlib_network(dlib_model_path(DLIB_RESNET)))


@pytest.fixture(scope="module")
def johns(shared_data: Path) -> tuple[np.ndarray, np.ndarray]:
    """dlib's 55 aligned chips of 5 Johns, and each chip's person."""
    from PIL import Image

    paths = sorted((shared_data / "dlib_johns").glob("*/*.jpg"))
    chips = np.stack([np.asarray(Image.open(p).convert("RGB"), dtype=np.uint8) for p in paths])
    return chips, np.array([p.parent.name for p in paths])


def raw(model_bytes: bytes, chips: np.ndarray) -> np.ndarray:
    out = onnx_session(model_bytes, threads=1).run({INPUT_NAME: chips})[0]
    return out / np.linalg.norm(out, axis=1, keepdims=True)


def test_folding_the_affine_layers_keeps_the_function(float_model) -> None:  # type: ignore[no-untyped-def]
    """The float graph quantised is the folded one: folding must not change a descriptor."""
    folded = fold_affine(float_model)
    assert sum(n.op_type == "Mul" for n in folded.graph.node) == 1  # only the input scaling is left
    chips = np.random.default_rng(0).integers(0, 256, (3, 150, 150, 3), dtype=np.uint8)
    a = onnx_session(float_model.SerializeToString(), threads=1).run({INPUT_NAME: chips})[0]
    b = onnx_session(folded.SerializeToString(), threads=1).run({INPUT_NAME: chips})[0]
    np.testing.assert_allclose(a, b, atol=1e-5)


@pytest.mark.parametrize("reduce_range", [False, True], ids=["int8", "int8r"])
def test_int8_descriptors_agree_with_the_float_ones(float_model, johns, reduce_range: bool) -> None:  # type: ignore[no-untyped-def]
    """Same faces, both models: each descriptor within cosine 0.99 of the float one, every score between
    two chips within 0.03, and every chip's nearest other chip of the same person under both (the 1:N
    answer). Not equal either: the int8 model is really used. The same for the 7-bit weights of
    dlib_resnet_v1_int8r (``reduce_range``)."""
    chips, people = johns
    int8 = quantise_resnet(float_model, shipped_ranges(), reduce_range=reduce_range)
    assert any(n.op_type == "QuantizeLinear" for n in int8.graph.node)
    a, b = raw(float_model.SerializeToString(), chips), raw(int8.SerializeToString(), chips)
    cosines = np.sum(a * b, axis=1)
    assert cosines.min() >= 0.99, cosines.min()
    assert np.abs(a - b).max() > 1e-4
    sa, sb = a @ a.T, b @ b.T
    np.fill_diagonal(sa, -1)
    np.fill_diagonal(sb, -1)
    assert (people[sa.argmax(axis=1)] == people[sb.argmax(axis=1)]).all()
    assert np.abs(sa - sb)[sa > -1].max() < 0.03


def test_per_tensor_quantisation_has_one_weight_scale_per_convolution(float_model) -> None:  # type: ignore[no-untyped-def]
    """``per_channel=False`` (measured by bench/speed/embed_runtime.py, not used by the model key) gives each
    convolution's weights one scale; the default gives one per output channel."""
    from onnx import numpy_helper

    def conv_weight_scales(model) -> list[int]:  # type: ignore[no-untyped-def]
        inits = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
        producers = {out: node for node in model.graph.node for out in node.output}
        sizes = []
        for conv in (n for n in model.graph.node if n.op_type == "Conv"):
            dequant = producers[conv.input[1]]
            sizes.append(inits[dequant.input[1]].size)
        return sizes

    per_tensor = conv_weight_scales(quantise_resnet(float_model, shipped_ranges(), per_channel=False))
    per_channel = conv_weight_scales(quantise_resnet(float_model, shipped_ranges()))
    assert len(per_tensor) == len(per_channel) == 29
    assert set(per_tensor) == {1}
    assert min(per_channel) >= 32


def test_the_portable_model_has_7_bit_weights(tmp_path: Path) -> None:
    """dlib_resnet_v1_int8r is quantised with ``reduce_range``: every int8 weight of its convolutions within
    [-64, 64] (two u8 x s8 products, 2 x 255 x 64, then fit the int16 sums of ONNX Runtime's kernels on CPUs without
    VNNI), where dlib_resnet_v1_int8's use the full [-127, 127]. Read from the converted files themselves."""
    import onnx
    from onnx import numpy_helper

    def largest_weight(path: Path) -> int:
        model = onnx.load_model(path)
        weights = [numpy_helper.to_array(t) for t in model.graph.initializer if t.data_type == onnx.TensorProto.INT8]
        assert len(weights) >= 29  # one per convolution at least
        return max(int(np.abs(w.astype(np.int32)).max()) for w in weights)

    portable = converted_builtin(tmp_path, DLIB_RESNET_INT8R_KEY)
    assert largest_weight(portable) <= 64
    assert largest_weight(converted_builtin(tmp_path, DLIB_RESNET_INT8_KEY)) > 100


def test_ranges_for_other_weights_are_refused(float_model) -> None:  # type: ignore[no-untyped-def]
    """Shipped ranges belong to one weights file: another would be quantised with the wrong scales."""
    wrong = dataclasses.replace(shipped_ranges(), weights_sha256="0" * 64)
    with pytest.raises(ModelError, match="measured for weights 000000000000") as caught:
        quantise_resnet(float_model, wrong)
    assert caught.value.code == "model_mismatch"


def test_ranges_missing_a_tensor_are_refused(float_model) -> None:  # type: ignore[no-untyped-def]
    ranges = shipped_ranges()
    partial = dataclasses.replace(ranges, ranges=dict(list(ranges.ranges.items())[1:]))
    with pytest.raises(ModelError) as caught:
        quantise_resnet(float_model, partial)
    assert caught.value.code == "model_mismatch"


def test_malformed_ranges_are_refused() -> None:
    with pytest.raises(ModelError, match="malformed int8 ranges"):
        Int8Ranges.from_json({"weights_sha256": "x", "ranges": {"conv": [1.0]}})


def test_shipped_ranges_hold_aggregates_only() -> None:
    """What ships is one (min, max) pair per tensor: no descriptor, no chip (nothing of a real person)."""
    data = json.loads(
        (Path(__file__).parents[1] / "src/facesearch/models/convert/dlib_resnet_int8_ranges.json").read_text()
    )
    assert set(data) == {"weights_sha256", "photos", "source", "ranges"}
    assert all(len(v) == 2 and v[0] <= v[1] for v in data["ranges"].values())
    assert data["photos"] >= 100


def test_conversion_is_cached_beside_the_float_model(tmp_path: Path) -> None:
    """Quantised once per weights and ranges, then reused; the float conversion is a separate file."""
    first = converted_builtin(tmp_path, DLIB_RESNET_INT8_KEY)
    stamp = first.stat().st_mtime_ns
    again = converted_builtin(tmp_path, DLIB_RESNET_INT8_KEY)
    assert again == first and again.stat().st_mtime_ns == stamp
    assert first.name.startswith(f"{DLIB_RESNET_INT8_KEY}-r")
    assert converted_builtin(tmp_path, DLIB_RESNET_KEY) != first
    portable = converted_builtin(tmp_path, DLIB_RESNET_INT8R_KEY)  # its own file: both coexist in one folder
    assert portable.name.startswith(f"{DLIB_RESNET_INT8R_KEY}-r") and portable != first
    assert first.stat().st_mtime_ns == stamp and portable.read_bytes() != first.read_bytes()


def test_the_int8_model_runs_only_where_it_exists(model_cache: Path) -> None:
    """dlib itself and PyTorch run the float weights only: asking them for int8 is an error, not a float
    embedder silently writing float vectors under the int8 key."""
    with pytest.raises(ModelError) as caught:
        create_embedder("dlib", model_cache, model=DLIB_RESNET_INT8_KEY)
    assert caught.value.code == "bad_embedder"
    with pytest.raises(ModelError) as caught:
        create_embedder("onnx", model_cache, model="dlib_resnet_v2")
    assert caught.value.code == "bad_model"
    with pytest.raises(ModelError) as caught:
        create_embedder("onnx", model_cache, model=DLIB_RESNET_INT8R_KEY, device="cuda")
    assert caught.value.code == "bad_embedder"
    embedder = create_embedder("onnx", model_cache, model=DLIB_RESNET_INT8_KEY)
    assert embedder.info.key == DLIB_RESNET_INT8_KEY and "int8" in embedder.info.name
    portable = create_embedder("onnx", model_cache, model=DLIB_RESNET_INT8R_KEY)
    assert portable.info.key == DLIB_RESNET_INT8R_KEY and portable.info.version == "1-int8r"
    assert "7-bit" in portable.info.name and portable.info.weights_sha256 == embedder.info.weights_sha256


def test_an_int8_library_indexes_with_the_int8_model(tmp_path: Path, shared_data: Path, example_gallery: Path) -> None:
    """The ingest workers embed with the library's model: the example portraits indexed by an int8 library
    (same recipe as the shared float gallery) give the same boxes and vectors within cosine 0.99 of the
    float ones, yet not the float vectors, under the int8 recipe key."""
    examples = shared_data / "face_recognition_examples"
    portraits = [
        p for p in sorted((examples / "by_identity").rglob("*")) if p.is_file() and p != examples / GALLERY_PROBE
    ]
    with Library.open(new_engine_library(tmp_path / "lib", model=DLIB_RESNET_INT8_KEY)) as lib:
        lib.create_collection("examples")
        assert lib.index([str(p) for p in portraits], collection="examples", workers=1).indexed == len(portraits)
        assert lib.model_info.key == f"{DLIB_RESNET_INT8_KEY}+flip"
    mine, reference = library_contents(tmp_path / "lib"), library_contents(example_gallery)
    reference_rows = [i for i, box in enumerate(reference["boxes"]) if str(examples / "by_identity") in box[1]]
    assert [b[1:] for b in mine["boxes"]] == [reference["boxes"][i][1:] for i in reference_rows]
    cosines = np.sum(mine["embeddings"] * reference["embeddings"][reference_rows], axis=1)
    assert cosines.min() >= 0.99 and cosines.max() < 0.999999


def test_a_library_keeps_its_model(tmp_path: Path) -> None:
    """The model is fixed when a library is created: asking an existing library for another is refused."""
    Library.open(tmp_path / "lib", model=DLIB_RESNET_INT8_KEY).close()
    with pytest.raises(FaceSearchError, match="embeds with dlib_resnet_v1_int8"):
        Library.open(tmp_path / "lib", model=DLIB_RESNET_KEY)
    with pytest.raises(FaceSearchError, match="unknown model 'resnet9'"):
        Library.open(tmp_path / "other", model="resnet9")
    assert not (tmp_path / "other").exists()


@pytest.mark.parametrize("model", [DLIB_RESNET_INT8_KEY, DLIB_RESNET_INT8R_KEY])
def test_cli_creates_an_int8_library_and_refuses_the_option_later(
    tmp_path: Path, shared_data: Path, model: str
) -> None:
    photo = shared_data / "face_recognition_examples" / "by_identity" / "barack_obama" / "obama.jpg"
    folder = tmp_path / "lib"
    cli_ok(
        "index",
        str(photo),
        "--library",
        str(folder),
        "--model",
        model,
        "--jitter",
        "0",
        "--create-collection",
        "--workers",
        "1",
    )
    assert json.loads((folder / "config.json").read_text())["model"] == model
    with Library.open(folder) as lib:
        assert lib.embedder.info.key == model and [m.key for m in lib.catalog.models()] == [f"{model}+flip"]
    again = run_cli("index", str(photo), "--library", str(folder), "--model", DLIB_RESNET_KEY)
    assert again.exit_code != 0 and "--model can only be set when a library is created" in again.output


def test_evaluations_measure_the_int8_model_without_a_library(
    monkeypatch: pytest.MonkeyPatch, xdg_cache: Path, tmp_path: Path
) -> None:
    """`facesearch eval verify|identify|calibrate --model dlib_resnet_v1_int8`: the evaluation embeds with the
    int8 model and names its recipe key (the calibration it writes is for that key, not the float one's)."""
    from facesearch.eval.inputs import eval_pipeline

    monkeypatch.setenv("XDG_CACHE_HOME", str(xdg_cache))
    pipeline, key = eval_pipeline(tmp_path / "none", "onnx", model=DLIB_RESNET_INT8_KEY, jitter_axes="xy")
    assert key == f"{DLIB_RESNET_INT8_KEY}+flip+jitter2.5"
    assert pipeline.embedder.info.key == DLIB_RESNET_INT8_KEY
    _, default_key = eval_pipeline(tmp_path / "none", "onnx")
    assert default_key == f"{DLIB_RESNET_INT8R_KEY}+flip+jitter2.5y", "what a new library gets: so for evaluations"
    _, float_key = eval_pipeline(tmp_path / "none", "onnx", model=DLIB_RESNET_KEY)
    assert float_key == f"{DLIB_RESNET_KEY}+flip+jitter2.5"
    Library.open(tmp_path / "lib").close()
    with pytest.raises(FaceSearchError, match="drop model"):
        eval_pipeline(tmp_path / "lib", "onnx", model=DLIB_RESNET_INT8_KEY)


def test_the_int8_recipe_has_its_own_shipped_calibration(tmp_path: Path) -> None:
    """A new model key needs its own score calibration: an int8 library's searches get FMRs from the table
    measured with the int8 model (all of lfw-dev), whose operating points sit where the float model's do."""
    from facesearch.search.calibration import default_calibration

    with Library.open(tmp_path / "lib", model=DLIB_RESNET_INT8_KEY, jitter_axes="xy") as lib:
        calibration = lib.scoring.calibration
        assert calibration is not None and calibration.model == f"{DLIB_RESNET_INT8_KEY}+flip+jitter2.5"
    reference = default_calibration(f"{DLIB_RESNET_KEY}+flip+jitter2.5")
    assert reference is not None
    for kind, tolerance in (("cosine", 0.005), ("snorm", 0.05)):
        mine, theirs = calibration.table(kind), reference.table(kind)
        assert mine is not None and theirs is not None
        for fmr in (1e-2, 1e-3, 1e-4):
            assert abs(mine.threshold_for(fmr) - theirs.threshold_for(fmr)) < tolerance, (kind, fmr)
    # The 7-bit-weight model's own table (the y recipe, new libraries' default) sits where the 8-bit model's does.
    with Library.open(tmp_path / "portable", model=DLIB_RESNET_INT8R_KEY) as lib:
        portable = lib.scoring.calibration
        assert portable is not None and portable.model == f"{DLIB_RESNET_INT8R_KEY}+flip+jitter2.5y"
    eight_bit = default_calibration(f"{DLIB_RESNET_INT8_KEY}+flip+jitter2.5y")
    assert eight_bit is not None
    for kind, tolerance in (("cosine", 0.005), ("snorm", 0.05), ("snorm_cos", 0.25)):
        mine, theirs = portable.table(kind), eight_bit.table(kind)
        assert mine is not None and theirs is not None
        for fmr in (1e-2, 1e-3, 1e-4):
            assert abs(mine.threshold_for(fmr) - theirs.threshold_for(fmr)) < tolerance, (kind, fmr)
