"""``eval identify --halves``: the 1:N protocol run within each half of the people (issue 16).

Each half (eval/halves.py) is measured as an evaluation library holding only that half's people would
measure it: its gallery is the whole run's enrolled photos of the half's people (the same seed, so the same
photo enrolled per person, and the same one-photo distractors) with every face found on them; its mated and
non-mated searches are the whole run's searches of the half's people; a search's candidates come from that
gallery alone. Nothing is embedded again: a photo's faces do not depend on the library around it, so the
gallery's stored vectors and the face each library search embedded (eval/identify.KeptProbes) are searched
again the way the library searches (eval/gallery_sweep.PaddedGallery: the library's index engine, s-norm
re-ranking with the cohort a library of those faces would draw, unlabelled background faces skipped).

The same code run on the whole gallery is compared search by search with the library's own searches
(``reference``): ``matches_library_search`` says whether the halves' figures can be read as the library's.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from facesearch.errors import FaceSearchError
from facesearch.eval.gallery_sweep import Outcomes, PaddedGallery, RealGallery, SweepProbes, differing, measure
from facesearch.eval.halves import HALVES, RULE, half_of, half_of_photo
from facesearch.eval.identify_metrics import small_sample_warnings
from facesearch.store.catalog import Catalog


def check_halves(gallery: Sequence[Path], mated: Sequence[Path]) -> None:
    """Refused (before anything is indexed or searched) when a half of the people has no mated search: its
    rank-1 and FNIR would be the mean of nothing."""
    for half in HALVES:
        if not any(half_of_photo(p) == half for p in mated):
            enrolled = sum(half_of_photo(p) == half for p in gallery)
            raise FaceSearchError(
                f"--halves: half {half} of the people has no mated search (no person of it with 2 or more photos; "
                f"{enrolled} of its photos enrolled): its rank-1 and FNIR cannot be measured; use a folder with "
                "more people",
                code="bad_request",
            )


def photo_persons(catalog: Catalog, ids: np.ndarray) -> np.ndarray:
    """The person (folder name) of the photo each gallery face was found on, labelled or not."""
    rows = catalog.faces_by_ids(ids)
    return np.array([Path(rows[int(i)].image.source).parent.name for i in ids])


def measure_halves(
    gallery: RealGallery,
    owners: np.ndarray,
    probes: SweepProbes,
    searches: tuple[Sequence[Path], Sequence[Path]],
    *,
    engine: str,
    normalization: str,
    depth: int,
    library: Outcomes,
) -> dict:
    """The figures of each half. ``owners``: the person of each gallery face's photo (:func:`photo_persons`);
    ``searches``: the mated and non-mated searches' photos, in the order of ``probes``; ``library``: the
    library's own outcomes of those searches, for the reference check."""
    mated, non_mated = searches
    _, outcome = measure(_gallery(gallery, np.ones(len(gallery.ids), bool), engine, normalization), probes, depth)
    anywhere, beyond = differing(outcome, library)
    result: dict = {
        "rule": RULE,
        "reference": {
            "searches_differing_from_library": anywhere,
            "searches_differing_beyond_rounding": beyond,
            "matches_library_search": beyond == 0,
        },
    }
    in_half = np.array([half_of(str(o)) for o in owners])
    for half in HALVES:
        m = [i for i, p in enumerate(mated) if half_of_photo(p) == half]
        n = [i for i, p in enumerate(non_mated) if half_of_photo(p) == half]
        chosen = SweepProbes(
            mated=[probes.mated[i] for i in m],
            mated_persons=[probes.mated_persons[i] for i in m],
            non_mated=[probes.non_mated[i] for i in n],
        )
        figures, _ = measure(_gallery(gallery, in_half == half, engine, normalization), chosen, depth)
        people = {str(o) for o in owners[in_half == half]} | {Path(non_mated[i]).parent.name for i in n}
        result[f"half_{half}"] = {
            "people": len(people),
            "gallery_size": figures["gallery_size"],
            "mated": len(m),
            "non_mated": len(n),
            "rank1": figures["rank1"],
            "rank5": figures["rank5"],
            "fnir_at_fpir": figures["fnir_at_fpir"],
            "thresholds": figures["thresholds"],
            "score": figures["score"],
            "fpir_sample": figures["fpir_sample"],
            "warnings": small_sample_warnings(len(n)),
            "no_face": {
                "mated": sum(p is None for p in chosen.mated),
                "non_mated": sum(p is None for p in chosen.non_mated),
            },
        }
    return result


def _gallery(gallery: RealGallery, keep: np.ndarray, engine: str, normalization: str) -> PaddedGallery:
    """The faces ``keep`` selects, indexed and scored as a library holding only them would (no distractors)."""
    part = RealGallery(ids=gallery.ids[keep], vectors=gallery.vectors[keep], persons=gallery.persons[keep])
    return PaddedGallery(part, np.zeros((0, gallery.vectors.shape[1]), np.float32), 0, engine, normalization)
