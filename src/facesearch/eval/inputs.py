"""What an evaluation runs on: the pipeline and operating point of a library (or the defaults), the photos.

Shared by ``facesearch eval ...`` and ``facesearch calibrate`` (cli/eval.py), and usable without the
command line.
"""

from __future__ import annotations

import os
from pathlib import Path

from facesearch.config import LibraryConfig, default_library_path
from facesearch.errors import FaceSearchError


def eval_pipeline(library: Path | None, embedder: str, **overrides: object):  # type: ignore[no-untyped-def]
    """The pipeline of an existing library (its model and settings), or the defaults, and its recipe key.

    ``overrides`` (``flip_average``, ``jitter``, ``jitter_axes``, ``detector_fallback``, ``model``: a built-in
    model key such as the int8 ResNet of issue 15; None = keep) apply to the defaults, for measuring a recipe before
    creating a library with it. Without ``model``, the model a new library with these options would get (issue 15:
    settings.default_model, the int8 ResNet unless ``embedder`` or the recipe calls for the float one); without
    ``jitter_axes``, the axes it would get (settings.default_jitter_axes: "y" where its calibration ships).
    """
    from dataclasses import replace

    from facesearch.config import check_jitter_axes
    from facesearch.library import Library
    from facesearch.models.embed.info import dlib_resnet_info
    from facesearch.models.pipeline import PipelineRecipe
    from facesearch.settings import default_jitter_axes, default_model

    folder = library or default_library_path()
    changes = {k: v for k, v in overrides.items() if v is not None}
    if "jitter_axes" in changes:  # refused before any library or model is opened
        check_jitter_axes(changes["jitter_axes"], "--jitter-axes")
    if (folder / "config.json").is_file():
        if changes:
            raise FaceSearchError(
                f"{folder} is a library with its own recipe: drop {', '.join(changes)} or use another --library",
                code="bad_request",
            )
        with Library.open(folder, embedder=embedder, create=False) as lib:
            return lib.pipeline, lib.model_info.key
    cache = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "facesearch" / "models"
    config = replace(LibraryConfig(), **changes)

    def pick_model(recipe: LibraryConfig) -> str:
        return str(changes["model"]) if "model" in changes else default_model(recipe, embedder)

    if "jitter_axes" not in changes:
        config.jitter_axes = default_jitter_axes(config, pick_model)
    config.model = pick_model(config)
    recipe = PipelineRecipe(
        backend=embedder,
        models_dir=str(cache),
        model_spec=None,
        options=config.pipeline_options(),
        model=config.model,
    )
    return recipe.build(), config.recipe_key(dlib_resnet_info(key=config.model).key)


def verify_operating_point(library: Path | None, embedder: str, max_fmr: float | None):  # type: ignore[no-untyped-def]
    """The pipeline and the cosine threshold for max_fmr: the library's calibration or the shipped one."""
    from facesearch.library import Library
    from facesearch.search.calibration import DEFAULT_MAX_FMR, default_calibration

    folder = library or default_library_path()
    if (folder / "config.json").is_file():
        with Library.open(folder, embedder=embedder, create=False) as lib:
            table, source = lib.scoring.score_table("cosine")
            pipeline = lib.pipeline
            max_fmr = lib.config.max_fmr if max_fmr is None else max_fmr
    else:
        pipeline, model_key = eval_pipeline(None, embedder)
        calibration = default_calibration(model_key)
        table = calibration.table("cosine") if calibration else None
        source = calibration.source if calibration else None
        max_fmr = DEFAULT_MAX_FMR if max_fmr is None else max_fmr
    if table is None:
        raise FaceSearchError("no calibration for this model: run facesearch calibrate first", code="no_calibration")
    return pipeline, table.threshold_for(max_fmr), f"max FMR {max_fmr:g}, calibration: {source}"


def calibration_photos(images: Path, pairs: Path | None) -> list[Path]:
    """The photos to calibrate on: all in the LFW-layout folder, or only those of a pairs file."""
    from facesearch.eval.identify import IMAGE_SUFFIXES
    from facesearch.eval.lfw import read_pairs

    if not images.is_dir():
        raise FaceSearchError(f"{images} is not a folder in LFW layout (DIR/<Person>/<photo>)", code="bad_request")
    if pairs is not None:
        return sorted({p for pair in read_pairs(pairs, images) for p in (pair.a, pair.b)})
    return sorted(p for p in images.glob("*/*") if p.suffix.lower() in IMAGE_SUFFIXES)


def operating_points(calibration) -> list[dict]:  # type: ignore[no-untyped-def]
    """The threshold and its FNMR at the usual max FMRs, per score kind (those the tables reach)."""
    rows = []
    for kind, table in calibration.tables.items():
        for max_fmr in (1e-2, 1e-3, 1e-4, 1e-5):
            if max_fmr < table.fmr[-1]:
                continue
            threshold = table.threshold_for(max_fmr)
            rows.append(
                {
                    "score": kind,
                    "max_fmr": max_fmr,
                    "threshold": round(threshold, 4),
                    "fnmr": round(table.fnmr_at(threshold), 5),
                }
            )
    return rows
