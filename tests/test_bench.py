"""The benchmarks stay runnable: each script module imports and answers ``--help`` without starting a
run, the data folder is looked up in one place (bench/datasets.py), and no script edits sys.path.

The long runs themselves are not tests; these checks are what breaks when a move or a renamed import
leaves a benchmark behind.
"""

from __future__ import annotations

import importlib
import pkgutil
import sys
from pathlib import Path

import numpy as np
import pytest

import bench
from bench import datasets

ROOT = Path(__file__).resolve().parents[1]
SCRIPTS = ["scripts.device_bundle", "scripts.ship_calibration", "scripts.int8_ranges"]


def script_modules() -> list[str]:
    """Every bench module with a ``main`` (the runnable ones), found by walking the package, so a new
    benchmark is covered without being listed here."""
    found = []
    for info in pkgutil.walk_packages(bench.__path__, "bench."):
        if not info.ispkg and hasattr(importlib.import_module(info.name), "main"):
            found.append(info.name)
    return sorted(found)


def test_every_concern_has_runnable_scripts() -> None:
    modules = script_modules()
    for concern in ("bench.speed.", "bench.accuracy.", "bench.scale."):
        assert any(m.startswith(concern) for m in modules), (concern, modules)
    assert "bench.speed.ingest" in modules and "bench.scale.search" in modules  # the Makefile's targets


@pytest.mark.parametrize("name", script_modules() + SCRIPTS)
def test_help_shows_usage_without_running(
    name: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    module = importlib.import_module(name)
    monkeypatch.setattr(sys, "argv", [name, "--help"])
    with pytest.raises(SystemExit) as exit_info:
        module.main()
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith("usage:") and (module.__doc__ or "").splitlines()[0][:40] in " ".join(out.split())


def test_no_sys_path_edits() -> None:
    """Scripts run as modules from the repository root; a sys.path edit would hide a broken import."""
    offenders = [
        str(path.relative_to(ROOT))
        for folder in ("bench", "scripts")
        for path in (ROOT / folder).rglob("*.py")
        if "sys.path" in path.read_text()
    ]
    assert offenders == []


def test_data_dir_follows_facesearch_data(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("FACESEARCH_DATA", str(tmp_path))
    assert datasets.data_dir() == tmp_path.resolve()
    monkeypatch.delenv("FACESEARCH_DATA")
    assert datasets.data_dir() == (ROOT.parent / "shared" / "data").resolve()


def test_lfw_photos_spreads_a_subset_over_all_people(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    images = tmp_path / "lfw-dev" / "images"
    for person in ("Alice_A", "Bob_B", "Carol_C", "Dan_D"):
        for n in (1, 2, 3):
            (images / person).mkdir(parents=True, exist_ok=True)
            (images / person / f"{person}_{n:04d}.jpg").write_bytes(b"")  # names only: nothing is decoded
    monkeypatch.setenv("FACESEARCH_DATA", str(tmp_path))
    assert len(datasets.lfw_photos()) == 12
    subset = datasets.lfw_photos(limit=4)
    assert [p.parent.name for p in subset] == ["Alice_A", "Bob_B", "Carol_C", "Dan_D"]
    assert [p.name for p in datasets.lfw_people()] == ["Alice_A", "Bob_B", "Carol_C", "Dan_D"]


def test_missing_data_names_the_path_and_the_variable(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("FACESEARCH_DATA", str(tmp_path / "nowhere"))
    with pytest.raises(SystemExit, match=r"lfw-dev not found at .*nowhere.*FACESEARCH_DATA"):
        datasets.lfw_photos()
    with pytest.raises(SystemExit, match=r"face_recognition's example photos not found"):
        datasets.examples_dir()


def test_ship_calibration_add_keeps_the_other_recipes(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Issue 15: a new model key's table is added to the shipped file (--add) without the tables of the
    recipes already shipped, whose inputs are not at hand; without --add the file holds only those given."""
    import json

    from scripts import ship_calibration

    shipped = json.loads(ship_calibration.TARGET.read_text())
    target = tmp_path / "default_calibration.json"
    target.write_text(json.dumps(shipped))
    new = dict(shipped[0], model="a_new_model+flip+jitter2.5")
    (tmp_path / "new.json").write_text(json.dumps(new))
    monkeypatch.setattr(ship_calibration, "TARGET", target)
    monkeypatch.setattr(sys, "argv", ["ship_calibration", "--add", str(tmp_path / "new.json")])
    ship_calibration.main()
    models = [entry["model"] for entry in json.loads(target.read_text())]
    assert models == [entry["model"] for entry in shipped] + [new["model"]]
    monkeypatch.setattr(sys, "argv", ["ship_calibration", str(tmp_path / "new.json")])
    ship_calibration.main()
    assert [entry["model"] for entry in json.loads(target.read_text())] == [new["model"]]


def test_probe_views_cuts_the_gallery_views_as_ingest_does(shared_data: Path) -> None:
    """Issue 16 (probe-side views): the measuring script's variants 0-4 must be exactly the chips the
    default recipe embeds (models/align.py face_chips with jitter_shifts(2.5)), or its "gallery" side
    would not be the gallery's and every probe-vs-gallery figure it reports would be off."""
    from bench.accuracy.probe_views import GALLERY, VARIANTS, chips_for
    from facesearch.media.decode import decode_image
    from facesearch.models.align import face_chips
    from facesearch.models.detect.base import DetectorSettings
    from facesearch.models.detect.hog import HogFaceDetector
    from facesearch.models.pipeline import jitter_shifts

    photo = next((shared_data / "face_recognition_examples" / "by_identity").rglob("*.jpg"))
    rgb = decode_image(photo.read_bytes()).rgb
    detection = HogFaceDetector(DetectorSettings(upsample=1)).detect(rgb)[0]
    ours = chips_for(rgb, detection, [VARIANTS[i] for i in GALLERY], 150, 0.25)
    ingest = face_chips(rgb, detection, 150, 0.25, jitter_shifts(2.5))
    assert ours.shape == ingest.shape == (5, 150, 150, 3)
    assert np.array_equal(ours, ingest)
    scaled = chips_for(rgb, detection, [VARIANTS[-1]], 150, 0.25)  # a probe-only view really differs
    assert not np.array_equal(scaled[0], ingest[0])


def test_hog_split_at_level_4_gives_todays_large_faces_exactly(shared_data: Path) -> None:
    """Issue 15 (faster detection, bench/speed/hog_variants.py): the documented split of today's HOG run must be
    exact, or every "same box" figure the bench reports for a gated variant would be off. Scanning dlib's own
    level-4 image gives today's boxes (>= 74 px) and scores; mapping its rounded boxes back naively would be 1 px
    off on most photos, which the comparison below catches."""
    import dlib

    from bench.speed.hog_variants import PYR2, PYR6, SMALL_BOX, SPLIT_LEVEL, frontal, large_faces
    from facesearch.media.decode import decode_image

    photos = sorted((shared_data / "lfw-dev" / "images").glob("*/*.jpg"))[::400][:12]
    photos += sorted((shared_data / "face_recognition_examples" / "by_identity").rglob("*.jpg"))[:2]
    compared = naive_off = 0
    for photo in photos:
        rgb = decode_image(photo.read_bytes()).rgb
        rects, scores, _ = frontal().run(rgb, 1, -0.5)
        today = {
            ((r.left(), r.top(), r.width(), r.height()), round(s, 9))
            for r, s in zip(rects, scores, strict=True)
            if r.width() >= SMALL_BOX
        }
        split = {(box, round(score, 9)) for box, score in large_faces(rgb, -0.5)}
        assert split == today, photo.name
        compared += len(today)
        up = PYR2.rect_up(dlib.rectangle(0, 0, rgb.shape[1] - 1, rgb.shape[0] - 1))
        level = dlib.resize_image(rgb, up.bottom() + 1, up.right() + 1)
        for _ in range(SPLIT_LEVEL):
            level = PYR6(level)
        naive = [PYR2.rect_down(PYR6.rect_up(r, SPLIT_LEVEL)) for r in frontal().run(level, 0, -0.5)[0]]
        naive_off += {(r.left(), r.top(), r.width(), r.height()) for r in naive} != {box for box, _ in today}
    assert compared >= len(photos)  # every photo has a large face or a near miss: the check compared boxes
    assert naive_off > 0  # mapping the level's rounded boxes again would not be today's: why _today_rect exists


def test_gallery_views_recipes_name_the_shifts_ingest_makes() -> None:
    """Issue 15 (fewer gallery views): the scorer's alignment indices are jitter_shifts' order (plain, then
    left/right, then up/down), or a recipe it reports as "up/down shifts" would be another recipe; and its
    averaging of the kept views is the embedder's (raw descriptors summed, then normalised)."""
    from bench.accuracy.gallery_views import ALL, RECIPES, vectors
    from facesearch.models.embed.base import l2_normalise
    from facesearch.models.pipeline import jitter_shifts

    shifts = [(0.0, 0.0), *jitter_shifts(2.5)]
    assert len(shifts) == len(ALL)
    for name, kept in RECIPES.items():
        moved = [shifts[i] for i in kept]
        if "x shifts" in name:
            assert all(dy == 0 for _, dy in moved) and any(dx for dx, _ in moved), name
        if "y shifts" in name:
            assert all(dx == 0 for dx, _ in moved) and any(dy for _, dy in moved), name
        keeps_plain = ("plain" in name and "no plain" not in name) or "today" in name
        assert keeps_plain == (0 in kept), name
    raw = np.random.default_rng(0).normal(size=(3, len(ALL), 2, 128)).astype(np.float32)
    assert np.allclose(vectors(raw, ALL), l2_normalise(raw.reshape(3, -1, 128).sum(axis=1)), atol=1e-6)


@pytest.mark.parametrize("graph", ["hnsw16-sq8", "hnsw16-sq8-only"])
def test_graph_engines_keep_filters_and_removals(graph: str) -> None:
    """Issue 15 (graphs over compressed codes): the scale bench's graph engines number rows themselves, so a
    wrong id map or a selector on the wrong side of the refinement would report recall and filtered latency
    for results no user may see. Filtered results must all be allowed ids, removed ids never come back, and
    each face is its own nearest neighbour under its own (non-contiguous) id."""
    from bench.scale.engines import GRAPHS, GraphStore

    rng = np.random.default_rng(0)
    vectors = rng.standard_normal((3_000, 128)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    ids = rng.permutation(np.arange(1_000, 1_000 + 2 * len(vectors), 2, dtype=np.int64))
    store = GraphStore(128, *GRAPHS[graph])
    store.add(ids[:2_000], vectors[:2_000])
    store.add(ids[2_000:], vectors[2_000:])
    store.ef_search = 128
    _, found = store.search(vectors[:50], 10)
    assert (found[:, 0] == ids[:50]).mean() >= 0.98
    allowed = np.sort(ids[::10])
    _, found = store.search(vectors[:50], 10, allowed=allowed)
    assert (found >= 0).all() and np.isin(found, allowed).all()
    assert store.remove(ids[:50]) == 50
    _, found = store.search(vectors[:50], 10)
    assert not np.isin(found, ids[:50]).any()
    _, found = store.search(vectors[:50], 10, allowed=allowed)
    assert np.isin(found[found >= 0], allowed).all() and not np.isin(found, ids[:50]).any()


def test_graph_filter_sweep_widens_until_recall_and_restores_the_breadth(tmp_path: Path) -> None:
    """Issue 15 (graphs over compressed codes): a filter's recall at the unfiltered efSearch is not what a
    collection search would get from a wider beam; the bench sweeps wider settings under the filter, stops at
    recall 0.99 and leaves the engine at its operating point for the delete check that follows."""
    from bench.scale.engines import SWEEPS, Engine, exact_top_k, widen_for_filter

    rng = np.random.default_rng(1)
    vectors = rng.standard_normal((4_000, 128)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    ids = np.arange(4_000, dtype=np.int64)
    queries = np.ascontiguousarray(vectors[:40] + 0.05 * rng.standard_normal((40, 128)).astype(np.float32))
    allowed = np.sort(rng.choice(ids, 400, replace=False))
    truth = {"allowed": allowed, "filtered": exact_top_k(vectors, ids, queries, allowed)}
    engine = Engine("hnsw16-sq8", len(ids), 128, tmp_path)
    engine.add(ids, vectors)
    engine.set_breadth(32)
    steps = widen_for_filter(engine, 32, queries, truth)
    breadths = [step["breadth"] for step in steps]
    assert breadths and breadths == sorted(breadths) and breadths[0] > 32
    assert steps[-1]["recall_at_10"] >= 0.99  # the seeded filter is reached inside the sweep: it stopped there
    assert breadths[-1] <= SWEEPS["hnsw16-sq8"][1][-1]
    assert all(step["recall_at_10"] < 0.99 for step in steps[:-1])
    assert engine.store.ef_search == 32
