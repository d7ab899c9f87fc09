"""Issue 15: a library's model files are made once, before an ingest's worker processes start."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from facesearch.config import LibraryConfig
from facesearch.recipe import LibraryRecipe


def model_files(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir()) if folder.is_dir() else []


def test_prepare_makes_the_detectors_files_of_the_recipe(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Issue 15: on a library's first ingest every worker made dlib's HOG model file and converted the CNN
    (~1.7 s of CPU each, all at once); ``prepare`` (run before the workers start) now makes them, and only
    those the recipe's detectors use. (backend "dlib": no ResNet conversion, so only the detectors' files.)"""
    monkeypatch.setenv("FACESEARCH_MODEL_CACHE", "")  # each library's own models/ folder
    default = LibraryRecipe(tmp_path / "a", LibraryConfig(), backend="dlib")
    assert default.config.detector_fallback == "cnn" and default.config.detector_near_misses == "cnn"
    assert model_files(default.models_dir) == []
    default.prepare()
    files = model_files(default.models_dir)
    assert [f for f in files if f.startswith("dlib_frontal_face_detector-")], files
    assert [f for f in files if f.startswith("dlib_mmod_human_face_v1-") and f.endswith(".onnx")], files

    hog_only = replace(LibraryConfig(), detector_fallback="none", detector_near_misses="none")
    recipe = LibraryRecipe(tmp_path / "b", hog_only, backend="dlib")
    recipe.prepare()
    files = model_files(recipe.models_dir)
    assert [f for f in files if f.startswith("dlib_frontal_face_detector-")], files
    assert not [f for f in files if f.startswith("dlib_mmod")], files  # no CNN in this recipe: nothing converted
