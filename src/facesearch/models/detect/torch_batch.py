"""dlib's CNN face detector for many images at once, the tiled pyramid built on the device.

Why: on the CPU, building dlib's tiled pyramid costs about 25 ms for one 250x250 LFW photo (more than
the network on a GPU), so for ingest it is built on the device for a whole batch of same-size images
at once. :class:`_ResizePlan` replays dlib's bilinear resize
(:func:`~facesearch.models.detect.mmod_pyramid.resize_bilinear`, float32 column drift included) with
the same index tables and the same float32/float64 operations in the same order, so the canvases
equal the CPU ones (tests/test_torch_parity.py); score maps (or just the cells above the threshold)
go back to the CPU and are decoded by :mod:`facesearch.models.detect.mmod_boxes`.

Import this module only where torch is wanted: torch is an optional extra (``pip install '.[gpu]'``).
"""

from __future__ import annotations

import logging
import threading
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from facesearch.errors import ModelError
from facesearch.models.convert.dlib_format import DlibNetwork
from facesearch.models.convert.mmod_settings import MmodSettings
from facesearch.models.detect.base import Detection, DetectorSettings, as_rgb, downscale
from facesearch.models.detect.landmarks import FivePointLandmarker
from facesearch.models.detect.mmod_boxes import MmodBox, ScoreCells, boxes_from_scores
from facesearch.models.detect.mmod_pyramid import (
    MIN_CANVAS,
    TiledPyramid,
    lround,
    resize_columns,
    sequential_sum,
    tile_pyramid,
)
from facesearch.models.detect.torch_mmod import build_torch_mmod
from facesearch.models.runtime import torch_placement

log = logging.getLogger(__name__)

DEFAULT_BATCH = 64
_MAX_PLANS = 64  # pyramid layouts kept on the device (a few MB each), one per input size


# --------------------------------------------------------------------------------------------
# dlib's bilinear resize and tiled pyramid, on the device


class _ResizePlan:
    """:func:`~facesearch.models.detect.mmod_pyramid.resize_bilinear` for one (in, out) size, as device tensors.

    The index and weight tables are the CPU function's own (its ``resize_columns`` and ``sequential_sum``);
    the four weight products of the float32 part are precomputed exactly as it computes them, and each
    operation below is a separate elementwise op (no fused multiply-add), so results match to the bit.
    """

    def __init__(self, in_h: int, in_w: int, out_h: int, out_w: int, *, to_uint8: bool, device: torch.device):
        step_y = (in_h - 1) / max(out_h - 1, 1)
        y = sequential_sum(-step_y, step_y, out_h)
        top = np.floor(y).astype(np.int64)
        bottom = np.minimum(top + 1, in_h - 1)
        tb = y - top
        tb32, inv_tb32 = tb.astype(np.float32)[:, None], (1.0 - tb).astype(np.float32)[:, None]
        cols = resize_columns(in_w, out_w)
        lr = cols.lr
        inv_lr = np.float32(1) - lr
        t_lr = cols.tail_lr if to_uint8 else cols.tail_lr.astype(np.float32)

        def put(array: np.ndarray) -> torch.Tensor:
            return torch.from_numpy(np.ascontiguousarray(array)).to(device)

        self.to_uint8 = to_uint8
        self.shape = (out_h, out_w)
        self.first = cols.first_tail
        self.top, self.bottom = put(top), put(bottom)
        self.left, self.right = put(cols.left), put(cols.left + 1)
        self.weights = [put(inv_tb32 * inv_lr), put(inv_tb32 * lr), put(tb32 * inv_lr), put(tb32 * lr)]
        self.tail_left, self.tail_right = put(cols.tail_left), put(cols.tail_right)
        self.tail_lr, self.tail_inv = put(t_lr), put(1 - t_lr)
        self.tb64, self.inv_tb64 = put(tb[:, None]), put(1 - tb[:, None])

    def __call__(self, src: torch.Tensor) -> torch.Tensor:
        """(N, C, H, W) uint8 (``to_uint8``) or float32 -> (N, C, out_h, out_w) of the same dtype."""
        upper = src.index_select(-2, self.top).to(torch.float32)
        lower = src.index_select(-2, self.bottom).to(torch.float32)
        out = torch.empty(
            (*src.shape[:-2], *self.shape), dtype=torch.uint8 if self.to_uint8 else torch.float32, device=src.device
        )
        if self.first:
            w1, w2, w3, w4 = self.weights
            acc = upper.index_select(-1, self.left) * w1
            acc = acc + upper.index_select(-1, self.right) * w2
            acc = acc + lower.index_select(-1, self.left) * w3
            acc = acc + lower.index_select(-1, self.right) * w4
            out[..., : self.first] = acc.trunc() if self.to_uint8 else acc
        if self.first < self.shape[1]:
            if self.to_uint8:  # the scalar tail runs in double
                upper, lower = upper.double(), lower.double()
            tail_top = upper.index_select(-1, self.tail_left) * self.tail_inv
            tail_top = tail_top + upper.index_select(-1, self.tail_right) * self.tail_lr
            tail_bottom = lower.index_select(-1, self.tail_left) * self.tail_inv
            tail_bottom = tail_bottom + lower.index_select(-1, self.tail_right) * self.tail_lr
            tail = tail_top.double() * self.inv_tb64 + tail_bottom.double() * self.tb64
            out[..., self.first :] = tail.trunc() if self.to_uint8 else tail
        return out


@dataclass
class _PyramidPlan:
    """For one input size: the pyramid_up resizes, the canvas layout and the level-to-level resizes."""

    ups: list[_ResizePlan]
    tiles: TiledPyramid
    levels: list[_ResizePlan]  # levels[i] makes level i + 1 from level i


class TorchPyramid:
    """dlib's ``pyramid_up`` (``upsample`` times) and tiled pyramid canvas, for batches on a device."""

    def __init__(self, mmod: MmodSettings, device: torch.device) -> None:
        self.mmod = mmod
        self.device = device
        self._plans: dict[tuple[int, int, int], _PyramidPlan] = {}
        self._means = torch.tensor(mmod.means, dtype=torch.float32, device=device).reshape(1, 3, 1, 1)

    def plan(self, height: int, width: int, upsample: int) -> _PyramidPlan:
        key = (height, width, upsample)
        if key not in self._plans:
            if len(self._plans) >= _MAX_PLANS:  # photos of many sizes: forget the oldest layout
                del self._plans[next(iter(self._plans))]
            ups = []
            for _ in range(max(0, upsample)):  # sizes as mmod_pyramid.pyramid_up computes them
                out_h, out_w = int(lround((height - 1 + 0.75) * 2)) + 1, int(lround((width - 1 + 1.25) * 2)) + 1
                ups.append(_ResizePlan(height, width, out_h, out_w, to_uint8=True, device=self.device))
                height, width = out_h, out_w
            m = self.mmod
            tiles = tile_pyramid(height, width, m.pyramid_down, m.pyramid_padding, m.pyramid_outer_padding)
            sizes = [(b - t + 1, r - left + 1) for left, t, r, b in tiles.rects]
            levels = [
                _ResizePlan(*sizes[i], *sizes[i + 1], to_uint8=False, device=self.device) for i in range(len(sizes) - 1)
            ]
            self._plans[key] = _PyramidPlan(ups, tiles, levels)
        return self._plans[key]

    def canvas(self, images: torch.Tensor, plan: _PyramidPlan) -> torch.Tensor:
        """uint8 RGB images (N, H, W, 3) on the device -> normalised canvases float32 (N, 3, H', W')."""
        x = images.permute(0, 3, 1, 2)
        for up in plan.ups:
            x = up(x)
        level = (x.to(torch.float32) - self._means) / 256.0
        tiles = plan.tiles
        canvas = torch.zeros((len(images), 3, tiles.height, tiles.width), dtype=torch.float32, device=self.device)
        for index, (left, top, right, bottom) in enumerate(tiles.rects):
            if index:
                level = plan.levels[index - 1](level)
            canvas[:, :, top : bottom + 1, left : right + 1] = level
        return canvas


# --------------------------------------------------------------------------------------------
# Batched detection


class TorchBatchDetector:
    """dlib's CNN face detector for many images at once: pyramid and network on the device.

    :meth:`mmod_boxes_batch` gives, for each image, what ``CnnFaceDetector.mmod_boxes`` gives;
    :meth:`detect_batch` what ``CnnFaceDetector.detect`` gives (working-size reduction, landmarks on
    the CPU). Images of one size are batched together (an LFW folder is one batch shape).
    """

    name = "dlib_cnn_mmod"

    def __init__(
        self,
        settings: DetectorSettings | None = None,
        *,
        device: str | torch.device = "cuda",
        dtype: str | torch.dtype = "float32",
        batch_size: int = DEFAULT_BATCH,
        network: DlibNetwork | None = None,
        landmarks: bool = True,
    ) -> None:
        self.settings = settings or DetectorSettings()
        placement = torch_placement(device, dtype)  # checked before the weights are read
        self.device, self.dtype = placement.device, placement.dtype
        self.batch_size = max(1, int(batch_size))
        self.net = placement.place(build_torch_mmod(network))
        self.mmod = self.net.settings
        self.pyramid = TorchPyramid(self.mmod, self.device)
        self._landmarks = FivePointLandmarker() if landmarks else None
        self._lock = threading.Lock()

    def score_maps(self, images: torch.Tensor | np.ndarray, upsample: int) -> tuple[np.ndarray, TiledPyramid]:
        """Raw score maps (N, H', W') of same-size uint8 RGB images (N, H, W, 3), and their canvas layout."""
        scores, tiles = self._scores(images, upsample)
        if scores is None:
            return np.zeros((len(images), 0, 0), np.float32), tiles
        return scores.cpu().numpy(), tiles

    def score_cells(
        self, images: torch.Tensor | np.ndarray, upsample: int, threshold: float
    ) -> tuple[list[ScoreCells], TiledPyramid]:
        """Each image's cells above ``threshold`` (what decoding needs), found on the device.

        A score map is larger than its photo (the whole pyramid, ~0.5 MB for 250x250 with one
        upsampling); a photo has a handful of cells above the threshold, so only those leave the device.
        """
        scores, tiles = self._scores(images, upsample)
        if scores is None:
            empty = ScoreCells(np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, np.float32))
            return [empty] * len(images), tiles
        with torch.inference_mode():
            index = torch.nonzero(scores > threshold)  # (k, 3): image, row, col, in row-major order
            values = scores[index[:, 0], index[:, 1], index[:, 2]]
            index, values = index.cpu().numpy(), values.float().cpu().numpy()
        bounds = np.searchsorted(index[:, 0], np.arange(len(scores) + 1))
        return [
            ScoreCells(index[lo:hi, 1], index[lo:hi, 2], values[lo:hi])
            for lo, hi in zip(bounds[:-1], bounds[1:], strict=True)
        ], tiles

    def _scores(self, images: torch.Tensor | np.ndarray, upsample: int) -> tuple[torch.Tensor | None, TiledPyramid]:
        """Score maps on the device (float32), or None when the photos are too small for one output cell."""
        if isinstance(images, np.ndarray) and not images.flags.writeable:
            images = images.copy()  # torch.from_numpy warns on read-only arrays
        batch = torch.as_tensor(images)
        plan = self.pyramid.plan(int(batch.shape[1]), int(batch.shape[2]), upsample)
        if min(plan.tiles.height, plan.tiles.width) < MIN_CANVAS:
            return None, plan.tiles
        outputs = []
        with self._lock, torch.inference_mode():
            for start in range(0, len(batch), self.batch_size):
                chunk = batch[start : start + self.batch_size]
                if chunk.device != self.device:
                    pin = self.device.type == "cuda" and chunk.device.type == "cpu"
                    chunk = (chunk.pin_memory() if pin else chunk).to(self.device, non_blocking=pin)
                canvas = self.pyramid.canvas(chunk, plan)
                if self.device.type == "cuda":
                    canvas = canvas.contiguous(memory_format=torch.channels_last)
                outputs.append(self.net(canvas)[:, 0].float())
            return torch.cat(outputs), plan.tiles

    def mmod_boxes_batch(
        self, images: Sequence[np.ndarray] | torch.Tensor, upsample: int | None = None, threshold: float | None = None
    ) -> list[list[MmodBox]]:
        """For each image, dlib's detections (best first), as ``CnnFaceDetector.mmod_boxes`` gives them."""
        upsample = self.settings.upsample if upsample is None else upsample
        threshold = self.settings.min_score if threshold is None else threshold
        if isinstance(images, torch.Tensor):
            groups = {tuple(images.shape[1:3]): list(range(len(images)))}
        else:
            images = [as_rgb(image) for image in images]
            groups = defaultdict(list)
            for index, image in enumerate(images):
                groups[image.shape[:2]].append(index)
        found: list[list[MmodBox]] = [[] for _ in range(len(images))]
        for indices in groups.values():
            if isinstance(images, torch.Tensor):
                batch: torch.Tensor | np.ndarray = images
            else:
                batch = np.stack([images[i] for i in indices])
            scores, tiles = self.score_maps(batch, upsample)
            if scores.size == 0:
                continue
            for index, score_map in zip(indices, scores, strict=True):
                found[index] = boxes_from_scores(score_map, tiles, self.mmod, threshold, upsample)
        return found

    def detect_batch(self, images: Sequence[np.ndarray]) -> list[list[Detection]]:
        """For each RGB uint8 image, every face (largest first) with its 5 landmarks, as ``detect`` gives them."""
        if self._landmarks is None:
            raise ModelError("this TorchBatchDetector was built without landmarks")
        rgbs = [as_rgb(image) for image in images]
        works = [downscale(rgb, self.settings.working_size) for rgb in rgbs]
        boxes = self.mmod_boxes_batch([work for work, _ in works])
        return [
            self._landmarks.detections(rgb, work, scale, ((b.left, b.top, b.right, b.bottom, b.score) for b in found))
            for rgb, (work, scale), found in zip(rgbs, works, boxes, strict=True)
        ]

    def detect(self, rgb: np.ndarray) -> list[Detection]:
        """One image (the FaceDetector protocol); batches are where this class is fast."""
        return self.detect_batch([rgb])[0]

    def landmarks_in_box(self, rgb: np.ndarray, box: tuple[int, int, int, int]) -> Detection:
        if self._landmarks is None:
            raise ModelError("this TorchBatchDetector was built without landmarks")
        return self._landmarks.in_box(as_rgb(rgb), box)
