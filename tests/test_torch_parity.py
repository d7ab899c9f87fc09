"""The PyTorch rebuilds of dlib's networks (the optional ``gpu`` extra) against the ONNX path, on the CPU.

GPU ingestion runs dlib's ResNet and MMOD detector with PyTorch; an index made that way must be
searchable with the CPU (ONNX) path, so the torch modules must give the ONNX numbers. Checked here on
real photos and chips (../shared/data) with the CPU build of torch: descriptors, score maps, the
device-built pyramid canvas, boxes and landmarks, and whole pipelines. Nothing is written to disk
but pytest's tmp folders.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

torch = pytest.importorskip("torch")

from facesearch.errors import ModelError  # noqa: E402
from facesearch.models.convert.dlib_format import DlibNetwork, read_dlib_network  # noqa: E402
from facesearch.models.detect.base import DetectorSettings  # noqa: E402
from facesearch.models.detect.cnn import CnnFaceDetector, OnnxMmodRunner  # noqa: E402
from facesearch.models.detect.hog import HogFaceDetector  # noqa: E402
from facesearch.models.detect.mmod_boxes import ScoreCells, boxes_from_cells, boxes_from_scores  # noqa: E402
from facesearch.models.detect.mmod_pyramid import pyramid_canvas, pyramid_up, tile_pyramid  # noqa: E402
from facesearch.models.detect.torch_batch import TorchBatchDetector  # noqa: E402
from facesearch.models.detect.torch_mmod import TorchMmodRunner, torch_cnn_detector  # noqa: E402
from facesearch.models.embed.base import Embedder  # noqa: E402
from facesearch.models.embed.factory import create_embedder  # noqa: E402
from facesearch.models.embed.info import DLIB_RESNET_KEY, OnnxModelSpec, dlib_resnet_info  # noqa: E402
from facesearch.models.embed.onnx_embedder import OnnxEmbedder  # noqa: E402
from facesearch.models.embed.torch_embedder import TorchEmbedder  # noqa: E402
from facesearch.models.embed.torch_resnet import DlibResNet  # noqa: E402
from facesearch.models.pipeline import FacePipeline, build_pipeline  # noqa: E402
from facesearch.models.weights import DLIB_MMOD, DLIB_RESNET, dlib_model_path  # noqa: E402

MAX_ABS_DIFF_F32 = 1e-5
MIN_COSINE_BF16 = 0.999
MIN_COSINE_F16 = 0.9999
MAX_SCORE_DIFF = 1e-4  # MMOD scores are about 1 for a clear face; observed differences ~6e-6

PHOTOS = [  # (photo, upsample): a group photo, one with near-equal neighbouring cells, an LFW photo
    ("dlib_pascal_faces/2008_001322.jpg", 0),
    ("dlib_pascal_faces/2008_002079.jpg", 1),
    ("lfw-dev/images/Aaron_Eckhart/Aaron_Eckhart_0001.jpg", 1),
]


def _load_rgb(path: Path) -> np.ndarray:
    with Image.open(path) as image:
        return np.asarray(image.convert("RGB"), dtype=np.uint8)


def _cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)


def _corners(boxes: list) -> list[tuple[int, int, int, int]]:
    return [(b.left, b.top, b.right, b.bottom) for b in boxes]


@pytest.fixture(scope="module")
def resnet() -> DlibNetwork:
    return read_dlib_network(dlib_model_path(DLIB_RESNET))


@pytest.fixture(scope="module")
def onnx_embedder(tmp_path_factory: pytest.TempPathFactory) -> Embedder:
    return create_embedder("onnx", tmp_path_factory.mktemp("models"))


@pytest.fixture(scope="module")
def torch_embedder(resnet: DlibNetwork) -> TorchEmbedder:
    return TorchEmbedder(device="cpu", network=resnet)


@pytest.fixture(scope="module")
def chips(shared_data: Path) -> np.ndarray:
    """dlib's own aligned "johns" chips: 55 real faces, 150x150."""
    paths = sorted((shared_data / "dlib_johns").glob("*/*.jpg"))
    assert len(paths) == 55
    return np.stack([_load_rgb(path) for path in paths])


@pytest.fixture(scope="module")
def onnx_raw(onnx_embedder: Embedder, chips: np.ndarray) -> np.ndarray:
    return onnx_embedder._raw(chips)


@pytest.fixture(scope="module")
def cnn() -> CnnFaceDetector:
    return CnnFaceDetector()


@pytest.fixture(scope="module")
def runner() -> TorchMmodRunner:
    return TorchMmodRunner(device="cpu")


# --------------------------------------------------------------------------------------------
# dlib's ResNet


def test_resnet_float32_matches_onnx(resnet: DlibNetwork, chips: np.ndarray, onnx_raw: np.ndarray) -> None:
    model = DlibResNet.from_network(resnet).eval()
    with torch.inference_mode():
        batched = model(torch.from_numpy(chips)).numpy()
        single = model(torch.from_numpy(chips[:1])).numpy()
    assert batched.shape == (55, 128) and batched.dtype == np.float32
    max_diff = float(np.abs(batched - onnx_raw).max())
    print(f"float32: max abs diff {max_diff:.3g} over {len(chips)} chips (values up to {np.abs(onnx_raw).max():.2f})")
    assert max_diff <= MAX_ABS_DIFF_F32
    assert np.abs(single[0] - onnx_raw[0]).max() <= MAX_ABS_DIFF_F32


def test_resnet_half_precisions_keep_the_descriptors(
    resnet: DlibNetwork, chips: np.ndarray, onnx_raw: np.ndarray
) -> None:
    with torch.inference_mode():
        bf16 = DlibResNet.from_network(resnet).eval().to(torch.bfloat16)(torch.from_numpy(chips)).numpy()
        f16 = DlibResNet.from_network(resnet).eval().to(torch.float16)(torch.from_numpy(chips[:8])).numpy()
    assert bf16.dtype == np.float32  # outputs come back in float32 whatever the compute dtype
    cos_bf16, cos_f16 = _cosines(bf16, onnx_raw).min(), _cosines(f16, onnx_raw[:8]).min()
    print(f"bfloat16: min cosine {cos_bf16:.7f}; float16: min cosine {cos_f16:.7f}")
    assert cos_bf16 > MIN_COSINE_BF16
    assert cos_f16 > MIN_COSINE_F16
    assert not np.array_equal(bf16, onnx_raw)  # it really ran in bfloat16


def test_resnet_refuses_other_networks(resnet: DlibNetwork) -> None:
    with pytest.raises(ModelError, match="loss_metric_2"):
        DlibResNet.from_network(read_dlib_network(dlib_model_path(DLIB_MMOD)))
    shuffled = DlibNetwork(resnet.loss, resnet.input, [resnet.layers[1], resnet.layers[0], *resnet.layers[2:]])
    with pytest.raises(ModelError, match=r"layer 0 \(affine_, byte offset \d+\)"):
        DlibResNet.from_network(shuffled)


def test_torch_embedder_is_the_same_model(
    torch_embedder: TorchEmbedder, onnx_embedder: Embedder, chips: np.ndarray, resnet: DlibNetwork
) -> None:
    """Same ModelInfo (so a GPU-built index is searchable on the CPU) and the same unit vectors,
    through flip and grouping, whatever the batch size."""
    assert torch_embedder.info == onnx_embedder.info == dlib_resnet_info()
    assert torch_embedder.info.key == DLIB_RESNET_KEY
    assert (torch_embedder.chip_size, torch_embedder.chip_padding) == (150, 0.25)
    subset = chips[:12]
    expected, expected_stability = onnx_embedder.embed_with_stability(subset, flip=True, group=2)
    vectors, stability = torch_embedder.embed_with_stability(subset, flip=True, group=2)
    assert vectors.shape == (6, 128)
    assert np.abs(vectors - expected).max() <= MAX_ABS_DIFF_F32
    assert np.abs(stability - expected_stability).max() <= MAX_ABS_DIFF_F32
    small_batches = TorchEmbedder(device="cpu", batch_size=5, network=resnet)
    assert np.abs(small_batches.embed(subset) - torch_embedder.embed(subset)).max() <= 1e-6
    assert torch_embedder.embed(subset[:0]).shape == (0, 128)
    with pytest.raises(ModelError, match="shape"):
        torch_embedder.embed(subset[:, :100])


def test_create_embedder_device(tmp_path: Path) -> None:
    assert isinstance(create_embedder("onnx", tmp_path), OnnxEmbedder)  # the default is unchanged
    assert isinstance(create_embedder("onnx", tmp_path, device="cpu"), OnnxEmbedder)
    with pytest.raises(ModelError, match="only dlib's ResNet") as info:
        create_embedder("dlib", tmp_path, device="cuda")
    assert info.value.code == "bad_device"
    spec = OnnxModelSpec(key="arcface", path=str(tmp_path / "arcface.onnx"))
    with pytest.raises(ModelError, match="arcface"):
        create_embedder("onnx", tmp_path, spec, device="cuda")
    with pytest.raises(ModelError, match="dtype") as info:
        TorchEmbedder(device="cpu", dtype="int8")
    assert info.value.code == "bad_dtype"
    if not torch.cuda.is_available():
        with pytest.raises(ModelError, match="CUDA is not available") as info:
            create_embedder("onnx", tmp_path, device="cuda")
        assert info.value.code == "bad_device"


# --------------------------------------------------------------------------------------------
# dlib's MMOD detector


def _numpy_canvas(cnn: CnnFaceDetector, rgb: np.ndarray, upsample: int) -> np.ndarray:
    """The canvas CnnFaceDetector.mmod_boxes feeds its network (built by the CPU code)."""
    for _ in range(upsample):
        rgb = pyramid_up(rgb)
    m = cnn.mmod
    tiles = tile_pyramid(*rgb.shape[:2], m.pyramid_down, m.pyramid_padding, m.pyramid_outer_padding)
    normalised = (np.moveaxis(rgb, -1, 0).astype(np.float32) - cnn._means) / np.float32(256.0)
    return pyramid_canvas(normalised, tiles)


def test_mmod_score_maps_and_boxes_match_onnx(shared_data: Path, cnn: CnnFaceDetector, runner) -> None:
    torch_cnn = CnnFaceDetector(runner=runner)
    assert torch_cnn.mmod == cnn.mmod
    worst = 0.0
    for relative, upsample in PHOTOS:
        rgb = _load_rgb(shared_data / relative)
        canvas = _numpy_canvas(cnn, rgb, upsample)[None]
        expected = cnn._run(canvas)
        scores = runner(canvas)
        assert scores.shape == expected.shape and scores.dtype == np.float32
        worst = max(worst, float(np.abs(scores - expected).max()))
        ours, theirs = torch_cnn.mmod_boxes(rgb, upsample), cnn.mmod_boxes(rgb, upsample)
        assert theirs, relative
        assert _corners(ours) == _corners(theirs), relative
        assert np.allclose([b.score for b in ours], [b.score for b in theirs], atol=MAX_SCORE_DIFF)
    print(f"MMOD score maps: max abs diff {worst:.3g}")
    assert worst <= MAX_SCORE_DIFF


def test_device_pyramid_reproduces_the_cpu_canvas(shared_data: Path, cnn: CnnFaceDetector) -> None:
    """The pyramid built by torch (for GPU batches) is the CPU canvas to the bit: same boxes follow."""
    detector = TorchBatchDetector(device="cpu", landmarks=False)
    lfw = sorted((shared_data / "lfw-dev" / "images").glob("A*/*_0001.jpg"))[:2]
    batch = np.stack([_load_rgb(path) for path in lfw])  # two 250x250 photos: one batch
    plan = detector.pyramid.plan(250, 250, 1)
    canvases = detector.pyramid.canvas(torch.from_numpy(batch), plan).numpy()
    for canvas, rgb in zip(canvases, batch, strict=True):
        assert np.array_equal(canvas, _numpy_canvas(cnn, rgb, 1))
    group = _load_rgb(shared_data / "dlib_pascal_faces/2009_004587.jpg")  # 400x500: the scalar-tail columns
    plan = detector.pyramid.plan(*group.shape[:2], 0)
    canvas = detector.pyramid.canvas(torch.from_numpy(group[None].copy()), plan).numpy()[0]
    assert np.array_equal(canvas, _numpy_canvas(cnn, group, 0))


def test_batch_detector_matches_cnn_detector(shared_data: Path) -> None:
    """Mixed sizes in one call, shrunk to the working size first; boxes and landmarks (in the full
    photos' pixels) as CnnFaceDetector.detect gives them."""
    settings = DetectorSettings(upsample=1, working_size=200)
    cnn = CnnFaceDetector(settings)
    detector = TorchBatchDetector(settings, device="cpu", batch_size=2)
    lfw = sorted((shared_data / "lfw-dev" / "images").glob("B*/*_0001.jpg"))[:3]
    images = [_load_rgb(path) for path in lfw] + [_load_rgb(shared_data / "negatives/skimage/chelsea.png")]
    found = detector.detect_batch(images)
    assert len(found) == len(images)
    assert sum(len(faces) for faces in found) >= 3
    for rgb, faces in zip(images, found, strict=True):
        expected = cnn.detect(rgb)
        assert [f.box for f in faces] == [e.box for e in expected]
        for face, reference in zip(faces, expected, strict=True):
            assert np.array_equal(face.landmarks, reference.landmarks)
            assert face.score == pytest.approx(reference.score, abs=MAX_SCORE_DIFF)
    assert detector.mmod_boxes_batch([np.zeros((20, 30, 3), np.uint8)]) == [[]]  # too small for one cell


def test_cells_found_on_the_device_decode_to_the_same_boxes(shared_data: Path) -> None:
    """The batched ingest ships only the cells above the threshold (found on the device): the same
    cells, in the same order, as thresholding the whole map on the host, hence the same boxes."""
    detector = TorchBatchDetector(device="cpu", landmarks=False, batch_size=3)
    lfw = sorted((shared_data / "lfw-dev" / "images").glob("C*/*_0001.jpg"))[:4]
    batch = np.stack([_load_rgb(path) for path in lfw])
    maps, tiles = detector.score_maps(batch, 1)
    for threshold in (0.0, -0.5):
        found, same_tiles = detector.score_cells(batch, 1, threshold)
        assert same_tiles == tiles and len(found) == len(batch)
        for score_map, cells in zip(maps, found, strict=True):
            expected = ScoreCells.of(score_map, threshold)
            assert np.array_equal(cells.rows, expected.rows) and np.array_equal(cells.cols, expected.cols)
            assert np.array_equal(cells.values, expected.values)
            assert boxes_from_cells(cells, tiles, detector.mmod, 1) == boxes_from_scores(
                score_map, tiles, detector.mmod, threshold, 1
            )
    assert sum(len(c.rows) for c in detector.score_cells(batch, 1, 0.0)[0]) >= len(batch)  # faces were there
    tiny, _ = detector.score_cells(np.zeros((2, 20, 30, 3), np.uint8), 0, 0.0)  # too small for one cell
    assert [len(c.rows) for c in tiny] == [0, 0]


# --------------------------------------------------------------------------------------------
# Pipelines


def test_pipeline_with_torch_embedder_gives_the_same_faces(
    shared_data: Path, onnx_embedder: Embedder, torch_embedder: TorchEmbedder
) -> None:
    hog = HogFaceDetector()
    default, on_torch = FacePipeline(hog, onnx_embedder), FacePipeline(hog, torch_embedder)
    root = shared_data / "face_recognition_examples"
    compared = 0
    for name in ("multi_face/kit_with_rose.jpg", "by_identity/kit_harington/john2.jpg"):
        rgb = _load_rgb(root / name)
        expected, faces = default.analyse(rgb), on_torch.analyse(rgb)
        assert [f.box for f in faces] == [f.box for f in expected]
        for face, reference in zip(faces, expected, strict=True):
            assert np.abs(face.embedding - reference.embedding).max() <= MAX_ABS_DIFF_F32
            compared += 1
    assert compared >= 3


def test_all_torch_pipeline_matches_the_default(
    shared_data: Path, cnn: CnnFaceDetector, onnx_embedder: Embedder, torch_embedder: TorchEmbedder
) -> None:
    """CNN detector network and ResNet both on torch: same faces, same embeddings as ONNX Runtime."""
    rgb = _load_rgb(shared_data / "dlib_pascal_faces/2008_001322.jpg")
    settings = DetectorSettings(upsample=0)
    expected = FacePipeline(CnnFaceDetector(settings), onnx_embedder).analyse(rgb)
    faces = FacePipeline(torch_cnn_detector(settings, device="cpu"), torch_embedder).analyse(rgb)
    assert len(faces) == len(expected) == 3
    assert [f.box for f in faces] == [f.box for f in expected]
    for face, reference in zip(faces, expected, strict=True):
        assert np.abs(face.embedding - reference.embedding).max() <= MAX_ABS_DIFF_F32
    pipeline = build_pipeline(onnx_embedder, detector_kind="cnn", device="cpu")  # cpu: the ONNX detector
    assert isinstance(pipeline.detector, CnnFaceDetector) and isinstance(pipeline.detector.runner, OnnxMmodRunner)


def test_package_works_without_torch(tmp_path: Path) -> None:
    """torch is an optional extra: with it hidden, the package imports, the ONNX path works, and asking
    for a GPU says what is missing."""
    script = f"""
import sys
from pathlib import Path
sys.modules["torch"] = None  # import torch now raises ImportError
import facesearch.cli, facesearch.library
from facesearch.errors import ModelError
from facesearch.models.embed.onnx_embedder import OnnxEmbedder
from facesearch.models.embed.factory import create_embedder
from facesearch.models.pipeline import PipelineRecipe, build_pipeline
assert isinstance(create_embedder("onnx", Path({str(tmp_path)!r})), OnnxEmbedder)
for call in (lambda: create_embedder("onnx", Path({str(tmp_path)!r}), device="cuda"),
             lambda: build_pipeline(None, detector_kind="cnn", device="cuda")):
    try:
        call()
    except ModelError as exc:
        assert exc.code == "torch_missing" and "gpu" in str(exc), exc
    else:
        raise AssertionError("no error")
assert PipelineRecipe("onnx", {str(tmp_path)!r}, None, {{}}).device == "cpu"
assert "torch" not in [m for m in sys.modules if sys.modules[m] is not None]
print("ok")
"""
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[1] / "src"))
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"
