"""A library's creation options, validated in one place for every interface (Python, CLI, REST API).

Some choices are fixed when a library is created, because an index never mixes them: the model
and how it is applied (flip, jitter), the detector, the vector store and the catalog's database.
:class:`LibrarySpec` holds what a caller asked for; :meth:`LibrarySpec.new_config` refuses what
cannot work before anything is written (a refused catalog URL leaves no folder behind), and
:meth:`LibrarySpec.check_existing` refuses a request that contradicts an existing library.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from facesearch.config import LibraryConfig, check_jitter_axes
from facesearch.errors import LibraryError
from facesearch.models.embed.info import BUILTIN_KEYS, DLIB_RESNET_INT8_KEY, DLIB_RESNET_INT8R_KEY, DLIB_RESNET_KEY
from facesearch.search.labels import check_max_fpir
from facesearch.store.database import server_catalog_url
from facesearch.store.vectors.factory import check_engine

DETECTORS = ("hog", "cnn")
CATALOG_NAME = "catalog.sqlite"


def default_model(config: LibraryConfig, embedder: str = "onnx", device: str = "cpu") -> str:
    """Issue 15: the built-in model of a new library for which none was asked (``config``: its recipe so far).

    dlib's ResNet quantised to int8 (as accurate on lfw-dev, faster on the CPU) wherever it can serve the
    library as well as the float model: only ONNX Runtime on the CPU runs it (``--embedder dlib`` and a GPU
    run the float weights), and only a recipe with a shipped int8 calibration gives calibrated labels from
    the first search (the float model has tables for more recipes, e.g. ``--jitter 0``). Otherwise the float
    model, as before. Libraries created before keep theirs (config.py).

    Of the int8 models, the one with 7-bit weights (``dlib_resnet_v1_int8r``: the same descriptors on every x86
    CPU, VNNI or not; models/cpu_features.py) where its calibration ships for the recipe, else
    ``dlib_resnet_v1_int8`` (whose descriptors move on CPUs without VNNI).
    """
    from facesearch.models.runtime import ONNXRUNTIME, runtime_for
    from facesearch.search.calibration import default_calibration

    if embedder != "onnx" or runtime_for(device) != ONNXRUNTIME:
        return DLIB_RESNET_KEY
    for int8 in (DLIB_RESNET_INT8R_KEY, DLIB_RESNET_INT8_KEY):
        if default_calibration(config.recipe_key(int8)) is not None:
            return int8
    return DLIB_RESNET_KEY


def default_jitter_axes(config: LibraryConfig, pick_model: Callable[[LibraryConfig], str]) -> str:
    """Issue 15: the jitter axes of a new library for which none were asked (``config``: its recipe so far).

    "y" (plain + up/down shifts, each mirrored: 6 views instead of 10, ~40% less of the ResNet per face, the same
    accuracy on lfw-dev: docs/accuracy.md) where facesearch ships a calibration for that recipe with the model the
    library would then get (``pick_model``), so that its labels are calibrated from the first search; else "xy",
    the 4 shifts as before (and always with jitter 0, where no shifted view exists). Libraries created before keep
    theirs (config.py: a config without the setting reads "xy").
    """
    from facesearch.search.calibration import default_calibration

    if not config.jitter:
        return "xy"
    trial = replace(config, jitter_axes="y")
    return "y" if default_calibration(trial.recipe_key(pick_model(trial))) is not None else "xy"


def default_score_normalization(recipe_key: str) -> str:
    """Issue 16: the score kind of a new library of this embedding recipe (``LibraryConfig.recipe_key``).

    ``snorm_cos`` (s-norm + 45 x cosine: lower FNIR at FPIR 0.01 on lfw-dev, docs/accuracy.md) where facesearch
    ships a snorm_cos table for the recipe, so that its labels are calibrated from the first search; else ``snorm``
    as before (a snorm_cos library without a table would label nothing a match). Libraries created before keep
    theirs (config.py: a config without the setting reads "snorm").
    """
    from facesearch.search.calibration import default_calibration

    shipped = default_calibration(recipe_key)
    return "snorm_cos" if shipped is not None and shipped.table("snorm_cos") is not None else "snorm"


@dataclass(frozen=True)
class LibrarySpec:
    """Creation options; None means "the default" for a new library and "whatever it has" for an existing one."""

    onnx_model: dict[str, Any] | None = None
    index_engine: str | None = None
    flip_average: bool | None = None
    jitter: float | None = None
    jitter_axes: str | None = None  # "xy" or "y" (config.py JITTER_AXES); None: settings.default_jitter_axes
    vector_store: str | None = None
    milvus_uri: str | None = None
    catalog_url: str | None = None
    detector: str | None = None
    max_fpir: float | None = None  # the library's default max FPIR (search/labels.py); a search may override it
    model: str | None = None  # a built-in model key (embed/info.py BUILTIN_KEYS); issue 15: the int8 ResNet
    # Where a new library embeds first ("cpu", "cuda:0"): only picks the default model (a GPU runs float weights).
    # Not a setting of the library: never stored, never compared with an existing one.
    device: str | None = None

    def check_existing(self, config: LibraryConfig, folder: Path) -> None:
        """Refuse options that contradict what ``folder`` was created with."""
        if self.onnx_model is not None and config.onnx_model != self.onnx_model:
            raise LibraryError(f"{folder} was built with another model; an index never mixes models")
        if self.model is not None and config.model != self.model:
            raise LibraryError(
                f"{folder} embeds with {config.model}, fixed when it was created; an index never mixes models",
                code="bad_request",
            )
        if self.jitter_axes is not None and config.jitter and check_jitter_axes(self.jitter_axes) != config.jitter_axes:
            raise LibraryError(
                f"{folder} embeds with jitter axes {config.jitter_axes!r}, fixed when it was created; an index never "
                "mixes recipes",
                code="bad_request",
            )
        if self.vector_store is not None and config.vector_store != self.vector_store:
            raise LibraryError(f"{folder} keeps its vectors in {config.vector_store}, fixed when it was created")
        if self.max_fpir is not None and self.max_fpir != config.max_fpir:
            raise LibraryError(
                f"{folder} has max FPIR {config.max_fpir:g}, set when it was created: give --max-fpir per search "
                "(or change max_fpir in its config.json)",
                code="bad_request",
            )
        if self.catalog_url is not None and server_catalog_url(self.catalog_url) != config.catalog_url:
            raise LibraryError(
                f"{folder} keeps its catalog in {config.catalog_url or CATALOG_NAME}, fixed when it was created"
            )

    def new_config(self, embedder: str = "onnx") -> LibraryConfig:
        """The configuration of a new library with these options; raises before anything is written.

        ``embedder`` (``onnx`` or ``dlib``) and :attr:`device`, what will embed into it first, pick the model when
        none is asked for (:func:`default_model`)."""
        checked_url = server_catalog_url(self.catalog_url) if self.catalog_url is not None else None
        if self.jitter_axes is not None:
            check_jitter_axes(self.jitter_axes)
        if self.detector not in (None, *DETECTORS):
            raise LibraryError(f"unknown detector {self.detector!r}: choose 'hog' or 'cnn'", code="bad_request")
        if self.index_engine is not None:
            from facesearch.store.vectors.faiss_index import VectorIndex

            # Refuse an engine FAISS cannot build (dim: dlib's 128 unless the model says otherwise).
            VectorIndex(int((self.onnx_model or {}).get("dim", 128)), self.index_engine)
        config = LibraryConfig(
            onnx_model=self.onnx_model,
            index_engine=self.index_engine or LibraryConfig.index_engine,
            catalog_url=checked_url,
        )
        if self.max_fpir is not None:
            config.max_fpir = check_max_fpir(self.max_fpir)
        if self.flip_average is not None:
            config.flip_average = self.flip_average
        if self.jitter is not None:
            config.jitter = self.jitter
        if self.detector == "cnn":
            config.detector_kind, config.detector_fallback, config.detector_near_misses = "cnn", "none", "none"
        if self.model is not None and (self.model not in BUILTIN_KEYS or self.onnx_model is not None):
            raise LibraryError(
                f"unknown model {self.model!r}: choose {' or '.join(BUILTIN_KEYS)} (or give an ONNX model file)",
                code="bad_request",
            )
        config.jitter_axes = self.jitter_axes or default_jitter_axes(config, lambda c: self._model(c, embedder))
        config.model = self._model(config, embedder)
        config.score_normalization = default_score_normalization(config.recipe_key(config.model))
        if self.vector_store is not None:
            config.vector_store = self.vector_store
            config.milvus_uri = self.milvus_uri
            if self.vector_store == "milvus" and self.milvus_uri:
                from facesearch.store.vectors.milvus_index import new_collection_name

                config.milvus_collection = new_collection_name()  # a server may hold many libraries
        check_engine(config)
        return config

    def _model(self, config: LibraryConfig, embedder: str) -> str:
        """The model key of a new library with the recipe ``config`` (the one asked, else :func:`default_model`)."""
        if self.model is not None:
            return self.model
        if self.onnx_model is not None:
            return str(self.onnx_model["key"])
        return default_model(config, embedder, self.device or "cpu")
