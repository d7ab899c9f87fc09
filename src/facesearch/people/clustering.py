"""Grouping face embeddings into persons: the algorithm alone, on arrays (no catalog, no governance).

Issue 14. Two functions, both on L2-normalised embeddings compared by cosine similarity against a
``threshold`` that the caller derives from the library's calibration (a same-person decision at a
measured false match rate; precision first: merging two people is the worse error):

- :func:`cluster` groups a whole set (a full re-cluster), keeping ``must_link`` groups together and
  never putting the two sides of a ``cannot_link`` pair in one person (manual merges, splits and "not
  this person" marks survive a re-cluster that way);
- :func:`assign` places new faces (an ingest's) into the existing persons or into new ones, without
  re-clustering what is there; ``forbidden`` lists, per new face, the persons it must never join.

The rule, and why. Faces are linked to their ``NEIGHBOURS`` nearest faces at or above the threshold
and the links are taken strongest first. Single linkage (join two groups on one link) chains: at a
false match rate f, an archive of n faces holds about f * n^2 / 2 false links, so one person's group
picks up strangers and then their groups, and at 100k faces everything becomes a few giant persons.
Here two groups join only when the links between them reach a *share* of what a same-person pair
would show: ``ceil(SUPPORT * min(sqrt(size_a * size_b), NEIGHBOURS))`` links. A true face of a person matches
most of that person's faces (FNMR at the default operating point is ~0.16), a stranger matches one
by chance (probability f per face), so a false join needs many independent false matches at once.
Small groups (a person with 2 photos) still join on one link, where the risk is small (a merge of a
2-face group costs few pairs). The counts between groups are kept and summed as groups merge.

Second test, average linkage: the mean similarity of all pairs of faces across the two groups must
reach the threshold too (from kept sums of vectors: O(dim) per test). Links alone let two people the
model confuses (siblings; people of a group the model separates poorly) join through many good-enough
pairs; on lfw-dev this test raised pairwise precision from 0.69 to 0.994 (docs/accuracy.md). A group
holding a must-link (a user's merge) skips it: the mean of two unlike halves says nothing.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import faiss
import numpy as np

__all__ = ["MAX_FMR", "NEW", "assign", "cluster"]

MAX_FMR = 1e-4  # the operating point to derive ``threshold`` from: measured on lfw-dev (docs/accuracy.md, People)

NEW = -1  # assign(): a new face that joins no existing person
NEIGHBOURS = 32  # candidate links per face: a person's faces link through their nearest neighbours
SUPPORT = 0.5  # links two groups need, as a share of their sizes' geometric mean (see required_links)
AVERAGE_MARGIN = 0.0  # two groups join only if their mean pair similarity reaches threshold - this
EXACT_UP_TO = 50_000  # exact neighbour search up to here; above, an approximate (IVF) index


class _Groups:
    """Union-find over indices, with group sizes, links counted between groups, and pairs never joined."""

    def __init__(self, x: np.ndarray) -> None:
        n = len(x)
        self.parent = np.arange(n)
        self.size = np.ones(n, dtype=np.int64)
        self.sum = x.astype(np.float64)  # per root: the sum of its faces' vectors (average linkage in O(dim))
        self.average = -np.inf  # the mean similarity between two groups must reach this to join
        self.manual = np.zeros(n, dtype=bool)  # per root: holds a must-link group (a user's merge)
        self.apart: dict[int, set[int]] = {}
        self.between: dict[int, dict[int, int]] = {}  # root -> other root -> links counted so far

    def root(self, i: int) -> int:
        while self.parent[i] != i:
            self.parent[i] = self.parent[self.parent[i]]
            i = int(self.parent[i])
        return i

    def keep_apart(self, a: int, b: int) -> None:
        ra, rb = self.root(a), self.root(b)
        self.apart.setdefault(ra, set()).add(rb)
        self.apart.setdefault(rb, set()).add(ra)

    def link(self, a: int, b: int, support: float, cap: int) -> None:
        """Count one link between the groups of a and b; join them once the links reach the support."""
        ra, rb = self.root(a), self.root(b)
        if ra == rb:
            return
        count = self.between.setdefault(ra, {}).get(rb, 0) + 1
        self.between[ra][rb] = count
        self.between.setdefault(rb, {})[ra] = count
        if self.ready(ra, rb, count, support, cap):
            self.join(ra, rb)

    def ready(self, ra: int, rb: int, count: int, support: float, cap: int) -> bool:
        """Enough links, and the two groups alike on average (mean similarity of all their face pairs)."""
        a, b = int(self.size[ra]), int(self.size[rb])
        if count < required_links(a, b, support, cap):
            return False
        if self.manual[ra] or self.manual[rb]:  # a user's merge of unlike photos: its mean says nothing
            return True
        return float(self.sum[ra] @ self.sum[rb]) / (a * b) >= self.average

    def join(self, a: int, b: int) -> bool:
        ra, rb = self.root(a), self.root(b)
        if ra == rb:
            return True
        if rb in self.apart.get(ra, ()):
            return False
        if self.size[ra] < self.size[rb]:  # the larger group's root stays (shallow trees, fewer moves)
            ra, rb = rb, ra
        self.parent[rb] = ra
        self.size[ra] += self.size[rb]
        self.sum[ra] += self.sum[rb]
        self.manual[ra] |= self.manual[rb]
        moved = self.apart.pop(rb, set())
        for other in moved:
            self.apart[other].discard(rb)
            self.apart[other].add(ra)
        self.apart.setdefault(ra, set()).update(moved)
        counts = self.between.pop(rb, {})
        mine = self.between.setdefault(ra, {})
        mine.pop(rb, None)
        for other, count in counts.items():
            if other == ra:
                continue
            theirs = self.between[other]
            theirs.pop(rb, None)
            total = mine.get(other, 0) + count
            mine[other] = theirs[ra] = total
        return True

    def settle(self, support: float, cap: int) -> None:
        """Join the groups whose summed links reached the support only as their groups grew (the counts
        are checked when a link arrives; a merge elsewhere can complete a pair's count without one)."""
        joined = True
        while joined:
            joined = False
            for ra in list(self.between):
                for rb, count in list(self.between.get(ra, {}).items()):
                    if self.root(ra) != ra or self.root(rb) != rb:
                        break
                    if self.ready(ra, rb, count, support, cap):
                        joined |= self.join(ra, rb)
                        break

    def labels(self) -> np.ndarray:
        roots = np.array([self.root(i) for i in range(len(self.parent))])
        _, labels = np.unique(roots, return_inverse=True)
        return labels.astype(np.int64)


def required_links(size_a: int, size_b: int, support: float = SUPPORT, cap: int = NEIGHBOURS) -> int:
    """Links two groups need before they join: a share of the geometric mean of their sizes, at most
    ``cap`` (a face's links stop at its ``NEIGHBOURS``). The mean, not the smaller size: a lone face
    must match several faces of a large person, not one; not the larger size: a person grown by a
    manual merge still takes in a new photo that matches only one of the merged halves."""
    return max(1, int(np.ceil(support * min(np.sqrt(size_a * size_b), cap))))


def _links(embeddings: np.ndarray, threshold: float, k: int = NEIGHBOURS) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Each face's nearest neighbours at or above ``threshold`` as edges (i < j, each once), strongest first.

    Exact inner-product search up to ``EXACT_UP_TO`` faces; above, an IVF index (probing enough lists
    that a face's true neighbours are almost always found) keeps a million faces within minutes.
    """
    n, dim = embeddings.shape
    k = min(k + 1, n)
    if n <= EXACT_UP_TO:
        index = faiss.IndexFlatIP(dim)
    else:
        lists = int(4 * np.sqrt(n))
        index = faiss.IndexIVFFlat(faiss.IndexFlatIP(dim), dim, lists, faiss.METRIC_INNER_PRODUCT)
        index.train(embeddings[np.random.default_rng(0).choice(n, min(n, 40 * lists), replace=False)])
        index.nprobe = 16
    index.add(embeddings)
    scores, ids = index.search(embeddings, k)
    rows = np.repeat(np.arange(n), k)
    scores, ids = scores.ravel(), ids.ravel()
    keep = (ids >= 0) & (ids != rows) & (scores >= threshold)
    i, j, s = np.minimum(rows[keep], ids[keep]), np.maximum(rows[keep], ids[keep]), scores[keep]
    pair = i.astype(np.int64) * n + j
    pair, first = np.unique(pair, return_index=True)  # an edge found from both ends counts once
    order = np.argsort(-s[first], kind="stable")
    return s[first][order], i[first][order], j[first][order]


def cluster(
    embeddings: np.ndarray,
    threshold: float,
    *,
    must_link: Iterable[Sequence[int]] = (),
    cannot_link: Iterable[tuple[Sequence[int], Sequence[int]]] = (),
    support: float = SUPPORT,
    neighbours: int = NEIGHBOURS,
    average: float | None = None,
) -> np.ndarray:
    """A person label (0..m-1) for each row of ``embeddings``.

    ``must_link``: groups of row indices that are one person (a manual merge). ``cannot_link``: pairs of
    index groups never in one person (a split, a "not this person" mark); a must-link that contradicts a
    cannot-link is the caller's error and the cannot-link wins. ``support`` and ``neighbours``: see the
    module's docstring (``support=0`` is plain single linkage, for comparison).
    """
    x = np.ascontiguousarray(embeddings, dtype=np.float32)
    if len(x) == 0:
        return np.zeros(0, np.int64)
    groups = _Groups(x)
    groups.average = threshold - AVERAGE_MARGIN if average is None else average
    for left, right in cannot_link:
        for a in left:
            for b in right:
                groups.keep_apart(int(a), int(b))
    for members in must_link:
        members = [int(m) for m in members]
        for m in members[1:]:
            groups.join(members[0], m)
        if len(members) > 1:
            groups.manual[groups.root(members[0])] = True
    _, first, second = _links(x, threshold, neighbours)
    for i, j in zip(first.tolist(), second.tolist(), strict=True):
        groups.link(i, j, support, neighbours)
    groups.settle(support, neighbours)
    return groups.labels()


def assign(
    new: np.ndarray,
    known: np.ndarray,
    known_labels: np.ndarray,
    threshold: float,
    *,
    forbidden: Sequence[set[int]] | None = None,
    support: float = SUPPORT,
    neighbours: int = NEIGHBOURS,
    average: float | None = None,
) -> np.ndarray:
    """For each row of ``new``: the label of the existing person it joins, or ``NEW``.

    ``known`` are the existing persons' faces and ``known_labels`` their persons; ``forbidden[i]`` the
    persons new face ``i`` must never join. A new face joins a person by the rule :func:`cluster` uses
    for a one-face group: among its ``neighbours`` nearest known faces at or above ``threshold``, that
    person's must number ``required_links(1, person's size)``, and its mean similarity to all that
    person's faces must reach ``average`` (default: the threshold); of the persons that qualify (and are not
    forbidden) the one with the most such faces wins, then the stronger best match. The caller groups
    the ``NEW`` ones with :func:`cluster`.
    """
    q = np.ascontiguousarray(new, dtype=np.float32)
    out = np.full(len(q), NEW, dtype=np.int64)
    if len(q) == 0 or len(known) == 0:
        return out
    labels = np.asarray(known_labels, dtype=np.int64)
    k = np.ascontiguousarray(known, dtype=np.float32)
    valid = labels >= 0
    persons = int(labels[valid].max()) + 1 if valid.any() else 0
    sizes = np.bincount(labels[valid], minlength=persons)
    sums = np.zeros((persons, k.shape[1]), dtype=np.float64)
    np.add.at(sums, labels[valid], k[valid])
    index = faiss.IndexFlatIP(k.shape[1])
    index.add(k)
    scores, ids = index.search(q, min(neighbours, len(k)))
    bar = threshold - AVERAGE_MARGIN if average is None else average
    for i, (row_s, row_j) in enumerate(zip(scores, ids, strict=True)):
        banned = forbidden[i] if forbidden is not None else set()
        votes: dict[int, list[float]] = {}  # person -> [links, best score]
        for s, j in zip(row_s.tolist(), row_j.tolist(), strict=True):
            if j < 0 or s < threshold:
                break
            label = int(labels[j])
            if label < 0 or label in banned:
                continue
            votes.setdefault(label, [0, s])[0] += 1
        qualified = [
            (count, best, label)
            for label, (count, best) in votes.items()
            if count >= required_links(1, int(sizes[label]), support, neighbours)
            and float(q[i] @ sums[label]) / sizes[label] >= bar
        ]
        if qualified:
            out[i] = max(qualified)[2]
    return out
