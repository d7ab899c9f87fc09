"""decode_image: every accepted format and mode, and every rejection code.

All images are synthetic patterns generated here (no photos of people, no shared data).
"""

from __future__ import annotations

import io
import struct
import time
import warnings
import zlib
from datetime import datetime

import numpy as np
import pytest
from PIL import Image

from facesearch.errors import ImageRejected
from facesearch.media.decode import DecodedImage, decode_image, sha256_hex

EXIF_IFD = 0x8769


def encode(image: Image.Image, fmt: str, **params: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **params)
    return buffer.getvalue()


def gradient_rgb(width: int = 64, height: int = 48) -> Image.Image:
    """Red ramps left to right, green top to bottom, blue constant: orientation is recoverable."""
    x = np.linspace(0, 255, width, dtype=np.float64)[np.newaxis, :].repeat(height, axis=0)
    y = np.linspace(0, 255, height, dtype=np.float64)[:, np.newaxis].repeat(width, axis=1)
    rgb = np.stack([x, y, np.full_like(x, 128)], axis=2).round().astype(np.uint8)
    return Image.fromarray(rgb)


def png_chunk(kind: bytes, payload: bytes) -> bytes:
    crc = zlib.crc32(kind + payload) & 0xFFFFFFFF
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", crc)


def raw_png(width: int, height: int, bit_depth: int, color_type: int, rows: bytes) -> bytes:
    """A PNG written by hand, for headers and depths Pillow will not write itself."""
    header = struct.pack(">IIBBBBB", width, height, bit_depth, color_type, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + png_chunk(b"IHDR", header)
        + png_chunk(b"IDAT", zlib.compress(rows))
        + png_chunk(b"IEND", b"")
    )


def rejection(data: bytes, **kwargs: int) -> ImageRejected:
    with pytest.raises(ImageRejected) as caught:
        decode_image(data, **kwargs)
    return caught.value


def assert_valid(decoded: DecodedImage, width: int, height: int, fmt: str) -> None:
    assert decoded.rgb.shape == (height, width, 3)
    assert decoded.rgb.dtype == np.uint8
    assert decoded.rgb.flags.c_contiguous
    assert decoded.rgb.flags.writeable
    assert (decoded.width, decoded.height, decoded.format) == (width, height, fmt)


# --- accepted formats -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fmt", "params", "tolerance"),
    [
        ("PNG", {}, 0),
        ("BMP", {}, 0),
        ("TIFF", {}, 0),
        ("WEBP", {"lossless": True}, 0),
        ("JPEG", {"quality": 95}, 12),
        ("WEBP", {"quality": 90}, 16),
    ],
)
def test_formats_decode_to_the_same_pixels(fmt: str, params: dict[str, object], tolerance: int) -> None:
    source = gradient_rgb()
    decoded = decode_image(encode(source, fmt, **params))
    assert_valid(decoded, 64, 48, fmt)
    difference = np.abs(decoded.rgb.astype(int) - np.asarray(source).astype(int))
    assert difference.mean() <= tolerance / 3
    assert difference.max() <= tolerance * 4


def test_gif_takes_the_first_frame() -> None:
    frames = [Image.new("RGB", (20, 10), colour) for colour in [(255, 0, 0), (0, 0, 255), (0, 255, 0)]]
    buffer = io.BytesIO()
    frames[0].save(buffer, "GIF", save_all=True, append_images=frames[1:], duration=50)
    decoded = decode_image(buffer.getvalue())
    assert_valid(decoded, 20, 10, "GIF")
    assert decoded.rgb.reshape(-1, 3).tolist() == [[255, 0, 0]] * 200


def test_mpo_is_reported_as_jpeg() -> None:
    buffer = io.BytesIO()
    gradient_rgb().save(buffer, "MPO", save_all=True, append_images=[Image.new("RGB", (64, 48))])
    assert Image.open(io.BytesIO(buffer.getvalue())).format == "MPO"
    decoded = decode_image(buffer.getvalue())
    assert_valid(decoded, 64, 48, "JPEG")
    assert decoded.rgb[:, :, 2].mean() == pytest.approx(128, abs=4)  # first picture, not the black one


# --- modes ----------------------------------------------------------------------------------------


def test_rgba_transparent_becomes_white_and_opaque_keeps_colour() -> None:
    rgba = np.zeros((8, 8, 4), dtype=np.uint8)
    rgba[:, :4] = (0, 0, 0, 0)  # fully transparent black
    rgba[:, 4:] = (200, 10, 10, 255)  # opaque red
    decoded = decode_image(encode(Image.fromarray(rgba), "PNG"))
    assert decoded.rgb[:, :4].reshape(-1, 3).tolist() == [[255, 255, 255]] * 32
    assert decoded.rgb[:, 4:].reshape(-1, 3).tolist() == [[200, 10, 10]] * 32


def test_half_transparent_blends_with_white() -> None:
    decoded = decode_image(encode(Image.new("RGBA", (4, 4), (0, 0, 0, 128)), "PNG"))
    assert np.all(np.abs(decoded.rgb.astype(int) - 127) <= 1)


def test_la_transparent_becomes_white() -> None:
    decoded = decode_image(encode(Image.new("LA", (5, 5), (30, 0)), "PNG"))
    assert decoded.rgb.min() == 255


def test_palette_with_transparent_index_becomes_white() -> None:
    image = Image.new("P", (6, 6), 0)
    image.putpalette([0, 0, 0, 0, 255, 0])
    image.putpixel((0, 0), 1)
    decoded = decode_image(encode(image, "PNG", transparency=0))
    assert decoded.rgb[0, 0].tolist() == [0, 255, 0]
    assert decoded.rgb[5, 5].tolist() == [255, 255, 255]


def test_gif_transparency_becomes_white() -> None:
    image = Image.new("P", (6, 6), 0)
    image.putpalette([10, 20, 30, 200, 0, 0])
    image.putpixel((3, 3), 1)
    decoded = decode_image(encode(image, "GIF", transparency=0))
    assert decoded.rgb[0, 0].tolist() == [255, 255, 255]
    assert decoded.rgb[3, 3].tolist() == [200, 0, 0]


def test_grayscale_and_bilevel() -> None:
    gray = decode_image(encode(Image.new("L", (7, 3), 77), "PNG"))
    assert_valid(gray, 7, 3, "PNG")
    assert gray.rgb.reshape(-1).tolist() == [77] * 63
    bilevel = Image.new("1", (4, 2), 0)
    bilevel.putpixel((1, 1), 1)
    decoded = decode_image(encode(bilevel, "PNG"))
    assert decoded.rgb[1, 1].tolist() == [255, 255, 255]
    assert decoded.rgb[0, 0].tolist() == [0, 0, 0]


@pytest.mark.parametrize("fmt", ["JPEG", "TIFF"])
def test_cmyk_pure_cyan_becomes_rgb_cyan(fmt: str) -> None:
    decoded = decode_image(encode(Image.new("CMYK", (16, 16), (255, 0, 0, 0)), fmt))
    assert_valid(decoded, 16, 16, fmt)
    assert np.abs(decoded.rgb.astype(int) - [0, 255, 255]).max() <= 3


def test_cmyk_black_channel_darkens() -> None:
    decoded = decode_image(encode(Image.new("CMYK", (4, 4), (0, 0, 0, 255)), "TIFF"))
    assert decoded.rgb.max() == 0


@pytest.mark.parametrize("fmt", ["PNG", "TIFF"])
def test_16bit_gradient_keeps_full_range(fmt: str) -> None:
    ramp = np.linspace(0, 65535, 512).round().astype(np.uint16)[np.newaxis, :].repeat(4, axis=0)
    source = Image.fromarray(ramp)
    assert source.mode == "I;16"
    decoded = decode_image(encode(source, fmt))
    assert_valid(decoded, 512, 4, fmt)
    row = decoded.rgb[0, :, 0].astype(int)
    assert (row[0], row[-1]) == (0, 255)
    assert np.all(np.diff(row) >= 0)  # monotonic: nothing wrapped around
    assert len(np.unique(row)) == 256  # every 8-bit level used: scaled, not clipped at 255
    assert np.abs(row - ramp[0] / 257).max() <= 0.5


def test_16bit_big_endian_mode() -> None:
    image = Image.fromarray(np.array([[0, 257 * 100, 65535]], dtype=">u2"))
    assert image.mode == "I;16B"
    decoded = decode_image(encode(image, "TIFF"))
    assert decoded.rgb[0, :, 1].tolist() == [0, 100, 255]


def test_int32_tiff_with_16bit_values_is_scaled() -> None:
    values = np.array([[0, 32768, 65535]], dtype=np.int32)
    decoded = decode_image(encode(Image.fromarray(values), "TIFF"))
    assert decoded.rgb[0, :, 0].tolist() == [0, 128, 255]


def test_int32_tiff_with_8bit_values_is_kept() -> None:
    values = np.array([[0, 100, 255]], dtype=np.int32)
    decoded = decode_image(encode(Image.fromarray(values), "TIFF"))
    assert decoded.rgb[0, :, 0].tolist() == [0, 100, 255]


def test_int32_tiff_with_negative_values_is_stretched() -> None:
    values = np.array([[-1000, 0, 1000]], dtype=np.int32)
    decoded = decode_image(encode(Image.fromarray(values), "TIFF"))
    assert decoded.rgb[0, :, 0].tolist() == [0, 128, 255]


def test_float_tiff_in_unit_range_is_scaled() -> None:
    values = np.linspace(0.0, 1.0, 256, dtype=np.float32)[np.newaxis, :]
    decoded = decode_image(encode(Image.fromarray(values), "TIFF"))
    row = decoded.rgb[0, :, 0].astype(int)
    assert (row[0], row[-1]) == (0, 255)
    assert len(np.unique(row)) == 256


def test_float_tiff_outside_unit_range_is_stretched_and_nan_safe() -> None:
    values = np.array([[-5.0, 0.0, 5.0, np.nan]], dtype=np.float32)
    decoded = decode_image(encode(Image.fromarray(values), "TIFF"))
    assert decoded.rgb[0, :, 0].tolist() == [0, 128, 255, 128]


def test_rgb_16bit_png_keeps_full_range() -> None:
    width = 256
    pixels = np.zeros((2, width, 3), dtype=">u2")
    pixels[..., 0] = np.linspace(0, 65535, width).round().astype(np.uint16)
    pixels[..., 2] = 65535
    rows = b"".join(b"\x00" + row.tobytes() for row in pixels)
    decoded = decode_image(raw_png(width, 2, 16, 2, rows))
    assert_valid(decoded, width, 2, "PNG")
    assert decoded.rgb[0, :, 0].tolist() == list(range(256))
    assert decoded.rgb[..., 2].min() == 255


# --- EXIF -----------------------------------------------------------------------------------------


def exif_bytes(orientation: int | None = None, original: str | None = None, modified: str | None = None) -> bytes:
    exif = Image.Exif()
    if orientation is not None:
        exif[0x0112] = orientation
    if modified is not None:
        exif[0x0132] = modified
    if original is not None:
        exif.get_ifd(EXIF_IFD)[0x9003] = original
    return exif.tobytes()


def test_exif_orientation_6_rotates_and_swaps_dimensions() -> None:
    source = Image.new("RGB", (40, 20), (0, 0, 255))
    source.paste((255, 0, 0), (0, 0, 10, 10))  # red marker in the stored top-left corner
    decoded = decode_image(encode(source, "PNG", exif=exif_bytes(orientation=6)))
    assert (decoded.width, decoded.height) == (20, 40)
    assert decoded.rgb.shape == (40, 20, 3)
    # Orientation 6 means "rotate 90 degrees clockwise to display": top-left goes to top-right.
    assert decoded.rgb[2, 17].tolist() == [255, 0, 0]
    assert decoded.rgb[2, 2].tolist() == [0, 0, 255]


def test_exif_orientation_on_jpeg() -> None:
    data = encode(Image.new("RGB", (40, 20), (90, 90, 90)), "JPEG", exif=exif_bytes(orientation=8))
    decoded = decode_image(data)
    assert (decoded.width, decoded.height) == (20, 40)


def test_exif_time_prefers_datetime_original() -> None:
    exif = exif_bytes(original="2019:05:06 07:08:09", modified="2020:01:02 03:04:05")
    decoded = decode_image(encode(gradient_rgb(), "JPEG", exif=exif))
    assert decoded.exif_time == datetime(2019, 5, 6, 7, 8, 9)
    assert decoded.exif_time.tzinfo is None


def test_exif_time_falls_back_to_datetime() -> None:
    decoded = decode_image(encode(gradient_rgb(), "JPEG", exif=exif_bytes(modified="2020:01:02 03:04:05")))
    assert decoded.exif_time == datetime(2020, 1, 2, 3, 4, 5)


def test_exif_time_placeholder_or_absent_is_none() -> None:
    placeholder = exif_bytes(original="0000:00:00 00:00:00", modified="garbage")
    assert decode_image(encode(gradient_rgb(), "JPEG", exif=placeholder)).exif_time is None
    assert decode_image(encode(gradient_rgb(), "PNG")).exif_time is None


@pytest.mark.filterwarnings("ignore:Corrupt EXIF data")
def test_malformed_exif_does_not_reject_the_photo() -> None:
    data = encode(gradient_rgb(), "JPEG", exif=b"Exif\x00\x00MM\x00*\x00\x00\xff\xff\xff")
    decoded = decode_image(data)
    assert (decoded.width, decoded.height, decoded.exif_time) == (64, 48, None)


# --- rejections -----------------------------------------------------------------------------------


def test_empty_file() -> None:
    assert rejection(b"").code == "empty_file"


def test_text_file_is_not_an_image() -> None:
    error = rejection(b"<html><body>this is not a photo</body></html>\n")
    assert error.code == "not_an_image"
    assert "not an image" in str(error)


def test_text_starting_like_a_weak_signature_is_not_an_image() -> None:
    assert rejection(b"BMW sales report, 2024 edition\n" * 4).code == "not_an_image"


def test_random_bytes_are_not_an_image() -> None:
    assert rejection(np.random.default_rng(1).bytes(5000)).code == "not_an_image"


@pytest.mark.parametrize(
    ("fmt", "params"),
    [("JPEG", {"quality": 90}), ("PNG", {}), ("GIF", {}), ("BMP", {}), ("TIFF", {}), ("WEBP", {})],
)
def test_first_half_of_a_file_is_truncated(fmt: str, params: dict[str, object]) -> None:
    noise = np.random.default_rng(2).integers(0, 256, (120, 160, 3), dtype=np.uint8)
    data = encode(Image.fromarray(noise), fmt, **params)
    error = rejection(data[: len(data) // 2])
    assert error.code == "truncated", str(error)
    assert "truncated" in str(error)


def test_jpeg_cut_inside_its_header_is_truncated() -> None:
    data = encode(gradient_rgb(), "JPEG")
    assert rejection(data[:40]).code == "truncated"


def test_corrupt_png_data() -> None:
    rows = b"".join(b"\x00" + bytes(3 * 16) for _ in range(16))
    good = raw_png(16, 16, 8, 2, rows)
    idat_start = good.index(b"IDAT") + 4
    damaged = good[:idat_start] + b"\xde\xad\xbe\xef" * 4 + good[idat_start + 16 :]
    error = rejection(damaged)
    assert error.code == "corrupt", str(error)


def test_unsupported_format_is_named() -> None:
    error = rejection(encode(gradient_rgb(), "ICO"))
    assert error.code == "unsupported"
    assert "ICO" in str(error)


def test_heic_container_is_named_unsupported() -> None:
    heic_header = b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00mif1heic" + bytes(100)
    error = rejection(heic_header)
    assert error.code == "unsupported"
    assert "HEIF" in str(error)


def test_pixel_limit_is_checked_before_decoding() -> None:
    error = rejection(encode(gradient_rgb(100, 100), "PNG"), max_pixels=9_999)
    assert error.code == "too_many_pixels"
    assert "100x100" in str(error)
    assert decode_image(encode(gradient_rgb(100, 100), "PNG"), max_pixels=10_000).width == 100


def test_decompression_bomb_header_is_rejected_fast() -> None:
    bomb = raw_png(100_000, 100_000, 8, 2, b"\x00" * 10)  # claims 10 gigapixels, 30 GB of RGB
    started = time.perf_counter()
    error = rejection(bomb)
    assert time.perf_counter() - started < 1.0
    assert error.code == "too_many_pixels"


def test_bomb_between_our_limit_and_pillows_is_rejected_even_if_warnings_are_errors() -> None:
    # 10000 x 10000 = 100 Mpx: above our 80 Mpx default and Pillow's 89 Mpx warning threshold.
    bomb = raw_png(10_000, 10_000, 8, 2, b"\x00" * 10)
    started = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        error = rejection(bomb)
    assert error.code == "too_many_pixels"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert rejection(bomb).code == "too_many_pixels"
    assert time.perf_counter() - started < 1.0


def test_invalid_max_pixels_is_a_programming_error() -> None:
    with pytest.raises(ValueError, match="max_pixels"):
        decode_image(b"x", max_pixels=0)


def test_sha256_hex() -> None:
    assert sha256_hex(b"abc") == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    assert sha256_hex(b"") == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
