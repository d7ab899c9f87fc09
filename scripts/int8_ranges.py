"""Measure the activation ranges that quantise dlib's ResNet to int8, and write the shipped JSON.

Issue 15. Runs the affine-folded float ResNet (``facesearch.models.convert.resnet_int8.fold_affine``)
over aligned lfw-dev chips of people who are in no pairsDevTrain pair (``bench/int8_chips.py``: the
plain chip, the 4 shifted ones and their mirrors, as the default recipe embeds them) and keeps, per
tensor, the lowest and highest value seen: aggregate figures only, no chip and no embedding. The
result is ``src/facesearch/models/convert/dlib_resnet_int8_ranges.json``, which the conversion on a
user's machine quantises with.

    PYTHONPATH=src:. python -m bench.int8_chips            # once: align the chips (kept in /tmp)
    PYTHONPATH=src:. python -m scripts.int8_ranges [--photos 400] [--out PATH]
"""

from __future__ import annotations

import argparse
import json
import logging
import tempfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import onnx

from bench import int8_chips
from facesearch.models.convert.dlib_format import read_dlib_network
from facesearch.models.convert.dlib_resnet_onnx import INPUT_NAME, build_resnet_onnx
from facesearch.models.convert.resnet_int8 import OP_TYPES, RANGES_FILE, Int8Ranges, fold_affine
from facesearch.models.weights import DLIB_RESNET, dlib_model_path

log = logging.getLogger(__name__)
OUT = Path("src/facesearch/models/convert") / RANGES_FILE
BATCH = 50


class ChipReader:
    """ONNX Runtime's calibration reader over chips and their mirrors, a batch at a time."""

    def __init__(self, chips: np.ndarray) -> None:
        views = chips.reshape(-1, *chips.shape[2:])
        self._batches: Iterator[np.ndarray] = iter(
            np.ascontiguousarray(batch)
            for start in range(0, len(views), BATCH)
            for batch in (views[start : start + BATCH], views[start : start + BATCH, :, ::-1])
        )

    def get_next(self) -> dict[str, np.ndarray] | None:
        batch = next(self._batches, None)
        return None if batch is None else {INPUT_NAME: batch}


def measure(chips: np.ndarray) -> Int8Ranges:
    """Per-tensor (min, max) of the folded float ResNet over ``chips`` (N, views, 150, 150, 3)."""
    from onnxruntime.quantization import CalibrationMethod, create_calibrator

    network = read_dlib_network(dlib_model_path(DLIB_RESNET))
    folded = fold_affine(build_resnet_onnx(network))
    with tempfile.TemporaryDirectory(prefix="facesearch-ranges-") as tmp:
        path = Path(tmp) / "folded.onnx"
        onnx.save_model(folded, path)
        calibrator = create_calibrator(
            path,
            OP_TYPES,
            augmented_model_path=str(Path(tmp) / "augmented.onnx"),
            calibrate_method=CalibrationMethod.MinMax,
        )
        for start in range(0, len(chips), 50):  # each call merges into the ranges so far: bounded memory
            calibrator.collect_data(ChipReader(chips[start : start + 50]))
        data = calibrator.compute_data()
    ranges = {name: (_round(np.min(t.range_value[0])), _round(np.max(t.range_value[1]))) for name, t in data.items()}
    return Int8Ranges(network.sha256, ranges, photos=len(chips), source=SOURCE)


def _round(value: np.floating) -> float:
    """A range end to 6 significant digits: ample for an 8-bit scale, and a short JSON."""
    return float(f"{float(value):.6g}")


SOURCE = (
    "scripts/int8_ranges.py: min/max per tensor over aligned lfw-dev chips (plain, 4 shifted, mirrored) "
    "of people in no pairsDevTrain pair"
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--photos", type=int, default=400, help="calibration photos to use (at most those aligned)")
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    _, chips = int8_chips.load("calibration")
    ranges = measure(np.asarray(chips[: args.photos]))
    args.out.write_text(json.dumps(ranges.to_json(), indent=1) + "\n")
    log.info("%d tensor ranges from %d photos -> %s", len(ranges.ranges), ranges.photos, args.out)


if __name__ == "__main__":
    main()
