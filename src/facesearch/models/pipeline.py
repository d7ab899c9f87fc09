"""The face pipeline: detect, align, score quality, embed. One :class:`Face` record per face."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from facesearch.models.align import face_chip, quality_score, thumbnail_jpeg
from facesearch.models.detector import Detection, HogFaceDetector
from facesearch.models.embedder import Embedder


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


class FacePipeline:
    """Composes a detector and an embedder. Chips are embedded in one batch per call."""

    def __init__(self, detector: HogFaceDetector, embedder: Embedder, flip: bool = False) -> None:
        self.detector = detector
        self.embedder = embedder
        self.flip = flip  # average each face's embedding with its mirror image's (see Embedder.embed)

    def find_faces(self, rgb: np.ndarray) -> list[Face]:
        """Detect and align every face (largest first), without embedding."""
        return [self._face(rgb, i, det) for i, det in enumerate(self.detector.detect(rgb))]

    def face_in_box(self, rgb: np.ndarray, box: tuple[int, int, int, int]) -> Face:
        """Align the face assumed to be in ``box`` (when the detector found none but the caller knows)."""
        return self._face(rgb, 0, self.detector.landmarks_in_box(rgb, box))

    def _face(self, rgb: np.ndarray, index: int, det: Detection) -> Face:
        chip = face_chip(rgb, det, self.embedder.chip_size, self.embedder.chip_padding)
        return Face(
            index=index,
            box=det.box,
            landmarks=det.landmarks,
            det_score=det.score,
            quality=quality_score(chip, det),
            thumbnail=thumbnail_jpeg(rgb, det.box),
            chip=chip,
        )

    def embed_faces(self, faces: list[Face]) -> list[Face]:
        """Fill in the embeddings of faces (from one or many images) in one batch."""
        if faces:
            vectors = self.embedder.embed(np.stack([f.chip for f in faces]), flip=self.flip)
            for face, vector in zip(faces, vectors, strict=True):
                face.embedding = vector
        return faces

    def analyse(self, rgb: np.ndarray) -> list[Face]:
        return self.embed_faces(self.find_faces(rgb))
