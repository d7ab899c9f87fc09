"""``facesearch eval cluster``: how well faces are grouped into persons, against two baselines (issue 14).

On the faces of one-face photos of an LFW-layout folder (the folder name is the truth; see
cluster_embed.py), every method runs on the same embeddings in the same run:

* ``facesearch``: :func:`facesearch.people.clustering.cluster` at the threshold of the library's
  calibration for the chosen false match rate;
* ``single_linkage``: the same links joined on one link each (``support=0``: connected components of
  the nearest-neighbour graph), the naive method, to show what the support rule buys;
* ``chinese_whispers``: dlib's ``chinese_whispers_clustering`` at dlib's usual threshold, Euclidean
  distance 0.5 (its face-clustering example), at the scale of dlib's raw descriptors: that threshold is a
  distance between ``compute_face_descriptor`` outputs, which are not unit length (their norm is ~1.41:
  median 1.413, range 1.19 to 1.64, measured on 59 lfw-dev faces with this project's dlib ResNet), while
  our embeddings are unit length. On unit vectors 0.5 means cosine 0.875, far below where dlib's
  strangers sit (~0.8 to 0.93 cosine), and put nearly every face into one person (pairwise precision
  0.005 on lfw-dev); scaled by the raw norm it is cosine ~0.937, what a dlib user's 0.5 means;
* ``dbscan_immich``: scikit-learn's DBSCAN with Immich's defaults (``minFaces`` 3 as ``min_samples``),
  at the same cosine threshold as ours: Immich's ``maxDistance`` 0.5 is a cosine distance for its
  ArcFace model, where strangers score near 0; on dlib's embeddings strangers score ~0.8, so 0.5 would
  put everyone in one person. DBSCAN's noise faces (fewer than 3 neighbours) are persons of one face,
  as Immich leaves them unassigned.

Measured: pairwise precision / recall / F1 (over all pairs of faces: put together vs truly the same),
BCubed precision / recall / F1 (per face, the share of its cluster that is its person and of its
person that is in its cluster, averaged), and persons found vs true. With ``batches`` > 1 our method
is also run incrementally: the faces in that many batches (fixed-seed order), each placed with
:func:`~facesearch.people.clustering.place` exactly as the library's ingest places them (no person
is touched by a user here, so every person may be rejoined).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from facesearch.people.clustering import NEW, cluster, place

CW_DISTANCE = 0.5  # dlib's face_clustering.py example: a distance between raw dlib descriptors
DLIB_DESCRIPTOR_NORM = 1.41  # median length of dlib's raw face descriptor (see the module's docstring)
IMMICH_MIN_FACES = 3  # Immich server config.ts: machineLearning.facialRecognition.minFaces
IMMICH_MAX_DISTANCE = 0.5  # its maxDistance (cosine distance, for ArcFace buffalo_l): not portable, see above


def _labels(values: np.ndarray) -> np.ndarray:
    return np.unique(np.asarray(values), return_inverse=True)[1].astype(np.int64)


def _pairs(counts: np.ndarray) -> float:
    counts = counts.astype(np.float64)
    return float((counts * (counts - 1) / 2).sum())


def pairwise(truth: np.ndarray, predicted: np.ndarray) -> dict[str, float]:
    """Precision, recall and F1 over pairs of faces; a method that puts no two faces together has
    precision 1 by convention (it made no false merge) and recall 0."""
    t, p = _labels(truth), _labels(predicted)
    joint = np.unique(t * (p.max() + 1) + p, return_counts=True)[1]
    together, same, both = _pairs(np.bincount(p)), _pairs(np.bincount(t)), _pairs(joint)
    precision = both / together if together else 1.0
    recall = both / same if same else 1.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"precision": precision, "recall": recall, "f1": f1}


def bcubed(truth: np.ndarray, predicted: np.ndarray) -> dict[str, float]:
    """BCubed precision, recall and F1 (Bagga and Baldwin): per face, the share of its cluster that is
    its person (precision) and of its person that is in its cluster (recall), averaged over faces."""
    t, p = _labels(truth), _labels(predicted)
    key = t * (p.max() + 1) + p
    _, inverse, joint = np.unique(key, return_inverse=True, return_counts=True)
    overlap = joint[inverse].astype(np.float64)
    precision = float(np.mean(overlap / np.bincount(p)[p]))
    recall = float(np.mean(overlap / np.bincount(t)[t]))
    return {"precision": precision, "recall": recall, "f1": 2 * precision * recall / (precision + recall)}


def scores(truth: np.ndarray, predicted: np.ndarray) -> dict:
    """All figures of one clustering against the truth, rounded for reports."""
    return {
        "pairwise": {k: round(v, 5) for k, v in pairwise(truth, predicted).items()},
        "bcubed": {k: round(v, 5) for k, v in bcubed(truth, predicted).items()},
        "persons_found": int(len(np.unique(predicted))),
        "persons_true": int(len(np.unique(truth))),
    }


def chinese_whispers(x: np.ndarray, distance: float = CW_DISTANCE, scale: float = DLIB_DESCRIPTOR_NORM) -> np.ndarray:
    """dlib's Chinese Whispers on the embeddings (edges between faces closer than ``distance``), the unit
    embeddings first brought to the length of dlib's raw descriptors (``scale``), where ``distance`` is
    meant (issue 14: the baseline as a dlib user runs it)."""
    import dlib

    raw = np.asarray(x, dtype=np.float64) * scale
    return np.asarray(dlib.chinese_whispers_clustering([dlib.vector(v.tolist()) for v in raw], distance))


def dbscan_immich(x: np.ndarray, threshold: float, min_faces: int = IMMICH_MIN_FACES) -> np.ndarray:
    """DBSCAN with Immich's ``minFaces`` at cosine similarity ``threshold``; noise faces alone."""
    from sklearn.cluster import DBSCAN

    labels = DBSCAN(eps=1.0 - threshold, min_samples=min_faces, metric="cosine", algorithm="brute").fit_predict(x)
    noise = labels < 0
    labels[noise] = labels.max() + 1 + np.arange(int(noise.sum()))
    return labels


def incremental(x: np.ndarray, threshold: float, batches: int, seed: int = 0) -> np.ndarray:
    """Labels when the faces arrive in ``batches`` (fixed-seed order), each placed by
    :func:`~facesearch.people.clustering.place`, the one incremental rule the library's ingest uses too."""
    order = np.random.default_rng(seed).permutation(len(x))
    labels = np.full(len(x), NEW, dtype=np.int64)
    for chunk in np.array_split(order, batches):
        known = np.flatnonzero(labels != NEW)
        placed = place(x[chunk], x[known], labels[known], threshold, mergeable=np.unique(labels[known]))
        for gone, kept in placed.merged.items():
            labels[labels == gone] = kept
        start = int(labels.max()) + 1 if (labels != NEW).any() else 0
        labels[chunk] = np.where(placed.joined != NEW, placed.joined, start + placed.groups)
    return labels


@dataclass
class ClusterReport:
    threshold: float
    max_fmr: float
    faces: int
    photos: int
    skipped: dict[str, int]
    methods: dict[str, dict]
    settings: dict[str, object]
    incremental: dict | None = None
    seconds: dict[str, float] = field(default_factory=dict)
    sizes: dict[str, np.ndarray] = field(default_factory=dict, repr=False)  # cluster sizes per method, for plots

    def to_dict(self) -> dict:
        extra = {"incremental": self.incremental} if self.incremental is not None else {}
        return {
            "threshold": round(self.threshold, 5),
            "max_fmr": self.max_fmr,
            "faces": self.faces,
            "photos": self.photos,
            "skipped_photos": self.skipped,
            "methods": self.methods,
            **extra,
            "settings": self.settings,
            "seconds": {k: round(v, 2) for k, v in self.seconds.items()},
        }


def evaluate(
    x: np.ndarray,
    people: np.ndarray,
    threshold: float,
    max_fmr: float,
    photos: int,
    skipped: dict[str, int],
    batches: int = 1,
    progress: Callable[[str], None] | None = None,
) -> ClusterReport:
    """Run every method on the same embeddings and score them against ``people``."""
    import time

    from facesearch.people import clustering

    x = np.ascontiguousarray(x, dtype=np.float32)
    runs: dict[str, Callable[[], np.ndarray]] = {
        "facesearch": lambda: cluster(x, threshold),
        "single_linkage": lambda: cluster(
            x, threshold, support=0.0, average=-1.0, cohesion=np.inf, lone_cohesion=np.inf
        ),
        "chinese_whispers": lambda: chinese_whispers(x),
        "dbscan_immich": lambda: dbscan_immich(x, threshold),
    }
    methods, seconds, sizes, labels = {}, {}, {}, {}
    for name, run in runs.items():
        if progress:
            progress(name)
        started = time.perf_counter()
        labels[name] = run()
        seconds[name] = time.perf_counter() - started
        methods[name] = scores(people, labels[name])
        sizes[name] = np.bincount(_labels(labels[name]))
    sizes["truth"] = np.bincount(_labels(people))
    report_inc = None
    if batches > 1:
        if progress:
            progress("incremental")
        started = time.perf_counter()
        inc = incremental(x, threshold, batches)
        seconds["incremental"] = time.perf_counter() - started
        full_f1 = methods["facesearch"]["pairwise"]["f1"]
        report_inc = {
            "batches": batches,
            **scores(people, inc),
            "pairwise_f1_vs_full": round(pairwise(labels["facesearch"], inc)["f1"], 5),
        }
        report_inc["pairwise_f1_difference"] = round(abs(report_inc["pairwise"]["f1"] - full_f1), 5)
    settings = {
        "support": clustering.SUPPORT,
        "cohesion": clustering.COHESION,
        "lone_cohesion": clustering.LONE_COHESION,
        "lone_into": clustering.LONE_INTO,
        "saturation": clustering.SATURATION,
        "neighbours": clustering.NEIGHBOURS,
        "chinese_whispers_distance": CW_DISTANCE,
        "chinese_whispers_scale": DLIB_DESCRIPTOR_NORM,
        "dbscan_min_samples": IMMICH_MIN_FACES,
        "dbscan_eps_cosine": round(1.0 - threshold, 5),
    }
    return ClusterReport(threshold, max_fmr, len(x), photos, skipped, methods, settings, report_inc, seconds, sizes)
