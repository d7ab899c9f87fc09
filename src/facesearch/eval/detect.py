"""``facesearch eval detect``: how many faces a detector finds, and how many it invents.

Two measurements, both on any detector with a ``.detect(rgb) -> list[Detection]`` method:

* :func:`evaluate_boxes` scores detections against hand-drawn boxes (``face_boxes.csv``: split, file,
  img_w, img_h, left, top, width, height, ignore). A detection is a true positive when it overlaps an
  unmatched ground-truth box with IoU >= ``iou``; pairs are matched greedily, highest IoU first, one
  detection per box. Annotators mark faces they could not judge as ``ignore``: a detection on such a
  box is neither right nor wrong, and an ignore box that nobody found is not a miss. dlib's boxes
  follow its own square HOG-style convention, so the default IoU is a loose 0.3.
* :func:`evaluate_negatives` runs the detector on photos with no human face; every detection there is
  a false face. Unreadable files are recorded, not fatal: a folder of negatives should not need to be
  curated to be measured.

Only the ``detect`` call is timed (decoding is the same for every detector), so ``ms_per_image``
compares detectors, not disks.
"""

from __future__ import annotations

import csv
import logging
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Protocol

import numpy as np
from rich.table import Table

from facesearch.errors import FaceSearchError, ImageRejected
from facesearch.media.decode import decode_image
from facesearch.models.detect.base import Detection

log = logging.getLogger(__name__)

DEFAULT_IOU = 0.3
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp", ".gif", ".bmp", ".tif", ".tiff"}
BOX_COLUMNS = ("split", "file", "img_w", "img_h", "left", "top", "width", "height", "ignore")

Box = tuple[float, float, float, float]  # left, top, width, height


class DetectionEvalError(FaceSearchError):
    """The ground truth or the negatives folder cannot be used (missing, malformed, empty)."""

    code = "bad_detection_data"


class Detector(Protocol):
    def detect(self, rgb: np.ndarray) -> list[Detection]: ...


@dataclass(frozen=True)
class TruthBox:
    """One hand-drawn box of ``face_boxes.csv``, in the pixels of the image size the CSV states."""

    split: str
    file: str
    img_w: int
    img_h: int
    box: Box
    ignore: bool


@dataclass(frozen=True)
class Match:
    """How the detections of one image were judged."""

    true_positives: int
    false_positives: int
    missed: int
    ignored: int
    pairs: tuple[tuple[int, int], ...]  # (detection index, truth index) of each true positive


@dataclass
class ImageResult:
    file: str
    split: str
    truth: int
    detections: int
    true_positives: int
    false_positives: int
    missed: int
    ignored: int
    ms: float
    scaled: bool = False  # the decoded size differed from the CSV's and the boxes were rescaled


@dataclass
class NegativesReport:
    """False faces on images that hold none."""

    images: int
    false_faces: int
    images_with_false_faces: int
    ms_per_image: float
    per_image: list[dict] = field(default_factory=list)  # {"file", "false_faces", "ms"}
    errors: list[dict] = field(default_factory=list)  # {"file", "code", "message"}

    @property
    def false_faces_per_image(self) -> float:
        return self.false_faces / self.images if self.images else 0.0

    def to_dict(self) -> dict:
        return {
            "false_faces_per_image": round(self.false_faces_per_image, 5),
            "images": self.images,
            "false_faces": self.false_faces,
            "images_with_false_faces": self.images_with_false_faces,
            "ms_per_image": round(self.ms_per_image, 2),
            "errors": self.errors,
            "per_image": self.per_image,
        }


@dataclass
class DetectionReport:
    """Recall and precision on hand-drawn boxes, plus (when measured) false faces on negatives."""

    detector: str
    iou: float
    images: int
    truth: int
    true_positives: int
    false_positives: int
    missed: int
    ignored: int
    ms_per_image: float
    per_image: list[ImageResult] = field(default_factory=list)
    negatives: NegativesReport | None = None

    @property
    def recall(self) -> float:
        found = self.true_positives + self.missed
        return self.true_positives / found if found else 0.0

    @property
    def precision(self) -> float:
        judged = self.true_positives + self.false_positives
        return self.true_positives / judged if judged else 0.0

    @property
    def false_faces_per_image(self) -> float | None:
        return self.negatives.false_faces_per_image if self.negatives else None

    def to_dict(self) -> dict:
        negatives = self.negatives.to_dict() if self.negatives else None
        return {
            "detector": self.detector,
            "iou": self.iou,
            "recall": round(self.recall, 5),
            "precision": round(self.precision, 5),
            "false_faces_per_image": negatives["false_faces_per_image"] if negatives else None,
            "images": self.images,
            "truth_boxes": self.truth,
            "true_positives": self.true_positives,
            "false_positives": self.false_positives,
            "missed": self.missed,
            "ignored": self.ignored,
            "ms_per_image": round(self.ms_per_image, 2),
            "per_image": [{**asdict(r), "ms": round(r.ms, 2)} for r in self.per_image],
            "negatives": negatives,
        }


# matching -------------------------------------------------------------------------------------------


def iou_matrix(a: Sequence[Box], b: Sequence[Box]) -> np.ndarray:
    """Intersection over union of every box in ``a`` with every box in ``b``: shape (len(a), len(b))."""
    if not len(a) or not len(b):
        return np.zeros((len(a), len(b)))
    x = np.asarray(a, dtype=np.float64)[:, None, :]
    y = np.asarray(b, dtype=np.float64)[None, :, :]
    overlap_w = np.minimum(x[..., 0] + x[..., 2], y[..., 0] + y[..., 2]) - np.maximum(x[..., 0], y[..., 0])
    overlap_h = np.minimum(x[..., 1] + x[..., 3], y[..., 1] + y[..., 3]) - np.maximum(x[..., 1], y[..., 1])
    inter = np.clip(overlap_w, 0, None) * np.clip(overlap_h, 0, None)
    union = x[..., 2] * x[..., 3] + y[..., 2] * y[..., 3] - inter
    return np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)


def match_boxes(detections: Sequence[Box], truth: Sequence[Box], ignore: Sequence[bool], iou: float) -> Match:
    """Judge detections against truth boxes, one-to-one, greedily by IoU (highest first).

    Real faces are matched first, so that an ignore box next to a real face cannot take its detection.
    Detections left over that overlap an ignore box with IoU >= ``iou`` are set aside (several may land
    on one ignore box: a crowd marked as one region). The rest are false positives; real faces left
    unmatched are missed.
    """
    if len(ignore) != len(truth):
        raise ValueError("ignore must have one flag per truth box")
    overlaps = iou_matrix(detections, truth)
    is_ignore = np.asarray(ignore, dtype=bool)
    real = np.flatnonzero(~is_ignore)
    det_used = np.zeros(len(detections), dtype=bool)
    truth_used = np.zeros(len(truth), dtype=bool)
    pairs: list[tuple[int, int]] = []
    candidates = [(overlaps[d, t], d, t) for d in range(len(detections)) for t in real if overlaps[d, t] >= iou]
    for _, d, t in sorted(candidates, key=lambda c: (-c[0], c[1], c[2])):
        if not det_used[d] and not truth_used[t]:
            det_used[d] = truth_used[t] = True
            pairs.append((d, int(t)))
    ignored = 0
    if is_ignore.any():
        leftover = np.flatnonzero(~det_used)
        on_ignore = (overlaps[np.ix_(leftover, np.flatnonzero(is_ignore))] >= iou).any(axis=1)
        ignored = int(on_ignore.sum())
    return Match(
        true_positives=len(pairs),
        false_positives=int((~det_used).sum()) - ignored,
        missed=len(real) - len(pairs),
        ignored=ignored,
        pairs=tuple(pairs),
    )


# ground truth ---------------------------------------------------------------------------------------


def read_boxes(boxes_csv: Path) -> list[TruthBox]:
    """Parse ``face_boxes.csv``; every row must have all columns with numbers where numbers belong."""
    if not boxes_csv.is_file():
        raise DetectionEvalError(f"face boxes file {boxes_csv} not found", code="missing_file")
    with boxes_csv.open(newline="") as handle:
        reader = csv.DictReader(handle)
        missing = [c for c in BOX_COLUMNS if c not in (reader.fieldnames or [])]
        if missing:
            raise DetectionEvalError(f"{boxes_csv} lacks the columns {', '.join(missing)}", code="missing_column")
        boxes = []
        for line, row in enumerate(reader, start=2):
            try:
                boxes.append(
                    TruthBox(
                        split=row["split"],
                        file=row["file"],
                        img_w=int(row["img_w"]),
                        img_h=int(row["img_h"]),
                        box=(float(row["left"]), float(row["top"]), float(row["width"]), float(row["height"])),
                        ignore=row["ignore"].strip().lower() in ("1", "true", "yes"),
                    )
                )
            except (TypeError, ValueError) as exc:
                raise DetectionEvalError(f"{boxes_csv} line {line}: {exc}", code="bad_boxes_file") from exc
    if not boxes:
        raise DetectionEvalError(f"{boxes_csv} holds no boxes", code="empty_file")
    return boxes


def _scaled(truth: list[TruthBox], width: int, height: int) -> tuple[list[Box], bool]:
    """Boxes in the pixels of the decoded image (a resized copy of the annotated photo still scores)."""
    sx, sy = width / truth[0].img_w, height / truth[0].img_h
    if sx == 1 and sy == 1:
        return [t.box for t in truth], False
    log.warning(
        "%s is %dx%d, the boxes were drawn on %dx%d: rescaling them",
        truth[0].file,
        width,
        height,
        truth[0].img_w,
        truth[0].img_h,
    )
    return [(t.box[0] * sx, t.box[1] * sy, t.box[2] * sx, t.box[3] * sy) for t in truth], True


# evaluation -----------------------------------------------------------------------------------------


def _timed_detect(detector: Detector, rgb: np.ndarray) -> tuple[list[Detection], float]:
    start = time.perf_counter()
    found = detector.detect(rgb)
    return found, (time.perf_counter() - start) * 1000


def evaluate_boxes(
    detector: Detector,
    boxes_csv: Path,
    images_dir: Path,
    iou: float = DEFAULT_IOU,
    splits: set[str] | None = None,
) -> DetectionReport:
    """Recall, precision and per-image counts of ``detector`` on the images named in ``boxes_csv``.

    ``splits`` keeps only those rows (e.g. ``{"testing"}``); by default every row counts. A missing
    or unreadable image is an error: ground truth with a hole in it would silently raise recall.
    """
    by_file: dict[str, list[TruthBox]] = {}
    for box in read_boxes(boxes_csv):
        if splits is None or box.split in splits:
            by_file.setdefault(box.file, []).append(box)
    if not by_file:
        raise DetectionEvalError(f"{boxes_csv} holds no boxes of the splits {sorted(splits or [])}", code="empty_file")
    results: list[ImageResult] = []
    for name, truth in by_file.items():
        path = images_dir / name
        if not path.is_file():
            raise DetectionEvalError(f"{path} (named in {boxes_csv.name}) not found", code="missing_image")
        try:
            rgb = decode_image(path.read_bytes()).rgb
        except ImageRejected as exc:
            raise DetectionEvalError(f"{path} cannot be decoded: {exc}", code="missing_image") from exc
        boxes, scaled = _scaled(truth, rgb.shape[1], rgb.shape[0])
        found, ms = _timed_detect(detector, rgb)
        m = match_boxes([d.box for d in found], boxes, [t.ignore for t in truth], iou)
        results.append(
            ImageResult(
                file=name,
                split=truth[0].split,
                truth=sum(not t.ignore for t in truth),
                detections=len(found),
                true_positives=m.true_positives,
                false_positives=m.false_positives,
                missed=m.missed,
                ignored=m.ignored,
                ms=ms,
                scaled=scaled,
            )
        )
        log.debug("%s: %d faces, %d found, %d false", name, results[-1].truth, m.true_positives, m.false_positives)
    return DetectionReport(
        detector=getattr(detector, "name", type(detector).__name__),
        iou=iou,
        images=len(results),
        truth=sum(r.truth for r in results),
        true_positives=sum(r.true_positives for r in results),
        false_positives=sum(r.false_positives for r in results),
        missed=sum(r.missed for r in results),
        ignored=sum(r.ignored for r in results),
        ms_per_image=float(np.mean([r.ms for r in results])),
        per_image=results,
    )


def evaluate_negatives(detector: Detector, negatives_dir: Path) -> NegativesReport:
    """False faces per image over every image file under ``negatives_dir`` (subfolders included)."""
    if not negatives_dir.is_dir():
        raise DetectionEvalError(f"negatives folder {negatives_dir} not found", code="missing_file")
    paths = sorted(p for p in negatives_dir.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
    if not paths:
        raise DetectionEvalError(f"{negatives_dir} holds no image files", code="empty_file")
    per_image, errors, times = [], [], []
    for path in paths:
        name = path.relative_to(negatives_dir).as_posix()
        try:
            rgb = decode_image(path.read_bytes()).rgb
        except (ImageRejected, OSError) as exc:
            errors.append({"file": name, "code": getattr(exc, "code", "unreadable"), "message": str(exc)})
            log.warning("negatives: skipping %s: %s", name, exc)
            continue
        found, ms = _timed_detect(detector, rgb)
        times.append(ms)
        per_image.append({"file": name, "false_faces": len(found), "ms": round(ms, 2)})
    return NegativesReport(
        images=len(per_image),
        false_faces=sum(r["false_faces"] for r in per_image),
        images_with_false_faces=sum(r["false_faces"] > 0 for r in per_image),
        ms_per_image=float(np.mean(times)) if times else 0.0,
        per_image=per_image,
        errors=errors,
    )


def evaluate_detection(
    detector: Detector,
    boxes_csv: Path,
    images_dir: Path,
    negatives_dir: Path | None = None,
    iou: float = DEFAULT_IOU,
) -> DetectionReport:
    """Both measurements in one report (what ``facesearch eval detect`` prints)."""
    report = evaluate_boxes(detector, boxes_csv, images_dir, iou)
    if negatives_dir is not None:
        report.negatives = evaluate_negatives(detector, negatives_dir)
    return report


# rendering ------------------------------------------------------------------------------------------


def detection_table(report: DetectionReport) -> Table:
    """The summary: recall, precision, counts, false faces on negatives, speed."""
    table = Table("metric", "value", title=f"Face detection: {report.detector} (IoU >= {report.iou})")
    table.add_row("recall", f"{report.recall * 100:.1f}% ({report.true_positives} of {report.truth} faces)")
    table.add_row(
        "precision",
        f"{report.precision * 100:.1f}% ({report.false_positives} false of "
        f"{report.true_positives + report.false_positives} judged)",
    )
    table.add_row("missed faces", str(report.missed))
    if report.ignored:
        table.add_row("detections on ignore boxes", str(report.ignored))
    table.add_row("images with boxes", str(report.images))
    table.add_row("ms per image (detect only)", f"{report.ms_per_image:.1f}")
    neg = report.negatives
    if neg is not None:
        table.add_row(
            "false faces per image (negatives)",
            f"{neg.false_faces_per_image:.3f} "
            f"({neg.false_faces} on {neg.images_with_false_faces} of {neg.images} images)",
        )
        if neg.errors:
            table.add_row("negatives not decoded", str(len(neg.errors)))
    return table


def per_image_table(report: DetectionReport) -> Table:
    """One row per annotated image: where the misses and false alarms are."""
    table = Table("image", "split", "faces", "detected", "found", "false", "missed", "ignored", "ms", title="Per image")
    for r in report.per_image:
        table.add_row(
            r.file + (" (rescaled)" if r.scaled else ""),
            r.split,
            str(r.truth),
            str(r.detections),
            str(r.true_positives),
            str(r.false_positives),
            str(r.missed),
            str(r.ignored),
            f"{r.ms:.0f}",
        )
    return table
