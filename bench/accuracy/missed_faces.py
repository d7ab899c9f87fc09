"""Issue 16, faces the detector misses: ways to find more faces, each against today's detector in the same run.

Today's detection (models/pipeline.py): dlib's HOG with one upsampling at a working size of 1600, and dlib's
CNN (MMOD, run by ONNX Runtime) only on photos where HOG finds no face. Each variant keeps today's faces and
may add some; the table counts, per photo set, the faces a variant adds (boxes that overlap none of today's
faces), and what it costs in CPU ms per photo (process_time: the machine is shared), detection only:

* pascal: dlib's 9 annotated group photos (``face_boxes.csv``): every box must still be found (recall at
  IoU >= 0.3, as ``facesearch eval detect``), and a detection on no box counts as false there (the
  annotators drew only some faces: the drawn overlays say which of those are real faces);
* group: ``bald_guys.jpg`` and ``Tom_Cruise_avp_2014_4.jpg`` (no boxes): faces added;
* full-size: face_recognition's 20 example photos: faces added;
* lfw: lfw-dev photos (a seeded sample): faces added; faces cut by the frame sit at their sides;
* negatives: the 25 photos without a human face and ``dogs.jpg``: every detection is false (must stay 0).

The variants (``--pad``, ``--edge``, ``--candidates`` set their parameters):

* pad: HOG (upsample 1) on the working image padded on every side with its edge pixels, so that the
  sliding window can sit partly outside the photo; boxes mapped back and clipped to it;
* pad, upsample 0: today's HOG, plus an upsample-0 pass on the padded image that keeps only the boxes that
  reach outside the photo (large faces cut by the frame) at a quarter of the upsampled pass's cost;
* CNN near an edge: the CNN on the whole photo where HOG found a face within ``--edge`` of the frame;
* CNN on HOG's near misses: HOG run once with a lower threshold (``--candidates``, same cost); where a
  candidate below 0 overlaps none of the faces found, the CNN looks at a crop around it (3x its size);
* CNN everywhere: the CNN on every photo, its faces added to HOG's (the upper bound of the CNN's help);
* upsample 2 on large photos: photos larger than the working size get a second HOG pass on a copy twice
  the working size (small background faces); LFW's photos never pay it.

``--draw DIR`` (outside the repository: the photos are of real people) writes, per variant and photo set,
each photo with added faces (today's boxes green, added red, numbered) and a sheet of the added faces'
crops, to check by eye which are real faces.

``--ingest`` measures instead what the adopted check (models/detect/near_miss.py) costs an ingest worker: CPU
ms per lfw photo to detect, align and embed, a new library's recipe with and without it; ``--margins`` what
the size of its crops (``CROP_MARGIN``) finds and costs (the "CNN on crops" variants above use margin 1).

    PYTHONPATH=src:. python -m bench.accuracy.missed_faces [--lfw 400] [--draw /tmp/missed] [--only crops]
    PYTHONPATH=src:. python -m bench.accuracy.missed_faces --ingest [--lfw 400]
    PYTHONPATH=src:. python -m bench.accuracy.missed_faces --margins 1 0.5 0.25 [--lfw 400]
"""

from __future__ import annotations

import argparse
import random
import time
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import dlib
import numpy as np
from PIL import Image, ImageDraw

from bench.datasets import data_dir, examples_dir, lfw_photos, pascal_dir
from facesearch.eval.detect import DEFAULT_IOU, match_boxes, read_boxes
from facesearch.media.decode import decode_image
from facesearch.models.detect.base import DetectorSettings, FaceDetector, downscale
from facesearch.models.detect.cnn import CnnFaceDetector

Box = tuple[float, float, float, float]  # left, top, width, height, in the working image's pixels
Scored = tuple[Box, float]
WORKING_SIZE = DetectorSettings().working_size
GROUP = ("bald_guys.jpg", "Tom_Cruise_avp_2014_4.jpg")
CROP = 150  # pixels of each added face's crop on the sheet
CHECKS: Counter[str] = Counter()  # photos and crops the near-miss variants ran the CNN on


@lru_cache(maxsize=1)
def frontal() -> dlib.fhog_object_detector:
    return dlib.get_frontal_face_detector()


@lru_cache(maxsize=1)
def cnn() -> CnnFaceDetector:
    return CnnFaceDetector(threads=1)


def hog(image: np.ndarray, upsample: int = 1, threshold: float = 0.0) -> list[Scored]:
    rects, scores, _ = frontal().run(image, upsample, threshold)
    return [((r.left(), r.top(), r.width(), r.height()), float(s)) for r, s in zip(rects, scores, strict=True)]


def cnn_boxes(image: np.ndarray, upsample: int = 1) -> list[Scored]:
    return [((b.left, b.top, b.right - b.left, b.bottom - b.top), b.score) for b in cnn().mmod_boxes(image, upsample)]


def same_face(a: Box, b: Box) -> bool:
    """Two boxes of one face: IoU >= 0.3, or half the smaller box inside the larger (HOG and CNN boxes differ)."""
    w = min(a[0] + a[2], b[0] + b[2]) - max(a[0], b[0])
    h = min(a[1] + a[3], b[1] + b[3]) - max(a[1], b[1])
    if w <= 0 or h <= 0:
        return False
    inter = w * h
    small = min(a[2] * a[3], b[2] * b[3])
    return inter / (a[2] * a[3] + b[2] * b[3] - inter) >= DEFAULT_IOU or inter >= 0.5 * small


def added(base: list[Scored], more: list[Scored]) -> list[Scored]:
    """``base`` plus the boxes of ``more`` that are no face of it (nor of one added before)."""
    out = list(base)
    for box, score in more:
        if not any(same_face(box, b) for b, _ in out):
            out.append((box, score))
    return out


def today(work: np.ndarray) -> list[Scored]:
    return hog(work) or cnn_boxes(work)


def clip(box: Box, width: int, height: int) -> Box:
    x0, y0 = max(0.0, box[0]), max(0.0, box[1])
    x1, y1 = min(float(width), box[0] + box[2]), min(float(height), box[1] + box[3])
    return (x0, y0, max(0.0, x1 - x0), max(0.0, y1 - y0))


def padded_hog(work: np.ndarray, pad: int, upsample: int, outside_only: bool, mode: str = "edge") -> list[Scored]:
    """HOG on ``work`` padded by ``pad`` pixels per side (``mode``: numpy's ``edge`` repeats the edge pixels,
    ``symmetric`` mirrors the photo); boxes in ``work``'s pixels, clipped to it."""
    big = np.ascontiguousarray(np.pad(work, ((pad, pad), (pad, pad), (0, 0)), mode=mode))
    height, width = work.shape[:2]
    out = []
    for (left, top, w, h), score in hog(big, upsample):
        box = (left - pad, top - pad, w, h)
        outside = box[0] < 0 or box[1] < 0 or box[0] + w > width or box[1] + h > height
        clipped = clip(box, width, height)
        if (outside or not outside_only) and clipped[2] * clipped[3] >= 0.25 * w * h:
            out.append((clipped, score))
    return out


def near_edge(box: Box, width: int, height: int, margin: float) -> bool:
    return box[0] < margin or box[1] < margin or box[0] + box[2] > width - margin or box[1] + box[3] > height - margin


@dataclass
class Settings:
    pad: float = 0.2  # of the working image's shorter side
    edge: float = 0.02  # of the working image's longer side
    candidates: tuple[float, ...] = (-0.5, -0.3)  # HOG's thresholds for near misses the CNN checks


def variants(s: Settings) -> dict[str, Callable[[np.ndarray, float], list[Scored]]]:
    """Each takes the working image and its scale (working / original) and returns its faces."""

    def pad_all(work: np.ndarray, _: float) -> list[Scored]:
        found = padded_hog(work, round(s.pad * min(work.shape[:2])), 1, outside_only=False)
        return found or cnn_boxes(work)

    def pad_up0(mode: str) -> Callable[[np.ndarray, float], list[Scored]]:
        def variant(work: np.ndarray, _: float) -> list[Scored]:
            pad = round(s.pad * min(work.shape[:2]))
            return added(today(work), padded_hog(work, pad, 0, outside_only=True, mode=mode))

        return variant

    def cnn_near_edge(work: np.ndarray, _: float) -> list[Scored]:
        found = hog(work)
        height, width = work.shape[:2]
        if not found:
            return cnn_boxes(work)
        if any(near_edge(b, width, height, s.edge * max(width, height)) for b, _ in found):
            return added(found, cnn_boxes(work))
        return found

    def cnn_near_misses(threshold: float, size: int | None = None) -> Callable[[np.ndarray, float], list[Scored]]:
        return lambda work, _: near_misses(work, threshold, size)

    def near_misses(work: np.ndarray, threshold: float, size: int | None) -> list[Scored]:
        """``size``: the crop is resized so that the near miss is ``size`` pixels wide and the CNN runs without
        upsampling (its smallest face is ~80 px); None: the crop as it is, the CNN upsampling once as today."""
        scored = hog(work, 1, threshold)
        found = [f for f in scored if f[1] >= 0]
        if not found:
            return cnn_boxes(work)
        height, width = work.shape[:2]
        checked = False
        for box, score in scored:
            if score >= 0 or any(same_face(box, b) for b, _ in found):
                continue
            x0, y0 = max(0, round(box[0] - box[2])), max(0, round(box[1] - box[3]))
            x1, y1 = min(width, round(box[0] + 2 * box[2])), min(height, round(box[1] + 2 * box[3]))
            crop = np.ascontiguousarray(work[y0:y1, x0:x1])
            CHECKS["crops"] += 1
            checked = True
            if size is None:
                more = [((b[0] + x0, b[1] + y0, b[2], b[3]), sc) for b, sc in cnn_boxes(crop)]
            else:
                f = size / box[2]
                resized = Image.fromarray(crop).resize(
                    (max(1, round(crop.shape[1] * f)), max(1, round(crop.shape[0] * f)))
                )
                more = [
                    ((b[0] / f + x0, b[1] / f + y0, b[2] / f, b[3] / f), sc)
                    for b, sc in cnn_boxes(np.asarray(resized), upsample=0)
                ]
            found = added(found, more)
        CHECKS["photos"] += checked
        return found

    def cnn_everywhere(work: np.ndarray, _: float) -> list[Scored]:
        return added(hog(work), cnn_boxes(work))

    def upsample2_large(work: np.ndarray, scale: float) -> list[Scored]:
        found = today(work)
        if scale >= 1.0:
            return found
        return found  # replaced in main(): needs the original photo

    return {
        "today: HOG up 1, CNN where none": lambda work, _: today(work),
        f"pad {s.pad:g} (edge pixels), HOG up 1": pad_all,
        f"today + pad {s.pad:g} (edge), up 0, outside only": pad_up0("edge"),
        f"today + pad {s.pad:g} (mirror), up 0, outside only": pad_up0("symmetric"),
        f"today + CNN if a face within {s.edge:g} of edge": cnn_near_edge,
        **{f"today + CNN on crops of HOG >= {c:g}": cnn_near_misses(c) for c in s.candidates},
        **{f"today + CNN on crops of HOG >= {c:g}, 100 px, up 0": cnn_near_misses(c, 100) for c in s.candidates},
        "today + CNN everywhere": cnn_everywhere,
        "today + HOG up 2 on photos > working size": upsample2_large,
    }


@dataclass
class Photo:
    name: str
    rgb: np.ndarray
    work: np.ndarray
    scale: float


def load(path: Path, name: str | None = None) -> Photo:
    rgb = decode_image(path.read_bytes()).rgb
    work, scale = downscale(rgb, WORKING_SIZE)
    return Photo(name or path.name, rgb, work, scale)


@dataclass
class Tally:
    cpu_s: float = 0.0
    photos: int = 0
    faces: int = 0
    added: int = 0
    added_boxes: dict[str, list[Box]] = field(default_factory=dict)  # photo -> added boxes, original pixels
    found: dict[str, list[Box]] = field(default_factory=dict)  # photo -> every box, original pixels

    @property
    def ms(self) -> float:
        return 1000 * self.cpu_s / self.photos if self.photos else 0.0


def second_pass(photo: Photo) -> list[Scored]:
    """HOG (upsample 1) on a copy of the photo twice the working size: faces half the size today finds."""
    big, scale2 = downscale(photo.rgb, 2 * WORKING_SIZE)
    ratio = photo.scale / scale2
    return [((b[0] * ratio, b[1] * ratio, b[2] * ratio, b[3] * ratio), sc) for b, sc in hog(big)]


def run(name: str, fn: Callable[[np.ndarray, float], list[Scored]], photos: list[Photo], base: Tally | None) -> Tally:
    tally = Tally()
    for photo in photos:
        start = time.process_time()
        found = fn(photo.work, photo.scale)
        if name.startswith("today + HOG up 2") and photo.scale < 1.0:
            found = added(found, second_pass(photo))
        tally.cpu_s += time.process_time() - start
        boxes = [tuple(v / photo.scale for v in b) for b, _ in found]
        tally.photos += 1
        tally.faces += len(boxes)
        tally.found[photo.name] = boxes  # type: ignore[assignment]
        if base is not None:
            new = [b for b in boxes if not any(same_face(b, t) for t in base.found[photo.name])]
            if new:
                tally.added += len(new)
                tally.added_boxes[photo.name] = new  # type: ignore[assignment]
    return tally


def pascal_scores(tally: Tally) -> tuple[int, int, int]:
    """(true positives, truth boxes, false positives) on the annotated pascal photos."""
    by_file: dict[str, list] = {}
    for row in read_boxes(pascal_dir() / "face_boxes.csv"):
        by_file.setdefault(row.file, []).append(row)
    tp = truth = false = 0
    for file, rows in by_file.items():
        m = match_boxes(tally.found[file], [r.box for r in rows], [r.ignore for r in rows], DEFAULT_IOU)
        tp, truth, false = tp + m.true_positives, truth + m.true_positives + m.missed, false + m.false_positives
    return tp, truth, false


def draw(out: Path, variant: str, group: str, photos: list[Photo], base: Tally, tally: Tally) -> int:
    """The photos with added faces (today's green, added red and numbered) and a sheet of the added crops."""
    slug = "".join(c if c.isalnum() else "_" for c in variant).strip("_")[:60]
    folder = out / slug / group
    folder.mkdir(parents=True, exist_ok=True)
    crops = []
    by_name = {p.name: p for p in photos}
    for name, new in tally.added_boxes.items():
        image = Image.fromarray(by_name[name].rgb)
        for box in new:
            pad_w, pad_h = box[2] * 0.3, box[3] * 0.3
            crop = image.crop((box[0] - pad_w, box[1] - pad_h, box[0] + box[2] + pad_w, box[1] + box[3] + pad_h))
            crops.append(crop.resize((CROP, CROP)))
        canvas = image.copy()
        pen = ImageDraw.Draw(canvas)
        width = max(2, image.width // 400)
        for box in base.found[name]:
            pen.rectangle((box[0], box[1], box[0] + box[2], box[1] + box[3]), outline=(0, 255, 0), width=width)
        for box in new:
            pen.rectangle((box[0], box[1], box[0] + box[2], box[1] + box[3]), outline=(255, 0, 0), width=width)
        canvas.thumbnail((1200, 1200))
        canvas.save(folder / (Path(name).stem.replace("/", "_") + ".png"))
    if crops:
        columns, cell = 8, CROP + 4
        sheet = Image.new("RGB", (columns * cell, ((len(crops) - 1) // columns + 1) * cell), (40, 40, 40))
        pen = ImageDraw.Draw(sheet)
        for i, crop in enumerate(crops):
            x, y = (i % columns) * cell + 2, (i // columns) * cell + 2
            sheet.paste(crop, (x, y))
            pen.text((x + 2, y + 2), str(i), fill=(255, 255, 0))
        sheet.save(folder / "added_faces.png")
    return len(crops)


def ingest_cost(photos: list[Photo], rounds: int = 3) -> None:
    """CPU ms per photo of what an ingest worker does to a photo (detect, align, embed: ``FacePipeline.analyse``)
    for a new library's recipe with the near-miss check and without, one thread, same photos, alternating photo
    by photo."""
    import os

    from facesearch.config import LibraryConfig
    from facesearch.models.pipeline import PipelineRecipe
    from facesearch.settings import default_model

    cache = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "facesearch" / "models"
    pipelines = {}
    for check in ("none", "cnn"):
        config = LibraryConfig(detector_near_misses=check)
        config.model = default_model(config)
        recipe = PipelineRecipe("onnx", str(cache), None, config.pipeline_options(), model=config.model)
        pipelines[check] = recipe.build(threads=1)
    cpu = dict.fromkeys(pipelines, 0.0)
    faces = dict.fromkeys(pipelines, 0)
    for round_ in range(rounds):
        for i, photo in enumerate(photos):  # alternating photo by photo: the machine's load drifts
            order = list(pipelines) if (i + round_) % 2 else list(reversed(pipelines))
            for check in order:
                start = time.process_time()
                found = pipelines[check].analyse(photo.rgb)
                cpu[check] += time.process_time() - start
                faces[check] += len(found) if round_ == 0 else 0
    base = cpu["none"] / (rounds * len(photos))
    for check in pipelines:
        ms = 1000 * cpu[check] / (rounds * len(photos))
        ratio = ms / 1000 / base
        print(f"ingest work, near misses {check:4s}: {ms:6.1f} ms per photo (x{ratio:.3f}), {faces[check]} faces")


def margin_cost(photos: list[Photo], margins: list[float]) -> None:
    """The adopted check itself (models/detect/near_miss.py) with crops of each margin: faces found on the lfw
    photos, crops, and the CNN's CPU ms per photo (detection only; the HOG run is the same for every margin)."""
    from facesearch.models.detect import near_miss
    from facesearch.models.detect.factory import create_detector

    detector = create_detector("hog", threads=1, near_misses="cnn")
    if not isinstance(detector, near_miss.NearMissDetector):
        raise SystemExit("the near-miss check is not built by create_detector")

    class TimedChecker:
        """The CNN detector, its CPU time summed."""

        def __init__(self, checker: FaceDetector) -> None:
            self.checker, self.cpu_s = checker, 0.0

        def detect(self, rgb: np.ndarray) -> list:
            start = time.process_time()
            found = self.checker.detect(rgb)
            self.cpu_s += time.process_time() - start
            return found

    timed = TimedChecker(detector.checker)  # built before timing
    detector._checker = timed  # type: ignore[assignment]
    kept = near_miss.CROP_MARGIN
    try:
        for margin in margins:
            near_miss.CROP_MARGIN, timed.cpu_s, crops = margin, 0.0, detector.crops_checked
            faces = sum(len(detector.detect(photo.rgb)) for photo in photos)
            print(
                f"crop margin {margin:g}: {faces} faces on {len(photos)} lfw photos (where HOG found one), "
                f"{detector.crops_checked - crops} crops, CNN {1000 * timed.cpu_s / len(photos):.2f} ms per photo",
                flush=True,
            )
    finally:
        near_miss.CROP_MARGIN = kept


def photo_sets(lfw: int) -> dict[str, list[Photo]]:
    pascal = pascal_dir()
    files = sorted({row.file for row in read_boxes(pascal / "face_boxes.csv")})
    paths = lfw_photos()
    random.Random(0).shuffle(paths)
    examples = sorted(p for p in examples_dir().rglob("*") if p.suffix.lower() in (".jpg", ".png"))
    negatives = sorted(p for p in (data_dir() / "negatives").rglob("*") if p.is_file() and p.suffix != ".txt")
    return {
        "pascal": [load(pascal / f) for f in files],
        "group": [load(pascal / f) for f in GROUP],
        "full-size": [load(p, p.relative_to(examples_dir()).as_posix()) for p in examples],
        "lfw": [load(p, p.name) for p in paths[:lfw]],
        "negatives": [load(p) for p in negatives] + [load(pascal / "dogs.jpg")],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lfw", type=int, default=400, help="lfw-dev photos (random, seed 0)")
    parser.add_argument("--pad", type=float, default=0.2, help="padding, share of the shorter side")
    parser.add_argument("--edge", type=float, default=0.02, help="'near an edge', share of the longer side")
    parser.add_argument("--candidates", type=float, nargs="+", default=[-0.5, -0.3], help="HOG thresholds, near misses")
    parser.add_argument("--only", nargs="*", help="variants whose name contains one of these (today always runs)")
    parser.add_argument("--draw", type=Path, help="folder (outside the repository) for the drawn overlays")
    parser.add_argument("--ingest", action="store_true", help="only the ingest work per lfw photo, with and without")
    parser.add_argument("--margins", type=float, nargs="+", help="only the adopted check's cost per crop margin")
    args = parser.parse_args()
    sets = photo_sets(args.lfw)
    if args.ingest:
        ingest_cost(sets["lfw"])
        return
    if args.margins:
        margin_cost(sets["lfw"], args.margins)
        return
    print(", ".join(f"{len(v)} {k}" for k, v in sets.items()), "photos; CPU ms per photo, detection only")
    print(
        f"{'variant':46s} {'lfw ms':>7s} {'x':>5s} {'lfw +':>5s} {'pascal':>7s} {'false':>5s} {'group +':>7s} "
        f"{'full ms':>8s} {'full +':>6s} {'neg false':>9s}"
    )
    base: dict[str, Tally] = {}
    checks: dict[str, list[str]] = defaultdict(list)
    for i, (name, fn) in enumerate(variants(Settings(args.pad, args.edge, tuple(args.candidates))).items()):
        if i and args.only and not any(o in name for o in args.only):
            continue
        tallies = {}
        for group, photos in sets.items():
            CHECKS.clear()
            tallies[group] = run(name, fn, photos, base.get(group))
            if CHECKS:
                checks[name].append(f"{group} {CHECKS['photos']}/{len(photos)} photos, {CHECKS['crops']} crops")
        if not base:
            base = tallies
        tp, truth, false = pascal_scores(tallies["pascal"])
        lfw, full = tallies["lfw"], tallies["full-size"]
        print(
            f"{name:46s} {lfw.ms:7.1f} {lfw.ms / base['lfw'].ms:5.2f} {lfw.added:5d} {tp:3d}/{truth:<3d} {false:5d} "
            f"{tallies['group'].added:7d} {full.ms:8.0f} {full.added:6d} {tallies['negatives'].faces:9d}",
            flush=True,
        )
        if checks[name]:
            print("    CNN checks:", "; ".join(checks[name]), flush=True)
        if args.draw and i:
            for group in ("pascal", "group", "full-size", "lfw", "negatives"):
                draw(args.draw, name, group, sets[group], base[group], tallies[group])


if __name__ == "__main__":
    main()
