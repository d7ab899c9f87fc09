"""``facesearch eval groups``: error rates per group of people or photos, as NIST IR 8280 reports them.

A single accuracy number can hide a group for which the system fails far more often. Given a label
per person or per image (a CSV the operator provides, or one made from the pixels with
:func:`labels_from_image_property`), :func:`group_differentials` measures at one threshold:

* FNMR per group: genuine pairs are all pairs of images of the same person in the group; one scoring
  below the threshold is a false non-match. An image without a face (``None`` embedding) cannot be
  compared, so every genuine pair involving it counts as a non-match: a failure to find the face is a
  failure to recognise the person, and hiding it would flatter the group it happens to most.
* FMR per group: impostor pairs are all pairs of images of different people *within the same group*
  (NIST compares impostors within a demographic group, where faces look most alike). Only images with
  a face are compared; an image with no face cannot produce a false match, so counting its pairs would
  dilute the rate.

Scores are cosine similarities, the dot product of the unit embeddings. A group of ~10k images holds
~50M pairs, so scores are computed in blocks of rows with NumPy and only counts are kept.

Ratios (worst group's rate / best group's rate) compare only groups with enough pairs to see an
error at the pooled rate (``pairs * pooled_rate >= min_expected_errors``). A rate of zero on such a
group is floored at ``1 / pairs`` (the resolution of the measurement) and the ratio is flagged as
floored. A ratio above 2 adds a warning.
"""

from __future__ import annotations

import csv
import logging
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
from rich.table import Table

from facesearch.errors import FaceSearchError, ImageRejected
from facesearch.media.decode import decode_image

log = logging.getLogger(__name__)

RATIO_WARNING = 2.0
BLOCK_ELEMENTS = 1 << 23  # scores held at once per block (8M float32 = 32 MB, plus boolean masks)
KEY_COLUMNS = ("person", "image")
PROPERTIES = ("colour", "brightness")
GRAYSCALE_TOLERANCE = 3.0  # mean |R-G| + |G-B| below which a photo counts as grayscale (JPEG chroma noise)


class LabelsError(FaceSearchError):
    """The labels file cannot be used (missing column, empty, contradictory labels...)."""

    code = "bad_labels"


# labels -----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Labels:
    """Group of each person (``key == "person"``) or each image (``key == "image"``).

    Image keys are paths relative to the images folder or bare file names; an image matches the
    longest key that its path ends with, so both kinds work without knowing the folder.
    """

    key: str
    groups: dict[str, str]
    source: str = ""

    def group_of(self, path: Path, person: str) -> str | None:
        if self.key == "person":
            return self.groups.get(person)
        parts = Path(path).parts
        for start in range(len(parts)):
            group = self.groups.get("/".join(parts[start:]))
            if group is not None:
                return group
        return None

    @property
    def names(self) -> list[str]:
        return sorted(set(self.groups.values()))


def read_labels(path: Path) -> Labels:
    """Read a labels CSV with a header: a ``person`` or ``image`` column and a ``group`` column."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except OSError as exc:
        raise LabelsError(f"cannot read labels file {path}: {exc}", code="missing_file") from exc
    reader = csv.DictReader(text.splitlines())
    columns = [c.strip() for c in reader.fieldnames or []]
    if not columns:
        raise LabelsError(f"labels file {path} is empty", code="empty_labels")
    reader.fieldnames = columns
    keys = [c for c in KEY_COLUMNS if c in columns]
    if len(keys) != 1 or "group" not in columns:
        raise LabelsError(
            f"{path} needs a header with one key column, 'person' or 'image', and a 'group' column; "
            f"found {', '.join(columns)}",
            code="missing_column",
        )
    key = keys[0]
    groups: dict[str, str] = {}
    for line, row in enumerate(reader, start=2):
        name = (row.get(key) or "").strip().replace("\\", "/").removeprefix("./")
        group = (row.get("group") or "").strip()
        if not name and not group:
            continue
        if not name or not group:
            raise LabelsError(f"{path} line {line}: both {key!r} and 'group' must be filled in", code="missing_value")
        if groups.setdefault(name, group) != group:
            raise LabelsError(
                f"{path} line {line}: {key} {name!r} is labelled both {groups[name]!r} and {group!r}",
                code="duplicate_label",
            )
    if not groups:
        raise LabelsError(f"labels file {path} has a header but no labels", code="empty_labels")
    log.info("read %d %s labels in %d groups from %s", len(groups), key, len(set(groups.values())), path)
    return Labels(key=key, groups=groups, source=str(path))


# counting ---------------------------------------------------------------------------------------------


@dataclass
class GroupRow:
    group: str
    images: int
    people: int
    no_face: int
    genuine_pairs: int
    false_non_matches: int
    impostor_pairs: int
    false_matches: int

    @property
    def fnmr(self) -> float | None:
        return self.false_non_matches / self.genuine_pairs if self.genuine_pairs else None

    @property
    def fmr(self) -> float | None:
        return self.false_matches / self.impostor_pairs if self.impostor_pairs else None

    def to_dict(self) -> dict:
        return {**asdict(self), "fnmr": _round(self.fnmr), "fmr": _round(self.fmr)}


@dataclass
class Ratio:
    """Worst group's rate over the best's, among groups with enough pairs; ``None`` when < 2 qualify."""

    value: float | None
    worst: str | None = None
    best: str | None = None
    floored: bool = False  # the best rate was 0 and was replaced by 1 / its pair count
    compared: list[str] = field(default_factory=list)
    pooled_rate: float = 0.0
    worst_counts: tuple[int, int] = (0, 0)  # (errors, pairs): how much evidence the ratio rests on
    best_counts: tuple[int, int] = (0, 0)

    def to_dict(self) -> dict:
        return {**asdict(self), "value": _round(self.value), "pooled_rate": _round(self.pooled_rate)}


@dataclass
class GroupsReport:
    threshold: float
    rows: list[GroupRow]
    fmr_ratio: Ratio
    fnmr_ratio: Ratio
    images: int
    unlabelled: int
    warnings: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return {
            "threshold": self.threshold,
            "images": self.images,
            "unlabelled": self.unlabelled,
            "groups": [row.to_dict() for row in self.rows],
            "fmr_ratio": self.fmr_ratio.to_dict(),
            "fnmr_ratio": self.fnmr_ratio.to_dict(),
            "warnings": self.warnings,
        }


def _round(value: float | None, digits: int = 6) -> float | None:
    return None if value is None else round(value, digits)


def count_pairs(vectors: np.ndarray, people: np.ndarray, threshold: float) -> tuple[int, int, int, int]:
    """Genuine pairs, genuine scores < threshold, impostor pairs, impostor scores >= threshold.

    ``vectors`` are unit rows; ``people`` an integer id per row. Every unordered pair is scored once,
    in blocks of rows against the rows after them, so memory stays at ~``BLOCK_ELEMENTS`` scores.
    """
    n = len(vectors)
    if n < 2:
        return 0, 0, 0, 0
    x = np.ascontiguousarray(vectors, dtype=np.float32)
    ids = np.asarray(people)
    sizes = np.unique(ids, return_counts=True)[1].astype(np.int64)
    genuine_pairs = int((sizes * (sizes - 1) // 2).sum())
    impostor_pairs = n * (n - 1) // 2 - genuine_pairs
    genuine_below = impostor_above = 0
    rows = max(1, BLOCK_ELEMENTS // n)
    for start in range(0, n - 1, rows):
        stop = min(n, start + rows)
        scores = x[start:stop] @ x[start:].T  # rows start..stop against columns start..n
        later = np.arange(start, n)[None, :] > np.arange(start, stop)[:, None]
        same = ids[start:stop, None] == ids[None, start:]
        above = scores >= threshold
        genuine_below += int(np.count_nonzero(later & same & ~above))
        impostor_above += int(np.count_nonzero(later & ~same & above))
    return genuine_pairs, genuine_below, impostor_pairs, impostor_above


def _group_row(group: str, items: list[tuple[str, np.ndarray | None]], threshold: float) -> GroupRow:
    per_person = Counter(person for person, _ in items)
    all_genuine = sum(m * (m - 1) // 2 for m in per_person.values())
    with_face = [(person, v) for person, v in items if v is not None]
    codes = {person: i for i, person in enumerate(sorted(per_person))}
    if with_face:
        vectors = np.stack([v for _, v in with_face])
        ids = np.array([codes[p] for p, _ in with_face])
    else:
        vectors, ids = np.zeros((0, 1), np.float32), np.zeros(0, int)
    genuine, genuine_below, impostors, impostor_above = count_pairs(vectors, ids, threshold)
    uncompared = all_genuine - genuine  # genuine pairs with a no-face image: non-matches
    return GroupRow(
        group=group,
        images=len(items),
        people=len(per_person),
        no_face=len(items) - len(with_face),
        genuine_pairs=all_genuine,
        false_non_matches=genuine_below + uncompared,
        impostor_pairs=impostors,
        false_matches=impostor_above,
    )


def group_ratio(rows: list[GroupRow], errors: str, pairs: str, min_expected_errors: float = 1.0) -> Ratio:
    """Worst/best rate of ``errors``/``pairs`` over groups where ``pairs * pooled_rate >= min_expected_errors``.

    Groups too small to expect an error at the pooled rate would read as 0 by chance and make any
    ratio meaningless, so they are left out. A best rate of 0 is floored at ``1 / pairs`` and flagged.
    """
    total_pairs = sum(getattr(r, pairs) for r in rows)
    pooled = sum(getattr(r, errors) for r in rows) / total_pairs if total_pairs else 0.0
    eligible = [r for r in rows if getattr(r, pairs) and getattr(r, pairs) * pooled >= min_expected_errors]
    if len(eligible) < 2:
        return Ratio(value=None, compared=[r.group for r in eligible], pooled_rate=pooled)
    rates = {r.group: getattr(r, errors) / getattr(r, pairs) for r in eligible}
    worst = max(eligible, key=lambda r: rates[r.group])
    best = min(eligible, key=lambda r: rates[r.group])
    floored = rates[best.group] == 0
    denominator = 1 / getattr(best, pairs) if floored else rates[best.group]
    return Ratio(
        value=rates[worst.group] / denominator,
        worst=worst.group,
        best=best.group,
        floored=floored,
        compared=[r.group for r in eligible],
        pooled_rate=pooled,
        worst_counts=(getattr(worst, errors), getattr(worst, pairs)),
        best_counts=(getattr(best, errors), getattr(best, pairs)),
    )


def group_differentials(
    embeddings: dict[Path, np.ndarray | None],
    person_of: Callable[[Path], str],
    labels: Labels,
    threshold: float,
    min_expected_errors: float = 1.0,
) -> GroupsReport:
    """FMR and FNMR per group at ``threshold``, the worst/best ratios, and warnings.

    ``embeddings`` maps each image to its unit embedding, or ``None`` when no face was found (as
    :func:`facesearch.eval.verify.embed_images` returns them). Images with no label are left out and
    counted in ``unlabelled``.
    """
    by_group: dict[str, list[tuple[str, np.ndarray | None]]] = {}
    unlabelled = 0
    for path, vector in embeddings.items():
        person = person_of(path)
        group = labels.group_of(path, person)
        if group is None:
            unlabelled += 1
            continue
        by_group.setdefault(group, []).append((person, vector))
    if not by_group:
        raise LabelsError(
            f"none of the {len(embeddings)} images has a label in {labels.source or 'the labels'} "
            f"(keyed by {labels.key})",
            code="no_labelled_images",
        )
    rows = [_group_row(group, items, threshold) for group, items in sorted(by_group.items())]
    fmr = group_ratio(rows, "false_matches", "impostor_pairs", min_expected_errors)
    fnmr = group_ratio(rows, "false_non_matches", "genuine_pairs", min_expected_errors)
    warnings = _warnings(fmr, fnmr, unlabelled, len(embeddings))
    for warning in warnings:
        log.warning("groups: %s", warning)
    return GroupsReport(
        threshold=threshold,
        rows=rows,
        fmr_ratio=fmr,
        fnmr_ratio=fnmr,
        images=len(embeddings),
        unlabelled=unlabelled,
        warnings=warnings,
    )


def _warnings(fmr: Ratio, fnmr: Ratio, unlabelled: int, images: int) -> list[str]:
    warnings = []
    for name, ratio in (("FMR", fmr), ("FNMR", fnmr)):
        if ratio.value is None:
            warnings.append(
                f"{name} ratio not computed: {len(ratio.compared)} group(s) have enough pairs to expect one error "
                f"at the pooled {name} of {ratio.pooled_rate:.2g}"
            )
        elif ratio.value > RATIO_WARNING:
            (we, wp), (be, bp) = ratio.worst_counts, ratio.best_counts
            bound = "; at least: the best group had no error, floored at 1/pairs" if ratio.floored else ""
            warnings.append(
                f"{name} of group {ratio.worst!r} is {ratio.value:.1f}x that of group {ratio.best!r} "
                f"({we:,} of {wp:,} pairs vs {be:,} of {bp:,}{bound})"
            )
    if unlabelled:
        warnings.append(f"{unlabelled} of {images} images have no label and were left out")
    return warnings


# labels made from the pixels ------------------------------------------------------------------------


def image_property(rgb: np.ndarray, prop: str) -> float:
    """``colour``: mean channel difference (≈0 for grayscale photos); ``brightness``: centre luma 0-255.

    Brightness is measured on the central half of the photo, where an LFW-style photo has its face.
    """
    pixels = rgb.astype(np.float32)
    if prop == "colour":
        return float(np.mean(np.abs(pixels[..., 0] - pixels[..., 1]) + np.abs(pixels[..., 1] - pixels[..., 2])))
    if prop == "brightness":
        h, w = rgb.shape[:2]
        centre = pixels[h // 4 : h - h // 4, w // 4 : w - w // 4]
        return float(np.mean(centre @ np.array([0.299, 0.587, 0.114], dtype=np.float32)))
    raise LabelsError(f"unknown image property {prop!r}: choose one of {', '.join(PROPERTIES)}", code="bad_request")


def labels_from_image_property(paths: Iterable[Path], prop: str = "brightness") -> dict[Path, str]:
    """A group per image computed from its pixels, for demonstrating and testing group reports.

    ``colour`` splits grayscale from colour photos (a capture condition NIST also reports on);
    ``brightness`` splits the photos into terciles of centre brightness: ``dark``, ``medium``,
    ``bright`` (cut points from these photos, so the three groups are about equally large).
    Undecodable images get no label.
    """
    if prop not in PROPERTIES:
        raise LabelsError(f"unknown image property {prop!r}: choose one of {', '.join(PROPERTIES)}", code="bad_request")
    values: dict[Path, float] = {}
    for path in paths:
        try:
            values[path] = image_property(decode_image(path.read_bytes()).rgb, prop)
        except (ImageRejected, OSError) as exc:
            log.warning("no %s label for %s: %s", prop, path, exc)
    if prop == "colour":
        return {p: "grayscale" if v < GRAYSCALE_TOLERANCE else "colour" for p, v in values.items()}
    if not values:
        return {}
    low, high = np.quantile(list(values.values()), [1 / 3, 2 / 3])
    return {p: "dark" if v < low else "medium" if v < high else "bright" for p, v in values.items()}


def write_labels_csv(labels: dict[Path, str], out: Path, images_dir: Path | None = None) -> Path:
    """Write image labels as a labels CSV (``image,group``) that :func:`read_labels` reads back.

    Keys are paths relative to ``images_dir`` when given (and the image is inside it), else file names.
    """
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["image", "group"])
        for path, group in sorted(labels.items()):
            key = path.name
            if images_dir is not None and path.is_relative_to(images_dir):
                key = path.relative_to(images_dir).as_posix()
            writer.writerow([key, group])
    return out


# rendering ------------------------------------------------------------------------------------------


def groups_table(report: GroupsReport) -> Table:
    """Per-group pair counts and rates, the ratios in the caption, warnings below."""

    def rate(value: float | None) -> str:
        return "-" if value is None else f"{value:.2e}" if 0 < value < 1e-3 else f"{value:.4f}"

    def ratio(r: Ratio) -> str:
        if r.value is None:
            return "n/a"
        return f"{'>=' if r.floored else ''}{r.value:.2f} ({r.worst} / {r.best})"

    table = Table(
        "group",
        "images",
        "people",
        "no face",
        "genuine pairs",
        "FNMR",
        "impostor pairs",
        "FMR",
        title=f"Error rates per group at threshold {report.threshold:g}",
        caption=f"FMR ratio {ratio(report.fmr_ratio)} · FNMR ratio {ratio(report.fnmr_ratio)}"
        + (f" · {report.unlabelled} unlabelled images" if report.unlabelled else ""),
    )
    for row in report.rows:
        table.add_row(
            row.group,
            str(row.images),
            str(row.people),
            str(row.no_face),
            f"{row.genuine_pairs:,}",
            f"{rate(row.fnmr)} ({row.false_non_matches:,})",
            f"{row.impostor_pairs:,}",
            f"{rate(row.fmr)} ({row.false_matches:,})",
        )
    return table
