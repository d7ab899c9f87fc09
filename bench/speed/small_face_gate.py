"""Issue 15, faster detection: MTCNN's first two stages as a gate that says where HOG's upsampled levels can find
a face (bench/speed/hog_variants.py).

HOG's upsampled levels 0-3 are ~60% of its time and find the 37-70 px faces; on lfw-dev 15 of 400 photos have
one. P-Net (a 12x12 fully convolutional net) and R-Net (24x24) of MTCNN (Zhang et al. 2016) propose faces of
any size for a few ms; only crops around their proposals then get the upsampled HOG run. Their weights come
from a registry wheel (facenet-pytorch 2.6.0, MIT, ``facenet_pytorch/data/{pnet,rnet}.pt``; the same weights
ship in ``mtcnn`` 1.0.0, MIT, as lz4 joblib pickles); the nets below are written from the layer shapes in
those files, converted to ONNX in memory and run by ONNX Runtime on one thread (as an ingest worker would).
Needs torch and the weights on the path: ``pip install --target /tmp/pkgs --no-deps facenet-pytorch``
(its own requirements pin torch < 2.3 and numpy < 2: the weights are what is used, not its code).
"""

from __future__ import annotations

import importlib.util
import io
from functools import lru_cache
from pathlib import Path

import numpy as np
from PIL import Image

Box = tuple[float, float, float, float]  # left, top, width, height

#: Face sizes (px of the working image) P-Net looks for: one pyramid scale each (12 / size).
SIZES = (36, 50, 70, 98)
NORM = 0.0078125  # MTCNN's input scaling: (pixel - 127.5) / 128


def weights_dir() -> Path | None:
    spec = importlib.util.find_spec("facenet_pytorch")
    if spec is None or spec.origin is None:
        return None
    path = Path(spec.origin).parent / "data"
    return path if (path / "pnet.pt").is_file() else None


def _nets() -> tuple[object, object]:
    import torch
    from torch import nn

    class PNet(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv1, self.prelu1 = nn.Conv2d(3, 10, 3), nn.PReLU(10)
            self.conv2, self.prelu2 = nn.Conv2d(10, 16, 3), nn.PReLU(16)
            self.conv3, self.prelu3 = nn.Conv2d(16, 32, 3), nn.PReLU(32)
            self.conv4_1, self.conv4_2 = nn.Conv2d(32, 2, 1), nn.Conv2d(32, 4, 1)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            x = nn.functional.max_pool2d(self.prelu1(self.conv1(x)), 2, 2, ceil_mode=True)
            x = self.prelu3(self.conv3(self.prelu2(self.conv2(x))))
            return torch.softmax(self.conv4_1(x), 1)[:, 1]  # face probability per 12x12 window, stride 2

    class RNet(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv1, self.prelu1 = nn.Conv2d(3, 28, 3), nn.PReLU(28)
            self.conv2, self.prelu2 = nn.Conv2d(28, 48, 3), nn.PReLU(48)
            self.conv3, self.prelu3 = nn.Conv2d(48, 64, 2), nn.PReLU(64)
            self.dense4, self.prelu4 = nn.Linear(576, 128), nn.PReLU(128)
            self.dense5_1, self.dense5_2 = nn.Linear(128, 2), nn.Linear(128, 4)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            x = nn.functional.max_pool2d(self.prelu1(self.conv1(x)), 3, 2, ceil_mode=True)
            x = nn.functional.max_pool2d(self.prelu2(self.conv2(x)), 3, 2, ceil_mode=True)
            x = self.prelu3(self.conv3(x)).permute(0, 3, 2, 1).reshape(-1, 576)  # the Caffe models' order
            return torch.softmax(self.dense5_1(self.prelu4(self.dense4(x))), 1)[:, 1]

    found = weights_dir()
    if found is None:
        raise RuntimeError("facenet_pytorch's MTCNN weights are not importable")
    pnet, rnet = PNet(), RNet()
    pnet.load_state_dict(torch.load(found / "pnet.pt", weights_only=True))
    rnet.load_state_dict(torch.load(found / "rnet.pt", weights_only=True))
    return pnet.eval(), rnet.eval()


@lru_cache(maxsize=1)
def sessions() -> tuple[object, object]:
    """P-Net and R-Net as ONNX Runtime sessions on one thread."""
    import onnxruntime as ort
    import torch

    def convert(model: object, shape: tuple[int, ...]) -> object:
        buffer = io.BytesIO()
        axes = {"x": {0: "n", 2: "h", 3: "w"}, "p": {0: "n"}}
        torch.onnx.export(model, torch.zeros(*shape), buffer, input_names=["x"], output_names=["p"],
                          dynamic_axes=axes, dynamo=False)  # fmt: skip
        options = ort.SessionOptions()
        options.intra_op_num_threads = options.inter_op_num_threads = 1
        return ort.InferenceSession(buffer.getvalue(), options, providers=["CPUExecutionProvider"])

    pnet, rnet = _nets()
    return convert(pnet, (1, 3, 50, 50)), convert(rnet, (1, 3, 24, 24))


def _nms(boxes: np.ndarray, scores: np.ndarray, iou: float) -> np.ndarray:
    """Indices kept by greedy non-maximum suppression; boxes as (x0, y0, x1, y1)."""
    order, keep = np.argsort(-scores), []
    area = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    while order.size:
        i, order = order[0], order[1:]
        keep.append(i)
        w = np.clip(np.minimum(boxes[i, 2], boxes[order, 2]) - np.maximum(boxes[i, 0], boxes[order, 0]), 0, None)
        h = np.clip(np.minimum(boxes[i, 3], boxes[order, 3]) - np.maximum(boxes[i, 1], boxes[order, 1]), 0, None)
        inter = w * h
        order = order[inter / (area[i] + area[order] - inter) < iou]
    return np.asarray(keep, dtype=np.int64)


def candidates(rgb: np.ndarray, p_threshold: float = 0.6, r_threshold: float = 0.7) -> list[Box]:
    """Square face proposals (left, top, side, side) in ``rgb``: P-Net over one scale per SIZES, NMS, R-Net."""
    pnet, rnet = sessions()
    height, width = rgb.shape[:2]
    image = Image.fromarray(rgb)
    found, scores = [], []
    for size in SIZES:
        scale = 12.0 / size
        small = image.resize((int(width * scale + 1), int(height * scale + 1)), Image.Resampling.BILINEAR)
        x = ((np.asarray(small, dtype=np.float32) - 127.5) * NORM).transpose(2, 0, 1)[None]
        prob = pnet.run(None, {"x": np.ascontiguousarray(x)})[0][0]
        ys, xs = np.nonzero(prob >= p_threshold)
        found += [((2 * x + 1) / scale, (2 * y + 1) / scale, (2 * x + 12) / scale, (2 * y + 12) / scale)
                  for y, x in zip(ys, xs, strict=True)]  # fmt: skip
        scores += prob[ys, xs].tolist()
    if not found:
        return []
    boxes = np.asarray(found)
    boxes = boxes[_nms(boxes, np.asarray(scores), 0.5)]
    crops = []
    for x0, y0, x1, y1 in boxes:
        box = (max(0, int(x0)), max(0, int(y0)), min(width, int(x1)), min(height, int(y1)))
        crop = image.crop(box) if box[2] - box[0] > 1 and box[3] - box[1] > 1 else Image.new("RGB", (24, 24))
        crops.append(np.asarray(crop.resize((24, 24), Image.Resampling.BILINEAR), dtype=np.float32))
    batch = ((np.stack(crops) - 127.5) * NORM).transpose(0, 3, 1, 2)
    prob = rnet.run(None, {"x": np.ascontiguousarray(batch)})[0]
    return [(x0, y0, x1 - x0, y1 - y0) for (x0, y0, x1, y1), p in zip(boxes, prob, strict=True) if p >= r_threshold]
