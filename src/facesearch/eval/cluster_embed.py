"""The faces ``facesearch eval cluster`` scores: one embedding per one-face photo of an LFW-layout folder.

Issue 14. LFW labels one person per photo; a photo where the detector finds several faces (a
bystander, a poster) has faces whose person the folder name does not give, and one where it finds
none has nothing to cluster. Only photos with exactly one detected face are kept, so that every
scored face's truth is its folder's name. The embeddings come from the library's own pipeline (the
default recipe, or an existing library's), and are cached by recipe and photo list in a folder the
caller names (never committed: they are biometric data of real people).
"""

from __future__ import annotations

import hashlib
import multiprocessing
import os
from collections.abc import Callable
from pathlib import Path

import numpy as np

from facesearch.errors import FaceSearchError
from facesearch.ingest.lifeline import die_with_parent
from facesearch.media.decode import decode_image
from facesearch.models.pipeline import FacePipeline, PipelineRecipe

CHUNK = 25
_worker: FacePipeline | None = None


def _init(recipe: PipelineRecipe) -> None:
    global _worker
    die_with_parent()
    _worker = recipe.build(threads=1)


def _one(pipeline: FacePipeline, path: Path) -> tuple[np.ndarray | None, int]:
    """The embedding of the photo's only face (None unless exactly one) and the number of faces found."""
    faces = pipeline.find_faces(decode_image(path.read_bytes()).rgb)
    if len(faces) != 1:
        return None, len(faces)
    return pipeline.embed_faces(faces)[0].embedding, 1


def _chunk(paths: list[Path]) -> list[tuple[np.ndarray | None, int]]:
    if _worker is None:  # pragma: no cover - the pool initializer always runs first
        raise RuntimeError("cluster worker started without a pipeline")
    return [_one(_worker, p) for p in paths]


def one_face_embeddings(
    pipeline: FacePipeline,
    recipe_key: str,
    paths: list[Path],
    cache: Path | None = None,
    workers: int | None = None,
    progress: Callable[[int], None] | None = None,
) -> tuple[np.ndarray, np.ndarray, dict[str, int]]:
    """(embeddings of the kept photos, their person names, counts of photos with 0 / 2+ faces)."""
    digest = hashlib.sha256("\n".join(str(p) for p in paths).encode()).hexdigest()[:12]
    cached = cache / f"cluster-{recipe_key}-{len(paths)}-{digest}.npz" if cache else None
    if cached is not None and cached.is_file():
        data = np.load(cached)
        if progress:
            progress(len(paths))
        return data["vectors"], data["people"], {"no_face": int(data["no_face"]), "several": int(data["several"])}
    workers = workers or os.cpu_count() or 1
    found: list[tuple[np.ndarray | None, int]] = []
    if workers > 1 and pipeline.recipe is not None and len(paths) >= 4 * CHUNK:
        chunks = [paths[i : i + CHUNK] for i in range(0, len(paths), CHUNK)]
        with multiprocessing.get_context("spawn").Pool(workers, initializer=_init, initargs=(pipeline.recipe,)) as pool:
            for results in pool.imap(_chunk, chunks):
                found.extend(results)
                if progress:
                    progress(len(results))
    else:
        for path in paths:
            found.append(_one(pipeline, path))
            if progress:
                progress(1)
    kept = [i for i, (v, _) in enumerate(found) if v is not None]
    dim = next((len(v) for v, _ in found if v is not None), 128)
    vectors = np.stack([found[i][0] for i in kept]).astype(np.float32) if kept else np.zeros((0, dim), np.float32)
    people = np.array([paths[i].parent.name for i in kept])
    counts = {"no_face": sum(n == 0 for _, n in found), "several": sum(n > 1 for _, n in found)}
    if cached is not None:
        cached.parent.mkdir(parents=True, exist_ok=True)
        np.savez(cached, vectors=vectors, people=people, **counts)
    return vectors, people, counts


def indexed_embeddings(library, paths: list[Path]) -> tuple[np.ndarray, np.ndarray, dict[str, int]]:  # type: ignore[no-untyped-def]
    """The same faces read from a library that has already indexed the photos (nothing embedded again):
    the stored embedding of each photo with exactly one face. Every photo must be in the library, so
    that the figures are those of the whole folder."""
    from sqlalchemy import select

    from facesearch.store.schema import FaceRow, ImageRow

    wanted = {str(p.resolve()): p for p in paths}
    stored: dict[str, tuple[int, list[bytes]]] = {}
    with library.catalog.session() as s:
        rows = s.execute(
            select(ImageRow.source, ImageRow.face_count, FaceRow.embedding).join(
                FaceRow, FaceRow.image_id == ImageRow.id, isouter=True
            )
        ).all()
    for source, count, embedding in rows:
        if source in wanted:
            entry = stored.setdefault(source, (count, []))
            if embedding is not None:
                entry[1].append(embedding)
    missing = [p for key, p in wanted.items() if key not in stored]
    if missing:
        raise FaceSearchError(
            f"{len(missing)} of {len(paths)} photos are not indexed in this library, e.g. {missing[0]}",
            code="bad_request",
        )
    kept = [key for key in wanted if stored[key][0] == 1 and len(stored[key][1]) == 1]
    if not kept:
        return np.zeros((0, 0), np.float32), np.array([]), {"no_face": 0, "several": 0}
    vectors = np.stack([np.frombuffer(stored[k][1][0], dtype=np.float32) for k in kept])
    people = np.array([wanted[k].parent.name for k in kept])
    counts = {
        "no_face": sum(stored[k][0] == 0 for k in wanted),
        "several": sum(stored[k][0] > 1 for k in wanted),
    }
    return vectors, people, counts
