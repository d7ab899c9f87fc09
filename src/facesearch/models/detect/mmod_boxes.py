"""From the MMOD network's score map to dlib's detections: cells above the threshold become boxes,
mapped back through the pyramid level they fall in, then greedy non-maximum suppression.

Shared by the CNN detector and the batched detectors, which compute many canvases' score maps at
once (on a GPU), so that every path decodes and suppresses boxes alike.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

from facesearch.models.convert.mmod_settings import MmodSettings
from facesearch.models.detect.mmod_pyramid import Rect, TiledPyramid, lround, rect_down_2

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class MmodBox:
    """A detection as dlib reports it: inclusive rectangle corners in the input image, and the score."""

    left: int
    top: int
    right: int
    bottom: int
    score: float


def _nearest_level(rects: list[Rect], points: np.ndarray) -> np.ndarray:
    """dlib's ``nearest_rect``: the level containing each (x, y) point, else the closest (first on ties)."""
    boxes = np.array(rects, dtype=np.float64)  # (levels, 4)
    px, py = points[:, 0:1], points[:, 1:2]
    dx = np.maximum(boxes[None, :, 0] - px, 0) + np.maximum(px - boxes[None, :, 2], 0)
    dy = np.maximum(boxes[None, :, 1] - py, 0) + np.maximum(py - boxes[None, :, 3], 0)
    return np.argmin(np.hypot(dx, dy), axis=1)


@dataclass(frozen=True)
class ScoreCells:
    """The cells of one canvas' score map above the threshold, in row-major order: all that decoding
    needs (a batched detector thresholds on its device and ships these, not the whole map)."""

    rows: np.ndarray
    cols: np.ndarray
    values: np.ndarray  # float32, as the network gave them

    @classmethod
    def of(cls, scores: np.ndarray, threshold: float) -> ScoreCells:
        rows, cols = np.nonzero(scores > threshold)
        return cls(rows, cols, scores[rows, cols])


def decode_scores(scores: np.ndarray, tiles: TiledPyramid, mmod: MmodSettings, threshold: float) -> list[MmodBox]:
    """Cells scoring above ``threshold`` become boxes in the canvas' level-0 image, best first, before NMS."""
    return decode_cells(ScoreCells.of(scores, threshold), tiles, mmod)


def decode_cells(cells: ScoreCells, tiles: TiledPyramid, mmod: MmodSettings) -> list[MmodBox]:
    """:func:`decode_scores` from the cells above the threshold."""
    rows, cols = cells.rows, cells.cols
    if rows.size == 0:
        return []
    values = cells.values.astype(np.float64)
    centres = np.stack([cols * mmod.stride + mmod.offset, rows * mmod.stride + mmod.offset], axis=1).astype(np.float64)
    levels = _nearest_level(tiles.rects, centres)
    origin = np.array([(tiles.rects[i][0], tiles.rects[i][1]) for i in levels], dtype=np.float64)
    half = np.array([(mmod.window_w - 1) / 2.0, (mmod.window_h - 1) / 2.0])
    boxes = np.concatenate([centres - half - origin, centres + half - origin], axis=1)
    ratio = mmod.pyramid_down / (mmod.pyramid_down - 1.0)
    for level in range(1, int(levels.max()) + 1):  # pyramid_down<N>::point_up, once per level
        up = levels >= level
        boxes[up] = boxes[up] * ratio + 0.3
    rounded = lround(boxes)
    order = np.argsort(-values, kind="stable")
    return [MmodBox(*(int(v) for v in rounded[i]), score=float(values[i])) for i in order]


def _overlaps(a: MmodBox, b: MmodBox, iou: float, covered: float) -> bool:
    """dlib's ``test_box_overlap`` on whole-pixel rectangles; the "union" is the boxes' bounding box."""
    iw = min(a.right, b.right) - max(a.left, b.left) + 1
    ih = min(a.bottom, b.bottom) - max(a.top, b.top) + 1
    if iw <= 0 or ih <= 0:
        return False
    inner = float(iw * ih)
    hull = (max(a.right, b.right) - min(a.left, b.left) + 1) * (max(a.bottom, b.bottom) - min(a.top, b.top) + 1)
    area_a = (a.right - a.left + 1) * (a.bottom - a.top + 1)
    area_b = (b.right - b.left + 1) * (b.bottom - b.top + 1)
    return inner / hull > iou or inner / area_a > covered or inner / area_b > covered


def non_max_suppression(boxes: list[MmodBox], iou: float, covered: float) -> list[MmodBox]:
    """Keep each box (best first) unless it overlaps one already kept, as ``loss_mmod_::to_label`` does."""
    kept: list[MmodBox] = []
    for box in boxes:
        if not any(_overlaps(k, box, iou, covered) for k in kept):
            kept.append(box)
    return kept


def boxes_from_scores(
    scores: np.ndarray, tiles: TiledPyramid, mmod: MmodSettings, threshold: float, upsample: int
) -> list[MmodBox]:
    """One canvas' score map (H', W') -> dlib's detections in the image before ``upsample`` pyramid_ups.

    Shared by :meth:`CnnFaceDetector.mmod_boxes` and batched runners (``facesearch.models.detect.torch_batch``)
    that compute many canvases' score maps at once, so both decode and suppress boxes alike.
    """
    return boxes_from_cells(ScoreCells.of(scores, threshold), tiles, mmod, upsample)


def boxes_from_cells(cells: ScoreCells, tiles: TiledPyramid, mmod: MmodSettings, upsample: int) -> list[MmodBox]:
    """:func:`boxes_from_scores` from the cells above the threshold (what the batched ingest ships)."""
    boxes = decode_cells(cells, tiles, mmod)
    kept = non_max_suppression(boxes, mmod.nms_iou, mmod.nms_covered)
    log.debug("MMOD canvas %dx%d: %d cells, %d faces", tiles.width, tiles.height, len(boxes), len(kept))
    if not kept or upsample <= 0:
        return kept
    corners = lround(rect_down_2(np.array([(b.left, b.top, b.right, b.bottom) for b in kept], float), upsample))
    return [MmodBox(*(int(v) for v in c), score=b.score) for c, b in zip(corners, kept, strict=True)]
