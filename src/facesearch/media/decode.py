"""Turn untrusted image bytes into an RGB array, or reject them with a specific reason.

Every photo of an ingestion batch goes through :func:`decode_image`. A bad file must never crash
or stall a batch of thousands, so every failure becomes an :class:`~facesearch.errors.ImageRejected`
with a machine-readable ``code``:

``empty_file``       the input has zero bytes;
``not_an_image``     Pillow cannot identify it (a text file renamed ``.jpg``...);
``unsupported``      a real image, but of a format or mode we do not accept (HEIC, PSD, LAB...);
``too_many_pixels``  width x height exceeds ``max_pixels`` (checked from the header, before decoding);
``truncated``        the data ends early (a half-downloaded JPEG...);
``corrupt``          any other decode failure.

Pixel data is normalised to what the face pipeline expects: 8-bit RGB, EXIF orientation applied,
transparency composited onto white, CMYK converted, 16-bit and float grayscale scaled (not clipped).
"""

from __future__ import annotations

import hashlib
import io
import logging
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

import numpy as np

from facesearch.errors import ImageRejected

if TYPE_CHECKING:
    from PIL import Image

logger = logging.getLogger(__name__)

__all__ = ["ACCEPTED_FORMATS", "DecodedImage", "decode_image", "sha256_hex"]

#: Formats Pillow may parse. Restricting ``Image.open`` to these keeps Pillow's more exotic (and less
#: battle-tested) parsers away from untrusted bytes. Pillow's JPEG opener also returns MPO, the
#: multi-picture JPEG many cameras write; it is accepted and reported as "JPEG".
ACCEPTED_FORMATS: tuple[str, ...] = ("JPEG", "PNG", "WEBP", "GIF", "BMP", "TIFF")

_HIGH_DEPTH_MODES = frozenset({"I", "F", "I;16", "I;16L", "I;16B", "I;16N"})
_EXIF_IFD = 0x8769
_EXIF_DATETIME_ORIGINAL = 0x9003
_EXIF_DATETIME = 0x0132
_EXIF_TIME_FORMATS = ("%Y:%m:%d %H:%M:%S", "%Y-%m-%d %H:%M:%S", "%Y-%m-%dT%H:%M:%S")

#: Leading bytes of the accepted formats: used only to word the message when Pillow cannot read a
#: header that starts like one of them (which means truncated or damaged, not "not an image").
_SIGNATURES: tuple[tuple[bytes, str], ...] = (
    (b"\xff\xd8\xff", "JPEG"),
    (b"\x89PNG\r\n\x1a\n", "PNG"),
    (b"GIF87a", "GIF"),
    (b"GIF89a", "GIF"),
    (b"II*\x00", "TIFF"),
    (b"MM\x00*", "TIFF"),
)


@dataclass(frozen=True)
class DecodedImage:
    """A decoded, upright, 8-bit RGB image.

    ``rgb`` is a writable, C-contiguous ``(height, width, 3)`` uint8 array owned by this object.
    ``width``/``height`` are measured after EXIF orientation. ``format`` is Pillow's name of the
    container ("JPEG", "PNG", "WEBP", "GIF", "BMP", "TIFF"; MPO is reported as "JPEG").
    ``exif_time`` is EXIF DateTimeOriginal, else DateTime, as a naive datetime (EXIF carries no
    reliable time zone), or None when absent or unparseable.
    """

    rgb: np.ndarray
    width: int
    height: int
    format: str
    exif_time: datetime | None


def sha256_hex(data: bytes) -> str:
    """Return the hex SHA-256 of ``data``: the content identity used to deduplicate photos."""
    return hashlib.sha256(data).hexdigest()


def decode_image(data: bytes, *, max_pixels: int = 80_000_000) -> DecodedImage:
    """Decode ``data`` into an upright 8-bit RGB image, or raise :class:`ImageRejected`.

    The pixel count is checked from the header before any pixel is decoded, so a decompression
    bomb never allocates its canvas. Pillow's own bomb guard (``Image.MAX_IMAGE_PIXELS``, about
    89 Mpx for a warning and twice that for an error) is also mapped to ``too_many_pixels``; it
    means a ``max_pixels`` above about 179 Mpx cannot be honoured without changing Pillow's global.
    Truncated files are rejected: ``ImageFile.LOAD_TRUNCATED_IMAGES`` is left untouched.
    """
    if max_pixels <= 0:
        raise ValueError(f"max_pixels must be positive, got {max_pixels}")
    if not data:
        raise ImageRejected("empty file (0 bytes)", code="empty_file")
    image = _open(data)
    try:
        _check_pixels(image, max_pixels)
        _load(image, data)
        exif_time = _exif_time(image)
        _apply_orientation(image)
        rgb = _convert(image, data)
        fmt = "JPEG" if image.format == "MPO" else str(image.format)
    finally:
        image.close()
    height, width = rgb.shape[:2]
    return DecodedImage(rgb=rgb, width=width, height=height, format=fmt, exif_time=exif_time)


def _open(data: bytes) -> Image.Image:
    """Parse the header only, restricted to the accepted formats, and map every failure to a code."""
    from PIL import Image, UnidentifiedImageError  # imported when a photo is decoded, not with the module

    try:
        return Image.open(io.BytesIO(data), formats=ACCEPTED_FORMATS)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        # The warning is raised (rather than emitted) when warnings are turned into errors.
        raise ImageRejected(f"image has too many pixels: {exc}", code="too_many_pixels") from exc
    except UnidentifiedImageError as exc:
        raise _unidentified(data) from exc
    except Exception as exc:  # untrusted input: any parser failure is a rejection
        if _looks_like(data) is None:
            # Pillow matched a weak prefix (text starting with "BM"...) and then failed.
            raise ImageRejected(
                f"not an image: no supported format recognised ({type(exc).__name__}: {exc})",
                code="not_an_image",
            ) from exc
        raise _decode_failure(exc, data, "reading the header") from exc


def _unidentified(data: bytes) -> ImageRejected:
    """Explain why Pillow (restricted to accepted formats) did not recognise the bytes."""
    name = _looks_like(data)
    if name is not None:
        if _is_cut_short(data):
            return ImageRejected(f"{name} file is truncated: its header is incomplete", code="truncated")
        return ImageRejected(f"starts like a {name} file but its header is corrupt", code="corrupt")
    other = _identify_other_format(data)
    if other is not None:
        return ImageRejected(
            f"{other} images are not supported (accepted: JPEG, PNG, WebP, GIF, BMP, TIFF)",
            code="unsupported",
        )
    return ImageRejected("not an image: no supported image format recognised", code="not_an_image")


def _looks_like(data: bytes) -> str | None:
    """The accepted format whose signature ``data`` starts with, if any.

    BMP's "BM" alone would match plain text, so its reserved header bytes must be zero as well.
    """
    for signature, name in _SIGNATURES:
        if data.startswith(signature):
            return name
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "WebP"
    if data[:2] == b"BM" and data[6:10] == b"\x00\x00\x00\x00":
        return "BMP"
    return None


def _identify_other_format(data: bytes) -> str | None:
    """Name a format we do not accept, so the user learns "convert your HEIC" and not "not an image"."""
    from PIL import Image  # imported when a photo is decoded, not with the module

    if data[4:8] == b"ftyp":
        brand = data[8:12].decode("ascii", "replace").strip()
        return "AVIF" if brand.startswith("avi") else f"HEIF (brand {brand!r})"
    try:
        with Image.open(io.BytesIO(data)) as other:
            return str(other.format)
    except Exception:  # only naming the format; failure just means "unknown"
        return None


def _check_pixels(image: Image.Image, max_pixels: int) -> None:
    """Reject from the header's dimensions, before any pixel buffer is allocated."""
    width, height = image.size
    if width <= 0 or height <= 0:
        raise ImageRejected(f"invalid dimensions {width}x{height}", code="corrupt")
    if width * height > max_pixels:
        raise ImageRejected(
            f"image is {width}x{height} = {width * height} pixels, above the limit of {max_pixels}",
            code="too_many_pixels",
        )


def _load(image: Image.Image, data: bytes) -> None:
    """Decode the pixels (first frame only for animations and multi-page files)."""
    from PIL import Image  # imported when a photo is decoded, not with the module

    try:
        image.load()
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        # GIF frames are checked again at load time; a frame may be larger than the canvas.
        raise ImageRejected(f"image has too many pixels: {exc}", code="too_many_pixels") from exc
    except Exception as exc:  # untrusted input: any decoder failure is a rejection
        raise _decode_failure(exc, data, "decoding") from exc


def _decode_failure(exc: Exception, data: bytes, stage: str) -> ImageRejected:
    """Tell a truncated file (worth re-downloading) apart from one that is damaged otherwise."""
    if isinstance(exc, MemoryError):
        return ImageRejected(f"ran out of memory ({stage})", code="corrupt")
    detail = f"{type(exc).__name__}: {exc}"
    if isinstance(exc, EOFError) or "truncated" in str(exc).lower() or _is_cut_short(data):
        return ImageRejected(f"image data is truncated ({stage}: {detail})", code="truncated")
    return ImageRejected(f"image data is corrupt ({stage}: {detail})", code="corrupt")


def _is_cut_short(data: bytes) -> bool:
    """Whether the bytes stop before the format's end marker or declared size.

    Decoders word premature ends inconsistently (libwebp says "could not create decoder object"),
    so the container is checked directly: JPEG ends with EOI, PNG with IEND, GIF with ';', and
    BMP and WebP declare their total size in the header. TIFF has no such marker.
    """
    if data.startswith(b"\xff\xd8"):
        return not data.rstrip(b"\x00").endswith(b"\xff\xd9")
    if data.startswith(b"\x89PNG"):
        return b"IEND" not in data[-16:]
    if data.startswith(b"GIF8"):
        return not data.rstrip(b"\x00").endswith(b";")
    if data.startswith(b"BM") and len(data) >= 10:
        return len(data) < int.from_bytes(data[2:6], "little")
    if data.startswith(b"RIFF") and data[8:12] == b"WEBP":
        return len(data) < int.from_bytes(data[4:8], "little") + 8
    return False


def _exif_time(image: Image.Image) -> datetime | None:
    """DateTimeOriginal (when the shutter fired), else DateTime (often the last edit)."""
    try:
        exif = image.getexif()
        candidates = (exif.get_ifd(_EXIF_IFD).get(_EXIF_DATETIME_ORIGINAL), exif.get(_EXIF_DATETIME))
    except Exception as exc:  # malformed EXIF must not cost us the photo
        logger.debug("ignoring unreadable EXIF: %s: %s", type(exc).__name__, exc)
        return None
    for value in candidates:
        parsed = _parse_exif_datetime(value)
        if parsed is not None:
            return parsed
    return None


def _parse_exif_datetime(value: object) -> datetime | None:
    """Parse EXIF's "YYYY:MM:DD HH:MM:SS"; placeholders such as "0000:00:00 00:00:00" give None."""
    if isinstance(value, bytes):
        value = value.decode("ascii", "replace")
    if not isinstance(value, str):
        return None
    text = value.strip("\x00 \t\r\n")[:19]
    for fmt in _EXIF_TIME_FORMATS:
        try:
            return datetime.strptime(text, fmt)
        except ValueError:
            continue
    return None


def _apply_orientation(image: Image.Image) -> None:
    """Rotate/flip per EXIF Orientation, in place, before any other processing.

    The image is already decoded, so a failure here can only come from malformed EXIF; the photo
    is then kept as stored rather than rejected.
    """
    from PIL import ImageOps  # imported when a photo is decoded, not with the module

    try:
        ImageOps.exif_transpose(image, in_place=True)
    except Exception as exc:  # malformed EXIF must not cost us the photo
        logger.warning("EXIF orientation not applied: %s: %s", type(exc).__name__, exc)


def _convert(image: Image.Image, data: bytes) -> np.ndarray:
    """Mode conversion on untrusted data can still fail (odd palettes, memory): reject, never raise."""
    try:
        return _to_rgb_array(image)
    except ImageRejected:
        raise
    except Exception as exc:  # untrusted input: any conversion failure is a rejection
        raise _decode_failure(exc, data, f"converting mode {image.mode} to RGB") from exc


def _to_rgb_array(image: Image.Image) -> np.ndarray:
    """Convert any accepted mode to a writable, C-contiguous (H, W, 3) uint8 array."""
    if image.mode in _HIGH_DEPTH_MODES:
        return _high_depth_gray_to_rgb(image)
    # CMYK goes through convert("RGB"): Pillow already undoes Adobe's inverted CMYK JPEGs when decoding.
    try:
        rgb = _composite_on_white(image) if image.has_transparency_data else image.convert("RGB")
    except ValueError as exc:
        raise ImageRejected(f"image mode {image.mode} is not supported: {exc}", code="unsupported") from exc
    return np.ascontiguousarray(np.array(rgb, dtype=np.uint8))


def _composite_on_white(image: Image.Image) -> Image.Image:
    """Flatten transparency onto white: black would hide dark hair and glasses edges."""
    from PIL import Image  # imported when a photo is decoded, not with the module

    rgba = image.convert("RGBA")
    white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
    return Image.alpha_composite(white, rgba).convert("RGB")


def _high_depth_gray_to_rgb(image: Image.Image) -> np.ndarray:
    """Scale 16-bit, 32-bit integer and float grayscale to 8 bits without clipping.

    Pillow's ``convert("L")`` clips these modes at 255, which turns most 16-bit photos white.
    """
    values = np.asarray(image)
    if image.mode.startswith("I;16"):
        gray = _scale_16bit(values)
    elif image.mode == "I":
        gray = _scale_int(values)
    else:
        gray = _scale_float(values)
    return np.ascontiguousarray(np.repeat(gray[:, :, np.newaxis], 3, axis=2))


def _scale_16bit(values: np.ndarray) -> np.ndarray:
    """Map 0..65535 onto 0..255, rounding (65535 / 257 == 255 exactly)."""
    return ((values.astype(np.uint32) + 128) // 257).astype(np.uint8)


def _scale_int(values: np.ndarray) -> np.ndarray:
    """Mode "I" holds 32-bit integers; guess the real depth from the value range.

    Values within 0..255 are 8-bit data in a wide container, within 0..65535 16-bit data (how older
    Pillow and TIFF encoders store it); anything else (negative, wider) is stretched min..max.
    """
    if values.size == 0:
        return np.zeros(values.shape, dtype=np.uint8)
    low, high = int(values.min()), int(values.max())
    if low >= 0 and high <= 255:
        return values.astype(np.uint8)
    if low >= 0 and high <= 65535:
        return _scale_16bit(values)
    return _stretch(values.astype(np.float32), float(low), float(high))


def _scale_float(values: np.ndarray) -> np.ndarray:
    """Mode "F": values in 0..1 are taken as normalised intensity, anything else is stretched."""
    finite = np.isfinite(values)
    if not finite.any():
        return np.zeros(values.shape, dtype=np.uint8)
    clean = np.where(finite, values, 0.0).astype(np.float32)
    low, high = float(clean[finite].min()), float(clean[finite].max())
    if low >= 0.0 and high <= 1.0:
        return np.rint(clean * 255.0).astype(np.uint8)
    return _stretch(clean, low, high)


def _stretch(values: np.ndarray, low: float, high: float) -> np.ndarray:
    """Linearly map low..high onto 0..255; a flat image becomes mid-gray rather than dividing by 0."""
    if high <= low:
        return np.full(values.shape, 128, dtype=np.uint8)
    scaled = (values - low) * (255.0 / (high - low))
    return np.clip(np.rint(scaled), 0, 255).astype(np.uint8)
