"""Does an opt-out remove the person, and whom else does it take? Measured on lfw-dev (issue 12 §1).

For every person with 6+ photos in lfw-dev: opt out with 2 of their photos (the first two, sorted),
then search with each of their other photos. Reported:

* ``still_match``: the share of the person's indexed faces (those of the other photos: the opt-out
  photos' own faces go trivially) that some of those searches still returns labelled ``match``
  (target <= 1%, aim 0);
* ``left``: the share of those faces the opt-out did not remove at all (whatever their label);
* ``others_removed``: the share of other people's faces the opt-out removed (expected < 0.5%), the
  mean over the opt-outs, and the worst one.

All photos are indexed into one library (``--library`` reuses one; else a temporary library is
built with ``--jitter``, the recipe's 2.5 by default; 0 embeds ~2.5x faster). Then, per person, the
figures come from the library's embeddings through the library's own code: the same-person rule is
``Scoring.same_person`` on the photos and their mean template (``with_template``), what
``OptOutRegistry.add`` applies to every catalog face (and the writer's screen and search's
suppression call); a probe face that the rule gives to the opt-out gets no
candidates (as ``SearchService.search``), and the other candidates are ranked and labelled as
search ranks them (the 50 nearest by cosine, s-norm re-ranking when the library has a cohort, the
threshold of the library's ``max_fmr``, top 20). An opt-out photo's embedding and a probe's are the
indexed embeddings of those photos' largest faces (the same pipeline computes both). ``--check N``
also runs the real thing for N people (a copy of the library, ``lib.optouts.add`` with their two
photos, ``lib.search`` with each other photo): it stops if the opt-out removes other faces than
computed, and prints any of the person's faces a real search still labels ``match``.

``--rule fmr1e-5`` measures the rule before issue 12 (cosine at FMR 1e-5) for comparison.

    .venv/bin/python -m bench.accuracy.optout [--library bench/out/lfw-library] [--jitter 0] [--check 3]
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
from sqlalchemy import select

from bench.datasets import lfw_images
from facesearch import Library
from facesearch.governance.optout import with_template
from facesearch.governance.types import SearchPurpose
from facesearch.search.normalize import COHORT_SIZE, MIN_LIBRARY_FACES, CohortNormalizer
from facesearch.search.service import RERANK_DEPTH
from facesearch.store.schema import FaceRow, ImageRow

MIN_PHOTOS = 6
OPTOUT_PHOTOS = 2
TOP_K = 20
PURPOSE = SearchPurpose("bench-optout", "measure what an opt-out leaves of the person")

Rule = Callable[[np.ndarray, np.ndarray], np.ndarray]


class Gallery:
    """The library's faces: ids, embeddings, photo paths and the person (photo folder) of each."""

    def __init__(self, lib: Library) -> None:
        with lib.catalog.session() as s:
            rows = s.execute(
                select(FaceRow.id, FaceRow.embedding, FaceRow.width * FaceRow.height, ImageRow.source)
                .join(ImageRow)
                .order_by(FaceRow.id)
            ).all()
        self.ids = np.array([r[0] for r in rows], dtype=np.int64)
        self.vectors = np.stack([np.frombuffer(r[1], np.float32) for r in rows])
        self.sources = np.array([r[3] for r in rows])
        self.people = np.array([Path(r[3]).parent.name for r in rows])
        self.largest: dict[str, int] = {}  # photo -> row of its largest face (what an opt-out or a probe embeds)
        for row, r in enumerate(rows):
            best = self.largest.get(r[3])
            if best is None or r[2] > rows[best][2]:
                self.largest[r[3]] = row


def cohort_after(lib: Library, gallery: Gallery, keep: np.ndarray) -> CohortNormalizer | None:
    """The cohort the library draws once the removed faces are gone (CohortNormalizer.from_catalog's sample)."""
    if lib.config.score_normalization != "snorm" or keep.sum() < MIN_LIBRARY_FACES:
        return None
    rows = np.flatnonzero(keep)  # gallery rows are in face id order, as Catalog.all_face_ids
    chosen = np.sort(np.random.default_rng(0).choice(len(rows), size=min(COHORT_SIZE, len(rows)), replace=False))
    return CohortNormalizer(gallery.vectors[rows[chosen]])


def searched(
    lib: Library, gallery: Gallery, probe: np.ndarray, keep: np.ndarray, normalizer: CohortNormalizer | None
) -> list[tuple[int, bool]]:
    """(row, labelled match) of the top candidates, as SearchService.search and rank_candidates compute them."""
    kind = "snorm" if normalizer is not None else "cosine"
    table, threshold, _, _ = lib.scoring.operating_point(kind, None)
    raw = gallery.vectors @ probe
    raw[~keep] = -np.inf
    depth = max(TOP_K, RERANK_DEPTH) if normalizer is not None else TOP_K
    nearest = np.argsort(-raw, kind="stable")[:depth]
    nearest = nearest[np.isfinite(raw[nearest])]
    scores = raw[nearest].astype(np.float64)
    if normalizer is not None and len(nearest):
        scores = normalizer.normalize(scores, probe, gallery.vectors[nearest])
    order = np.argsort(-scores, kind="stable")[:TOP_K]
    return [(int(nearest[i]), bool(scores[i] >= threshold and table is not None)) for i in order]


def measure(lib: Library, gallery: Gallery, rule: Rule, people: dict[str, list[str]]) -> dict[str, object]:
    theirs_total = theirs_left = theirs_match = 0
    others_share: list[float] = []
    per_person: dict[str, tuple[int, int, int]] = {}
    for name, photos in people.items():
        optout, probes = photos[:OPTOUT_PHOTOS], photos[OPTOUT_PHOTOS:]
        refs = np.stack([gallery.vectors[gallery.largest[p]] for p in optout])
        removed = rule(refs, gallery.vectors)
        mine = gallery.people == name
        counted = mine & ~np.isin(gallery.sources, optout)  # their faces in the other photos
        others_share.append(float(removed[~mine].sum()) / float((~mine).sum()))
        keep = ~removed
        normalizer = cohort_after(lib, gallery, keep)
        matched: set[int] = set()
        for photo in probes:
            probe = gallery.vectors[gallery.largest[photo]]
            if rule(refs, probe[None])[0]:
                continue  # the probe is the opted-out person: search shows nobody
            matched |= {row for row, is_match in searched(lib, gallery, probe, keep, normalizer) if is_match}
        left = int((counted & keep).sum())
        still = len({row for row in matched if counted[row]})
        theirs_total += int(counted.sum())
        theirs_left += left
        theirs_match += still
        per_person[name] = (int(counted.sum()), left, still)
    return {
        "people": len(people),
        "their_faces": theirs_total,
        "still_match": theirs_match / theirs_total,
        "still_match_faces": theirs_match,
        "left": theirs_left / theirs_total,
        "left_faces": theirs_left,
        "others_removed_mean": float(np.mean(others_share)),
        "others_removed_max": float(np.max(others_share)),
        "per_person": per_person,
    }


def checked(
    lib: Library, gallery: Gallery, people: dict[str, list[str]], names: list[str], rule: Rule, computed: dict
) -> None:
    """The real opt-out and searches on a copy of the library for ``names``: the same removals, and the
    number of the person's faces a real search still labels ``match`` beside the computed one."""
    for name in names:
        photos = people[name]
        with tempfile.TemporaryDirectory() as tmp:
            folder = Path(tmp) / "lib"
            shutil.copytree(lib.folder, folder)
            with Library.open(folder) as copy:
                refs = np.stack([gallery.vectors[gallery.largest[p]] for p in photos[:OPTOUT_PHOTOS]])
                expected = set(gallery.ids[rule(refs, gallery.vectors)].tolist())
                receipt = copy.optouts.add(photos[:OPTOUT_PHOTOS], actor="bench")
                if set(receipt.face_ids) != expected:
                    raise SystemExit(f"{name}: the opt-out removed {len(receipt.face_ids)}, computed {len(expected)}")
                opted = set(photos[:OPTOUT_PHOTOS])
                theirs = {
                    int(i)
                    for i, p, src in zip(gallery.ids, gallery.people, gallery.sources, strict=True)
                    if p == name and src not in opted
                }
                still: set[int] = set()
                for probe in photos[OPTOUT_PHOTOS:]:
                    result = copy.search(probe, purpose=PURPOSE, top_k=TOP_K, actor="bench")
                    still |= {c.face_id for f in result.faces for c in f.candidates if c.label == "match"} & theirs
        print(
            f"check {name}: the real opt-out removed the {len(expected)} faces computed; real searches label "
            f"{len(still)} of their faces match (computed: {computed[name][2]})"
        )
        if len(still) != computed[name][2]:
            raise SystemExit(f"{name}: real searches and the computation disagree")


def lfw_people(library_sources: set[str], min_photos: int) -> dict[str, list[str]]:
    """People with ``min_photos``+ photos in lfw-dev, their indexed photos sorted (the opt-out takes the first)."""
    people: dict[str, list[str]] = {}
    for folder in sorted(p for p in lfw_images().iterdir() if p.is_dir()):
        photos = sorted(str(p) for p in folder.glob("*.jpg"))
        if len(photos) >= min_photos:
            indexed = [p for p in photos if p in library_sources]
            if len(indexed) > OPTOUT_PHOTOS:
                people[folder.name] = indexed
    return people


def library_rule(lib: Library) -> Rule:
    """What OptOutRegistry applies to an opt-out's photos: Scoring.same_person, the photos' mean template added."""

    def rule(refs: np.ndarray, faces: np.ndarray) -> np.ndarray:
        return lib.scoring.same_person(with_template(refs), faces)

    return rule


def old_rule(lib: Library) -> Rule:
    """The rule before issue 12: cosine at FMR 1e-5 (0.95 without a calibration)."""
    table, _ = lib.scoring.score_table("cosine")
    threshold = table.threshold_for(1e-5) if table is not None else 0.95

    def rule(refs: np.ndarray, faces: np.ndarray) -> np.ndarray:
        return (np.atleast_2d(faces) @ refs.T).max(axis=1) >= threshold

    return rule


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--library", type=Path, default=None, help="an lfw-dev library to reuse (else built)")
    parser.add_argument("--jitter", type=float, default=2.5, help="recipe of the library built (0: faster)")
    parser.add_argument("--workers", type=int, default=None)
    parser.add_argument("--min-photos", type=int, default=MIN_PHOTOS)
    parser.add_argument("--rule", choices=["library", "fmr1e-5"], default="library")
    parser.add_argument("--check", type=int, default=0, help="people to run through the real opt-out and search")
    parser.add_argument("--json", type=Path, default=None, help="write the figures here")
    args = parser.parse_args()
    started = time.monotonic()
    with tempfile.TemporaryDirectory() as tmp:
        folder = args.library or Path(tmp) / "lfw"
        if args.library is None:
            with Library.open(folder, jitter=args.jitter) as lib:
                lib.index([lfw_images()], workers=args.workers)
        with Library.open(folder, create=False) as lib:
            gallery = Gallery(lib)
            people = lfw_people(set(gallery.largest), args.min_photos)
            rule = library_rule(lib) if args.rule == "library" else old_rule(lib)
            figures = measure(lib, gallery, rule, people)
            point = lib.scoring.same_person_point().describe() if args.rule == "library" else "cosine at FMR 1e-5"
            if args.check:
                names = sorted(people)[:: max(1, len(people) // args.check)][: args.check]
                checked(lib, gallery, people, names, rule, figures["per_person"])  # type: ignore[arg-type]
            recipe = lib.model_info.key
    per_person = figures.pop("per_person")
    summary = {**figures, "rule": args.rule, "operating_point": point, "recipe": recipe, "faces": len(gallery.ids)}
    summary["seconds"] = round(time.monotonic() - started, 1)
    print(json.dumps(summary, indent=2))
    worst = sorted(per_person.items(), key=lambda kv: -kv[1][2])[:5]  # type: ignore[union-attr]
    print("most faces still labelled match (faces, left, match):", worst)
    if args.json:
        args.json.write_text(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
