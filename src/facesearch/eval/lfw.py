"""LFW-layout folders and pairs files, in both official formats.

* View 1 (``pairsDevTrain.txt``): a first line ``N``, then N same-person lines ``name i j`` and N
  different-person lines ``name1 i name2 j``. We split it into 10 folds of consecutive blocks, each
  with the same share of same and different pairs, for cross-validation.
* View 2 (``pairs.txt``): a first line ``folds n``, then for each fold n same-person lines followed
  by n different-person lines.

Image ``i`` of ``name`` is ``DIR/<name>/<name>_<i as 4 digits>.jpg``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from facesearch.errors import FaceSearchError

FOLDS = 10


class PairsFormatError(FaceSearchError):
    code = "bad_pairs_file"


@dataclass(frozen=True)
class Pair:
    a: Path
    b: Path
    same: bool
    fold: int


def image_path(images: Path, name: str, number: int) -> Path:
    return images / name / f"{name}_{number:04d}.jpg"


def read_pairs(path: Path, images: Path) -> list[Pair]:
    """Parse a pairs file of either format; every referenced image must exist."""
    try:
        lines = [line.split() for line in path.read_text().splitlines() if line.strip()]
    except OSError as exc:
        raise PairsFormatError(f"cannot read pairs file {path}: {exc}") from exc
    if not lines:
        raise PairsFormatError(f"{path} is empty")
    header = lines[0]
    try:
        if len(header) == 1:
            folds, per_fold, body = 1, int(header[0]), lines[1:]
        elif len(header) == 2:
            folds, per_fold, body = int(header[0]), int(header[1]), lines[1:]
        else:
            raise ValueError(header)
    except ValueError as exc:
        raise PairsFormatError(f"{path}: first line must be 'N' or 'folds n', got {' '.join(header)!r}") from exc
    if len(body) != folds * 2 * per_fold:
        raise PairsFormatError(f"{path}: header promises {folds * 2 * per_fold} pairs, found {len(body)} lines")
    pairs: list[Pair] = []
    for fold in range(folds):
        block = body[fold * 2 * per_fold : (fold + 1) * 2 * per_fold]
        for offset, parts in enumerate(block):
            same = offset < per_fold
            pairs.append(_pair(parts, images, same, fold, path))
    if folds == 1:  # View 1: make 10 folds of consecutive blocks, same and different alike
        pairs = [_with_fold(p, i, per_fold) for i, p in enumerate(pairs)]
    missing = [str(p) for pair in pairs for p in (pair.a, pair.b) if not p.is_file()]
    if missing:
        raise PairsFormatError(f"{len(missing)} images named in {path} are missing, e.g. {missing[0]}")
    return pairs


def _pair(parts: list[str], images: Path, same: bool, fold: int, path: Path) -> Pair:
    try:
        if same and len(parts) == 3:
            return Pair(
                image_path(images, parts[0], int(parts[1])), image_path(images, parts[0], int(parts[2])), True, fold
            )
        if not same and len(parts) == 4:
            return Pair(
                image_path(images, parts[0], int(parts[1])), image_path(images, parts[2], int(parts[3])), False, fold
            )
    except ValueError:
        pass
    kind = "same-person 'name i j'" if same else "different-person 'name1 i name2 j'"
    raise PairsFormatError(f"{path}: expected a {kind} line, got {' '.join(parts)!r}")


def _with_fold(pair: Pair, index: int, per_kind: int) -> Pair:
    position = index if pair.same else index - per_kind
    return Pair(pair.a, pair.b, pair.same, min(FOLDS - 1, position * FOLDS // per_kind))
