"""``eval identify --compare-normalize KIND``: the same searches scored with another score kind (issue 16).

Embedding lfw-dev's gallery and probes is the cost of an ``eval identify`` run (~20-30 min on a loaded 2-core
machine); scoring them is seconds. To compare two score kinds (today's ``snorm`` and issue 16's ``snorm_cos``)
on exactly the same faces, searches and cohort draw, the probe faces the library's searches embedded are scored
again against its indexed gallery by the halves' code (eval/gallery_sweep.py ``PaddedGallery``, which reproduces
the library's searches: the ``--halves`` reference check), as a library of the other kind would score them:
the whole gallery, and with ``--halves`` / ``--cohort-draws`` each half and each cohort draw too.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from facesearch.eval.cohort_draws import measure_draws
from facesearch.eval.gallery_sweep import PaddedGallery, RealGallery, SweepProbes, measure
from facesearch.eval.identify_halves import measure_halves

FIGURES = ("score", "gallery_size", "rank1", "rank5", "fnir_at_fpir", "thresholds")


def measure_kind(
    gallery: RealGallery,
    owners: np.ndarray | None,
    probes: SweepProbes,
    searches: tuple[Sequence[Path], Sequence[Path]],
    normalization: str,
    *,
    engine: str,
    depth: int,
    cohort_draws: int = 0,
) -> dict:
    """The figures of the library's searches scored with ``normalization`` ("none", "snorm" or "snorm_cos"):
    ``whole``, and ``halves`` when ``owners`` (each gallery face's person, eval/identify_halves.py
    ``photo_persons``) is given, and ``cohort_draws`` when ``cohort_draws`` >= 2. The halves' and draws'
    reference checks are made against this kind's whole-gallery searches (not the library's: another score)."""
    empty = np.zeros((0, gallery.vectors.shape[1]), np.float32)
    figures, outcome = measure(PaddedGallery(gallery, empty, 0, engine, normalization), probes, depth)
    result: dict = {"normalization": normalization, "whole": {k: figures[k] for k in FIGURES}}
    if owners is not None:
        result["halves"] = measure_halves(
            gallery, owners, probes, searches, engine=engine, normalization=normalization, depth=depth, library=outcome
        )
    if cohort_draws:
        result["cohort_draws"] = measure_draws(
            gallery, probes, cohort_draws, engine=engine, normalization=normalization, depth=depth, library=outcome
        )
    return result
