"""dlib's bilinear resize and tiled image pyramid, reproduced to the float rounding.

dlib runs the MMOD network once on a canvas holding the image and its successive 5/6 reductions,
laid out by its tiling rule with mean-colour gaps (see :mod:`facesearch.models.detect.cnn`). The
CNN detector builds that canvas here on the CPU; the batched torch detector
(:mod:`facesearch.models.detect.torch_batch`) replays the same index tables on a device.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

MIN_LEVEL_HEIGHT = 5  # dlib stops the pyramid at levels shorter than this
MIN_CANVAS = 61  # smallest side that leaves one output cell after three unpadded 5x5/2 convolutions

Rect = tuple[int, int, int, int]  # dlib rectangle: left, top, right, bottom, inclusive


# --------------------------------------------------------------------------------------------
# dlib's rounding and resizing


def lround(x: np.ndarray | float) -> np.ndarray:
    """C's lround: halves away from zero (Python's round() would round halves to even)."""
    x = np.asarray(x, dtype=np.float64)
    return (np.sign(x) * np.floor(np.abs(x) + 0.5)).astype(np.int64)


def sequential_sum(first: float, step: float, count: int, dtype: type = np.float64) -> np.ndarray:
    """``first + step``, ``+ step`` ... ``count`` times, rounding after every addition as a C loop does."""
    terms = np.full(count + 1, step, dtype=dtype)
    terms[0] = first
    return np.add.accumulate(terms, dtype=dtype)[1:]


@dataclass(frozen=True)
class ResizeColumns:
    """Where each output column reads, as dlib computes it: a float32 SIMD part, then a scalar tail."""

    left: np.ndarray  # SIMD part: left source column; the right one is left + 1
    lr: np.ndarray  # float32 weight of the right column
    first_tail: int  # first column of the scalar tail
    tail_left: np.ndarray
    tail_right: np.ndarray
    tail_lr: np.ndarray  # float64


def resize_columns(in_w: int, out_w: int) -> ResizeColumns:
    """dlib steps four float32 lanes by float32(4 * scale) and leaves that loop at the first group whose
    last lane would read past the edge; the rest use a double position stepped one column at a time."""
    scale = (in_w - 1) / max(out_w - 1, 1)
    groups = out_w // 4 + 2
    lanes = np.stack([sequential_sum(-4 * scale + j * scale, 4 * scale, groups, np.float32) for j in range(4)], 1)
    left = np.trunc(lanes).astype(np.int64)
    fits = left[:, 3] + 1 < in_w
    n_main = min(groups if fits.all() else int(np.argmin(fits)), out_w // 4)
    left = left[:n_main].reshape(-1)
    lr = (lanes[:n_main].reshape(-1) - left.astype(np.float32)).astype(np.float32)
    first = 4 * n_main
    x = sequential_sum(-scale + first * scale, scale, out_w - first)
    tail_left = np.floor(x).astype(np.int64)
    return ResizeColumns(left, lr, first, tail_left, np.minimum(tail_left + 1, in_w - 1), x - tail_left)


_ROW_CHUNK = 32  # rows per step: keeps the temporaries in cache and the memory flat for large images


def resize_bilinear(src: np.ndarray, out_h: int, out_w: int, *, to_uint8: bool = False) -> np.ndarray:
    """dlib's bilinear ``resize_image`` on (..., H, W) planes, reproduced to the float rounding.

    Corners map to corners (scale = (in - 1) / (out - 1)). dlib's SIMD loop steps the column position
    in float32, so positions drift by up to ~1e-2 pixel across a wide image and values by up to 1e-3:
    enough to swap two near-equal neighbouring detections, so the drift is reproduced (:func:`resize_columns`),
    and so is the order of the float32 operations. ``to_uint8`` is the RGB-image variant used by
    ``pyramid_up`` (results truncated to whole levels, scalar tail in double); otherwise float32 planes
    (the pyramid of normalised values, scalar tail with float32 column weights).
    """
    in_h, in_w = src.shape[-2:]
    y = sequential_sum(-((in_h - 1) / max(out_h - 1, 1)), (in_h - 1) / max(out_h - 1, 1), out_h)
    top = np.floor(y).astype(np.int64)
    bottom = np.minimum(top + 1, in_h - 1)
    tb = y - top
    tb32, inv_tb32 = tb.astype(np.float32)[:, None], (1.0 - tb).astype(np.float32)[:, None]
    cols = resize_columns(in_w, out_w)
    lr, inv_lr, left, right = cols.lr, np.float32(1) - cols.lr, cols.left, cols.left + 1
    t_lr = cols.tail_lr if to_uint8 else cols.tail_lr.astype(np.float32)
    t_inv = 1 - t_lr
    out = np.empty((*src.shape[:-2], out_h, out_w), dtype=np.uint8 if to_uint8 else np.float32)
    first = cols.first_tail
    for r0 in range(0, out_h, _ROW_CHUNK):
        rows = slice(r0, min(r0 + _ROW_CHUNK, out_h))
        # np.take, not fancy indexing: its result is C-ordered, so the arithmetic below runs ~20x faster
        upper = np.take(src, top[rows], axis=-2).astype(np.float32, copy=False)
        lower = np.take(src, bottom[rows], axis=-2).astype(np.float32, copy=False)
        acc = np.take(upper, left, axis=-1)
        acc *= inv_tb32[rows] * inv_lr
        term = np.take(upper, right, axis=-1)
        term *= inv_tb32[rows] * lr
        acc += term
        np.take(lower, left, axis=-1, out=term)
        term *= tb32[rows] * inv_lr
        acc += term
        np.take(lower, right, axis=-1, out=term)
        term *= tb32[rows] * lr
        acc += term
        out[..., rows, :first] = np.trunc(acc) if to_uint8 else acc
        tail_top = t_inv * np.take(upper, cols.tail_left, -1) + t_lr * np.take(upper, cols.tail_right, -1)
        tail_bottom = t_inv * np.take(lower, cols.tail_left, -1) + t_lr * np.take(lower, cols.tail_right, -1)
        tail = (1 - tb[rows, None]) * tail_top + tb[rows, None] * tail_bottom
        out[..., rows, first:] = np.trunc(tail) if to_uint8 else tail
    return out


def pyramid_up(rgb: np.ndarray) -> np.ndarray:
    """dlib's ``pyramid_up`` with ``pyramid_down<2>``: an HxW image becomes (2H+1)x(2W+2), truncated to uint8."""
    height, width = rgb.shape[:2]
    out_h = int(lround((height - 1 + 0.75) * 2)) + 1
    out_w = int(lround((width - 1 + 1.25) * 2)) + 1
    return np.moveaxis(resize_bilinear(np.moveaxis(rgb, -1, 0), out_h, out_w, to_uint8=True), 0, -1)


def rect_down_2(boxes: np.ndarray, levels: int) -> np.ndarray:
    """``pyramid_down<2>::rect_down`` ``levels`` times on (n, 4) float boxes: p / 2 - (1.25, 0.75)."""
    shift = np.array([1.25, 0.75, 1.25, 0.75])
    for _ in range(levels):
        boxes = boxes / 2.0 - shift
    return boxes


# --------------------------------------------------------------------------------------------
# The tiled pyramid


@dataclass(frozen=True)
class TiledPyramid:
    """Where each pyramid level sits on the canvas (dlib rectangles, level 0 = the image) and its size."""

    rects: list[Rect]
    height: int
    width: int


def tile_pyramid(nr: int, nc: int, down: int, padding: int, outer_padding: int) -> TiledPyramid:
    """dlib's ``compute_tiled_image_pyramid_details``: levels of ``(down-1)/down`` the previous size,
    stacked down a first column, then up a second column beside the smaller levels."""
    rate = (down - 1.0) / down
    sizes = [(nr, nc)]
    while True:
        nr, nc = math.floor(rate * nr), math.floor(rate * nc)
        if nr * nc == 0 or nr < MIN_LEVEL_HEIGHT:
            break
        sizes.append((nr, nc))
    first_h, first_w = sizes[0]
    total_height = sum(h + padding for h, _ in sizes) - 2 * padding
    height, prev_width = 0, 0
    for h, w in sizes:
        if w <= first_w - prev_width - padding and (height - first_h) * 2 >= total_height - first_h:
            break
        height += h + padding
        prev_width = w
    height -= padding

    rects: list[Rect] = []
    y = outer_padding
    while y < height + outer_padding and len(rects) < len(sizes):
        h, w = sizes[len(rects)]
        rects.append((outer_padding, y, outer_padding + w - 1, y + h - 1))
        y += h + padding
    y -= padding
    first = rects[0]
    while len(rects) < len(sizes):  # second column, bottom-up against the right edge
        h, w = sizes[len(rects)]
        right, bottom = outer_padding + first_w - 1, y - 1
        rect = (right - (w - 1), bottom - (h - 1), right, bottom)
        if rect[0] <= first[2] and rect[2] >= first[0] and rect[1] <= first[3] and rect[3] >= first[1]:
            break  # it would overlap the original image: dlib drops the remaining levels
        rects.append(rect)
        y -= h + padding
    return TiledPyramid(rects=rects, height=height + 2 * outer_padding, width=first_w + 2 * outer_padding)


def pyramid_canvas(normalised: np.ndarray, tiles: TiledPyramid) -> np.ndarray:
    """Fill the canvas: level 0 is the image, each next level a bilinear reduction of the previous one.

    Levels are computed as separate arrays and then pasted: reading from and writing to strided canvas
    views is about twice as slow.
    """
    canvas = np.zeros((3, tiles.height, tiles.width), dtype=np.float32)
    level = np.ascontiguousarray(normalised, dtype=np.float32)
    for index, (left, top, right, bottom) in enumerate(tiles.rects):
        if index:
            level = resize_bilinear(level, bottom - top + 1, right - left + 1)
        canvas[:, top : bottom + 1, left : right + 1] = level
    return canvas
