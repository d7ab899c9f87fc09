"""Issue 16: the ``snorm_cos`` score kind (s-norm + SNORM_COS_WEIGHT x cosine), kept per library like its recipe."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from facesearch import Library
from facesearch.config import LibraryConfig
from facesearch.errors import LibraryError
from facesearch.search.normalize import COHORT_TOP, SELF_MATCH, SNORM_COS_WEIGHT, cohort_ids
from tests.helpers import PURPOSE, run_cli, store_synthetic_faces

FACES = 600  # >= MIN_LIBRARY_FACES: searches are cohort-normalised


def _faces(seed: int) -> np.ndarray:
    """Unit vectors in pairs (a face and a near copy of it), so that searches meet close candidates too."""
    rng = np.random.default_rng(seed)
    base = rng.normal(size=(FACES // 2, 128))
    v = np.concatenate([base, base + rng.normal(scale=0.6, size=base.shape)]).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def _set_kind(folder: Path, kind: str | None) -> None:
    """Write ``score_normalization`` into a library's config.json (None: remove the key, as an old config)."""
    config = json.loads((folder / "config.json").read_text())
    config.pop("score_normalization", None)
    if kind is not None:
        config["score_normalization"] = kind
    (folder / "config.json").write_text(json.dumps(config))


def _library(folder: Path, jitter: float = 0, **options: object) -> Path:
    """A library of FACES synthetic faces written by the one writer (no photo, no model run)."""
    vectors = _faces(3)
    with Library.open(folder, jitter=jitter, **options) as lib:  # type: ignore[arg-type]
        lib.create_collection("synthetic")
        store_synthetic_faces(lib, "synthetic", vectors)
    return folder


@pytest.fixture(scope="module")
def library(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _library(tmp_path_factory.mktemp("snorm_cos") / "library")


def _snorm_by_hand(lib: Library, probe: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """The s-norm of search/normalize.py written out from its definition: each side's top-100 cohort scores."""
    cohort = lib.catalog.embeddings_of(cohort_ids(lib.catalog.all_face_ids()))

    def stats(v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        s = np.atleast_2d(v) @ cohort.T
        s[s >= SELF_MATCH] = -np.inf
        top = -np.sort(-s, axis=1)[:, :COHORT_TOP]
        return top.mean(axis=1), top.std(axis=1)

    raw = faces @ probe
    mu_p, sd_p = stats(probe)
    mu_c, sd_c = stats(faces)
    return ((raw - mu_p[0]) / sd_p[0] + (raw - mu_c) / sd_c) / 2


def test_a_snorm_cos_library_scores_snorm_plus_weight_times_cosine(library: Path) -> None:
    """Issue 16: a search of a snorm_cos library ranks by s-norm + 45 x cosine, says so, and its scores are that
    sum to the 4th decimal (against s-norm computed by hand, and against the same library scored as plain s-norm)."""
    _set_kind(library, "snorm_cos")
    with Library.open(library) as lib:
        face_id = int(lib.catalog.all_face_ids()[7])
        result = lib.search(None, purpose=PURPOSE, probe_face_id=face_id, top_k=10)
        assert result.score == "snorm_cos"
        found = [c for f in result.faces for c in f.candidates]
        assert len(found) == 10
        probe = lib.catalog.embeddings_of(np.array([face_id]))[0]
        faces = lib.catalog.embeddings_of(np.array([c.face_id for c in found]))
        expected = _snorm_by_hand(lib, probe, faces) + SNORM_COS_WEIGHT * (faces @ probe)
        np.testing.assert_allclose([c.score for c in found], expected, atol=2e-4)
        np.testing.assert_allclose([c.similarity for c in found], faces @ probe, atol=1e-4)
        assert [c.score for c in found] == sorted((c.score for c in found), reverse=True), "ranked by the sum"
    _set_kind(library, "snorm")
    with Library.open(library) as lib:
        plain = lib.search(None, purpose=PURPOSE, probe_face_id=face_id, top_k=10)
        assert plain.score == "snorm"
        snorm = {c.face_id: c.score for f in plain.faces for c in f.candidates}
    shared = [c for c in found if c.face_id in snorm]
    assert len(shared) >= 5
    for c in shared:
        assert c.score == pytest.approx(snorm[c.face_id] + SNORM_COS_WEIGHT * c.similarity, abs=5e-3)


def test_a_config_without_the_key_keeps_snorm_and_a_bad_kind_is_refused(library: Path) -> None:
    """Issue 16: a library written before the kind existed (no ``score_normalization``) reads as "snorm", the
    score its tables and labels were made for; a misspelt kind is refused by name instead of ranking by cosine."""
    _set_kind(library, None)
    assert LibraryConfig.load(library).score_normalization == "snorm"
    with Library.open(library) as lib:
        assert lib.search(None, purpose=PURPOSE, probe_face_id=1, top_k=3).score == "snorm"
    for bad in ("snorm-cos", "SNORM", 3):
        _set_kind(library, bad)  # type: ignore[arg-type]
        with pytest.raises(LibraryError, match="score_normalization .* is not one of none, snorm, snorm_cos"):
            LibraryConfig.load(library)
    _set_kind(library, "snorm")


def test_eval_identify_refuses_an_unknown_normalisation(tmp_path: Path) -> None:
    """Issue 16: ``--normalize`` names a kind; a typo is a bad request before any photo is read."""
    result = run_cli("eval", "identify", "--images", str(tmp_path), "--normalize", "snorm_cosine", "--json")
    assert result.exit_code != 0
    error = json.loads(result.stdout)["error"]
    assert error["code"] == "bad_request" and "none, snorm, snorm_cos" in error["message"]


def test_without_a_table_for_the_kind_no_label_reads_another_kinds_rates(tmp_path: Path) -> None:
    """Issue 16: a snorm_cos library whose calibration has no snorm_cos table (the float model's shipped tables
    hold cosine and s-norm only) gives no false match rate and labels nothing a match: its scores (~45 per unit
    of cosine) read in the cosine or s-norm table would call nearly everyone a match."""
    folder = _library(tmp_path / "library", model="dlib_resnet_v1")
    _set_kind(folder, "snorm_cos")
    with Library.open(folder) as lib:
        assert lib.scoring.score_table("snorm")[0] is not None and lib.scoring.score_table("snorm_cos")[0] is None
        result = lib.search(None, purpose=PURPOSE, probe_face_id=int(lib.catalog.all_face_ids()[0]), top_k=10)
        found = [c for f in result.faces for c in f.candidates]
        assert result.score == "snorm_cos" and found
        assert result.calibration is None and "has no snorm_cos table" in (result.match_unavailable or "")
        assert all(c.fmr is None and c.label != "match" for c in found)
        # The fallback threshold is the sum a face reaching both configured fallbacks would have, not the cosine's.
        assert result.threshold == pytest.approx(lib.config.snorm_threshold + SNORM_COS_WEIGHT * lib.config.threshold)
        assert all((c.label == "possible lead") == (c.score >= result.threshold) for c in found)
        assert {c.label for c in found} == {"possible lead", "no match"}, "the near copy is a lead, strangers are not"
        point = lib.scoring.same_person_point()
        assert point.kind == "snorm_cos" and point.snorm is None, "the opt-out rule falls back to cosine alone"


def test_the_optout_rule_scores_snorm_cos_as_search_does(tmp_path: Path) -> None:
    """Issue 16 with issue 12 §1's one rule: in a snorm_cos library the opt-out's cohort score is search's score
    (s-norm + 45 x cosine) at the threshold of the library's own snorm_cos table, so an opt-out removes what a
    search would label a lead. The table is measured on the library's faces (each face and its near copy one
    person) by eval/calibrate.py, as ``facesearch calibrate --library`` does."""
    from facesearch.eval.calibrate import calibrate
    from facesearch.search.scoring import _snorm_hits

    folder = _library(tmp_path / "library")
    _set_kind(folder, "snorm_cos")
    with Library.open(folder) as lib:
        ids = lib.catalog.all_face_ids()
        vectors = lib.catalog.embeddings_of(ids)
        normalizer = lib.scoring.normalizer
        assert normalizer is not None and normalizer.kind == "snorm_cos"
        people = {Path(f"p{i % (FACES // 2)}/{i}.jpg"): v for i, v in enumerate(vectors)}  # face i and i + 300
        measured = calibrate(people, lambda p: p.parent.name, lib.model_info.key, "own faces", normalizer=normalizer)
        lib.scoring.save_calibration(measured)
        table = measured.table("snorm_cos")
        point = lib.scoring.same_person_point()
        assert table is not None and point.kind == "snorm_cos" and "snorm_cos >=" in point.describe()
        assert point.snorm == pytest.approx(table.threshold_for(lib.config.max_fmr))
        reference = vectors[:1]
        raw = vectors @ reference.T
        searched = normalizer.normalize(raw[:, 0].astype(np.float64), reference[0], vectors) >= point.snorm
        assert (_snorm_hits(normalizer, reference, vectors, raw, point.snorm) == searched).all()
        assert searched.sum() >= 2, "the face and its near copy reach the lead threshold"
        result = lib.search(None, purpose=PURPOSE, probe_face_id=int(ids[0]), top_k=10)
        leads = {c.face_id for f in result.faces for c in f.candidates if c.label != "no match"}
        assert result.score == "snorm_cos" and leads
        mask = lib.scoring.same_person(reference, vectors)
        assert leads <= {int(i) for i in ids[mask]}, "every face a search labels a lead is the person's for an opt-out"


def test_the_default_recipe_ships_a_checked_snorm_cos_table(tmp_path: Path) -> None:
    """Issue 16: the default recipe's shipped calibration (int8, flip, jitter 2.5) holds a snorm_cos table measured
    on every pair of lfw-dev as its cosine and s-norm tables were, and checked on held-out people (within 2x at
    FMR 1e-3..1e-5, calibration_checks.json); a snorm_cos library of that recipe reads it: calibrated rates."""
    from importlib import resources

    from facesearch.search.calibration import CHECKS_NAME, default_calibration

    recipe = "dlib_resnet_v1_int8+flip+jitter2.5"
    shipped = default_calibration(recipe)
    assert shipped is not None
    table, snorm = shipped.table("snorm_cos"), shipped.table("snorm")
    assert table is not None and snorm is not None
    assert (table.impostor_comparisons, table.genuine_comparisons) == (
        snorm.impostor_comparisons,
        snorm.genuine_comparisons,
    )
    assert 40 < table.threshold_for(1e-3) < 50, "45 x a cosine near 0.93 plus an s-norm near 3"
    checks = json.loads(resources.files("facesearch.search").joinpath(CHECKS_NAME).read_text())
    ratios = [
        ratio
        for check in checks
        if check["model"] == recipe and check["source"] == shipped.source
        for direction in check["ratios"].values()
        for name, ratio in direction.items()
        if name.startswith("snorm_cos@")
    ]
    assert len(ratios) == 6 and all(0.5 <= r <= 2 for r in ratios), ratios
    folder = _library(tmp_path / "library", jitter=2.5, jitter_axes="xy")  # the 10-view recipe (y: test_jitter_axes)
    _set_kind(folder, "snorm_cos")
    with Library.open(folder) as lib:
        assert lib.model_info.key == recipe
        result = lib.search(None, purpose=PURPOSE, probe_face_id=int(lib.catalog.all_face_ids()[0]), top_k=5)
        assert result.score == "snorm_cos" and result.calibration == shipped.source
        assert result.threshold == pytest.approx(table.threshold_for(lib.config.max_fmr), abs=1e-4)
        assert all(c.fmr is not None for f in result.faces for c in f.candidates)


def test_new_libraries_score_snorm_cos_where_its_table_is_shipped(tmp_path: Path) -> None:
    """Issue 16: a new library of the default recipe ranks by snorm_cos (its table is shipped: calibrated labels
    from the first search); a new library of a recipe without a snorm_cos table keeps snorm (else it could label
    nothing a match); an existing library keeps the kind written in its config when reopened."""
    Library.open(tmp_path / "new").close()
    assert LibraryConfig.load(tmp_path / "new").score_normalization == "snorm_cos"
    Library.open(tmp_path / "flip", jitter=0).close()  # dlib_resnet_v1+flip: cosine and s-norm tables only
    assert LibraryConfig.load(tmp_path / "flip").score_normalization == "snorm"
    _set_kind(tmp_path / "new", "snorm")
    with Library.open(tmp_path / "new") as lib:
        assert lib.config.score_normalization == "snorm"
    assert LibraryConfig.load(tmp_path / "new").score_normalization == "snorm"


def test_compare_normalize_scores_the_same_searches_as_the_other_kind_and_shows_them() -> None:
    """Issue 16, ``eval identify --compare-normalize``: the library's searches scored as another kind give that
    kind's figures (the same as a gallery of that kind scores them), and the human output shows them. Synthetic
    vectors: 2,500 gallery faces of 2,500 people, 150 mated probes (noisy copies) and 300 non-mated ones."""
    from rich.console import Console

    from facesearch.cli.eval import _compared_table
    from facesearch.eval.gallery_sweep import PaddedGallery, RealGallery, SweepProbes, measure
    from facesearch.eval.score_compare import measure_kind

    rng = np.random.default_rng(5)

    def unit(v: np.ndarray) -> np.ndarray:
        return (v / np.linalg.norm(v, axis=-1, keepdims=True)).astype(np.float32)

    vectors = unit(rng.normal(size=(2500, 32)))
    gallery = RealGallery(
        ids=np.arange(1, 2501, dtype=np.int64), vectors=vectors, persons=np.array([f"p{i}" for i in range(2500)])
    )
    probes = SweepProbes(
        mated=[unit(vectors[i] + 0.12 * rng.normal(size=32)) for i in range(150)],
        mated_persons=[f"p{i}" for i in range(150)],
        non_mated=list(unit(rng.normal(size=(300, 32)))),
    )
    result = measure_kind(gallery, None, probes, ([], []), "snorm_cos", engine="auto", depth=20, cohort_draws=2)
    direct, _ = measure(PaddedGallery(gallery, np.zeros((0, 32), np.float32), 0, "auto", "snorm_cos"), probes, 20)
    snorm, _ = measure(PaddedGallery(gallery, np.zeros((0, 32), np.float32), 0, "auto", "snorm"), probes, 20)
    assert result["whole"]["score"] == "snorm_cos" and "halves" not in result
    assert result["whole"]["thresholds"] == direct["thresholds"] != snorm["thresholds"]
    assert result["whole"]["fnir_at_fpir"] == direct["fnir_at_fpir"]
    assert result["cohort_draws"]["draws"][0]["fnir_at_fpir"] == direct["fnir_at_fpir"]
    console = Console(width=200, record=True)
    console.print(_compared_table(result))
    text = console.export_text()
    assert "scored as snorm_cos" in text and "2 cohort draws" in text
    assert f"{direct['fnir_at_fpir']['0.01']:.4f}" in text
