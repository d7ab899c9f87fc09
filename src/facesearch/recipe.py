"""A library's embedding recipe, defined once: the model, how it is applied, and where its files are.

The same recipe builds the pipeline in this process, in ingest workers (other processes, Ray
actors) and in evaluation workers; the recipe key names it in the catalog, so an index never mixes
embeddings of two recipes (flip-averaged, jittered and plain embeddings are different recipes).
"""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path

from facesearch.config import LibraryConfig
from facesearch.models.embed.base import Embedder
from facesearch.models.embed.info import BUILTIN_KEYS, DLIB_RESNET_KEY, ModelInfo, dlib_resnet_info
from facesearch.models.pipeline import PipelineRecipe

MODELS_DIR = "models"
MODEL_CACHE_ENV = "FACESEARCH_MODEL_CACHE"


class LibraryRecipe:
    """The recipe of one library folder (its config) with one embedder backend ("onnx" or "dlib")."""

    def __init__(self, folder: Path, config: LibraryConfig, backend: str = "onnx") -> None:
        self.folder, self.config, self.backend = folder, config, backend

    @property
    def models_dir(self) -> Path:
        """Where converted models are kept: the library's models/ folder, or $FACESEARCH_MODEL_CACHE when
        set (one conversion shared by many libraries: a test run, a server holding several)."""
        return Path(os.environ.get(MODEL_CACHE_ENV) or self.folder / MODELS_DIR)

    def pipeline(self) -> PipelineRecipe:
        """How to build this library's pipeline, here or in another process."""
        spec = self.config.model_spec()
        return PipelineRecipe(
            backend=self.backend,
            models_dir=str(self.models_dir),
            model_spec=spec.to_dict() if spec else None,
            options=self.config.pipeline_options(),
            model=self.config.model if spec is None else DLIB_RESNET_KEY,
        )

    def model_info(self, embedder: Embedder | None = None) -> ModelInfo:
        """The model and how it is applied (``embedder``: the built one, needed for an operator's ONNX model)."""
        builtin = self.config.model in BUILTIN_KEYS and self.config.onnx_model is None
        if not builtin and embedder is None:
            raise ValueError("an operator's ONNX model is described by its built embedder")
        info = dlib_resnet_info(key=self.config.model) if builtin else embedder.info  # type: ignore[union-attr]
        key = self.config.recipe_key(info.key)
        if key == info.key:
            return info
        jittered = "jittered" if self.config.jitter_axes == "xy" else f"jittered on {self.config.jitter_axes} only"
        applied = (("flip-averaged", self.config.flip_average), (jittered, self.config.jitter))
        return replace(info, key=key, name=f"{info.name} ({', '.join(w for w, on in applied if on)})")

    def prepare(self) -> None:
        """Make the model files once, before worker processes start (they would each make them, at once):
        the built-in model's conversion, and the detectors' files (issue 15: the HOG model and the CNN's
        conversion took ~1.7 s of CPU in every worker on a library's first ingest)."""
        if self.config.onnx_model is None and self.backend == "onnx":
            from facesearch.models.embed.factory import converted_builtin

            converted_builtin(self.models_dir, self.config.model)
        kinds = {self.config.detector_kind, self.config.detector_fallback}
        if self.config.detector_near_misses == "cnn":
            kinds.add("cnn")
        if "hog" in kinds:
            from facesearch.models.detect.hog import frontal_face_detector

            frontal_face_detector(self.models_dir)  # keeps dlib's HOG model in models_dir
        if "cnn" in kinds:
            from facesearch.models.detect.cnn import converted_mmod

            converted_mmod(self.models_dir)
