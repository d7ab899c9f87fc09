"""dlib's CNN face detector converted to ONNX (``--detector cnn``): parity with dlib, and sense on real photos.

Parity is against ``dlib.cnn_face_detection_model_v1`` itself on real photos (group photos, a
portrait, an upsampled LFW image, a cat face). dlib's CNN takes seconds per image on a CPU, so the
images are few and small; a wider sweep (94 images, 129 faces) gave identical boxes and scores
within 2e-6 when the converter was written. Nothing derived from the photos is written outside pytest's tmp folders.
"""

from __future__ import annotations

import csv
from pathlib import Path

import dlib
import numpy as np
import onnxruntime as ort
import pytest
from PIL import Image

from facesearch.errors import ModelError
from facesearch.models.align import face_chip
from facesearch.models.convert.dlib_format import read_dlib_network
from facesearch.models.convert.mmod_onnx import INPUT_NAME, MmodSettings, build_mmod_onnx, converted_mmod
from facesearch.models.detect.base import DetectorSettings, FaceDetector
from facesearch.models.detect.cnn import CnnFaceDetector
from facesearch.models.detect.factory import create_detector
from facesearch.models.detect.hog import HogFaceDetector
from facesearch.models.detect.mmod_boxes import MmodBox, non_max_suppression
from facesearch.models.detect.mmod_pyramid import pyramid_up, resize_bilinear, tile_pyramid
from facesearch.models.embed.base import Embedder
from facesearch.models.embed.factory import create_embedder
from facesearch.models.pipeline import FacePipeline
from facesearch.models.weights import DLIB_MMOD, DLIB_RESNET, dlib_model_path

MIN_IOU_WITH_DLIB = 0.9
MAX_SCORE_DIFF = 1e-3
MIN_CHIP_COSINE = 0.95


def _load_rgb(path: Path) -> np.ndarray:
    with Image.open(path) as image:
        return np.asarray(image.convert("RGB"), dtype=np.uint8)


def _iou(a: tuple[int, int, int, int], b: tuple[int, int, int, int]) -> float:
    """IoU of two inclusive (left, top, right, bottom) rectangles."""
    iw = min(a[2], b[2]) - max(a[0], b[0]) + 1
    ih = min(a[3], b[3]) - max(a[1], b[1]) + 1
    if iw <= 0 or ih <= 0:
        return 0.0
    inner = iw * ih
    area = (a[2] - a[0] + 1) * (a[3] - a[1] + 1) + (b[2] - b[0] + 1) * (b[3] - b[1] + 1)
    return inner / (area - inner)


@pytest.fixture(scope="module")
def cnn() -> CnnFaceDetector:
    return CnnFaceDetector()


@pytest.fixture(scope="module")
def dlib_cnn() -> dlib.cnn_face_detection_model_v1:
    return dlib.cnn_face_detection_model_v1(str(dlib_model_path(DLIB_MMOD)))


@pytest.fixture(scope="module")
def embedder(model_cache: Path) -> Embedder:
    return create_embedder("onnx", model_cache)


# --------------------------------------------------------------------------------------------
# Conversion


def test_converted_model_carries_dlib_settings() -> None:
    model = build_mmod_onnx(read_dlib_network(dlib_model_path(DLIB_MMOD)))
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    mmod = MmodSettings.from_metadata(session.get_modelmeta().custom_metadata_map)
    assert (mmod.window_w, mmod.window_h) == (80, 80)
    assert mmod.nms_iou == pytest.approx(0.338, abs=1e-3)
    assert (mmod.stride, mmod.offset) == (8, 14)  # three 5x5/2 unpadded convs: p -> 2p + 2, three times
    assert mmod.pyramid_down == 6
    (scores,) = session.run(None, {INPUT_NAME: np.zeros((1, 3, 101, 77), np.float32)})
    assert scores.shape == (1, 1, 10, 7)  # (n - 5) // 2 + 1, three times; the rest keep the size


def test_conversion_is_cached_by_weights_hash(tmp_path: Path) -> None:
    first = converted_mmod(tmp_path)
    assert first.is_file() and first.name.startswith("dlib_mmod_human_face_v1-")
    stamp = first.stat().st_mtime_ns
    assert converted_mmod(tmp_path) == first
    assert first.stat().st_mtime_ns == stamp  # not converted again
    detector = create_detector("cnn", cache_dir=tmp_path)
    assert isinstance(detector, CnnFaceDetector)


def test_other_networks_are_refused() -> None:
    with pytest.raises(ModelError, match="loss_mmod_"):
        build_mmod_onnx(read_dlib_network(dlib_model_path(DLIB_RESNET)))


# --------------------------------------------------------------------------------------------
# Parity with dlib


@pytest.mark.parametrize(
    ("relative", "upsample", "expected"),
    [
        ("dlib_pascal_faces/2008_001322.jpg", 0, 3),  # group photo, three faces
        ("dlib_pascal_faces/2008_002079.jpg", 1, 4),  # two neighbouring cells within 3e-5: needs dlib's rounding
        ("dlib_pascal_faces/2009_004587.jpg", 0, 2),
        ("lfw-dev/images/Aaron_Eckhart/Aaron_Eckhart_0001.jpg", 1, 1),  # through dlib's pyramid_up
        ("negatives/skimage/chelsea.png", 0, 0),  # a cat's face
    ],
)
def test_boxes_and_scores_match_dlib(
    shared_data: Path, cnn: CnnFaceDetector, dlib_cnn, relative: str, upsample: int, expected: int
) -> None:
    rgb = _load_rgb(shared_data / relative)
    reference = sorted(
        ((d.rect.left(), d.rect.top(), d.rect.right(), d.rect.bottom()), d.confidence) for d in dlib_cnn(rgb, upsample)
    )
    ours = sorted(((b.left, b.top, b.right, b.bottom), b.score) for b in cnn.mmod_boxes(rgb, upsample))
    assert len(reference) == expected
    assert len(ours) == len(reference)
    for (box, score), (ref_box, ref_score) in zip(ours, reference, strict=True):
        assert _iou(box, ref_box) >= MIN_IOU_WITH_DLIB, (box, ref_box)
        assert score == pytest.approx(ref_score, abs=MAX_SCORE_DIFF)


def test_resizing_reproduces_dlib(shared_data: Path) -> None:
    """dlib's bilinear resize drifts (float32 positions); without copying that, scores move by up to 1e-3."""
    rgb = _load_rgb(shared_data / "dlib_pascal_faces" / "2008_002079.jpg")
    up = pyramid_up(rgb)
    assert up.shape == (2 * rgb.shape[0] + 1, 2 * rgb.shape[1] + 2, 3)
    assert np.count_nonzero(up != dlib.resize_image(rgb, up.shape[0], up.shape[1])) <= up.size // 10_000
    plane = (rgb[:, :, 1].astype(np.float32) - np.float32(117.001)) / np.float32(256)
    for rows, cols in [(312, 416), (260, 346), (5, 400), (100, 3)]:
        ours = resize_bilinear(plane, rows, cols)
        assert np.abs(ours - dlib.resize_image(plane, rows, cols)).max() < 1e-6, (rows, cols)


def test_no_faces_on_negatives(shared_data: Path, cnn: CnnFaceDetector) -> None:
    root = shared_data / "negatives"
    names = ["dlib/dog.jpg", "dlib/mmod_cars_test_image.jpg", "skimage/brick.png", "skimage/moon.png"]
    for name in names:  # moon.png is greyscale
        assert cnn.mmod_boxes(_load_rgb(root / name), upsample=1) == [], name


def test_tiny_and_grey_images(cnn: CnnFaceDetector) -> None:
    assert cnn.detect(np.zeros((20, 30, 3), np.uint8)) == []
    assert cnn.detect(np.full((120, 90), 128, np.uint8)) == []


def test_pyramid_layout_and_nms_follow_dlib() -> None:
    tiles = tile_pyramid(375, 500, 6, 10, 11)
    assert tiles.rects[0] == (11, 11, 510, 385)  # the image, inside the outer padding
    assert tiles.rects[1] == (11, 396, 426, 707)  # 5/6 of it below, 10 pixels apart
    assert tiles.width == 522
    # the loss's overlap test divides by the two boxes' bounding box, not their union
    a, b = MmodBox(0, 0, 79, 79, 1.0), MmodBox(20, 20, 99, 99, 0.5)  # IoU 0.39, over the hull 0.36
    assert non_max_suppression([a, b], iou=0.37, covered=1.0) == [a, b]
    assert non_max_suppression([a, b], iou=0.35, covered=1.0) == [a]


# --------------------------------------------------------------------------------------------
# The detector interface and settings


def test_factory_and_protocol() -> None:
    hog = create_detector("hog", DetectorSettings(upsample=0))
    assert isinstance(hog, HogFaceDetector) and hog.settings.upsample == 0
    assert isinstance(hog, FaceDetector)
    with pytest.raises(ModelError, match=r"unknown face detector 'mtcnn'.*'hog', 'cnn'") as info:
        create_detector("mtcnn", None)
    assert info.value.code == "bad_detector"


def test_settings_upsample_and_working_size(shared_data: Path, cnn: CnnFaceDetector) -> None:
    rgb = _load_rgb(shared_data / "dlib_pascal_faces" / "2007_007763.jpg")  # seven faces of ~37 pixels
    assert cnn.detect(rgb) != []  # default: one upsample, as with HOG
    assert CnnFaceDetector(DetectorSettings(upsample=0)).detect(rgb) == []  # smaller than the 80-pixel window
    portrait = _load_rgb(shared_data / "dlib_pascal_faces" / "Tom_Cruise_avp_2014_4.jpg")  # 565 x 800
    full = CnnFaceDetector(DetectorSettings(upsample=0)).detect(portrait)
    small = CnnFaceDetector(DetectorSettings(upsample=0, working_size=400)).detect(portrait)
    assert len(full) == len(small) == 1
    (x, y, w, h), (sx, sy, sw, sh) = full[0].box, small[0].box
    assert _iou((x, y, x + w, y + h), (sx, sy, sx + sw, sy + sh)) > 0.7  # mapped back to full-size pixels
    assert small[0].landmarks.max() > 400  # landmarks too


def test_pascal_group_photos_against_annotations(shared_data: Path, cnn: CnnFaceDetector) -> None:
    """Every annotated face of two group photos is found (the boxes' style differs: loose IoU)."""
    root = shared_data / "dlib_pascal_faces"
    with (root / "face_boxes.csv").open() as handle:
        rows = [r for r in csv.DictReader(handle) if r["ignore"] == "0"]
    for name in ("2007_007763.jpg", "2008_007676.jpg"):
        found = cnn.detect(_load_rgb(root / name))
        truth = [tuple(int(r[k]) for k in ("left", "top", "width", "height")) for r in rows if r["file"] == name]
        assert len(found) == len(truth), name
        for left, top, width, height in truth:
            best = max(
                _iou((left, top, left + width, top + height), (x, y, x + w, y + h))
                for x, y, w, h in (d.box for d in found)
            )
            assert best > 0.45, (name, left, top)


def test_landmarks_fall_on_the_face(shared_data: Path, cnn: CnnFaceDetector, embedder: Embedder) -> None:
    """Chips aligned from CNN boxes embed like chips aligned from HOG boxes, so libraries can mix them."""
    hog = HogFaceDetector()
    people = sorted((shared_data / "lfw-dev" / "images").iterdir())[:40:5]
    compared = 0
    for person in people:
        rgb = _load_rgb(sorted(person.glob("*.jpg"))[0])
        from_hog, from_cnn = hog.detect(rgb), cnn.detect(rgb)
        if not from_hog or not from_cnn:
            continue
        assert from_cnn[0].box[2] > 0 and np.all(from_cnn[0].landmarks >= 0)
        chips = np.stack([face_chip(rgb, from_hog[0]), face_chip(rgb, from_cnn[0])])
        a, b = embedder.embed(chips)
        assert float(a @ b) > MIN_CHIP_COSINE, person.name
        compared += 1
    assert compared >= 5


def test_pipeline_runs_with_the_cnn_detector(shared_data: Path, cnn: CnnFaceDetector, embedder: Embedder) -> None:
    rgb = _load_rgb(shared_data / "dlib_pascal_faces" / "2008_001322.jpg")
    faces = FacePipeline(cnn, embedder).analyse(rgb)
    assert len(faces) == 3
    assert all(f.embedding is not None and f.det_score > 0 for f in faces)
    sizes = [f.box[2] * f.box[3] for f in faces]
    assert sizes == sorted(sizes, reverse=True)
    assert cnn.landmarks_in_box(rgb, faces[0].box).landmarks.shape == (5, 2)
