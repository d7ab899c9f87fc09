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

import threading
from collections.abc import Callable
from pathlib import Path
from typing import Protocol

import numpy as np

from facesearch.models.convert.mmod_settings import INPUT_NAME, MMOD_KEY, MmodSettings
from facesearch.models.convert.onnx_files import cached_conversion
from facesearch.models.detect.base import Detection, DetectorSettings, as_rgb, downscale
from facesearch.models.detect.landmarks import FivePointLandmarker
from facesearch.models.detect.mmod_boxes import MmodBox, boxes_from_scores
from facesearch.models.detect.mmod_pyramid import MIN_CANVAS, pyramid_canvas, pyramid_up, tile_pyramid
from facesearch.models.runtime import onnx_session
from facesearch.models.weights import DLIB_MMOD


class MmodRunner(Protocol):
    """What runs the MMOD network for :class:`CnnFaceDetector`: ONNX Runtime by default, or another
    runner (e.g. ``facesearch.models.detect.torch_mmod.TorchMmodRunner`` on a GPU) built from the same weights."""

    mmod: MmodSettings

    def __call__(self, canvas: np.ndarray) -> np.ndarray:
        """Normalised canvases float32 [N, 3, H, W] -> raw score maps float32 [N, 1, H', W']."""
        ...


class OnnxMmodRunner:
    """The MMOD network run by ONNX Runtime: the default runner, on the CPU.

    The network is converted from dlib's weights when the runner is made (once per weights file with a
    ``cache_dir``, else in memory: ~0.1 s), and its decoding settings are read back from the model's
    metadata so that the code around the network can never disagree with it.
    """

    def __init__(self, cache_dir: Path | None = None, threads: int = 0) -> None:
        model = _mmod_model(cache_dir)
        self.session = onnx_session(model, threads=threads, what="the converted MMOD detector")
        self.mmod = MmodSettings.from_metadata(self.session.metadata)

    def __call__(self, canvas: np.ndarray) -> np.ndarray:
        return self.session.run({INPUT_NAME: canvas})[0]


def _mmod_model(cache_dir: Path | None) -> Path | bytes:
    """The converted network: its file in ``cache_dir`` (converted there the first time), else converted in memory.

    The converter, and with it ``onnx`` (~0.6 s of CPU to import), is imported only when a conversion runs:
    an ingest worker, a command or a server whose models folder holds the file never imports it (issue 11).
    """
    if cache_dir is None:
        from facesearch.models.convert.mmod_onnx import mmod_onnx_bytes

        return mmod_onnx_bytes()
    return converted_mmod(cache_dir)


def converted_mmod(cache_dir: Path) -> Path:
    """The CNN's ONNX file in ``cache_dir``, converted now if it is not there yet (LibraryRecipe.prepare)."""
    return cached_conversion(cache_dir, DLIB_MMOD, MMOD_KEY, _convert_mmod)


def _convert_mmod(dat_path: Path, onnx_path: Path) -> Path:
    from facesearch.models.convert.mmod_onnx import convert_mmod

    return convert_mmod(dat_path, onnx_path)


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
        self.runner: MmodRunner = runner if runner is not None else OnnxMmodRunner(cache_dir, threads)
        self.mmod = self.runner.mmod
        self._run: Callable[[np.ndarray], np.ndarray] = self.runner
        self._means = np.array(self.mmod.means, dtype=np.float32).reshape(3, 1, 1)
        self._lock = threading.Lock()
        self._landmarks = FivePointLandmarker()

    def detect(self, rgb: np.ndarray) -> list[Detection]:
        """Detect every face in an RGB uint8 image, largest first."""
        rgb = as_rgb(rgb)
        work, scale = downscale(rgb, self.settings.working_size)
        boxes = self.mmod_boxes(work, self.settings.upsample, self.settings.min_score)
        found = ((b.left, b.top, b.right, b.bottom, b.score) for b in boxes)
        return self._landmarks.detections(rgb, work, scale, found)

    def landmarks_in_box(self, rgb: np.ndarray, box: tuple[int, int, int, int]) -> Detection:
        """Landmarks for a face assumed to be in ``box`` (a fallback when the detector finds none)."""
        return self._landmarks.in_box(as_rgb(rgb), box)

    def mmod_boxes(self, rgb: np.ndarray, upsample: int = 0, threshold: float = 0.0) -> list[MmodBox]:
        """What ``dlib.cnn_face_detection_model_v1(...)(rgb, upsample)`` returns: boxes best first.

        No working-size reduction here; :meth:`detect` applies it first.
        """
        image = as_rgb(rgb)
        for _ in range(max(0, upsample)):
            image = pyramid_up(image)
        height, width = image.shape[:2]
        tiles = tile_pyramid(
            height, width, self.mmod.pyramid_down, self.mmod.pyramid_padding, self.mmod.pyramid_outer_padding
        )
        if min(tiles.height, tiles.width) < MIN_CANVAS:
            return []  # too small for one output cell, let alone an 80-pixel face
        normalised = (np.moveaxis(image, -1, 0).astype(np.float32) - self._means) / np.float32(256.0)
        canvas = pyramid_canvas(normalised, tiles)
        with self._lock:  # one run at a time; it already uses every thread it was given
            scores = self._run(canvas[None])
        return boxes_from_scores(scores[0, 0], tiles, self.mmod, threshold, upsample)
