"""``eval identify --gallery-sizes``: the same 1:N searches against the gallery padded with synthetic distractors.

Issue 16. LFW gives a gallery of a few thousand faces; an operator's library holds 10k to millions, and 1:N
errors grow with the gallery (more strangers that can outscore the mate or cross the threshold). The sweep
answers "what would these searches give in a library of N faces?" without embedding anything again:

* the probes' faces are the ones the library's own searches embedded (eval/identify.py keeps the searched
  face's embedding of each search);
* the gallery is the evaluation library's indexed faces plus synthetic distractors
  (eval/distractors.py: a Gaussian fitted to the gallery's labelled faces, its covariance scaled so that
  distractor pairs score like real different-person pairs at p99.9; the check is in the output), generated
  once for the largest size, each smaller size taking a prefix, so that each size only adds faces;
* each size is searched the way the library searches: a vector index of the library's engine
  (``VectorIndex(dim, index_engine)``: exact below 100k faces, HNSW from there with ``auto``), one probe face
  per query, the candidates re-ranked by s-norm when the library scores by s-norm, with the cohort the
  library would draw at that size (``CohortNormalizer.from_catalog``'s rule, on the padded gallery), and the
  same candidate rules as the library-path measurement (unlabelled background faces skipped; a distractor
  is a stranger).

A reference run on the real gallery alone (no distractors) goes through the same code and is compared
with the library-path figures: ``matches_library_search`` says whether the sweep's scoring reproduces
the library's searches, so that the padded figures can be read as the library's.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from facesearch.errors import FaceSearchError
from facesearch.eval import distractors
from facesearch.eval.identify_metrics import figures, fpir_sample
from facesearch.search.normalize import MIN_LIBRARY_FACES, SNORM_KINDS, CohortNormalizer, cohort_ids
from facesearch.search.service import RERANK_DEPTH
from facesearch.store.catalog import Catalog
from facesearch.store.vectors.faiss_index import VectorIndex

MAX_GALLERY = 1_000_000  # 512 MB of float32 vectors and a 5-minute HNSW build: beyond, use bench/scale/
MATCH_PERCENTILE = 99.9  # distractor pairs match real different-person pairs here (as bench/scale/ does)
CHECK_PAIRS = 400_000
ROUNDING = 1.5e-4  # a result's score has 4 decimals: a neighbouring rounding is within this
WARM_CHUNK = 10_000  # candidates whose cohort statistics one product computes (10k x 2,000 float32: 80 MB)


@dataclass
class SweepProbes:
    """The searched face of every search (None: no face found), and each mated search's person."""

    mated: list[np.ndarray | None]
    mated_persons: list[str]
    non_mated: list[np.ndarray | None]


@dataclass
class RealGallery:
    """The evaluation library's gallery: ids (ascending), vectors, and the person of each labelled face
    ("" for an unlabelled background face, which candidate lists skip)."""

    ids: np.ndarray
    vectors: np.ndarray
    persons: np.ndarray


def parse_sizes(text: str) -> list[int]:
    """``--gallery-sizes 1000,10000,100000`` -> [1000, 10000, 100000]; a clear error for anything else."""
    sizes = []
    for part in text.split(","):
        value = part.strip()
        try:
            size = int(value)
        except ValueError:
            raise FaceSearchError(
                f"--gallery-sizes: {value!r} is not a whole number of faces (e.g. 10000,100000)", code="bad_request"
            ) from None
        if size <= 0:
            raise FaceSearchError(f"--gallery-sizes: {size} is not a gallery size (faces > 0)", code="bad_request")
        if size > MAX_GALLERY:
            raise FaceSearchError(
                f"--gallery-sizes: {size:,} faces is over the sweep's limit of {MAX_GALLERY:,}", code="bad_request"
            )
        sizes.append(size)
    return sorted(set(sizes))


def check_sizes(sizes: Sequence[int], real: int, what: str) -> None:
    """Sizes below the real gallery cannot be reached by adding distractors: refused, naming the gallery."""
    small = [s for s in sizes if s < real]
    if small:
        raise FaceSearchError(
            f"--gallery-sizes {', '.join(str(s) for s in small)}: smaller than the real gallery ({real:,} {what}); "
            f"the sweep only adds distractors, so every size must be at least {real:,}",
            code="bad_request",
        )


def real_gallery(catalog: Catalog, collection: str, subjects: set[int]) -> RealGallery:
    """The gallery's faces, their vectors, and the person of each labelled (subject) face."""
    cid = catalog.collection_id(collection, create=False)
    if cid is None:
        raise FaceSearchError(f"no collection named {collection!r}", code="not_found")
    ids = np.sort(catalog.face_ids_in_collection(cid))
    rows = catalog.faces_by_ids(ids)
    persons = np.array([Path(rows[int(i)].image.source).parent.name if int(i) in subjects else "" for i in ids])
    return RealGallery(ids=ids, vectors=catalog.embeddings_of(ids), persons=persons)


def make_distractors(gallery: RealGallery, count: int, seed: int) -> tuple[np.ndarray, dict]:
    """``count`` distractors fitted to the gallery's labelled faces, and the check of how real they look."""
    rng = np.random.default_rng(seed)
    labelled = gallery.persons != ""
    real, persons = gallery.vectors[labelled], gallery.persons[labelled]
    fit = distractors.fit_gaussian(real)
    impostors = distractors.different_person_similarities(real, persons, CHECK_PAIRS, rng)
    target = float(np.percentile(impostors, MATCH_PERCENTILE))
    scale = distractors.calibrate_scale(fit, target, MATCH_PERCENTILE, rng)
    made = distractors.sample(fit, count, scale, rng)
    shown = made if len(made) >= 2 else distractors.sample(fit, 2_000, scale, rng)
    check = {
        "fitted_on": int(len(real)),
        "matched": f"p{MATCH_PERCENTILE:g} of real different-person pairs",
        "covariance_scale": round(scale, 5),
        "real_different_person": _rounded(distractors.summarize(impostors)),
        "distractor_pairs": _rounded(
            distractors.summarize(distractors.random_pair_similarities(shown, CHECK_PAIRS, rng))
        ),
    }
    return made, check


def _rounded(stats: dict[str, float]) -> dict[str, float]:
    return {k: v if isinstance(v, int) else round(v, 4) for k, v in stats.items()}


def probe_check(gallery: RealGallery, made: np.ndarray, probes: SweepProbes) -> dict:
    """What the searches see: each non-mated probe's similarities to the real gallery's labelled faces (all
    strangers to it) and to as many distractors, and its top score against each. Distractors matched on
    pairs among themselves can still sit further from real probes than real strangers do: this says how far."""
    faces = [p for p in probes.non_mated if p is not None]
    real = gallery.vectors[gallery.persons != ""]
    if not faces or not len(made):
        return {}
    queries, fake = np.stack(faces), made[: len(real)]
    to_real, to_fake = queries @ real.T, queries @ fake.T
    return {
        "equal_counts": int(min(len(real), len(fake))),
        "real_strangers": _rounded(distractors.summarize(to_real.ravel())),
        "distractors": _rounded(distractors.summarize(to_fake.ravel())),
        "top_score_median": {
            "real_strangers": round(float(np.median(to_real.max(axis=1))), 4),
            "distractors": round(float(np.median(to_fake.max(axis=1))), 4),
        },
    }


class PaddedGallery:
    """The real gallery plus the first ``extra`` distractors, indexed and scored as the library would."""

    def __init__(
        self,
        gallery: RealGallery,
        made: np.ndarray,
        extra: int,
        engine: str,
        normalization: str,
        cohort_seed: int = 0,
    ) -> None:
        """``normalization``: the library's ``score_normalization`` ("none", "snorm" or issue 16's "snorm_cos");
        ``cohort_seed``: the seed of the cohort's draw (the library's is 0; issue 16, eval/cohort_draws.py)."""
        self.cos_weight = SNORM_KINDS.get(normalization, 0.0)
        self.cohort_seed = cohort_seed
        first = int(gallery.ids.max(initial=0)) + 1
        self.ids = np.concatenate([gallery.ids, np.arange(first, first + extra, dtype=np.int64)])
        self.vectors = np.concatenate([gallery.vectors, made[:extra]]) if extra else gallery.vectors
        self.persons = gallery.persons
        self.real = len(gallery.ids)
        self.index = VectorIndex(self.vectors.shape[1], engine)
        self.index.add(self.ids, self.vectors)
        cohort = normalization in SNORM_KINDS and len(self.ids) >= MIN_LIBRARY_FACES
        self.normalizer = self._cohort() if cohort else None

    def _cohort(self) -> CohortNormalizer:
        """The cohort ``CohortNormalizer.from_catalog`` would draw from a library holding these faces."""
        rows = np.searchsorted(self.ids, cohort_ids(self.ids, seed=self.cohort_seed))
        return CohortNormalizer(self.vectors[rows], cos_weight=self.cos_weight)

    def nearest(self, probe: np.ndarray, depth: int) -> tuple[np.ndarray, np.ndarray]:
        """The raw candidates of one probe face: one query per search, as the library's search asks its index."""
        fetch = max(depth, RERANK_DEPTH) if self.normalizer else depth
        raw, ids = self.index.search(probe[None], fetch)
        keep = ids[0] >= 0
        return raw[0][keep].astype(np.float64), ids[0][keep]

    def warm(self, ids: np.ndarray) -> None:
        """Compute the cohort statistics of these candidates in a few large products instead of one small
        product per search, into the normaliser's per-face cache: many small products are slow where BLAS
        threads contend for a loaded machine's cores. The same statistics up to a float's last bits, which can
        move a score's 4th decimal (:func:`differing` tells that from a different search)."""
        if self.normalizer is None:
            return
        unique = np.unique(ids)
        for start in range(0, len(unique), WARM_CHUNK):
            chunk = unique[start : start + WARM_CHUNK]
            self.normalizer.face_stats(chunk, self.vectors[np.searchsorted(self.ids, chunk)])

    def rank(
        self, probe: np.ndarray, raw: np.ndarray, ids: np.ndarray, depth: int, person: str | None
    ) -> tuple[int | None, float | None, bool]:
        """As eval/identify.py's ``_search`` on the library: the mate's rank among the top 5 labelled or
        distractor candidates (None: absent), the top one's score (rounded as a result's score), and whether
        the top one is a distractor."""
        rows = np.searchsorted(self.ids, ids)
        ranking = raw
        if self.normalizer is not None and len(ids):
            ranking = self.normalizer.normalize(raw, probe, self.vectors[rows], ids)
        order = np.argsort(-ranking, kind="stable")[:depth]
        shown = [i for i in order if rows[i] >= self.real or self.persons[rows[i]] != ""][:5]
        if not shown:
            return None, None, False
        rank = next(
            (n for n, i in enumerate(shown, start=1) if rows[i] < self.real and self.persons[rows[i]] == person), None
        )
        return rank, round(float(ranking[shown[0]]), 4), bool(rows[shown[0]] >= self.real)


Outcomes = tuple[np.ndarray, np.ndarray, np.ndarray]  # mated ranks (0: absent), mated scores, non-mated top scores


def measure(padded: PaddedGallery, probes: SweepProbes, depth: int) -> tuple[dict, Outcomes]:
    """Every search against one padded gallery, measured as the library-path run is; also each search's
    outcome, encoded as :class:`~facesearch.eval.identify.IdentifyReport` keeps the library's."""
    searches = [(p, person) for p, person in zip(probes.mated, probes.mated_persons, strict=True)]
    searches += [(p, None) for p in probes.non_mated]
    found = [padded.nearest(p, depth) if p is not None else None for p, _ in searches]
    padded.warm(np.concatenate([f[1] for f in found if f is not None] or [np.zeros(0, np.int64)]))
    outcomes = [
        padded.rank(p, *f, depth, person) if p is not None and f is not None else (None, None, False)
        for (p, person), f in zip(searches, found, strict=True)
    ]
    mated, non_mated = outcomes[: len(probes.mated)], outcomes[len(probes.mated) :]
    ranks = [rank for rank, _, _ in mated]
    mated_top = [top if rank == 1 else None for rank, top, _ in mated]
    non_mated_top = [-np.inf if top is None else top for _, top, _ in non_mated]
    on_top = {"mated": sum(f for *_, f in mated), "non_mated": sum(f for *_, f in non_mated)}
    found = figures(ranks, mated_top, np.asarray(non_mated_top, dtype=np.float64))
    outcome = (
        np.array([r or 0 for r in ranks], dtype=int),
        np.array([-np.inf if t is None else t for t in mated_top], dtype=np.float64),
        np.asarray(non_mated_top, dtype=np.float64),
    )
    return {
        "gallery_size": int(len(padded.ids)),
        "distractors": int(len(padded.ids) - padded.real),
        "index": padded.index.engine,
        "score": padded.normalizer.kind if padded.normalizer else "cosine",
        "rank1": round(found.rank1, 5),
        "rank5": round(found.rank5, 5),
        "fnir_at_fpir": {k: round(v, 5) for k, v in found.fnir_at_fpir.items()},
        "thresholds": {k: round(v, 5) for k, v in found.thresholds.items()},
        "distractor_on_top": on_top,
        "fpir_sample": fpir_sample(len(probes.non_mated)),
        "small_sample": any(f["small_sample"] for f in fpir_sample(len(probes.non_mated)).values()),
    }, outcome


def differing(a: Outcomes, b: Outcomes) -> tuple[int, int]:
    """Searches whose outcome (the mate's rank, the scores that decide FNIR and FPIR) is not the same in both,
    and of those, the ones that differ by more than the last digit of a result's score (0.0001).

    An s-norm score's cohort statistics computed for many candidates at once (:meth:`PaddedGallery.warm`) and
    for one search's 50 can differ in the last bits of a float: a score then rounds to the neighbouring 4th
    decimal (measured on lfw-dev: 4 of 1,500 searches, never more than that digit)."""
    mated = (a[0] != b[0]) | (a[1] != b[1])
    beyond = (a[0] != b[0]) | ~np.isclose(a[1], b[1], rtol=0, atol=ROUNDING)
    any_differ = int(np.sum(mated) + np.sum(a[2] != b[2]))
    return any_differ, int(np.sum(beyond) + np.sum(~np.isclose(a[2], b[2], rtol=0, atol=ROUNDING)))


def sweep(
    gallery: RealGallery,
    probes: SweepProbes,
    sizes: Sequence[int],
    *,
    engine: str,
    normalization: str,
    seed: int,
    depth: int,
    library: Outcomes,
) -> dict:
    """The figures at each size (``sizes`` ascending, none below the real gallery) and the reference run,
    compared search by search with the ``library``'s own outcomes."""
    check_sizes(sizes, len(gallery.ids), "faces")
    made, check = make_distractors(gallery, max(sizes) - len(gallery.ids), seed)
    check["non_mated_probes_vs"] = probe_check(gallery, made, probes)
    reference, outcome = measure(PaddedGallery(gallery, made, 0, engine, normalization), probes, depth)
    figures_of_library = figures(
        [int(r) or None for r in library[0]],
        [None if not np.isfinite(t) else float(t) for t in library[1]],
        library[2],
    )
    same_figures = (round(figures_of_library.rank1, 5), round(figures_of_library.rank5, 5)) == (
        reference["rank1"],
        reference["rank5"],
    ) and {k: round(v, 5) for k, v in figures_of_library.fnir_at_fpir.items()} == reference["fnir_at_fpir"]
    anywhere, beyond = differing(outcome, library)
    reference["searches_differing_from_library"] = anywhere
    reference["searches_differing_beyond_rounding"] = beyond
    # The library's figures, and no search further from the library's than the rounding of a score.
    reference["matches_library_search"] = same_figures and beyond == 0
    results = [
        measure(PaddedGallery(gallery, made, s - len(gallery.ids), engine, normalization), probes, depth)[0]
        for s in sizes
    ]
    return {"distractor_check": check, "reference": reference, "sizes": results}
