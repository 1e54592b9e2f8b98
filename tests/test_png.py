"""emulator.http.png: the files it writes are decoded back here with zlib alone, chunk by chunk."""

from __future__ import annotations

import struct
import zlib

import numpy as np
import pytest

from emulator.http.png import SIGNATURE, encode_png, from_imagearray, stretch_to_8bit


def decode_png(data: bytes) -> tuple[dict, np.ndarray]:
    """A minimal reader for what encode_png writes (filter type 0, no interlace); checks every CRC."""
    assert data[:8] == SIGNATURE
    pos, chunks = 8, []
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos:pos + 4])
        kind, body = data[pos + 4:pos + 8], data[pos + 8:pos + 8 + length]
        (crc,) = struct.unpack(">I", data[pos + 8 + length:pos + 12 + length])
        assert crc == zlib.crc32(kind + body) & 0xFFFFFFFF, f"bad CRC in {kind!r}"
        chunks.append((kind, body))
        pos += 12 + length
    assert [k for k, _ in chunks][0] == b"IHDR" and chunks[-1] == (b"IEND", b"")
    width, height, depth, colour, compression, filtering, interlace = struct.unpack(">IIBBBBB", chunks[0][1])
    assert (compression, filtering, interlace) == (0, 0, 0)
    raw = zlib.decompress(b"".join(body for kind, body in chunks if kind == b"IDAT"))
    planes = {0: 1, 2: 3}[colour]
    row_bytes = width * planes * depth // 8
    rows = np.frombuffer(raw, dtype=np.uint8).reshape(height, row_bytes + 1)
    assert (rows[:, 0] == 0).all(), "every scanline uses filter type 0"
    dtype = np.uint8 if depth == 8 else np.dtype(">u2")
    pixels = rows[:, 1:].copy().view(dtype).reshape((height, width) if planes == 1 else (height, width, planes))
    return {"width": width, "height": height, "depth": depth, "colour": colour}, pixels


def test_uint8_unstretched_round_trips_exactly():
    img = np.arange(7 * 5, dtype=np.uint8).reshape(5, 7) * 7
    header, pixels = decode_png(encode_png(img, stretch=False))
    assert header == {"width": 7, "height": 5, "depth": 8, "colour": 0}
    assert np.array_equal(pixels, img)


def test_16bit_unstretched_keeps_the_values_and_clips_outside():
    img = np.array([[0, 1, 256, 65535], [40000, -5, 70000, 12345]], dtype=np.int32)
    header, pixels = decode_png(encode_png(img, stretch=False))
    assert header["depth"] == 16 and (header["width"], header["height"]) == (4, 2)
    assert pixels.tolist() == [[0, 1, 256, 65535], [40000, 0, 65535, 12345]]


def test_stretched_is_8bit_spans_the_range_and_keeps_the_order():
    rng = np.random.default_rng(3)
    img = rng.normal(1000, 20, size=(32, 48))
    img[10, 10] = 60000  # a star
    header, pixels = decode_png(encode_png(img))
    assert header["depth"] == 8 and pixels.shape == (32, 48)
    assert pixels.min() == 0 and pixels.max() == 255
    assert pixels[10, 10] == 255
    order = np.argsort(img.ravel(), kind="stable")
    assert (np.diff(pixels.ravel()[order].astype(int)) >= 0).all(), "brighter pixels never come out darker"


def test_a_flat_or_empty_of_finite_values_image_is_still_a_picture():
    assert (decode_png(encode_png(np.full((3, 3), 7.0)))[1] == 128).all()
    assert (stretch_to_8bit(np.full((2, 2), np.nan)) == 0).all()


def test_colour_images_are_rgb():
    img = np.zeros((2, 3, 3), dtype=np.uint8)
    img[0, 1] = (255, 0, 0)
    header, pixels = decode_png(encode_png(img, stretch=False))
    assert header["colour"] == 2 and np.array_equal(pixels, img)


def test_an_imagearray_is_turned_into_rows_and_columns():
    xy = np.zeros((6, 4))  # 6 wide, 4 high, as Alpaca orders it
    xy[5, 0] = 1  # top right
    picture = from_imagearray(xy)
    assert picture.shape == (4, 6) and picture[0, 5] == 1
    assert from_imagearray(np.zeros((6, 4, 3))).shape == (4, 6, 3)


@pytest.mark.parametrize("shape", [(3,), (2, 2, 2), (0, 4)])
def test_shapes_that_are_not_pictures_are_refused_with_the_shape(shape):
    with pytest.raises(ValueError, match=r"shape"):
        encode_png(np.zeros(shape))
