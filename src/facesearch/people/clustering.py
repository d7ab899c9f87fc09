"""Grouping face embeddings into persons: the algorithm alone, on arrays (no catalog, no governance).

Issue 14. Two functions, both on L2-normalised embeddings compared by cosine similarity against a
``threshold`` that the caller derives from the library's calibration (a same-person decision at a
measured false match rate; precision first: merging two people is the worse error):

- :func:`cluster` groups a whole set (a full re-cluster), keeping ``must_link`` groups together and
  never putting the two sides of a ``cannot_link`` pair in one person (manual merges, splits and "not
  this person" marks survive a re-cluster that way);
- :func:`assign` places new faces (an ingest's) into the existing persons or into new ones, without
  re-clustering what is there; ``forbidden`` lists, per new face, the persons it must never join.

This first version links faces in descending order of similarity (single linkage, as Kruskal's
algorithm builds a spanning forest) and refuses a link that would join two groups kept apart.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import faiss
import numpy as np

__all__ = ["NEW", "assign", "cluster"]

NEW = -1  # assign(): a new face that joins no existing person
NEIGHBOURS = 32  # candidate links per face: a person's faces link through their nearest neighbours


class _Groups:
    """Union-find over indices, with pairs of groups that must never be joined."""

    def __init__(self, n: int) -> None:
        self.parent = np.arange(n)
        self.apart: dict[int, set[int]] = {}

    def root(self, i: int) -> int:
        while self.parent[i] != i:
            self.parent[i] = self.parent[self.parent[i]]
            i = int(self.parent[i])
        return i

    def keep_apart(self, a: int, b: int) -> None:
        ra, rb = self.root(a), self.root(b)
        self.apart.setdefault(ra, set()).add(rb)
        self.apart.setdefault(rb, set()).add(ra)

    def join(self, a: int, b: int) -> bool:
        ra, rb = self.root(a), self.root(b)
        if ra == rb:
            return True
        if rb in self.apart.get(ra, ()):
            return False
        self.parent[rb] = ra
        moved = self.apart.pop(rb, set())
        for other in moved:
            self.apart[other].discard(rb)
            self.apart[other].add(ra)
        self.apart.setdefault(ra, set()).update(moved)
        return True

    def labels(self) -> np.ndarray:
        roots = np.array([self.root(i) for i in range(len(self.parent))])
        _, labels = np.unique(roots, return_inverse=True)
        return labels.astype(np.int64)


def _links(embeddings: np.ndarray, threshold: float, k: int = NEIGHBOURS) -> list[tuple[float, int, int]]:
    """(similarity, i, j) for each of each face's nearest neighbours at or above ``threshold``, strongest first."""
    index = faiss.IndexFlatIP(embeddings.shape[1])
    index.add(embeddings)
    scores, ids = index.search(embeddings, min(k + 1, len(embeddings)))
    links = [
        (float(s), i, int(j))
        for i, (row_s, row_j) in enumerate(zip(scores, ids, strict=True))
        for s, j in zip(row_s, row_j, strict=True)
        if j > i and s >= threshold
    ]
    links.sort(reverse=True)
    return links


def cluster(
    embeddings: np.ndarray,
    threshold: float,
    *,
    must_link: Iterable[Sequence[int]] = (),
    cannot_link: Iterable[tuple[Sequence[int], Sequence[int]]] = (),
) -> np.ndarray:
    """A person label (0..m-1) for each row of ``embeddings``.

    ``must_link``: groups of row indices that are one person (a manual merge). ``cannot_link``: pairs of
    index groups never in one person (a split, a "not this person" mark); a must-link that contradicts a
    cannot-link is the caller's error and the cannot-link wins.
    """
    x = np.ascontiguousarray(embeddings, dtype=np.float32)
    groups = _Groups(len(x))
    if len(x) == 0:
        return np.zeros(0, np.int64)
    for left, right in cannot_link:
        for a in left:
            for b in right:
                groups.keep_apart(int(a), int(b))
    for members in must_link:
        members = [int(m) for m in members]
        for m in members[1:]:
            groups.join(members[0], m)
    for _, i, j in _links(x, threshold):
        groups.join(i, j)
    return groups.labels()


def assign(
    new: np.ndarray,
    known: np.ndarray,
    known_labels: np.ndarray,
    threshold: float,
    *,
    forbidden: Sequence[set[int]] | None = None,
) -> np.ndarray:
    """For each row of ``new``: the label of the existing person it joins, or ``NEW``.

    ``known`` are the existing persons' faces and ``known_labels`` their persons; ``forbidden[i]`` the
    persons new face ``i`` must never join. A new face joins the person of its most similar known face
    at or above ``threshold`` that it may join; the caller groups the ``NEW`` ones with :func:`cluster`.
    """
    q = np.ascontiguousarray(new, dtype=np.float32)
    out = np.full(len(q), NEW, dtype=np.int64)
    if len(q) == 0 or len(known) == 0:
        return out
    index = faiss.IndexFlatIP(known.shape[1])
    index.add(np.ascontiguousarray(known, dtype=np.float32))
    scores, ids = index.search(q, min(NEIGHBOURS, len(known)))
    for i, (row_s, row_j) in enumerate(zip(scores, ids, strict=True)):
        banned = forbidden[i] if forbidden is not None else set()
        for s, j in zip(row_s, row_j, strict=True):
            if j < 0 or s < threshold:
                break
            label = int(known_labels[j])
            if label not in banned:
                out[i] = label
                break
    return out
