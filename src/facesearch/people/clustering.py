"""Grouping face embeddings into persons: the algorithm alone, on arrays (no catalog, no governance).

Issue 14. Two functions, both on L2-normalised embeddings compared by cosine similarity against a
``threshold`` that the caller derives from the library's calibration (a same-person decision at a
measured false match rate; precision first: merging two people is the worse error):

- :func:`cluster` groups a whole set (a full re-cluster), keeping ``must_link`` groups together and
  never putting the two sides of a ``cannot_link`` pair in one person (manual merges, splits and "not
  this person" marks survive a re-cluster that way);
- :func:`place` places new faces (an ingest's) into the existing persons or into new ones by the same
  join test, without re-clustering what is there (the library's ingest and ``eval cluster --batches``
  both use it: one incremental rule); ``forbidden`` lists, per new face, the persons it must never
  join. :func:`assign` is its per-face answer alone.

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

Issue 14, 2nd part (pairwise precision >= 0.995 and BCubed F1 >= 0.95 on lfw-dev; docs/accuracy.md,
People), two refinements of the average test, chosen on half of lfw-dev's people and confirmed on the
other half:

- *cohesion*: the mean must also be no more than ``COHESION`` below the larger group's own mean pair
  similarity. A threshold is one number for everybody; a person photographed alike (30 faces at ~0.98)
  says more about what belongs to them than the threshold does, and the strangers the model confuses
  with such a person pass the threshold but sit well below that person's own similarity (on lfw-dev,
  both refinements: precision 0.9928 -> 0.9957 on the tuning half);
- *saturation*: the mean may fall short of the threshold when the links fill ``SATURATION`` of what
  the smaller group can show (:func:`possible_links`): a face all of whose nearest faces are one varied
  person's (George W. Bush's 483 photos span decades) belongs to them even though its mean to all of
  them is under the threshold; without it such faces started duplicate persons (tuning half, flip
  recipe: pairwise recall 0.945 -> 0.962).

Issue 14, 3rd part (the whole of lfw-dev, twice the people of a half, missed precision by 0.0004 while
each half met it: the loss grows with the archive). *A lone face joining a person* of ``LONE_INTO``
faces or more meets a stricter cohesion, ``LONE_COHESION`` below the person's own mean instead of
``COHESION``. That join puts one face with every face of the person: a stranger taken into a 50-face
person is 50 false pairs, and the more people an archive holds, the more strangers sit in the band
just under a well-photographed person's own similarity (on lfw-dev, look-alikes in a dense region of
dlib's face space: Megawati Sukarnoputri's, Hu Jintao's, Junichiro Koizumi's persons took in strangers
at ~0.02 to 0.023 below their own mean). Groups of two faces or more keep ``COHESION``: their own links
already vouch for them, and two groups each of one person's photos differ more in mean than a face
differs from its person (docs/accuracy.md, People: what else was tried and what it was worth).
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass

import faiss
import numpy as np

__all__ = ["MAX_FMR", "NEW", "Placement", "assign", "cluster", "place"]

MAX_FMR = 1e-4  # the operating point to derive ``threshold`` from: measured on lfw-dev (docs/accuracy.md, People)

NEW = -1  # assign(): a new face that joins no existing person
NEIGHBOURS = 32  # candidate links per face: a person's faces link through their nearest neighbours
SUPPORT = 0.5  # links two groups need, as a share of their sizes' geometric mean (see required_links)
AVERAGE_MARGIN = 0.0  # two groups join only if their mean pair similarity reaches threshold - this
COHESION = 0.025  # ... and no further than this below the larger group's own mean pair similarity (bar)
COHESIVE_FROM = 3  # groups from this size have a mean pair similarity worth comparing with
SATURATION = 0.6  # ... or links reaching this share of what the two groups can show (possible_links)
LONE_COHESION = 0.02  # a lone face joining a person of LONE_INTO+ faces: the stricter cohesion it must meet
LONE_INTO = 5
EXACT_UP_TO = 50_000  # exact neighbour search up to here; above, an approximate (IVF) index


class _Groups:
    """Union-find over indices, with group sizes, links counted between groups, and pairs never joined."""

    def __init__(self, x: np.ndarray) -> None:
        n = len(x)
        self.parent = np.arange(n)
        self.size = np.ones(n, dtype=np.int64)
        self.sum = x.astype(np.float64)  # per root: the sum of its faces' vectors (average linkage in O(dim))
        self.average = -np.inf  # the mean similarity between two groups must reach this to join
        self.cohesion = COHESION  # ... and within this of the larger group's own mean pair similarity
        self.lone_cohesion = LONE_COHESION  # ... or of this, for a lone face joining a person (see ready)
        self.saturation = SATURATION  # ... unless their links reach this share of what there can be
        self.manual = np.zeros(n, dtype=bool)  # per root: holds a must-link group (a user's merge)
        self.known = np.zeros(n, dtype=bool)  # per root: holds an existing person (place())
        self.locked = np.zeros(n, dtype=bool)  # per root: holds an existing person that may join no other
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
        """Enough links; the two groups as alike on average (mean similarity of all their face pairs) as
        the larger one's own faces are, less ``cohesion`` (``lone_cohesion`` for one face joining a
        person of ``LONE_INTO`` or more faces); and that mean at the threshold, or the links saturating
        what the two groups can show (a varied person's faces: all of a face's nearest are theirs, yet
        its mean to all of them is lower than the threshold)."""
        a, b = int(self.size[ra]), int(self.size[rb])
        if count < required_links(a, b, support, cap):
            return False
        if self.manual[ra] or self.manual[rb]:  # a user's merge of unlike photos: its mean says nothing
            return True
        mean = float(self.sum[ra] @ self.sum[rb]) / (a * b)
        lone = min(a, b) == 1 and max(a, b) >= LONE_INTO  # one face into a person: max(a, b) pairs at stake
        if mean < self.own(ra if a >= b else rb) - (self.lone_cohesion if lone else self.cohesion):
            return False
        return mean >= self.average or count >= self.saturation * possible_links(a, b, cap)

    def own(self, root: int) -> float:
        """A group's mean pair similarity, how alike its own faces are (-inf below ``COHESIVE_FROM`` faces)."""
        n = int(self.size[root])
        if n < COHESIVE_FROM:
            return -np.inf
        return (float(self.sum[root] @ self.sum[root]) - n) / (n * (n - 1))

    def join(self, a: int, b: int) -> bool:
        ra, rb = self.root(a), self.root(b)
        if ra == rb:
            return True
        if rb in self.apart.get(ra, ()) or (self.known[ra] and self.known[rb] and (self.locked[ra] or self.locked[rb])):
            return False
        if self.size[ra] < self.size[rb]:  # the larger group's root stays (shallow trees, fewer moves)
            ra, rb = rb, ra
        self.parent[rb] = ra
        self.size[ra] += self.size[rb]
        self.sum[ra] += self.sum[rb]
        self.manual[ra] |= self.manual[rb]
        self.known[ra] |= self.known[rb]
        self.locked[ra] |= self.locked[rb]
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


def possible_links(size_a: int, size_b: int, cap: int = NEIGHBOURS) -> int:
    """The links two groups can show from the smaller one's side: each of its faces links to at most
    ``cap`` faces of the other (its nearest neighbours)."""
    return min(size_a, size_b) * min(cap, max(size_a, size_b))


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
    saturation: float | None = None,
    cohesion: float | None = None,
    lone_cohesion: float | None = None,
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
    groups.saturation = SATURATION if saturation is None else saturation
    groups.cohesion = COHESION if cohesion is None else cohesion
    groups.lone_cohesion = LONE_COHESION if lone_cohesion is None else lone_cohesion
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


@dataclass(frozen=True)
class Placement:
    """Where :func:`place` put the new faces."""

    joined: np.ndarray  # per new face: the existing person it joined, or NEW
    groups: np.ndarray  # per new face: its group (0..g-1); rows with one index are one person
    merged: dict[int, int]  # existing person -> the existing person it was joined into


def place(
    new: np.ndarray,
    known: np.ndarray,
    known_labels: np.ndarray,
    threshold: float,
    *,
    forbidden: Sequence[set[int]] | None = None,
    mergeable: Collection[int] = (),
    support: float = SUPPORT,
    neighbours: int = NEIGHBOURS,
    average: float | None = None,
    saturation: float | None = None,
    cohesion: float | None = None,
    lone_cohesion: float | None = None,
) -> Placement:
    """Incremental clustering: where the rows of ``new`` go, by the very rule :func:`cluster` uses.

    Issue 14 (incremental within 0.01 pairwise F1 of a full re-cluster). The existing persons
    (``known`` faces with their ``known_labels``) enter as ready-made groups, the new faces as faces,
    and the links of each new face's ``neighbours`` nearest (known or new) are taken strongest first
    with the join test of a full clustering. So new faces group among themselves first and a group of
    them joins a person when the group-to-person evidence passes, as a full run would decide; a face
    that alone fails (a new pose of a person) no longer becomes a duplicate person of its own.

    Two existing persons join only when both are in ``mergeable`` (the caller's: persons nobody has
    named, hidden, merged, split or marked) and the links between them (each of the touched persons'
    faces' nearest known faces, plus the new faces') pass the same test: pieces of one person that
    arrived in different batches come together as in a full run. ``forbidden[i]``: the persons new
    face ``i`` (and so its group) must never join.
    """
    q = np.ascontiguousarray(new, dtype=np.float32)
    labels = np.asarray(known_labels, dtype=np.int64).reshape(-1)
    k = np.asarray(known, dtype=np.float32).reshape(len(labels), q.shape[1])
    k, labels = np.ascontiguousarray(k[labels >= 0]), labels[labels >= 0]
    m = len(k)
    if len(q) == 0:
        return Placement(np.zeros(0, np.int64), np.zeros(0, np.int64), {})
    x = np.concatenate([k, q]) if m else q
    groups = _Groups(x)
    groups.average = threshold - AVERAGE_MARGIN if average is None else average
    groups.saturation = SATURATION if saturation is None else saturation
    groups.cohesion = COHESION if cohesion is None else cohesion
    groups.lone_cohesion = LONE_COHESION if lone_cohesion is None else lone_cohesion
    first_of: dict[int, int] = {}
    for row, label in enumerate(labels.tolist()):
        if label in first_of:
            groups.join(first_of[label], row)
        else:
            first_of[label] = row
    allowed = {int(label) for label in mergeable}
    for label, row in first_of.items():
        root = groups.root(row)
        groups.known[root] = True
        groups.locked[root] = label not in allowed
    if forbidden is not None:
        for i, banned in enumerate(forbidden):
            for label in banned:
                if label in first_of:
                    groups.keep_apart(m + i, first_of[label])
    index = faiss.IndexFlatIP(x.shape[1])
    index.add(x)
    scores, ids = index.search(q, min(neighbours + 1, len(x)))
    edges = [(np.repeat(np.arange(m, m + len(q)), scores.shape[1]), ids.ravel(), scores.ravel())]
    touched = {int(labels[j]) for j in ids.ravel().tolist() if 0 <= j < m} & allowed
    if len(touched) > 1:  # links among the touched persons' faces: may two pieces of one person join now?
        rows = np.flatnonzero(np.isin(labels, list(touched)))
        known_index = faiss.IndexFlatIP(x.shape[1])
        known_index.add(k)
        ks, kids = known_index.search(k[rows], min(neighbours + 1, m))
        edges.append((np.repeat(rows, ks.shape[1]), kids.ravel(), ks.ravel()))
    a, b, sc = (np.concatenate(parts) for parts in zip(*edges, strict=True))
    keep = (b >= 0) & (b != a) & (sc >= threshold)
    i, j, sc = np.minimum(a[keep], b[keep]), np.maximum(a[keep], b[keep]), sc[keep]
    _, once = np.unique(i.astype(np.int64) * len(x) + j, return_index=True)
    for p, r in zip(
        i[once][np.argsort(-sc[once], kind="stable")].tolist(),
        j[once][np.argsort(-sc[once], kind="stable")].tolist(),
        strict=True,
    ):
        groups.link(p, r, support, neighbours)
    groups.settle(support, neighbours)
    persons_of: dict[int, list[int]] = {}
    for label, row in first_of.items():
        persons_of.setdefault(groups.root(row), []).append(label)
    merged: dict[int, int] = {}
    for together in persons_of.values():
        keeper = max(together, key=lambda label: (int(np.sum(labels == label)), -label))
        merged.update({label: keeper for label in together if label != keeper})
    label_of_root = {root: merged.get(together[0], together[0]) for root, together in persons_of.items()}
    roots = np.array([groups.root(m + r) for r in range(len(q))], dtype=np.int64)
    joined = np.array([label_of_root.get(int(r), NEW) for r in roots.tolist()], dtype=np.int64)
    return Placement(joined, np.unique(roots, return_inverse=True)[1].astype(np.int64), merged)


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
    """For each row of ``new``: the label of the existing person it joins, or ``NEW`` (:func:`place`)."""
    return place(
        new,
        known,
        known_labels,
        threshold,
        forbidden=forbidden,
        support=support,
        neighbours=neighbours,
        average=average,
    ).joined
