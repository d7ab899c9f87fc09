"""``eval identify --cohort-draws N``: how far the 1:N figures move with the s-norm cohort's draw alone (issue 16).

A library scores by s-norm against a cohort of 2,000 of its faces drawn with seed 0 (search/normalize.py); the
figures of one evaluation are those of that one draw. On lfw-dev (seed 0, 2,826 faces, docs/accuracy.md
"The s-norm cohort's draw") 40 draws on one library gave FNIR at FPIR 0.01 from 0.284 to 0.343 and at FPIR 0.003
from 0.49 to 0.71, the same searches throughout. A change to the recipe that changes the indexed faces also
redraws the cohort (near-miss detection added 72 faces, so seed 0 drew another 2,000 of them), and seed 0's
figures moved by that much (0.270 -> 0.287, 0.483 -> 0.600) although the median draw did not (0.311 -> 0.306).
This measures that spread on the evaluation's own searches, so that a change is judged against it.

Nothing is embedded again: the gallery's stored vectors and the face each library search embedded are searched
again the way the library searches (eval/gallery_sweep.PaddedGallery), once per cohort seed 0..N-1. Seed 0 is
the library's own draw: it is compared search by search with the library's searches (``reference``), so the
other draws can be read as the library's with another cohort.
"""

from __future__ import annotations

import numpy as np

from facesearch.errors import FaceSearchError
from facesearch.eval.gallery_sweep import Outcomes, PaddedGallery, RealGallery, SweepProbes, differing, measure
from facesearch.search.normalize import COHORT_SIZE

MAX_DRAWS = 100  # each draw searches every probe again (seconds each on lfw-dev)
FIGURES = ("rank1", "rank5")


def check_draws(draws: int) -> None:
    """A spread needs 2 draws or more; more than :data:`MAX_DRAWS` is refused before anything is indexed."""
    if not 2 <= draws <= MAX_DRAWS:
        raise FaceSearchError(
            f"--cohort-draws {draws}: give 2 to {MAX_DRAWS} draws (seed 0 is the library's own cohort)",
            code="bad_request",
        )


def measure_draws(
    gallery: RealGallery,
    probes: SweepProbes,
    draws: int,
    *,
    engine: str,
    normalization: str,
    depth: int,
    library: Outcomes,
) -> dict:
    """The figures with each cohort seed 0..``draws``-1, their spread, and the check that seed 0 gives the
    ``library``'s own searches. A library ranking by cosine (``normalization`` "none", or too few faces for a cohort)
    has no cohort, and a gallery of at most :data:`COHORT_SIZE` faces is its own cohort whatever the seed: every
    draw is then the same search, and ``note`` says why."""
    check_draws(draws)
    empty = np.zeros((0, gallery.vectors.shape[1]), np.float32)
    results, score = [], "cosine"
    for seed in range(draws):
        figures, outcome = measure(
            PaddedGallery(gallery, empty, 0, engine, normalization, cohort_seed=seed), probes, depth
        )
        score = figures["score"]
        if seed == 0:
            anywhere, beyond = differing(outcome, library)
        results.append({"cohort_seed": seed, **{k: figures[k] for k in (*FIGURES, "fnir_at_fpir", "thresholds")}})
    note = None
    if score == "cosine":
        note = "the library ranks by cosine: it has no cohort to draw, every draw is the same search"
    elif len(gallery.ids) <= COHORT_SIZE:
        note = (
            f"the gallery's {len(gallery.ids):,} faces are all in the cohort ({COHORT_SIZE:,} at most): every draw is "
            "the same cohort"
        )
    return {
        "score": score,
        "note": note,
        "reference": {
            "searches_differing_from_library": anywhere,
            "searches_differing_beyond_rounding": beyond,
            "matches_library_search": beyond == 0,
        },
        "draws": results,
        "spread": spread(results),
    }


def spread(results: list[dict]) -> dict[str, dict[str, float]]:
    """Min, median, max and standard deviation over the draws of rank-1, rank-5 and each FNIR."""
    series = {k: [r[k] for r in results] for k in FIGURES}
    for fpir in results[0]["fnir_at_fpir"]:
        series[f"fnir_at_fpir_{fpir}"] = [r["fnir_at_fpir"][fpir] for r in results]
    return {
        name: {
            "min": round(float(np.min(values)), 5),
            "median": round(float(np.median(values)), 5),
            "max": round(float(np.max(values)), 5),
            "std": round(float(np.std(values)), 5),
        }
        for name, values in series.items()
    }
