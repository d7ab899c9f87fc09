"""``facesearch eval verify``: the LFW verification protocol on any LFW-layout folder.

Each image is embedded once with the library's own pipeline (the same detector, alignment and
embedder that ingest and search use). LFW photos are centred on one person, so when a photo holds
several faces we take the one nearest the centre. When HOG finds no face, the pipeline falls back
to landmarks inside the central box where LFW's face detector put the face (``fallback="centre"``,
the default) or scores the pair as a non-match (``fallback="reject"``); the report counts both.

Issue 16, ``--halves``: the same figures also for each half of the people (eval/halves.py), on the pairs
whose people are all in that half, each half's 10 folds and thresholds its own; a different-person pair of
one person from each half belongs to neither and is counted as left out (:func:`evaluate_halves`).
"""

from __future__ import annotations

import logging
import multiprocessing
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from facesearch.errors import FaceSearchError
from facesearch.eval.halves import RULE, pairs_by_half
from facesearch.eval.lfw import Pair
from facesearch.eval.metrics import eer, kfold_accuracy, roc_auc, tar_at_far
from facesearch.ingest.lifeline import die_with_parent
from facesearch.media.decode import decode_image
from facesearch.models.pipeline import Face, FacePipeline, PipelineRecipe

log = logging.getLogger(__name__)

FARS = (0.01, 0.001)


@dataclass
class VerifyReport:
    accuracy: float
    accuracy_std: float
    auc: float
    eer: float
    tar_at_far: dict[str, float]
    pairs: int
    images: int
    no_face: dict
    thresholds: list[float] = field(default_factory=list)
    # Per-pair scores and truth, for plots (eval/report.py); not part of the JSON.
    scores: np.ndarray = field(default_factory=lambda: np.zeros(0), repr=False)
    same: np.ndarray = field(default_factory=lambda: np.zeros(0, bool), repr=False)
    halves: dict | None = None  # issue 16: the figures for each half of the people (evaluate_halves)

    def to_dict(self) -> dict:
        extra = {"halves": self.halves} if self.halves is not None else {}
        return {
            "accuracy": round(self.accuracy, 5),
            "accuracy_std": round(self.accuracy_std, 5),
            "auc": round(self.auc, 5),
            "eer": round(self.eer, 5),
            "tar_at_far": {k: round(v, 5) for k, v in self.tar_at_far.items()},
            "pairs": self.pairs,
            "images": self.images,
            "no_face": self.no_face,
            "fold_thresholds": [round(t, 5) for t in self.thresholds],
            **extra,
        }


def central_face(faces: list[Face], width: int, height: int) -> Face | None:
    """The face whose box centre is nearest the image centre."""

    def distance(face: Face) -> float:
        left, top, w, h = face.box
        return (left + w / 2 - width / 2) ** 2 + (top + h / 2 - height / 2) ** 2

    return min(faces, key=distance, default=None)


def embed_images(
    pipeline: FacePipeline,
    paths: list[Path],
    fallback: str = "centre",
    progress: Callable[[int], None] | None = None,
    workers: int | None = None,
) -> tuple[dict[Path, np.ndarray | None], dict]:
    """Embed the central face of each image; returns embeddings (None: no face) and no-face counts.

    With several ``workers`` (default: one per core) and a pipeline built from a recipe, the photos
    are shared out to worker processes; the result is the same as in one process.
    """
    embeddings: dict[Path, np.ndarray | None] = {}
    no_face = {"count": 0, "fallback": fallback, "fallback_used": 0, "scored_as_non_match": 0}
    workers = workers or os.cpu_count() or 1
    if workers > 1 and pipeline.recipe is not None and len(paths) >= 4 * CHUNK:
        chunks = [paths[i : i + CHUNK] for i in range(0, len(paths), CHUNK)]
        context = multiprocessing.get_context("spawn")
        with context.Pool(workers, initializer=_init_worker, initargs=(pipeline.recipe,)) as pool:
            for results in pool.imap(_embed_chunk, [(chunk, fallback) for chunk in chunks]):
                for path, vector, detected in results:
                    _record(embeddings, no_face, path, vector, detected, fallback)
                if progress:
                    progress(len(results))
        return embeddings, no_face
    for path in paths:
        _, vector, detected = _embed_one(pipeline, path, fallback)
        _record(embeddings, no_face, path, vector, detected, fallback)
        if progress:
            progress(1)
    return embeddings, no_face


CHUNK = 25
_worker_pipeline: FacePipeline | None = None


def _init_worker(recipe: PipelineRecipe) -> None:
    global _worker_pipeline
    die_with_parent()  # an evaluation killed by SIGKILL leaves no worker behind
    _worker_pipeline = recipe.build(threads=1)


def _embed_chunk(args: tuple[list[Path], str]) -> list[tuple[Path, np.ndarray | None, bool]]:
    paths, fallback = args
    if _worker_pipeline is None:  # pragma: no cover - the pool initializer always runs first
        raise RuntimeError("evaluation worker started without a pipeline")
    return [_embed_one(_worker_pipeline, path, fallback) for path in paths]


def _embed_one(pipeline: FacePipeline, path: Path, fallback: str) -> tuple[Path, np.ndarray | None, bool]:
    """(path, embedding or None, whether a face was detected)."""
    rgb = decode_image(path.read_bytes()).rgb
    face = central_face(pipeline.find_faces(rgb), rgb.shape[1], rgb.shape[0])
    detected = face is not None
    if face is None and fallback == "centre":
        face = pipeline.face_in_box(rgb, centre_box(rgb.shape[1], rgb.shape[0]))
    vector = pipeline.embed_faces([face])[0].embedding if face is not None else None
    return path, vector, detected


def _record(
    embeddings: dict, no_face: dict, path: Path, vector: np.ndarray | None, detected: bool, fallback: str
) -> None:
    embeddings[path] = vector
    if not detected:
        no_face["count"] += 1
        if fallback == "centre":
            no_face["fallback_used"] += 1


def centre_box(width: int, height: int) -> tuple[int, int, int, int]:
    """The central box where LFW's detector found the face (about 0.46 of a 250x250 photo)."""
    side = round(0.46 * min(width, height))
    return ((width - side) // 2, (height - side) // 2, side, side)


def evaluate(pairs: list[Pair], embeddings: dict[Path, np.ndarray | None], no_face: dict) -> VerifyReport:
    scores, same, folds = [], [], []
    for pair in pairs:
        a, b = embeddings[pair.a], embeddings[pair.b]
        if a is None or b is None:
            no_face["scored_as_non_match"] += 1
            scores.append(-1.0)
        else:
            scores.append(float(np.dot(a, b)))
        same.append(pair.same)
        folds.append(pair.fold)
    s, y, f = np.asarray(scores), np.asarray(same, bool), np.asarray(folds)
    mean, std, thresholds = kfold_accuracy(s, y, f)
    return VerifyReport(
        accuracy=mean,
        accuracy_std=std,
        auc=roc_auc(s, y),
        eer=eer(s, y),
        tar_at_far={str(far): tar_at_far(s, y, far) for far in FARS},
        pairs=len(pairs),
        images=len(embeddings),
        no_face=no_face,
        thresholds=thresholds,
        scores=s,
        same=y,
    )


def pairs_of_halves(pairs: list[Pair]) -> tuple[dict[int, list[Pair]], int]:
    """Issue 16: the pairs of each half of the people and the cross-half pairs left out; refused with a clear
    error (before anything is embedded) when a half lacks same-person or different-person pairs, which its
    accuracy, AUC and EER all need."""
    by_half, cross = pairs_by_half(pairs)
    for half, chosen in by_half.items():
        same = sum(p.same for p in chosen)
        if same == 0 or same == len(chosen):
            raise FaceSearchError(
                f"--halves: half {half} of the people has {same} same-person and {len(chosen) - same} "
                f"different-person pairs ({cross} more pairs mix the halves and belong to neither); its figures "
                "need both kinds: use a pairs file with more pairs",
                code="bad_request",
            )
    return by_half, cross


def evaluate_halves(pairs: list[Pair], embeddings: dict[Path, np.ndarray | None]) -> dict:
    """Issue 16: :func:`evaluate` on each half's pairs (the embeddings already computed for the whole), with
    the counts that say what each half rests on."""
    by_half, cross = pairs_of_halves(pairs)
    result: dict = {"rule": RULE, "cross_half_pairs_left_out": cross}
    for half, chosen in by_half.items():
        no_face = {"scored_as_non_match": 0}
        figures = evaluate(chosen, embeddings, no_face).to_dict()
        photos = {p for pair in chosen for p in (pair.a, pair.b)}
        same = sum(p.same for p in chosen)
        result[f"half_{half}"] = {
            **figures,
            "same_pairs": same,
            "different_pairs": len(chosen) - same,
            "people": len({p.parent.name for p in photos}),
            "images": len(photos),
            "no_face": no_face,
        }
    return result
