"""The numbers dlib's CNN face detector needs around its network (:class:`MmodSettings`), apart from the converter.

Why a module of its own: the batched engine's preparation workers receive these settings pickled, and
unpickling imports the module that defines the class. Defined beside the converter, every worker paid
for importing ``onnx`` (~0.7 s of CPU each) without ever building a graph (issue 11, the suite's speed).
:mod:`facesearch.models.convert.mmod_onnx` writes them into the model's metadata and re-exports them.
"""

from __future__ import annotations

from dataclasses import dataclass

from facesearch.errors import ModelError

MMOD_KEY = "dlib_mmod_human_face_v1"  # the converted file's name (with the weights' sha256)
INPUT_NAME = "image"  # the graph's input and output, which the runner (models/detect/cnn.py) feeds and reads
OUTPUT_NAME = "scores"

PYRAMID_DOWN_N = 6
"""``input_rgb_image_pyramid<pyramid_down<6>>``: each level is 5/6 of the previous (fixed in C++, not stored)."""


@dataclass(frozen=True)
class MmodSettings:
    """What the code around the network needs; stored in (and read back from) the model's metadata.

    An output cell (row r, column c) is centred on input pixel ``(c * stride + offset, r * stride + offset)``
    (dlib's ``output_tensor_to_input_tensor``); a detection is a ``window_w`` x ``window_h`` box there.
    """

    means: tuple[float, float, float]
    window_w: int
    window_h: int
    nms_iou: float
    nms_covered: float
    stride: int
    offset: int
    pyramid_padding: int
    pyramid_outer_padding: int
    pyramid_down: int = PYRAMID_DOWN_N

    def to_metadata(self) -> dict[str, str]:
        return {
            "means": ",".join(repr(float(m)) for m in self.means),
            "window": f"{self.window_w}x{self.window_h}",
            "nms_iou": repr(float(self.nms_iou)),
            "nms_covered": repr(float(self.nms_covered)),
            "output_stride": str(self.stride),
            "output_offset": str(self.offset),
            "pyramid_padding": str(self.pyramid_padding),
            "pyramid_outer_padding": str(self.pyramid_outer_padding),
            "pyramid_down": str(self.pyramid_down),
        }

    @classmethod
    def from_metadata(cls, meta: dict[str, str]) -> MmodSettings:
        try:
            width, height = meta["window"].split("x")
            means = tuple(float(m) for m in meta["means"].split(","))
            return cls(
                means=(means[0], means[1], means[2]),
                window_w=int(width),
                window_h=int(height),
                nms_iou=float(meta["nms_iou"]),
                nms_covered=float(meta["nms_covered"]),
                stride=int(meta["output_stride"]),
                offset=int(meta["output_offset"]),
                pyramid_padding=int(meta["pyramid_padding"]),
                pyramid_outer_padding=int(meta["pyramid_outer_padding"]),
                pyramid_down=int(meta["pyramid_down"]),
            )
        except (KeyError, ValueError, IndexError) as exc:
            raise ModelError(f"not a converted dlib MMOD model (metadata: {exc})", code="model_mismatch") from exc
