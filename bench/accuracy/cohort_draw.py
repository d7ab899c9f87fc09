"""Issue 16: why near-miss detection raised 1:N FNIR at low FPIR, measured by re-drawing one library's s-norm cohort.

``run`` is ``facesearch eval identify --images lfw-dev --seed 0 --halves`` (eval/identify.run, the real ingest and
search path), with near-miss detection on (``cnn``, new libraries' default) or off (``none``); it keeps the
evaluation library, the face each search embedded and the library's outcomes in ``bench/out/cohort-<mode>/``
(ignored by git: embeddings of real people).

``analyse`` re-measures those same searches in-process with other cohorts, nothing embedded again, through the
code ``--gallery-sizes`` and ``--halves`` use (eval/gallery_sweep.PaddedGallery: the library's index engine, s-norm
re-ranking, background faces skipped), whose reference run is checked search by search against the library's:

* the cohort of today's rule (``cohort_ids``: 2,000 of all indexed faces, seed 0), and without the near-miss finds;
* the gallery without the near-miss finds (what ``none`` would index), compared with a ``none`` run when present;
* the same gallery with cohort seeds 1..N: the spread that the draw alone causes;
* the cohort rules a product fix could use (a quality bound, a larger cohort).

A face is a near-miss find when HOG alone (models/detect/hog.py, the library's settings) finds faces on its photo
but none of them is that face (near_miss.same_face): the store records no detector per face.

    nice -n 5 .venv/bin/python -m bench.accuracy.cohort_draw run --near-misses cnn
    nice -n 5 .venv/bin/python -m bench.accuracy.cohort_draw run --near-misses none
    nice -n 5 .venv/bin/python -m bench.accuracy.cohort_draw analyse --seeds 20
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from pathlib import Path

import numpy as np

from bench.datasets import OUT, lfw_images

log = logging.getLogger("cohort_draw")


def out_dir(mode: str) -> Path:
    return OUT / f"cohort-{mode}"


def run(mode: str, seed: int) -> None:
    """The full evaluation (library path), its report, and what ``analyse`` needs kept."""
    from facesearch.config import LibraryConfig
    from facesearch.eval.identify import run as run_identify
    from facesearch.eval.identify import split_people
    from facesearch.library import Library

    folder = out_dir(mode) / "library"
    if folder.exists():
        raise SystemExit(f"{folder} exists: remove it to measure again")
    folder.parent.mkdir(parents=True, exist_ok=True)
    Library.open(folder).close()  # a new library's defaults, then the detector mode asked for
    config = LibraryConfig.load(folder)
    config.detector_near_misses = mode
    config.save(folder)
    split = split_people(lfw_images(), seed)
    done = [0]
    started = time.perf_counter()

    def progress(_event: str, n: int) -> None:
        done[0] += n
        if done[0] % 500 < n:
            log.info("%d photos (%.0f s)", done[0], time.perf_counter() - started)

    with Library.open(folder) as lib:
        report = run_identify(lib, split, seed, progress, halves=True)
    probes = report.probes
    assert probes is not None
    dim = next(p for p in probes.mated if p is not None).shape[0]

    def rows(faces: list[np.ndarray | None]) -> np.ndarray:
        return np.stack([np.full(dim, np.nan, np.float32) if f is None else f for f in faces])

    np.savez(
        folder.parent / "probes.npz",
        mated=rows(probes.mated),
        non_mated=rows(probes.non_mated),
        mated_persons=np.array(probes.mated_persons),
        mated_ranks=report.mated_ranks,
        mated_scores=report.mated_scores,
        non_mated_top=report.non_mated_top,
    )
    summary = {**report.to_dict(), "seconds": round(time.perf_counter() - started, 1), "near_misses": mode}
    (folder.parent / "report.json").write_text(json.dumps(summary, indent=2))
    log.info("%s", json.dumps({k: summary[k] for k in ("gallery_size", "rank1", "fnir_at_fpir", "seconds")}))


def near_miss_finds(catalog: object, ids: np.ndarray, settings: object) -> np.ndarray:
    """The gallery faces HOG alone does not find on a photo where it finds others (the near-miss finds)."""
    from PIL import Image

    from facesearch.models.detect.hog import HogFaceDetector
    from facesearch.models.detect.near_miss import same_face

    rows = catalog.faces_by_ids(ids)  # type: ignore[attr-defined]
    by_image: dict[int, list] = {}
    for row in rows.values():
        by_image.setdefault(row.image_id, []).append(row)
    hog = HogFaceDetector(settings)  # type: ignore[arg-type]
    found = []
    for faces in by_image.values():
        if len(faces) < 2:  # a near-miss find is only ever added beside a face HOG found
            continue
        rgb = np.asarray(Image.open(faces[0].image.source).convert("RGB"))
        boxes = [(d.box[0], d.box[1], d.box[0] + d.box[2], d.box[1] + d.box[3]) for d in hog.detect(rgb)]
        if not boxes:
            continue
        for face in faces:
            box = (face.left, face.top, face.left + face.width, face.top + face.height)
            if not any(same_face(box, b) for b in boxes):
                found.append(face.id)
    return np.sort(np.asarray(found, dtype=np.int64))


def load(mode: str) -> dict:
    """A ``run``'s library gallery, probes, outcomes and split, as eval/identify.run had them."""
    from facesearch.eval.gallery_sweep import SweepProbes, real_gallery
    from facesearch.eval.identify import GALLERY, split_people, subject_face_ids
    from facesearch.eval.identify_halves import photo_persons
    from facesearch.library import Library

    folder = out_dir(mode)
    kept = np.load(folder / "probes.npz")

    def faces(rows: np.ndarray) -> list[np.ndarray | None]:
        return [None if np.isnan(r).any() else r for r in rows]

    with Library.open(folder / "library", create=False) as lib:
        subjects = subject_face_ids(lib)
        gallery = real_gallery(lib.catalog, GALLERY, subjects)
        owners = photo_persons(lib.catalog, gallery.ids)
        rows = lib.catalog.faces_by_ids(gallery.ids)
        quality = np.array([rows[int(i)].quality for i in gallery.ids])
        width = np.array([rows[int(i)].width for i in gallery.ids])
        finds = near_miss_finds(lib.catalog, gallery.ids, lib.config.detector_settings())
        engine = lib.config.index_engine
    report = json.loads((folder / "report.json").read_text())
    split = split_people(lfw_images(), int(report["seed"]))
    probes = SweepProbes(
        mated=faces(kept["mated"]), mated_persons=list(kept["mated_persons"]), non_mated=faces(kept["non_mated"])
    )
    outcomes = (kept["mated_ranks"], kept["mated_scores"], kept["non_mated_top"])
    return {
        "gallery": gallery,
        "owners": owners,
        "quality": quality,
        "width": width,
        "finds": finds,
        "engine": engine,
        "report": report,
        "split": split,
        "probes": probes,
        "outcomes": outcomes,
    }


class cohort_rule:
    """Within the block, PaddedGallery (hence the sweep's and the halves' searches) draws its cohort by ``rule``."""

    def __init__(self, rule) -> None:
        self.rule = rule

    def __enter__(self) -> None:
        from facesearch.eval.gallery_sweep import PaddedGallery
        from facesearch.search.normalize import CohortNormalizer

        self.saved = PaddedGallery._cohort
        rule = self.rule

        def _cohort(padded: PaddedGallery) -> CohortNormalizer:
            return CohortNormalizer(padded.vectors[np.searchsorted(padded.ids, rule(padded.ids))])

        PaddedGallery._cohort = _cohort  # type: ignore[method-assign]

    def __exit__(self, *exc: object) -> None:
        from facesearch.eval.gallery_sweep import PaddedGallery

        PaddedGallery._cohort = self.saved  # type: ignore[method-assign]


def subset(gallery, keep: np.ndarray):  # noqa: ANN001, ANN201
    from facesearch.eval.gallery_sweep import RealGallery

    return RealGallery(ids=gallery.ids[keep], vectors=gallery.vectors[keep], persons=gallery.persons[keep])


def measure_with(data: dict, keep: np.ndarray, rule, halves: bool = False) -> dict:  # noqa: ANN001
    """The searches of ``data`` against the gallery faces ``keep`` selects, the cohort drawn by ``rule``."""
    from facesearch.eval.gallery_sweep import PaddedGallery, differing, measure
    from facesearch.eval.identify import SEARCH_DEPTH
    from facesearch.eval.identify_halves import measure_halves

    gallery = subset(data["gallery"], keep)
    empty = np.zeros((0, gallery.vectors.shape[1]), np.float32)
    with cohort_rule(rule):
        padded = PaddedGallery(gallery, empty, 0, data["engine"], "snorm")
        figures, outcome = measure(padded, data["probes"], SEARCH_DEPTH)
        anywhere, beyond = differing(outcome, data["outcomes"])
        result = {
            "gallery_size": figures["gallery_size"],
            "rank1": figures["rank1"],
            "rank5": figures["rank5"],
            "fnir_at_fpir": figures["fnir_at_fpir"],
            "thresholds": figures["thresholds"],
            "searches_differing_from_library": [anywhere, beyond],
            "cohort_near_miss_finds": int(np.isin(padded_cohort_ids(padded, rule), data["finds"]).sum()),
        }
        if halves:
            split = data["split"]
            found = measure_halves(
                gallery,
                data["owners"][keep],
                data["probes"],
                (split.mated, split.non_mated),
                engine=data["engine"],
                normalization="snorm",
                depth=SEARCH_DEPTH,
                library=data["outcomes"],
            )
            result["halves"] = {
                h: {k: found[h][k] for k in ("gallery_size", "rank1", "fnir_at_fpir")} for h in ("half_0", "half_1")
            }
    return result


def padded_cohort_ids(padded, rule) -> np.ndarray:  # noqa: ANN001
    return rule(padded.ids)


def spread(results: list[dict]) -> dict:
    """min / median / max / std over cohort draws of rank-1 and each FNIR."""
    out = {}
    for key, values in [("rank1", [r["rank1"] for r in results])] + [
        (f"fnir@{f}", [r["fnir_at_fpir"][f] for r in results]) for f in results[0]["fnir_at_fpir"]
    ]:
        v = np.asarray(values)
        out[key] = {
            "min": round(float(v.min()), 4),
            "median": round(float(np.median(v)), 4),
            "max": round(float(v.max()), 4),
            "std": round(float(v.std()), 4),
        }
    return out


def hubs(data: dict) -> dict:
    """How the near-miss finds sit in today's cohort: their share of it, and of the non-mated probes' top-100
    cohort scores (the statistics s-norm divides by), and their quality against the other faces'."""
    from facesearch.search.normalize import COHORT_TOP, cohort_ids

    gallery = data["gallery"]
    chosen = cohort_ids(gallery.ids)
    rows = np.searchsorted(gallery.ids, chosen)
    is_find = np.isin(chosen, data["finds"])
    queries = np.stack([p for p in data["probes"].non_mated if p is not None])
    scores = queries @ gallery.vectors[rows].T
    top = np.argpartition(-scores, COHORT_TOP - 1, axis=1)[:, :COHORT_TOP]
    finds = np.isin(gallery.ids, data["finds"])
    return {
        "finds": int(finds.sum()),
        "finds_in_cohort": int(is_find.sum()),
        "share_of_cohort": round(float(is_find.mean()), 4),
        "share_of_probe_top100": round(float(is_find[top].mean()), 4),
        "quality_median": {
            "finds": round(float(np.median(data["quality"][finds])), 3),
            "others": round(float(np.median(data["quality"][~finds])), 3),
        },
        "width_median": {
            "finds": float(np.median(data["width"][finds])),
            "others": float(np.median(data["width"][~finds])),
        },
    }


def analyse(seeds: int, draws_only: bool = False) -> None:
    from facesearch.search.normalize import cohort_ids

    data = load("cnn")
    ids, finds = data["gallery"].ids, data["finds"]
    everyone = np.ones(len(ids), bool)
    hog_only = ~np.isin(ids, finds)
    result: dict = {"library": {k: data["report"][k] for k in ("gallery_size", "rank1", "fnir_at_fpir")}}
    result["library"]["halves"] = {
        h: {k: data["report"]["halves"][h][k] for k in ("gallery_size", "rank1", "fnir_at_fpir")}
        for h in ("half_0", "half_1")
    }
    result["hubs"] = hubs(data)
    log.info("%s", json.dumps(result))

    def without_finds(g: np.ndarray) -> np.ndarray:
        return cohort_ids(g[~np.isin(g, finds)])

    variants = {
        "today": (everyone, cohort_ids),
        "cohort_without_finds": (everyone, without_finds),
        "gallery_without_finds": (hog_only, cohort_ids),
    }
    quality = dict(zip(ids.tolist(), data["quality"].tolist(), strict=True))
    bounds = (0.3, 0.4, 0.5)
    for bound in bounds:

        def by_quality(g: np.ndarray, bound: float = bound) -> np.ndarray:
            return cohort_ids(g[np.array([quality[int(i)] >= bound for i in g])])

        variants[f"cohort_quality>={bound}"] = (everyone, by_quality)
    variants["cohort_all_faces"] = (everyone, lambda g: cohort_ids(g, size=len(g)))
    result["variants"] = {}
    for name, (keep, rule) in variants.items() if not draws_only else ():
        started = time.perf_counter()
        result["variants"][name] = measure_with(data, keep, rule, halves=True)
        log.info("%s (%.0f s): %s", name, time.perf_counter() - started, json.dumps(result["variants"][name]))
    families = {
        "near_miss_library": (everyone, lambda g, seed: cohort_ids(g, seed=seed)),
        "cohort_without_finds": (everyone, lambda g, seed: cohort_ids(g[~np.isin(g, finds)], seed=seed)),
        "gallery_without_finds": (hog_only, lambda g, seed: cohort_ids(g, seed=seed)),
    }
    for bound in bounds:
        families[f"cohort_quality>={bound}"] = (
            everyone,
            lambda g, seed, bound=bound: cohort_ids(g[np.array([quality[int(i)] >= bound for i in g])], seed=seed),
        )
    for name, (keep, family) in families.items():
        if draws_only and name not in ("near_miss_library", "cohort_without_finds"):
            continue
        started = time.perf_counter()
        draws = [measure_with(data, keep, lambda g, seed=seed, f=family: f(g, seed)) for seed in range(seeds)]
        result[f"seeds_{name}"] = {"draws": [{k: d[k] for k in ("rank1", "fnir_at_fpir")} for d in draws]}
        result[f"seeds_{name}"]["spread"] = spread(draws)
        log.info("seeds %s (%.0f s): %s", name, time.perf_counter() - started, json.dumps(spread(draws)))
    if (out_dir("none") / "report.json").is_file():
        none = json.loads((out_dir("none") / "report.json").read_text())
        result["none_run"] = {k: none[k] for k in ("gallery_size", "rank1", "fnir_at_fpir")}
    (OUT / f"cohort-analysis{'-draws' if draws_only else ''}.json").write_text(json.dumps(result, indent=2))
    log.info("written %s", OUT / f"cohort-analysis{'-draws' if draws_only else ''}.json")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    r = sub.add_parser("run", help="eval identify through the library, kept for analyse")
    r.add_argument("--near-misses", choices=("cnn", "none"), default="cnn")
    r.add_argument("--seed", type=int, default=0)
    a = sub.add_parser("analyse", help="the same searches re-measured with other cohorts")
    a.add_argument("--seeds", type=int, default=20, help="cohort draws (seeds 0..N-1) per gallery")
    a.add_argument("--draws-only", action="store_true", help="only the draws of today's rule, with and without finds")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    if args.command == "run":
        run(args.near_misses, args.seed)
    else:
        analyse(args.seeds, args.draws_only)


if __name__ == "__main__":
    main()
