"""Where the benchmarks find their data and put their results, and the loaders they share.

Why one module: every script used to look the data folder up on its own (and one had a machine's
path written in), so a different data location meant editing several files. Here the folder is
looked up once, ``$FACESEARCH_DATA`` else ``../shared/data`` beside the repository (as the tests
do), and each data set has one loader. A missing folder ends the run with a message that names the
path and the variable, rather than an empty benchmark.

The data is never part of the repository: real face photos, and anything derived from them
(libraries, embeddings), stay in the data folder or in ``bench/out/`` (ignored by git).

This module imports only the standard library and NumPy at the top: ``bench/speed/gpu.py`` runs on a
machine that has little else, and worker processes import the scripts again.
"""

from __future__ import annotations

import csv
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from facesearch.eval.lfw import Pair

REPO = Path(__file__).resolve().parents[1]
#: Results and the libraries the scripts build (ignored by git: they hold embeddings of real people).
OUT = REPO / "bench" / "out"
#: The lfw-dev library ``bench.speed.ingest`` leaves for the search, scale and s-norm benchmarks.
LFW_LIBRARY = OUT / "lfw-library"
#: lfw-dev's verification pairs (1,100 same-person and 1,100 different-person pairs, 10 folds).
DEV_PAIRS = "pairsDevTrain.txt"


def data_dir() -> Path:
    """The shared data folder: ``$FACESEARCH_DATA``, else ``../shared/data`` beside the repository."""
    return Path(os.environ.get("FACESEARCH_DATA", REPO.parent / "shared" / "data")).resolve()


def require(path: Path, what: str) -> Path:
    """``path`` if it exists; otherwise stop with a message naming it and how to point elsewhere."""
    if not path.exists():
        raise SystemExit(f"{what} not found at {path} (set FACESEARCH_DATA to the folder that holds the data)")
    return path


# LFW (lfw-dev: the development half of Labeled Faces in the Wild) ----------------------------------


def lfw_dev() -> Path:
    """lfw-dev's root: ``images/<Person_Name>/<Person_Name>_0001.jpg`` and the pairs files."""
    return require(data_dir() / "lfw-dev", "lfw-dev")


def lfw_images() -> Path:
    """lfw-dev's photo folder (one sub-folder per person)."""
    return require(lfw_dev() / "images", "lfw-dev photos")


def lfw_people() -> list[Path]:
    """Every person's folder, sorted by name."""
    return sorted(p for p in lfw_images().iterdir() if p.is_dir())


def lfw_photos(limit: int | None = None) -> list[Path]:
    """lfw-dev's photos, sorted; with ``limit``, that many spread evenly over the sorted list (so a
    subset still covers the whole alphabet of people rather than its first names)."""
    photos = sorted(lfw_images().glob("*/*.jpg"))
    if not photos:
        raise SystemExit(f"no lfw-dev photos under {lfw_images()} (set FACESEARCH_DATA)")
    if limit and limit < len(photos):
        step = len(photos) / limit
        photos = [photos[int(i * step)] for i in range(limit)]
    return photos


def dev_pairs(name: str = DEV_PAIRS) -> list[Pair]:
    """lfw-dev's verification pairs (``facesearch.eval.lfw.read_pairs``), photo paths resolved."""
    from facesearch.eval.lfw import read_pairs

    return read_pairs(require(lfw_dev() / name, f"lfw-dev pairs file {name}"), lfw_images())


# dlib's and face_recognition's example photos ---------------------------------------------------


def johns_chips() -> np.ndarray:
    """dlib's aligned 150x150 "johns" face chips as one uint8 array (N, 150, 150, 3): embedder input."""
    from PIL import Image

    folder = require(data_dir() / "dlib_johns", "dlib's johns chips")
    paths = sorted(folder.glob("*/*.jpg"))
    if not paths:
        raise SystemExit(f"no chips found under {folder}")
    return np.stack([np.asarray(Image.open(p).convert("RGB"), dtype=np.uint8) for p in paths])


def pascal_dir() -> Path:
    """dlib's annotated pascal group photos (``face_boxes.csv``) and ``bald_guys.jpg``."""
    return require(data_dir() / "dlib_pascal_faces", "dlib's pascal group photos")


def pascal_boxes() -> list[dict[str, str]]:
    """The annotated face boxes of the pascal photos, one dict per row of ``face_boxes.csv``
    (``file``, the box, and ``ignore``: "1" for faces dlib's own evaluation leaves out)."""
    with (pascal_dir() / "face_boxes.csv").open() as handle:
        return list(csv.DictReader(handle))


def examples_dir() -> Path:
    """face_recognition's example photos: ``by_identity/<person>/`` and ``multi_face/``."""
    return require(data_dir() / "face_recognition_examples", "face_recognition's example photos")


# Real face embeddings from a facesearch library ---------------------------------------------------


@dataclass
class RealFaces:
    """A library's embeddings with a person label per face ("" where the identity is unknown)."""

    ids: np.ndarray
    vectors: np.ndarray
    persons: np.ndarray


def library_faces(library: Path) -> RealFaces:
    """Embeddings from a library's catalog; a face is labelled with its LFW folder name only when its
    photo has exactly one face (in group photos the folder names just one of the people)."""
    from sqlalchemy import select

    from facesearch.store.catalog import Catalog
    from facesearch.store.schema import FaceRow, ImageRow

    catalog_path = library / "catalog.sqlite"
    if not catalog_path.is_file():
        raise SystemExit(
            f"no facesearch library at {library} (missing {catalog_path.name}).\n"
            "Create it with:  .venv/bin/python -m bench.speed.ingest --limit 2000   (or without --limit for all "
            "of lfw-dev), or point to one with --library PATH."
        )
    catalog = Catalog(catalog_path)
    try:
        batches = list(catalog.iter_embeddings())
        with catalog.session() as s:
            rows = s.execute(select(FaceRow.id, ImageRow.source, ImageRow.face_count).join(ImageRow)).all()
    finally:
        catalog.close()
    if not batches:
        raise SystemExit(
            f"the library at {library} has no faces: run .venv/bin/python -m bench.speed.ingest --limit 2000"
        )
    ids = np.concatenate([b[0] for b in batches])
    vectors = np.ascontiguousarray(np.concatenate([b[1] for b in batches]), dtype=np.float32)
    label = {face_id: Path(source).parent.name if count == 1 else "" for face_id, source, count in rows}
    persons = np.array([label.get(int(i), "") for i in ids])
    return RealFaces(ids=ids, vectors=vectors, persons=persons)
