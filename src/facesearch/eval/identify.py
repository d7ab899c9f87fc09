"""``facesearch eval identify``: 1:N search with distractors, as NIST's FRTE 1:N measures it.

On any LFW-layout folder (``DIR/<Name>/<Name>_NNNN.jpg``), with a fixed seed:

* each person with 2+ photos is enrolled with one photo (chosen at random); their other photos are
  the *mated* searches;
* people with one photo are split at random: half are enrolled as distractors, the other half are
  *non-mated* searches (people not in the gallery).

Everything goes through the real library path: the gallery is ingested with ``Library.index`` and
every probe is searched with ``Library.search``. LFW labels one person per photo, the face nearest
the centre; ingest indexes every face, so a gallery photo of B may also hold A's face. Such
unlabelled background faces are skipped in the candidate lists (they would count a true match of A
as a false one), and on a probe photo with several faces the central one is searched.
Reported: rank-1 and rank-5 hit rates of mated searches, and
FNIR at FPIR = 0.01 and 0.003: the threshold T is set so that that share of non-mated searches
return a top candidate scoring >= T, and FNIR is the share of mated searches whose top candidate is
not the mate or scores below T (NIST's rank-1 definition). A probe without a detectable face is a
miss when mated and no false positive when non-mated; both are counted.

With ``probe_photos`` N > 1 (issue 13: what a second probe photo is worth), :func:`split_groups`
splits people differently, so that 1 and N photos are compared on the same gallery and the same
people: people with 2+ photos are shuffled into two halves; the first half is enrolled (one photo)
and each of them with N more photos is one mated search; the second half is not enrolled, and each
of them is one non-mated search with N of their photos; one-photo people are all distractors. Every
search is run twice, with the first photo alone and with all N fused (``Library.search(...,
same_person=True)``); each person counts once.

Issue 16: every FPIR figure says how many non-mated searches it rests on (``fpir_sample``), and fewer than
100 are flagged with a warning (eval/identify_metrics.py); ``gallery_sizes`` also measures the same searches
against the gallery padded with synthetic distractors up to each size (eval/gallery_sweep.py), reusing the
face each search embedded (:class:`KeptProbes`). ``halves`` also measures the protocol within each half of
the people from those same faces (eval/identify_halves.py). ``cohort_draws`` also measures the same searches with
the s-norm cohort drawn with other seeds, to show how far the figures move with the draw alone
(eval/cohort_draws.py).
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from sqlalchemy import select

from facesearch.errors import FaceSearchError, NoFaceFound
from facesearch.eval.cohort_draws import check_draws, measure_draws
from facesearch.eval.gallery_sweep import SweepProbes, check_sizes, real_gallery, sweep
from facesearch.eval.identify_halves import check_halves, measure_halves, photo_persons
from facesearch.eval.identify_metrics import FPIRS as FPIRS  # re-exported: defined here before issue 16
from facesearch.eval.identify_metrics import figures, fpir_sample, small_sample_warnings
from facesearch.eval.identify_metrics import threshold_at_fpir as threshold_at_fpir  # re-exported, as FPIRS
from facesearch.eval.score_compare import measure_kind
from facesearch.governance.types import SearchPurpose
from facesearch.library import Library
from facesearch.search.probes import ProbeFaces, ProbeReader
from facesearch.search.results import ProbeFace, SearchResult
from facesearch.store.schema import CollectionRow, FaceRow, ImageRow

SEARCH_DEPTH = 20  # candidates fetched, so that 5 remain after skipping unlabelled background faces
GALLERY = "eval-identify-gallery"
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp"}


@dataclass
class Split:
    gallery: list[Path]
    mated: list[Path]
    non_mated: list[Path]


@dataclass
class GroupSplit:
    """A split whose searches are groups of photos of one person (fused into one probe when several)."""

    gallery: list[Path]
    mated: list[list[Path]]
    non_mated: list[list[Path]]


@dataclass
class IdentifyReport:
    rank1: float
    rank5: float
    fnir_at_fpir: dict[str, float]
    gallery_size: int
    mated: int
    non_mated: int
    seed: int
    no_face: dict = field(default_factory=dict)
    thresholds: dict[str, float] = field(default_factory=dict)
    score: str = "cosine"
    # Per search, for plots (eval/report.py); not part of the JSON. The mate's score when it ranks
    # first (-inf otherwise), each non-mated search's top score (-inf: no face), the mate's rank (0: not in top 5).
    mated_scores: np.ndarray = field(default_factory=lambda: np.zeros(0), repr=False)
    non_mated_top: np.ndarray = field(default_factory=lambda: np.zeros(0), repr=False)
    mated_ranks: np.ndarray = field(default_factory=lambda: np.zeros(0, int), repr=False)
    probe_photos: int = 1  # photos per search, fused into one probe when several
    single_photo: dict | None = None  # with probe_photos > 1: the same searches with their first photo alone
    probes: SweepProbes | None = field(default=None, repr=False)  # the searched faces (not in the JSON)
    gallery_sweep: dict | None = None  # issue 16: the figures with the gallery padded to each size
    halves: dict | None = None  # issue 16: the figures within each half of the people (eval/identify_halves.py)
    cohort_draws: dict | None = None  # issue 16: the figures with other s-norm cohort draws (eval/cohort_draws.py)
    compared: dict | None = None  # issue 16: the same searches scored with another kind (eval/score_compare.py)

    @property
    def warnings(self) -> list[str]:
        """Issue 16: the FPIR figures resting on too few non-mated searches, said in words (and a sweep whose
        reference run does not reproduce the library's searches)."""
        warnings = small_sample_warnings(self.non_mated)
        if self.gallery_sweep is not None and not self.gallery_sweep["reference"]["matches_library_search"]:
            warnings.append(
                "the gallery-size sweep's reference run (no distractors) does not reproduce the library's searches: "
                "its padded figures are not the library's"
            )
        if self.halves is not None:
            warnings += [f"half {h} of the people: {w}" for h in (0, 1) for w in self.halves[f"half_{h}"]["warnings"]]
            if not self.halves["reference"]["matches_library_search"]:
                warnings.append(
                    "the halves' searches, run again on the whole gallery, do not reproduce the library's searches: "
                    "the halves' figures are not the library's"
                )
        if self.cohort_draws is not None and not self.cohort_draws["reference"]["matches_library_search"]:
            warnings.append(
                "the cohort draws' seed 0 does not reproduce the library's searches: the other draws' figures are "
                "not the library's"
            )
        return warnings

    def to_dict(self) -> dict:
        extra = {"single_photo": self.single_photo} if self.single_photo is not None else {}
        if self.gallery_sweep is not None:
            extra["gallery_sweep"] = self.gallery_sweep
        if self.halves is not None:
            extra["halves"] = self.halves
        if self.cohort_draws is not None:
            extra["cohort_draws"] = self.cohort_draws
        if self.compared is not None:
            extra["compared"] = self.compared
        return {
            "probe_photos": self.probe_photos,
            **extra,
            "rank1": round(self.rank1, 5),
            "rank5": round(self.rank5, 5),
            "fnir_at_fpir": {k: round(v, 5) for k, v in self.fnir_at_fpir.items()},
            "fpir_sample": fpir_sample(self.non_mated),
            "warnings": self.warnings,
            "gallery_size": self.gallery_size,
            "mated": self.mated,
            "non_mated": self.non_mated,
            "seed": self.seed,
            "no_face": self.no_face,
            "thresholds": {k: round(v, 5) for k, v in self.thresholds.items()},
            "score": self.score,
        }


# Evaluation searches are searches too: bound to a purpose and in the audit log like any other.
EVAL_PURPOSE = SearchPurpose("eval-identify", "accuracy evaluation: 1:N identification on labelled photos")


def person_of(path: str | Path) -> str:
    return Path(path).parent.name


def split_people(images: Path, seed: int = 0) -> Split:
    """Enrol one photo per person with 2+ photos; split one-photo people into distractors and non-mated."""
    if not images.is_dir():
        raise FaceSearchError(
            f"{images} is not a folder in LFW layout (DIR/<Name>/<Name>_NNNN.jpg)", code="bad_request"
        )
    rng = random.Random(seed)
    gallery, mated, singles = [], [], []
    for person in sorted(p for p in images.iterdir() if p.is_dir()):
        photos = sorted(p for p in person.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        if len(photos) >= 2:
            enrolled = rng.choice(photos)
            gallery.append(enrolled)
            mated.extend(p for p in photos if p != enrolled)
        elif photos:
            singles.append(photos[0])
    rng.shuffle(singles)
    half = len(singles) // 2
    gallery.extend(sorted(singles[:half]))
    if not mated:
        raise FaceSearchError(
            f"{images} has no person with 2 or more photos: nothing to search for", code="bad_request"
        )
    return Split(gallery=gallery, mated=mated, non_mated=sorted(singles[half:]))


def _photos(person: Path) -> list[Path]:
    return sorted(p for p in person.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)


def split_groups(images: Path, seed: int, probe_photos: int) -> GroupSplit:
    """The people for 1 vs ``probe_photos`` photos per search (see the module's docstring)."""
    if probe_photos < 2:
        raise FaceSearchError("split_groups is for 2 or more photos per search", code="bad_request")
    split_people(images, seed)  # the same checks of the folder
    rng = random.Random(seed)
    people = [_photos(p) for p in sorted(p for p in images.iterdir() if p.is_dir())]
    multi = [photos for photos in people if len(photos) >= 2]
    gallery = [photos[0] for photos in people if len(photos) == 1]
    rng.shuffle(multi)
    enrolled, held_out = multi[: len(multi) // 2], multi[len(multi) // 2 :]
    mated = []
    for photos in enrolled:
        photos = list(photos)
        rng.shuffle(photos)
        gallery.append(photos[0])
        if len(photos) > probe_photos:
            mated.append(photos[1 : 1 + probe_photos])
    non_mated = [rng.sample(photos, probe_photos) for photos in held_out if len(photos) >= probe_photos]
    if not mated:
        raise FaceSearchError(
            f"{images} has no person with {probe_photos + 1} or more photos: nothing to search for", code="bad_request"
        )
    return GroupSplit(gallery=sorted(gallery), mated=mated, non_mated=non_mated)


def subject_face(result: SearchResult) -> ProbeFace:
    """The probe face nearest the centre of the photo (the subject of an LFW photo)."""
    width, height = result.probe_size or [0, 0]

    def distance(face: ProbeFace) -> float:
        left, top, w, h = face.box
        return (left + w / 2 - width / 2) ** 2 + (top + h / 2 - height / 2) ** 2

    return min(result.faces, key=distance)


def run(
    library: Library,
    split: Split | GroupSplit,
    seed: int,
    progress: Callable[[str, int], None] | None = None,
    workers: int | None = None,
    gallery_sizes: Sequence[int] = (),
    halves: bool = False,
    cohort_draws: int = 0,
    compare_normalize: str | None = None,
) -> IdentifyReport:
    """Enrol the gallery, run every search, measure. A :class:`GroupSplit` of N photos per search is
    measured fused (the report) and with each search's first photo alone (``single_photo``).

    Issue 16: ``gallery_sizes`` (faces, ascending) also measures the same searches with the gallery padded
    with synthetic distractors to each size (``gallery_sweep``; one photo per search only). A size below the
    enrolled gallery is refused as soon as the gallery is indexed, before any search.

    Issue 16: ``halves`` also measures each half of the people (``halves``; one photo per search only), refused
    before anything is indexed where a half has no mated search.

    Issue 16: ``cohort_draws`` N (2+) also measures the same searches with the s-norm cohort drawn with seeds
    0..N-1 (``cohort_draws``; one photo per search only): the spread the cohort's draw alone causes.

    Issue 16: ``compare_normalize`` (a score kind) also scores the same searches as a library of that kind would
    (``compared``; whole, and halves and cohort draws when asked): two kinds compared on one embedding."""
    if cohort_draws:
        check_draws(cohort_draws)
    options = (
        (gallery_sizes, "--gallery-sizes"),
        (halves, "--halves"),
        (cohort_draws, "--cohort-draws"),
        (compare_normalize, "--compare-normalize"),
    )
    for asked, option in options:
        if asked and not isinstance(split, Split):
            raise FaceSearchError(
                f"{option} measures one photo per search: leave out --probe-photos", code="bad_request"
            )
    if halves and isinstance(split, Split):
        check_halves(split.gallery, split.mated)
    check_sizes(gallery_sizes, len(split.gallery), "photos")
    library.create_collection(GALLERY, exist_ok=True)  # the evaluation's own library: its operator is its admin
    report = library.index([str(p) for p in split.gallery], collection=GALLERY, workers=workers)
    if progress:
        progress("indexed", len(split.gallery))
    gallery_size = library.stats()["collections"]
    gallery_faces = next((c["faces"] for c in gallery_size if c["name"] == GALLERY), 0)
    check_sizes(gallery_sizes, int(gallery_faces), "faces")
    gallery = Gallery(library, subject_face_ids(library), int(gallery_faces), len(report.rejected), seed)
    if isinstance(split, Split):
        measured = _measure(gallery, [[p] for p in split.mated], [[p] for p in split.non_mated], progress)
        wanted = gallery_sizes or halves or cohort_draws or compare_normalize
        real = real_gallery(library.catalog, GALLERY, gallery.subjects) if wanted else None
        outcomes = (measured.mated_ranks, measured.mated_scores, measured.non_mated_top)
        if halves and real is not None and measured.probes is not None:
            measured.halves = measure_halves(
                real,
                photo_persons(library.catalog, real.ids),
                measured.probes,
                (split.mated, split.non_mated),
                engine=library.config.index_engine,
                normalization=library.config.score_normalization,
                depth=SEARCH_DEPTH,
                library=outcomes,
            )
        if cohort_draws and real is not None and measured.probes is not None:
            measured.cohort_draws = measure_draws(
                real,
                measured.probes,
                cohort_draws,
                engine=library.config.index_engine,
                normalization=library.config.score_normalization,
                depth=SEARCH_DEPTH,
                library=outcomes,
            )
        if compare_normalize and real is not None and measured.probes is not None:
            measured.compared = measure_kind(
                real,
                photo_persons(library.catalog, real.ids) if halves else None,
                measured.probes,
                (split.mated, split.non_mated),
                compare_normalize,
                engine=library.config.index_engine,
                depth=SEARCH_DEPTH,
                cohort_draws=cohort_draws,
            )
        if gallery_sizes and real is not None and measured.probes is not None:
            measured.gallery_sweep = sweep(
                real,
                measured.probes,
                gallery_sizes,
                engine=library.config.index_engine,
                normalization=library.config.score_normalization,
                seed=seed,
                depth=SEARCH_DEPTH,
                library=outcomes,
            )
        return measured
    fused = _measure(gallery, split.mated, split.non_mated, progress)
    single = _measure(gallery, [g[:1] for g in split.mated], [g[:1] for g in split.non_mated], progress)
    fused.probe_photos, fused.single_photo = len(split.mated[0]), single.to_dict()
    return fused


@dataclass
class Gallery:
    """The enrolled evaluation library: what every measurement on it shares."""

    library: Library
    subjects: set[int]
    faces: int
    rejected: int
    seed: int


def _measure(
    gallery: Gallery,
    mated: list[list[Path]],
    non_mated: list[list[Path]],
    progress: Callable[[str, int], None] | None,
) -> IdentifyReport:
    """Run the mated and non-mated searches (each a group of one person's photos) and measure."""
    library, subjects = gallery.library, gallery.subjects
    kept = KeptProbes.install(library)
    mated_ranks, mated_top, non_mated_top = [], [], []
    probes = SweepProbes(mated=[], mated_persons=[person_of(p[0]) for p in mated], non_mated=[])
    no_face = {"gallery_rejected": 0, "mated": 0, "non_mated": 0}
    for path in mated:
        rank, top, face = _search(library, path, subjects, kept)
        if rank is None and top is None:
            no_face["mated"] += 1
        mated_ranks.append(rank)
        mated_top.append(top if rank == 1 else None)
        probes.mated.append(face)
        if progress:
            progress("searched", 1)
    for path in non_mated:
        rank, top, face = _search(library, path, subjects, kept)
        if top is None:
            no_face["non_mated"] += 1
        non_mated_top.append(top if top is not None else -np.inf)
        probes.non_mated.append(face)
        if progress:
            progress("searched", 1)
    found = figures(mated_ranks, mated_top, np.asarray(non_mated_top, dtype=np.float64))
    return IdentifyReport(
        rank1=found.rank1,
        rank5=found.rank5,
        fnir_at_fpir=found.fnir_at_fpir,
        gallery_size=gallery.faces,
        mated=len(mated),
        non_mated=len(non_mated),
        seed=gallery.seed,
        no_face={**no_face, "gallery_rejected": gallery.rejected},
        thresholds=found.thresholds,
        score=library.scoring.normalizer.kind if library.scoring.normalizer else "cosine",
        mated_scores=np.array([-np.inf if t is None else t for t in mated_top], dtype=np.float64),
        non_mated_top=np.asarray(non_mated_top, dtype=np.float64),
        mated_ranks=np.array([0 if r is None else r for r in mated_ranks], dtype=int),
        probes=probes,
    )


def subject_face_ids(library: Library) -> set[int]:
    """For each gallery photo, the id of its face nearest the centre (the one LFW's label names)."""
    subjects: dict[int, tuple[float, int]] = {}
    with library.catalog.session() as s:
        rows = s.execute(
            select(
                FaceRow.id,
                FaceRow.image_id,
                FaceRow.left,
                FaceRow.top,
                FaceRow.width,
                FaceRow.height,
                ImageRow.width,
                ImageRow.height,
            )
            .join(ImageRow, FaceRow.image_id == ImageRow.id)
            .join(CollectionRow, ImageRow.collection_id == CollectionRow.id)
            .where(CollectionRow.name == GALLERY)
        ).all()
    for face_id, image_id, left, top, w, h, img_w, img_h in rows:
        distance = (left + w / 2 - img_w / 2) ** 2 + (top + h / 2 - img_h / 2) ** 2
        if image_id not in subjects or distance < subjects[image_id][0]:
            subjects[image_id] = (distance, face_id)
    return {face_id for _, face_id in subjects.values()}


def _search(
    library: Library, photos: list[Path], subjects: set[int], kept: KeptProbes
) -> tuple[int | None, float | None, np.ndarray | None]:
    """Rank of the mate among the top 5 (None if absent), the top candidate's score (None: no face), and
    the searched face's embedding (None: no face; for the gallery-size sweep).

    Several photos are one person's, searched fused into one probe (a photo without a face: no face)."""
    probe: Path | list[Path] = photos[0] if len(photos) == 1 else photos
    try:
        result = library.search(
            probe, top_k=SEARCH_DEPTH, collection=GALLERY, purpose=EVAL_PURPOSE, same_person=len(photos) > 1
        )
    except NoFaceFound:
        return None, None, None
    path = photos[0]
    searched = subject_face(result)
    face = kept.embedding(searched.face)
    candidates = [c for c in searched.candidates if c.face_id in subjects][:5]
    if not candidates:
        return None, None, face
    person = person_of(path)
    rank = next((i for i, c in enumerate(candidates, start=1) if person_of(c.image.path or "") == person), None)
    return rank, candidates[0].score, face


class KeptProbes(ProbeReader):
    """The library's probe reader, keeping the faces of the last probe it read (issue 16).

    The gallery-size sweep searches again with the very face each library search embedded, so the
    probes are embedded once (detection and embedding are most of a search's time). Installed in the
    evaluation's own library only; it reads exactly as the reader it replaces.
    """

    last: ProbeFaces | None = None

    @classmethod
    def install(cls, library: Library) -> KeptProbes:
        reader = library.searches.probes
        if not isinstance(reader, KeptProbes):
            reader = cls(reader.pipelines, max_bytes=reader.max_bytes, max_pixels=reader.max_pixels)
            library.searches.probes = reader
        return reader

    def read(self, photos: list, face: int | None) -> ProbeFaces:
        self.last = None  # a probe without a face leaves nothing behind from the one before
        self.last = super().read(photos, face)
        return self.last

    def embedding(self, index: int) -> np.ndarray | None:
        """The embedding of face number ``index`` of the last probe read."""
        faces = self.last.faces if self.last is not None else []
        return next((np.asarray(f.embedding, dtype=np.float32) for f in faces if f.index == index), None)
