"""Library configuration: one ``config.json`` per library folder, written when the library is created.

It pins what must never change under an existing index (the embedding model) and holds the
settings an operator may tune (detector upsampling and working size, index engine, threshold).
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from facesearch.errors import LibraryError
from facesearch.models.detect.base import DetectorSettings
from facesearch.models.embed.info import DLIB_RESNET_INT8_KEY, DLIB_RESNET_KEY, OnnxModelSpec

CONFIG_NAME = "config.json"
FORMAT = 1
DEFAULT_LIBRARY = "./facesearch-library"
# Fallback thresholds, used only for a model without a calibration (an operator's own ONNX model
# before `facesearch calibrate`): otherwise the threshold comes from max_fmr and the calibration.
# Both are FMR ~1e-3 for dlib's ResNet (flip-averaged) on 199k lfw-dev impostor pairs.
DEFAULT_THRESHOLD = 0.928
# The false match rate per comparison of a "possible lead" by default (search/calibration.py); a "match"
# also needs max_fpir (below). Verify (one comparison) calls a match at this rate.
DEFAULT_MAX_FMR = 1e-3
# The chance accepted that a search for someone who is not in the gallery labels anyone "match"
# (NIST's false positive identification rate): a match expects at most this many strangers as high
# in the gallery searched (search/labels.py), so the bar rises as the gallery grows.
DEFAULT_MAX_FPIR = 0.01
DEFAULT_SNORM_THRESHOLD = 2.09
# The score kinds a library may rank by (``score_normalization``): "none" (cosine), "snorm", and issue 16's
# "snorm_cos" (s-norm + 45 x cosine, search/normalize.py SNORM_COS_WEIGHT).
SCORE_NORMALIZATIONS = ("none", "snorm", "snorm_cos")
# Which jittered alignments a face is embedded in (models/pipeline.py jitter_shifts): "xy" the 4 shifts left, right,
# up and down (10 views with flip); "y" (issue 15) only up and down (6 views: ~40% less of the ResNet, the same
# accuracy on lfw-dev, docs/accuracy.md). Fixed per library: the recipe key says which (recipe_key).
JITTER_AXES = ("xy", "y")


def check_score_normalization(value: object, where: str = "score_normalization") -> str:
    """``value`` when it is a known score kind; else a clear error naming the kinds (a typo must not fall back to
    plain cosine and change every score and label of the library silently)."""
    if value not in SCORE_NORMALIZATIONS:
        raise LibraryError(f"{where} {value!r} is not one of {', '.join(SCORE_NORMALIZATIONS)}")
    return str(value)


def check_jitter_axes(value: object, where: str = "jitter_axes") -> str:
    """``value`` when it is a known set of jitter axes; else a clear error naming them (a typo must not embed a
    library in a recipe nobody asked for)."""
    if value not in JITTER_AXES:
        raise LibraryError(f"{where} {value!r} is not one of {', '.join(JITTER_AXES)}", code="bad_request")
    return str(value)


def default_library_path() -> Path:
    return Path(os.environ.get("FACESEARCH_LIBRARY", DEFAULT_LIBRARY))


@dataclass
class LibraryConfig:
    format: int = FORMAT
    # Issue 15: new libraries embed with dlib's ResNet quantised to int8 (~2.6x faster per chip on the CPU, the
    # same accuracy on lfw-dev: docs/accuracy.md) where it runs and its recipe has a shipped calibration
    # (settings.py default_model); libraries created before keep dlib_resnet_v1, the float reference.
    model: str = DLIB_RESNET_INT8_KEY
    onnx_model: dict[str, Any] | None = None
    # Issue 15: new libraries go Flat, HNSW32, then fast-scan IVF-PQ re-ranked on float16 rows past 500k faces
    # (store/vectors/faiss_index.py AUTO_OPQ: its codes behind an OPQ rotation, since the fourth pass; config
    # sits below the store: not imported). Libraries created before wrote "auto" (Flat, then HNSW32) or
    # "auto-ivfpq" (unrotated codes with residuals) into their config and keep it.
    index_engine: str = "auto-opq"
    # Embed each face and its mirror image and average them (fixed when the library is created):
    # on lfw-dev 1:N it lifted rank-1 from 0.901 to 0.921 and cut FNIR at FPIR 0.01 from 0.567 to 0.483.
    flip_average: bool = True
    # Also average alignments shifted by this many chip pixels (0: off; fixed at creation; which ones: jitter_axes).
    # On lfw-dev it lifted 1:N rank-1 and verification (docs/accuracy.md) at 5x (4 shifts) or 3x (2) the embedding
    # cost per face.
    jitter: float = 2.5
    # The directions of those shifts (JITTER_AXES; fixed at creation): "xy" all 4, "y" (issue 15) up and down only.
    # New libraries get "y" where its recipe has a shipped calibration (settings.py default_jitter_axes); configs
    # without the setting read "xy", the recipe before. No effect with jitter 0 (no shifted views).
    jitter_axes: str = "xy"
    # Face detector: "hog" (fast) or "cnn" (dlib's MMOD CNN: finds turned and small faces, slower).
    detector_kind: str = "hog"
    # A second detector tried only on photos where the first finds no face: "cnn" or "none".
    detector_fallback: str = "cnn"
    # Issue 16: "cnn" has dlib's CNN look at crops around HOG's near misses (scores -0.5..0) in photos where HOG
    # found a face: turned heads, background and edge-cut faces (models/detect/near_miss.py; docs/accuracy.md
    # "Detection"); "none": HOG alone. Libraries created before keep HOG alone.
    detector_near_misses: str = "cnn"
    # HNSW search breadth; 0 = grows with the gallery to keep recall@10 >= 0.99 (docs/benchmarks.md).
    hnsw_ef_search: int = 0  # store/vectors/hnsw.py HNSW_EF_SEARCH (config sits below the store: not imported)
    # Where the vectors live (fixed at creation; store/vectors/factory.py): "faiss" (index.faiss in this
    # folder) or "milvus". Milvus: milvus_uri None is Milvus Lite in vectors.milvus.db in this folder,
    # else a server (http://host:19530) whose token is milvus_token or $FACESEARCH_MILVUS_TOKEN
    # (better: keeps the secret out of this file). milvus_collection: a unique name is drawn when a
    # library is created on a server (one server, many libraries). Configs without these mean FAISS.
    vector_store: str = "faiss"
    milvus_uri: str | None = None
    milvus_token: str | None = None
    milvus_collection: str = "facesearch_faces"
    # Where the catalog lives (fixed at creation; store/database.py): None is catalog.sqlite in this
    # folder; else a database URL, postgresql+psycopg://user@host:port/dbname. Never a password: libpq
    # reads it from $PGPASSWORD or ~/.pgpass. Configs without it mean the SQLite file.
    catalog_url: str | None = None
    # The 1:1 operating point: the false match rate per comparison of a lead, and of a verify match.
    max_fmr: float = DEFAULT_MAX_FMR
    # The 1:N operating point: a search's "match" expects at most this many strangers scoring as high in the
    # gallery searched (search/labels.py). Libraries created before this setting get the default.
    max_fpir: float = DEFAULT_MAX_FPIR
    threshold: float = DEFAULT_THRESHOLD
    # "none" ranks by cosine similarity; "snorm" re-ranks by cohort-normalised score (search/normalize.py);
    # "snorm_cos" (issue 16) by s-norm + 45 x cosine. Fixed per library: its scores and tables never change under it.
    score_normalization: str = "snorm"
    snorm_threshold: float = DEFAULT_SNORM_THRESHOLD
    detector: dict[str, Any] = field(default_factory=lambda: asdict(DetectorSettings()))
    max_pixels: int = 80_000_000
    max_download_bytes: int = 50 * 1024 * 1024

    def detector_settings(self) -> DetectorSettings:
        return DetectorSettings(**self.detector)

    def pipeline_options(self) -> dict[str, Any]:
        """Keyword arguments of models.pipeline.build_pipeline for this library."""
        return {
            "detector_kind": self.detector_kind,
            "detector_settings": self.detector_settings(),
            "detector_fallback": self.detector_fallback,
            "detector_near_misses": self.detector_near_misses,
            "flip": self.flip_average,
            "jitter": self.jitter,
            "jitter_axes": self.jitter_axes,
        }

    def recipe_key(self, model_key: str) -> str:
        """The key of the embedding recipe: the model plus how it is applied (an index never mixes recipes)."""
        jitter = f"+jitter{self.jitter:g}{'' if self.jitter_axes == 'xy' else self.jitter_axes}" if self.jitter else ""
        return model_key + ("+flip" if self.flip_average else "") + jitter

    def model_spec(self) -> OnnxModelSpec | None:
        """The operator's ONNX model, or None for the built-in dlib ResNet."""
        if self.onnx_model is None:
            return None
        spec = dict(self.onnx_model)
        for key in ("mean", "std"):
            if key in spec:
                spec[key] = tuple(spec[key])
        return OnnxModelSpec(**spec)

    @classmethod
    def load(cls, folder: Path) -> LibraryConfig:
        path = folder / CONFIG_NAME
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError) as exc:
            raise LibraryError(f"cannot read library configuration {path}: {exc}") from exc
        if data.get("format") != FORMAT:
            raise LibraryError(f"{path} has format {data.get('format')!r}; this facesearch reads format {FORMAT}")
        # Libraries written before these settings existed embedded without them: keep their recipe.
        data.setdefault("flip_average", False)
        data.setdefault("jitter", 0.0)
        data.setdefault("jitter_axes", "xy")  # issue 15: the 4 shifts, before the up/down-only recipe
        data.setdefault("detector_fallback", "none")
        data.setdefault("detector_near_misses", "none")  # issue 16: HOG alone, as before
        data.setdefault("index_engine", "auto")  # issue 15: the engine before auto-ivfpq
        data.setdefault("model", DLIB_RESNET_KEY)  # issue 15: the model before the int8 default
        data.setdefault("score_normalization", "snorm")  # issue 16: the score before any snorm_cos default
        check_score_normalization(data["score_normalization"], f"{path}: score_normalization")
        check_jitter_axes(data["jitter_axes"], f"{path}: jitter_axes")
        known = {f for f in cls.__dataclass_fields__}
        unknown = set(data) - known
        if unknown:
            raise LibraryError(f"{path} has unknown settings: {', '.join(sorted(unknown))}")
        return cls(**data)

    def save(self, folder: Path) -> None:
        tmp = folder / (CONFIG_NAME + ".tmp")
        tmp.write_text(json.dumps(asdict(self), indent=2) + "\n")
        os.replace(tmp, folder / CONFIG_NAME)
