"""dlib's CNN face detector (MMOD) run by ONNX Runtime, giving the boxes and scores dlib gives.

The network (:mod:`facesearch.models.convert.mmod_onnx`) scores 80x80 windows every 8 pixels. To find faces
of other sizes dlib runs it once on a *tiled image pyramid*: the image and its successive 5/6
reductions packed into one canvas with zero (mean-colour) gaps. We build the very same canvas,
because the network's receptive field (189 pixels) reaches across those gaps: running each level on
its own would change the scores near level edges, and with them the boxes.

Steps, each reproducing dlib (``cnn_face_detection_model_v1.__call__`` in its Python bindings):

1. ``upsample`` times ``pyramid_up``: bilinear resize to (2H+1, 2W+2), values truncated to uint8;
2. ``(pixel - mean) / 256``; the pyramid levels are bilinear reductions of the previous level's
   normalised values (``input_rgb_image_pyramid::to_tensor``), laid out by dlib's tiling rule;
3. the network; every score-map cell above the threshold is an 80x80 box centred on
   ``cell * 8 + 14`` in canvas pixels, mapped to the image through the pyramid level it falls in
   (``tiled_pyramid_to_image``) and rounded to whole pixels;
4. greedy non-maximum suppression, best score first, with the loss's overlap test (IoU measured
   against the two boxes' bounding box, 0.338);
5. boxes mapped back through each ``pyramid_up`` (``pyramid_down<2>::rect_down``).

Threshold: dlib keeps a cell when its score is > ``adjust_threshold``, 0 by default
(``loss_mmod_::to_label``); :attr:`DetectorSettings.min_score` is that threshold, so its default 0
gives exactly dlib's detections. Scores are the raw network outputs (about 1 for a clear face).

Landmarks come from the same 5-point shape predictor as the HOG detector's (dlib trained it on both
detectors' boxes). CNN boxes differ a little from HOG's (on LFW, about 8% smaller and 5 pixels
higher), yet the landmarks move by about a pixel: chips aligned from either embed alike (cosine
>= 0.985 on 198 LFW faces).
"""

from __future__ import annotations

import logging
import math
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np

from facesearch.errors import ImageRejected, ModelError
from facesearch.models.convert.mmod_onnx import INPUT_NAME, MmodSettings, converted_mmod, mmod_onnx_bytes
from facesearch.models.detect.base import Detection, DetectorSettings, FivePointLandmarker, downscale

log = logging.getLogger(__name__)

_MIN_LEVEL_HEIGHT = 5  # dlib stops the pyramid at levels shorter than this
_MIN_CANVAS = 61  # smallest side that leaves one output cell after three unpadded 5x5/2 convolutions

Rect = tuple[int, int, int, int]  # dlib rectangle: left, top, right, bottom, inclusive


@dataclass(frozen=True)
class MmodBox:
    """A detection as dlib reports it: inclusive rectangle corners in the input image, and the score."""

    left: int
    top: int
    right: int
    bottom: int
    score: float


# --------------------------------------------------------------------------------------------
# dlib's rounding and resizing


def _lround(x: np.ndarray | float) -> np.ndarray:
    """C's lround: halves away from zero (Python's round() would round halves to even)."""
    x = np.asarray(x, dtype=np.float64)
    return (np.sign(x) * np.floor(np.abs(x) + 0.5)).astype(np.int64)


def _sequential_sum(first: float, step: float, count: int, dtype: type = np.float64) -> np.ndarray:
    """``first + step``, ``+ step`` ... ``count`` times, rounding after every addition as a C loop does."""
    terms = np.full(count + 1, step, dtype=dtype)
    terms[0] = first
    return np.add.accumulate(terms, dtype=dtype)[1:]


@dataclass(frozen=True)
class _Columns:
    """Where each output column reads, as dlib computes it: a float32 SIMD part, then a scalar tail."""

    left: np.ndarray  # SIMD part: left source column; the right one is left + 1
    lr: np.ndarray  # float32 weight of the right column
    first_tail: int  # first column of the scalar tail
    tail_left: np.ndarray
    tail_right: np.ndarray
    tail_lr: np.ndarray  # float64


def _columns(in_w: int, out_w: int) -> _Columns:
    """dlib steps four float32 lanes by float32(4 * scale) and leaves that loop at the first group whose
    last lane would read past the edge; the rest use a double position stepped one column at a time."""
    scale = (in_w - 1) / max(out_w - 1, 1)
    groups = out_w // 4 + 2
    lanes = np.stack([_sequential_sum(-4 * scale + j * scale, 4 * scale, groups, np.float32) for j in range(4)], 1)
    left = np.trunc(lanes).astype(np.int64)
    fits = left[:, 3] + 1 < in_w
    n_main = min(groups if fits.all() else int(np.argmin(fits)), out_w // 4)
    left = left[:n_main].reshape(-1)
    lr = (lanes[:n_main].reshape(-1) - left.astype(np.float32)).astype(np.float32)
    first = 4 * n_main
    x = _sequential_sum(-scale + first * scale, scale, out_w - first)
    tail_left = np.floor(x).astype(np.int64)
    return _Columns(left, lr, first, tail_left, np.minimum(tail_left + 1, in_w - 1), x - tail_left)


_ROW_CHUNK = 32  # rows per step: keeps the temporaries in cache and the memory flat for large images


def resize_bilinear(src: np.ndarray, out_h: int, out_w: int, *, to_uint8: bool = False) -> np.ndarray:
    """dlib's bilinear ``resize_image`` on (..., H, W) planes, reproduced to the float rounding.

    Corners map to corners (scale = (in - 1) / (out - 1)). dlib's SIMD loop steps the column position
    in float32, so positions drift by up to ~1e-2 pixel across a wide image and values by up to 1e-3:
    enough to swap two near-equal neighbouring detections, so the drift is reproduced (:func:`_columns`),
    and so is the order of the float32 operations. ``to_uint8`` is the RGB-image variant used by
    ``pyramid_up`` (results truncated to whole levels, scalar tail in double); otherwise float32 planes
    (the pyramid of normalised values, scalar tail with float32 column weights).
    """
    in_h, in_w = src.shape[-2:]
    y = _sequential_sum(-((in_h - 1) / max(out_h - 1, 1)), (in_h - 1) / max(out_h - 1, 1), out_h)
    top = np.floor(y).astype(np.int64)
    bottom = np.minimum(top + 1, in_h - 1)
    tb = y - top
    tb32, inv_tb32 = tb.astype(np.float32)[:, None], (1.0 - tb).astype(np.float32)[:, None]
    cols = _columns(in_w, out_w)
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
    out_h = int(_lround((height - 1 + 0.75) * 2)) + 1
    out_w = int(_lround((width - 1 + 1.25) * 2)) + 1
    return np.moveaxis(resize_bilinear(np.moveaxis(rgb, -1, 0), out_h, out_w, to_uint8=True), 0, -1)


def _rect_down_2(boxes: np.ndarray, levels: int) -> np.ndarray:
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
        if nr * nc == 0 or nr < _MIN_LEVEL_HEIGHT:
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


# --------------------------------------------------------------------------------------------
# Score map -> boxes


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
    rounded = _lround(boxes)
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

    Shared by :meth:`CnnFaceDetector.mmod_boxes` and batched runners (``facesearch.models.detect.torch_mmod``)
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
    corners = _lround(_rect_down_2(np.array([(b.left, b.top, b.right, b.bottom) for b in kept], float), upsample))
    return [MmodBox(*(int(v) for v in c), score=b.score) for c, b in zip(corners, kept, strict=True)]


class MmodRunner(Protocol):
    """What runs the MMOD network for :class:`CnnFaceDetector`: ONNX Runtime by default, or another
    runner (e.g. ``facesearch.models.detect.torch_mmod.TorchMmodRunner`` on a GPU) built from the same weights."""

    mmod: MmodSettings

    def __call__(self, canvas: np.ndarray) -> np.ndarray:
        """Normalised canvases float32 [N, 3, H, W] -> raw score maps float32 [N, 1, H', W']."""
        ...


# --------------------------------------------------------------------------------------------
# The detector


class CnnFaceDetector:
    """dlib's CNN (MMOD) face detector, converted to ONNX, with the 5-point shape predictor."""

    name = "dlib_cnn_mmod"

    def __init__(
        self,
        settings: DetectorSettings | None = None,
        *,
        cache_dir: Path | None = None,
        threads: int = 0,
        runner: MmodRunner | None = None,
    ) -> None:
        """``runner`` replaces ONNX Runtime as what runs the network (``cache_dir``/``threads`` then unused)."""
        self.settings = settings or DetectorSettings()
        if runner is not None:
            self.mmod = runner.mmod
            self._run: Callable[[np.ndarray], np.ndarray] = runner
        else:
            self._run = self._onnx_session(cache_dir, threads)
        self._means = np.array(self.mmod.means, dtype=np.float32).reshape(3, 1, 1)
        self._lock = threading.Lock()
        self._landmarks = FivePointLandmarker()

    def _onnx_session(self, cache_dir: Path | None, threads: int) -> Callable[[np.ndarray], np.ndarray]:
        import onnxruntime as ort

        model: str | bytes = str(converted_mmod(cache_dir)) if cache_dir is not None else mmod_onnx_bytes()
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.log_severity_level = 3
        try:
            self._session = ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])
        except Exception as exc:  # onnxruntime raises its own untyped errors
            raise ModelError(f"cannot load the converted MMOD detector: {exc}") from exc
        self.mmod = MmodSettings.from_metadata(self._session.get_modelmeta().custom_metadata_map)
        return lambda canvas: self._session.run(None, {INPUT_NAME: canvas})[0]

    def detect(self, rgb: np.ndarray) -> list[Detection]:
        """Detect every face in an RGB uint8 image, largest first."""
        rgb = _as_rgb(rgb)
        work, scale = downscale(rgb, self.settings.working_size)
        boxes = self.mmod_boxes(work, self.settings.upsample, self.settings.min_score)
        found = ((b.left, b.top, b.right, b.bottom, b.score) for b in boxes)
        return self._landmarks.detections(rgb, work, scale, found)

    def landmarks_in_box(self, rgb: np.ndarray, box: tuple[int, int, int, int]) -> Detection:
        """Landmarks for a face assumed to be in ``box`` (a fallback when the detector finds none)."""
        return self._landmarks.in_box(_as_rgb(rgb), box)

    def mmod_boxes(self, rgb: np.ndarray, upsample: int = 0, threshold: float = 0.0) -> list[MmodBox]:
        """What ``dlib.cnn_face_detection_model_v1(...)(rgb, upsample)`` returns: boxes best first.

        No working-size reduction here; :meth:`detect` applies it first.
        """
        image = _as_rgb(rgb)
        for _ in range(max(0, upsample)):
            image = pyramid_up(image)
        height, width = image.shape[:2]
        tiles = tile_pyramid(
            height, width, self.mmod.pyramid_down, self.mmod.pyramid_padding, self.mmod.pyramid_outer_padding
        )
        if min(tiles.height, tiles.width) < _MIN_CANVAS:
            return []  # too small for one output cell, let alone an 80-pixel face
        normalised = (np.moveaxis(image, -1, 0).astype(np.float32) - self._means) / np.float32(256.0)
        canvas = pyramid_canvas(normalised, tiles)
        with self._lock:  # one run at a time; it already uses every thread it was given
            scores = self._run(canvas[None])
        return boxes_from_scores(scores[0, 0], tiles, self.mmod, threshold, upsample)


def _as_rgb(image: np.ndarray) -> np.ndarray:
    """An H x W x 3 uint8 array (grey images are repeated into three channels)."""
    if image.ndim == 2:
        image = np.repeat(image[:, :, None], 3, axis=2)
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ImageRejected(f"expected an RGB uint8 image (H, W, 3), got {image.dtype} {image.shape}")
    return np.ascontiguousarray(image)
