"""Detection evaluation: IoU matching on synthetic boxes, then dlib's HOG on the PASCAL boxes and negatives."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from rich.console import Console

from facesearch.eval.detect import (
    DetectionEvalError,
    DetectionReport,
    detection_table,
    evaluate_boxes,
    evaluate_detection,
    evaluate_negatives,
    iou_matrix,
    match_boxes,
    per_image_table,
)
from facesearch.models.detect.base import Detection, DetectorSettings
from facesearch.models.detect.hog import HogFaceDetector

# matching on synthetic boxes ------------------------------------------------------------------------


def test_iou_of_known_boxes() -> None:
    ious = iou_matrix([(0, 0, 10, 10)], [(0, 0, 10, 10), (5, 0, 10, 10), (20, 20, 5, 5), (0, 0, 5, 5)])
    np.testing.assert_allclose(ious, [[1.0, 50 / 150, 0.0, 25 / 100]])
    assert iou_matrix([], [(0, 0, 1, 1)]).shape == (0, 1)
    assert iou_matrix([(0, 0, 0, 0)], [(0, 0, 0, 0)])[0, 0] == 0.0  # empty boxes: no division by zero


def test_each_truth_box_takes_one_detection() -> None:
    m = match_boxes([(0, 0, 10, 10), (1, 0, 10, 10)], [(0, 0, 10, 10)], [False], 0.3)
    assert (m.true_positives, m.false_positives, m.missed, m.ignored) == (1, 1, 0, 0)
    assert m.pairs == ((0, 0),)  # the exact overlap wins over the shifted one


def test_matching_is_greedy_by_iou_across_boxes() -> None:
    # Detection 0 overlaps truth 0 (IoU 0.82) and truth 1 (0.67); detection 1 sits exactly on truth 0.
    # Highest IoU first: 1-0 (1.0), then 0-1. Matching in detection order would pair 0-0 and 1-1 instead.
    truth = [(0, 0, 10, 10), (3, 0, 10, 10)]
    dets = [(1, 0, 10, 10), (0, 0, 10, 10)]
    m = match_boxes(dets, truth, [False, False], 0.3)
    assert (m.true_positives, m.false_positives, m.missed) == (2, 0, 0)
    assert sorted(m.pairs) == [(0, 1), (1, 0)]


def test_below_the_iou_threshold_is_a_miss_and_a_false_positive() -> None:
    m = match_boxes([(5, 0, 10, 10)], [(0, 0, 10, 10)], [False], 0.34)  # IoU 1/3
    assert (m.true_positives, m.false_positives, m.missed) == (0, 1, 1)
    m = match_boxes([(5, 0, 10, 10)], [(0, 0, 10, 10)], [False], 0.33)
    assert (m.true_positives, m.false_positives, m.missed) == (1, 0, 0)


def test_ignore_boxes_are_neither_found_nor_missed() -> None:
    truth = [(0, 0, 10, 10), (100, 100, 30, 30), (200, 0, 10, 10)]
    ignore = [False, True, True]
    dets = [(0, 0, 10, 10), (100, 100, 30, 30), (102, 102, 28, 28), (50, 50, 10, 10)]
    m = match_boxes(dets, truth, ignore, 0.3)
    # One real face found; two detections on the first ignore box set aside; one false alarm;
    # the second ignore box was not found but is no miss.
    assert (m.true_positives, m.false_positives, m.missed, m.ignored) == (1, 1, 0, 2)


def test_a_real_face_wins_over_an_overlapping_ignore_box() -> None:
    # The ignore box overlaps the detection better than the real face does; the real face still gets it.
    m = match_boxes([(0, 0, 10, 10)], [(3, 0, 10, 10), (0, 0, 10, 10)], [False, True], 0.3)
    assert (m.true_positives, m.false_positives, m.missed, m.ignored) == (1, 0, 0, 0)


def test_nothing_to_match() -> None:
    assert match_boxes([], [(0, 0, 5, 5)], [False], 0.3).missed == 1
    assert match_boxes([(0, 0, 5, 5)], [], [], 0.3).false_positives == 1


class FixedDetector:
    """Returns the same boxes for every image (a stand-in detector)."""

    name = "fixed"

    def __init__(self, boxes: list[tuple[int, int, int, int]]) -> None:
        self.boxes = boxes

    def detect(self, rgb: np.ndarray) -> list[Detection]:
        return [Detection(box=b, landmarks=np.zeros((5, 2), np.float32), score=1.0) for b in self.boxes]


def test_boxes_csv_with_ignore_rows_and_errors(tmp_path: Path) -> None:
    Image.new("RGB", (200, 100), (90, 90, 90)).save(tmp_path / "a.png")  # a plain grey synthetic image
    csv_file = tmp_path / "boxes.csv"
    csv_file.write_text(
        "split,file,img_w,img_h,left,top,width,height,ignore\n"
        "testing,a.png,200,100,10,10,40,40,0\n"
        "testing,a.png,200,100,100,10,40,40,0\n"
        "testing,a.png,200,100,150,50,40,40,1\n"
    )
    report = evaluate_boxes(FixedDetector([(12, 10, 40, 40), (150, 52, 40, 40), (60, 60, 10, 10)]), csv_file, tmp_path)
    assert (report.truth, report.true_positives, report.false_positives, report.missed, report.ignored) == (
        2,
        1,
        1,
        1,
        1,
    )
    assert report.recall == 0.5 and report.precision == 0.5
    assert report.per_image[0].detections == 3 and not report.per_image[0].scaled

    with pytest.raises(DetectionEvalError) as err:
        evaluate_boxes(FixedDetector([]), tmp_path / "nope.csv", tmp_path)
    assert err.value.code == "missing_file" and "nope.csv" in str(err.value)
    csv_file.write_text("split,file,img_w,img_h,left,top,width,height,ignore\ntesting,b.png,10,10,0,0,5,5,0\n")
    with pytest.raises(DetectionEvalError, match="b.png") as err:
        evaluate_boxes(FixedDetector([]), csv_file, tmp_path)
    assert err.value.code == "missing_image"
    csv_file.write_text("file,left,top\na.png,1,2\n")
    with pytest.raises(DetectionEvalError, match="img_w") as err:
        evaluate_boxes(FixedDetector([]), csv_file, tmp_path)
    assert err.value.code == "missing_column"
    csv_file.write_text("split,file,img_w,img_h,left,top,width,height,ignore\ntesting,a.png,wide,10,0,0,5,5,0\n")
    with pytest.raises(DetectionEvalError, match="line 2") as err:
        evaluate_boxes(FixedDetector([]), csv_file, tmp_path)
    assert err.value.code == "bad_boxes_file"


# the real PASCAL boxes with dlib's HOG ------------------------------------------------------------


@pytest.fixture(scope="module")
def pascal(shared_data: Path) -> Path:
    return shared_data / "dlib_pascal_faces"


@pytest.fixture(scope="module")
def hog() -> HogFaceDetector:
    return HogFaceDetector()


@pytest.fixture(scope="module")
def hog_report(shared_data: Path, pascal: Path, hog: HogFaceDetector) -> DetectionReport:
    return evaluate_detection(hog, pascal / "face_boxes.csv", pascal, shared_data / "negatives")


def test_hog_on_the_pascal_boxes(pascal: Path, hog: HogFaceDetector, hog_report: DetectionReport) -> None:
    report = hog_report
    # Hand-checked: HOG (upsample 1) finds all 43 boxed faces of the 9 photos and nothing else.
    # dlib drew these boxes in its own HOG convention, so every match has IoU >= 0.6.
    assert report.images == 9 and report.truth == 43
    assert (report.true_positives, report.false_positives, report.missed) == (43, 0, 0)
    assert report.recall == 1.0 and report.precision == 1.0
    assert all(r.detections == r.truth == r.true_positives for r in report.per_image)
    assert 0 < report.ms_per_image < 5000
    testing = evaluate_boxes(hog, pascal / "face_boxes.csv", pascal, splits={"testing"})
    assert testing.images == 5 and testing.truth == 25

    # A strict IoU turns two loose (but correct) boxes into a miss and a false alarm each.
    strict = evaluate_boxes(hog, pascal / "face_boxes.csv", pascal, iou=0.7)
    assert (strict.true_positives, strict.false_positives, strict.missed) == (41, 2, 2)


def test_each_hog_detector_has_its_own_copy_of_dlibs_model(pascal: Path, hog: HogFaceDetector) -> None:
    """Issue 11 (test suite speed): detectors restore dlib's model from bytes serialised once per process
    instead of rebuilding it (~0.5 s each). Each still gets its own object (dlib's keeps scratch state
    between calls, so pipelines never share one), and it finds exactly what dlib's own detector finds."""
    import dlib

    other = HogFaceDetector()
    assert other._detector is not hog._detector
    rgb = np.asarray(Image.open(pascal / "2008_001322.jpg").convert("RGB"))
    rects, scores, _ = dlib.get_frontal_face_detector().run(rgb, 1, 0.0)
    mine, my_scores, _ = other._detector.run(rgb, 1, 0.0)
    assert len(rects) == 3 and list(mine) == list(rects) and my_scores == scores


def test_a_models_folder_keeps_dlibs_hog_model_for_other_processes(pascal: Path, tmp_path: Path) -> None:
    """Issue 11 (test suite speed): with a models folder, dlib's HOG model is written there once (owner-only,
    like the ONNX conversions) so that worker processes and later commands load it in ~1 ms instead of
    rebuilding it; what is loaded finds exactly what dlib's own detector finds. A damaged file is no
    failure: the detector is built in memory."""
    import stat

    import dlib

    folder = tmp_path / "models"
    HogFaceDetector(cache_dir=folder)
    [saved] = list(folder.iterdir())
    assert saved.suffix == ".svm" and stat.S_IMODE(saved.stat().st_mode) == 0o600
    rgb = np.asarray(Image.open(pascal / "2008_001322.jpg").convert("RGB"))
    rects, scores, _ = dlib.get_frontal_face_detector().run(rgb, 1, 0.0)
    loaded, loaded_scores, _ = dlib.fhog_object_detector(str(saved)).run(rgb, 1, 0.0)  # as another process does
    assert len(rects) == 3 and list(loaded) == list(rects) and loaded_scores == scores
    damaged = tmp_path / "damaged"
    damaged.mkdir()
    (damaged / saved.name).write_bytes(b"not a detector")
    found, found_scores, _ = HogFaceDetector(cache_dir=damaged)._detector.run(rgb, 1, 0.0)
    assert list(found) == list(rects) and found_scores == scores


def test_landmarkers_share_one_shape_model_and_agree_from_several_threads(pascal: Path, hog: HogFaceDetector) -> None:
    """Issue 11 (test suite speed): dlib's 5-point model is loaded once per process (~50 ms each) and
    shared, as dlib documents it usable from several threads at once: landmarks found from four threads
    at the same time are exactly the ones found one after another."""
    from concurrent.futures import ThreadPoolExecutor

    from facesearch.models.detect.landmarks import FivePointLandmarker

    first, second = FivePointLandmarker(), FivePointLandmarker()
    assert first._shape is second._shape
    rgb = np.asarray(Image.open(pascal / "2007_007763.jpg").convert("RGB"))
    boxes = [d.box for d in hog.detect(rgb)]
    assert len(boxes) >= 5

    def landmarks(landmarker: FivePointLandmarker) -> list[list[float]]:
        return [landmarker.in_box(rgb, box).landmarks.tolist() for box in boxes for _ in range(10)]

    alone = landmarks(first)
    with ThreadPoolExecutor(4) as pool:
        together = list(pool.map(landmarks, [first, second, first, second]))
    assert all(result == alone for result in together)


def test_recall_and_precision_move_with_the_detector_settings(pascal: Path) -> None:
    # Without upsampling, HOG's 80-pixel window misses the ~37-pixel faces: 11 of 43 found.
    coarse = evaluate_boxes(HogFaceDetector(DetectorSettings(upsample=0)), pascal / "face_boxes.csv", pascal)
    assert (coarse.true_positives, coarse.false_positives, coarse.missed) == (11, 0, 32)
    assert coarse.recall == pytest.approx(11 / 43)
    missed = {r.file: r.missed for r in coarse.per_image}
    assert missed["2007_007763.jpg"] == 7 and missed["2008_001322.jpg"] == 0  # small faces vs 76-90 px faces
    # A lower score threshold adds false alarms (3) without finding more.
    loose = evaluate_boxes(HogFaceDetector(DetectorSettings(min_score=-0.5)), pascal / "face_boxes.csv", pascal)
    assert (loose.true_positives, loose.false_positives, loose.missed) == (43, 3, 0)
    assert loose.precision == pytest.approx(43 / 46)


def test_boxes_are_rescaled_to_a_resized_copy(pascal: Path, hog: HogFaceDetector, tmp_path: Path) -> None:
    # A copy at 2x (in a temporary folder only): the CSV's 500x375 boxes are scaled to 1000x750.
    name = "2008_001322.jpg"
    with Image.open(pascal / name) as img:
        img.resize((img.width * 2, img.height * 2)).save(tmp_path / name)
    rows = [line for line in (pascal / "face_boxes.csv").read_text().splitlines() if name in line]
    (tmp_path / "boxes.csv").write_text("split,file,img_w,img_h,left,top,width,height,ignore\n" + "\n".join(rows))
    report = evaluate_boxes(hog, tmp_path / "boxes.csv", tmp_path)
    assert report.per_image[0].scaled
    assert (report.true_positives, report.false_positives, report.missed) == (3, 0, 0)


def test_hog_invents_no_faces_on_the_negatives(hog_report: DetectionReport) -> None:
    neg = hog_report.negatives
    assert neg is not None
    assert neg.images == 25 and not neg.errors  # dlib/ and skimage/ subfolders, SOURCE.txt skipped
    assert neg.false_faces == 0 and neg.false_faces_per_image == 0.0
    assert {r["file"] for r in neg.per_image} >= {"skimage/chelsea.png", "dlib/dog.jpg"}


def test_negatives_count_faces_and_record_unreadable_files(pascal: Path, hog: HogFaceDetector, tmp_path: Path) -> None:
    (tmp_path / "dogs.jpg").symlink_to(pascal / "dogs.jpg")
    (tmp_path / "face.jpg").symlink_to(pascal / "Tom_Cruise_avp_2014_4.jpg")  # a face where none belongs
    (tmp_path / "broken.jpg").write_bytes(b"not a jpeg at all")
    neg = evaluate_negatives(hog, tmp_path)
    assert neg.images == 2 and neg.false_faces == 1 and neg.images_with_false_faces == 1
    assert neg.false_faces_per_image == 0.5
    assert [e["file"] for e in neg.errors] == ["broken.jpg"] and neg.errors[0]["code"] == "not_an_image"
    with pytest.raises(DetectionEvalError) as err:
        evaluate_negatives(hog, tmp_path / "missing")
    assert err.value.code == "missing_file"


def test_report_dict_and_tables(hog_report: DetectionReport) -> None:
    report = hog_report
    data = json.loads(json.dumps(report.to_dict()))
    assert data["recall"] == 1.0 and data["precision"] == 1.0 and data["false_faces_per_image"] == 0.0
    assert data["images"] == 9 and data["ms_per_image"] > 0 and len(data["per_image"]) == 9
    assert data["negatives"]["images"] == 25
    console = Console(record=True, width=160)
    console.print(detection_table(report))
    console.print(per_image_table(report))
    text = console.export_text()
    assert "100.0% (43 of 43 faces)" in text and "2008_004176.jpg" in text and "0 on 0 of 25 images" in text
