"""The face pipeline: detect, align, score quality, embed. One :class:`Face` record per face."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from facesearch.errors import ModelError
from facesearch.models.align import face_chips, quality_score, quality_with_stability, thumbnail_jpeg
from facesearch.models.detect.base import Detection, DetectorSettings, FaceDetector
from facesearch.models.detect.factory import create_detector
from facesearch.models.embed.base import Embedder
from facesearch.models.embed.info import DLIB_RESNET_KEY
from facesearch.models.runtime import TORCH, runtime_for, torch_part


@dataclass
class Face:
    """Everything we know about one face in one image."""

    index: int
    box: tuple[int, int, int, int]
    landmarks: np.ndarray
    det_score: float
    quality: float
    thumbnail: bytes
    chip: np.ndarray
    embedding: np.ndarray | None = None
    shifted_chips: np.ndarray | None = None  # the jitter alignments, when the pipeline uses them
    stability: float | None = None  # mean cosine of the jittered views with their average (after embedding)


def jitter_shifts(shift: float, axes: str = "xy") -> tuple[tuple[float, float], ...]:
    """The alignments moved by ``shift`` chip pixels (none for 0): ``axes`` "xy" left, right, up and down;
    "y" (issue 15) up and down only, the same two shifts as the last two of "xy" (config.py JITTER_AXES)."""
    if axes not in ("xy", "y"):
        raise ModelError(f"unknown jitter axes {axes!r}: 'xy' or 'y'")
    if shift <= 0:
        return ()
    vertical = ((0.0, shift), (0.0, -shift))
    return ((shift, 0.0), (-shift, 0.0), *vertical) if axes == "xy" else vertical


def align_face(
    rgb: np.ndarray,
    index: int,
    det: Detection,
    chip_size: int,
    chip_padding: float,
    jitter: float = 0.0,
    jitter_axes: str = "xy",
) -> Face:
    """One detected face -> its :class:`Face` record, not yet embedded: aligned chip (and the jittered
    alignments), quality and thumbnail. A free function so that processes without an embedder (the
    batched ingest's CPU workers, ingest/batched_prep.py) align exactly as the pipeline does."""
    chips = face_chips(rgb, det, chip_size, chip_padding, jitter_shifts(jitter, jitter_axes))
    chip = chips[0]
    return Face(
        index=index,
        box=det.box,
        landmarks=det.landmarks,
        det_score=det.score,
        quality=quality_score(chip, det),
        thumbnail=thumbnail_jpeg(rgb, det.box),
        chip=chip,
        shifted_chips=chips[1:] if len(chips) > 1 else None,
    )


def embed_faces(
    embedder: Embedder, faces: list[Face], *, flip: bool, jitter: float, jitter_axes: str = "xy"
) -> list[Face]:
    """Fill in the embeddings of faces (from one or many images) in one batch, as a pipeline with this
    ``flip``, ``jitter`` and ``jitter_axes`` does (also used by the batched ingest, which embeds apart from
    detecting)."""
    if faces:
        group = 1 + len(jitter_shifts(jitter, jitter_axes))
        chips = []
        for face in faces:
            chips.append(face.chip[None])
            if group > 1:
                if face.shifted_chips is None or len(face.shifted_chips) != group - 1:
                    raise ModelError("face was aligned without this pipeline's jitter: align it again")
                chips.append(face.shifted_chips)
        vectors, stability = embedder.embed_with_stability(np.concatenate(chips), flip=flip, group=group)
        for face, vector, stable in zip(faces, vectors, stability, strict=True):
            face.embedding = vector
            if group > 1 and face.stability is None:  # jittered views tell how sure the model is
                face.stability = float(stable)
                face.quality = quality_with_stability(face.quality, face.stability)
    return faces


class FacePipeline:
    """Composes a detector and an embedder. Chips are embedded in one batch per call."""

    def __init__(
        self,
        detector: FaceDetector,
        embedder: Embedder,
        flip: bool = False,
        jitter: float = 0.0,
        fallback: FaceDetector | None = None,
        jitter_axes: str = "xy",
    ) -> None:
        self.detector = detector
        self.embedder = embedder
        self.flip = flip  # average each face's embedding with its mirror image's (see Embedder.embed)
        self.jitter = jitter  # also average alignments shifted by this many chip pixels (0: off)
        jitter_shifts(jitter, jitter_axes)  # refuses unknown axes now, not at the first face
        self.jitter_axes = jitter_axes  # which shifts: "xy" (4) or "y" (up and down: 2)
        self.fallback = fallback  # a second detector, tried only on photos where the first finds no face
        self.recipe: PipelineRecipe | None = None  # set when built from one: lets evaluations fan out to processes

    def find_faces(self, rgb: np.ndarray) -> list[Face]:
        """Detect and align every face (largest first), without embedding."""
        detections = self.detector.detect(rgb)
        if not detections and self.fallback is not None:
            detections = self.fallback.detect(rgb)
        return [self._face(rgb, i, det) for i, det in enumerate(detections)]

    @property
    def detects_in_batches(self) -> bool:
        """True when the detector takes many photos at once (the CNN on a GPU): see :meth:`find_faces_batch`."""
        return callable(getattr(self.detector, "detect_batch", None))

    def find_faces_batch(self, rgbs: list[np.ndarray]) -> list[list[Face]]:
        """:meth:`find_faces` for many photos, the detector running on them in batches when it can
        (same-size photos together on a GPU); the fallback detector still goes photo by photo."""
        if not self.detects_in_batches or len(rgbs) < 2:
            return [self.find_faces(rgb) for rgb in rgbs]
        found = self.detector.detect_batch(rgbs)  # type: ignore[attr-defined]
        out = []
        for rgb, detections in zip(rgbs, found, strict=True):
            if not detections and self.fallback is not None:
                detections = self.fallback.detect(rgb)
            out.append([self._face(rgb, i, det) for i, det in enumerate(detections)])
        return out

    def face_in_box(self, rgb: np.ndarray, box: tuple[int, int, int, int]) -> Face:
        """Align the face assumed to be in ``box`` (when the detector found none but the caller knows)."""
        return self._face(rgb, 0, self.detector.landmarks_in_box(rgb, box))

    def _face(self, rgb: np.ndarray, index: int, det: Detection) -> Face:
        return align_face(
            rgb, index, det, self.embedder.chip_size, self.embedder.chip_padding, self.jitter, self.jitter_axes
        )

    def embed_faces(self, faces: list[Face]) -> list[Face]:
        """Fill in the embeddings of faces (from one or many images) in one batch."""
        return embed_faces(self.embedder, faces, flip=self.flip, jitter=self.jitter, jitter_axes=self.jitter_axes)

    def analyse(self, rgb: np.ndarray) -> list[Face]:
        return self.embed_faces(self.find_faces(rgb))


def build_pipeline(
    embedder: Embedder,
    *,
    detector_kind: str = "hog",
    detector_settings: DetectorSettings | None = None,
    detector_fallback: str = "none",
    detector_near_misses: str = "none",
    flip: bool = False,
    jitter: float = 0.0,
    jitter_axes: str = "xy",
    cache_dir: Path | None = None,
    threads: int = 0,
    device: str = "cpu",
) -> FacePipeline:
    """The pipeline a library's settings describe (see LibraryConfig.pipeline_options).

    ``device`` other than ``"cpu"`` runs the CNN detector's network with PyTorch there (same weights,
    same boxes); the HOG detector always runs on the CPU, and so do the CNN's looks at its near misses
    (``detector_near_misses``: a few crops, models/detect/near_miss.py).
    """

    def detector(kind: str, near_misses: str = "none") -> FaceDetector:
        if kind == "cnn" and runtime_for(device) == TORCH:
            return _torch_cnn_detector(detector_settings, device)
        return create_detector(kind, detector_settings, cache_dir=cache_dir, threads=threads, near_misses=near_misses)

    fallback = None
    if detector_fallback not in ("none", "", detector_kind):
        fallback = detector(detector_fallback)
    primary = detector(detector_kind, detector_near_misses)
    return FacePipeline(primary, embedder, flip=flip, jitter=jitter, fallback=fallback, jitter_axes=jitter_axes)


def _torch_cnn_detector(settings: DetectorSettings | None, device: str) -> FaceDetector:
    """The CNN detector on ``device``, pyramid and network there; it also takes batches (find_faces_batch)."""
    return torch_part("detect.torch_batch", device).TorchBatchDetector(settings, device=device)


@dataclass(frozen=True)
class PipelineRecipe:
    """Everything needed to build the same pipeline again in another process (it holds no models)."""

    backend: str
    models_dir: str
    model_spec: dict | None
    options: dict
    device: str = "cpu"  # "cuda"...: dlib's ResNet and the CNN detector run by PyTorch there (same model)
    model: str = DLIB_RESNET_KEY  # the built-in model when model_spec is None: embed/info.py BUILTIN_KEYS

    def build(self, threads: int = 0) -> FacePipeline:
        from facesearch.models.embed.factory import create_embedder
        from facesearch.models.embed.info import OnnxModelSpec

        spec = OnnxModelSpec(**self.model_spec) if self.model_spec else None
        embedder = create_embedder(
            self.backend, Path(self.models_dir), spec, threads=threads, device=self.device, model=self.model
        )
        pipeline = build_pipeline(
            embedder, cache_dir=Path(self.models_dir), threads=threads, device=self.device, **self.options
        )
        pipeline.recipe = self
        return pipeline
