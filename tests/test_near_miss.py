"""Issue 16, faces the detector misses: dlib's CNN looks again at crops around HOG's near misses.

A new library's HOG detector hands the windows it scored just under its threshold to the CNN
(models/detect/near_miss.py): faces cut by the photo's edge and turned or background faces are found,
hand-drawn boxes stay found, and clutter HOG almost took for a face stays no face.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from facesearch.errors import ModelError
from facesearch.eval.detect import evaluate_boxes
from facesearch.library import Library
from facesearch.media.decode import decode_image
from facesearch.models.detect.base import downscale
from facesearch.models.detect.factory import create_detector
from facesearch.models.detect.hog import HogFaceDetector
from facesearch.models.detect.near_miss import NEAR_MISS_SCORE, NearMissDetector

# Negatives where HOG scores windows between NEAR_MISS_SCORE and 0 (coins, a motorcycle, a rocket):
# the clutter the CNN is asked about.
CLUTTER = ("skimage/coins.png", "skimage/motorcycle_left.png", "skimage/rocket.jpg")


@pytest.fixture(scope="module")
def near(model_cache: Path) -> NearMissDetector:
    detector = create_detector("hog", cache_dir=model_cache, threads=1, near_misses="cnn")
    assert isinstance(detector, NearMissDetector)
    return detector


def photo(path: Path) -> np.ndarray:
    return decode_image(path.read_bytes()).rgb


def test_the_face_cut_by_the_frame_is_found(shared_data: Path, near: NearMissDetector) -> None:
    """Issue 16: the man cut by this LFW photo's left edge, whom HOG alone misses (its window cannot sit
    partly outside the photo), is found; the central face is the same box as HOG's."""
    rgb = photo(shared_data / "lfw-dev" / "images" / "Jean_Charest" / "Jean_Charest_0001.jpg")
    alone = HogFaceDetector().detect(rgb)
    checked = near.crops_checked
    found = near.detect(rgb)
    assert len(alone) == 1 and len(found) == 2
    assert found[0].box == alone[0].box
    left, _, width, height = found[1].box
    assert left == 0 and 60 <= width <= 120 and 60 <= height <= 120, "the face at the left edge"
    assert near.crops_checked > checked


def test_the_pascal_boxes_stay_found_with_no_false_face(shared_data: Path, near: NearMissDetector) -> None:
    """Issue 16's bar: every hand-drawn box still found, and nothing found that is no face there."""
    pascal = shared_data / "dlib_pascal_faces"
    report = evaluate_boxes(near, pascal / "face_boxes.csv", pascal)
    assert (report.true_positives, report.truth, report.false_positives) == (43, 43, 0)


@pytest.mark.parametrize("name", CLUTTER)
def test_clutter_hog_almost_took_for_a_face_stays_no_face(shared_data: Path, near: NearMissDetector, name: str) -> None:
    """Issue 16: zero new false faces. A negative photo with near misses, beside a real face so that HOG
    finds a face and the CNN is asked about the clutter: only the real face comes back."""
    clutter = photo(shared_data / "negatives" / name)
    face = photo(shared_data / "lfw-dev" / "images" / "Tom_Ridge" / "Tom_Ridge_0001.jpg")  # no near miss of its own
    height = max(clutter.shape[0], face.shape[0])
    canvas = np.zeros((height, clutter.shape[1] + face.shape[1], 3), dtype=np.uint8)
    canvas[: clutter.shape[0], : clutter.shape[1]] = clutter
    canvas[: face.shape[0], clutter.shape[1] :] = face
    work, _ = downscale(canvas, near.settings.working_size)
    scores = [box[4] for box in near.hog.scored_boxes(work, NEAR_MISS_SCORE)]
    assert any(s < 0 for s in scores) and sum(s >= 0 for s in scores) == 1, "the clutter's near misses, one face"
    checked = near.crops_checked
    found = near.detect(canvas)
    assert near.crops_checked > checked, "the CNN looked at the clutter"
    assert len(found) == 1 and found[0].box[0] >= clutter.shape[1], "only the real face"


def test_an_unknown_near_miss_check_is_refused() -> None:
    with pytest.raises(ModelError, match="unknown near-miss check 'yes'") as caught:
        create_detector("hog", near_misses="yes")
    assert caught.value.code == "bad_detector"


def test_new_libraries_check_near_misses_and_old_ones_keep_hog_alone(tmp_path: Path, shared_data: Path) -> None:
    """Issue 16: the check is a setting of the library's config; a library created before it keeps HOG alone
    (its detection, and with it the faces it indexes, unchanged)."""
    rgb = photo(shared_data / "lfw-dev" / "images" / "Jean_Charest" / "Jean_Charest_0001.jpg")
    with Library.open(tmp_path / "new", jitter=0) as lib:
        assert lib.config.detector_near_misses == "cnn"
        assert isinstance(lib.pipeline.detector, NearMissDetector)
        assert len(lib.pipeline.find_faces(rgb)) == 2
    config = json.loads((tmp_path / "new" / "config.json").read_text())
    del config["detector_near_misses"]  # written before the setting existed
    (tmp_path / "new" / "config.json").write_text(json.dumps(config))
    with Library.open(tmp_path / "new") as old:
        assert old.config.detector_near_misses == "none"
        assert type(old.pipeline.detector) is HogFaceDetector
        assert len(old.pipeline.find_faces(rgb)) == 1
    with Library.open(tmp_path / "cnn", detector="cnn", jitter=0) as cnn:
        assert cnn.config.detector_near_misses == "none", "the CNN as the detector has no near misses"


def test_the_batched_engines_cpu_workers_check_near_misses_as_the_library_says(
    model_cache: Path, tmp_path: Path
) -> None:
    """Issue 16: the batched ingest's worker processes detect as the library's pipeline does (batched_prep.py)."""
    from facesearch.config import LibraryConfig
    from facesearch.ingest.batched_prep import PrepSettings, PrepWorker
    from facesearch.ingest.worker import WorkerSettings

    for check, kind in (("cnn", NearMissDetector), ("none", HogFaceDetector)):
        options = LibraryConfig(detector_near_misses=check).pipeline_options()
        worker = WorkerSettings(str(tmp_path / "catalog.sqlite"), str(model_cache), pipeline_options=options)
        prep = PrepWorker(PrepSettings(worker, chip_size=150, chip_padding=0.25, mmod=None))
        assert type(prep.cpu_detectors["hog"]) is kind
