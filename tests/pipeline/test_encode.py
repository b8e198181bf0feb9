"""Arrays back to image bytes: pixels, EXIF and ICC kept, each format's limits, output names (pipeline/encode.py)."""

import io

import numpy as np
from PIL import Image, ImageCms
import pytest

from imagemend.pipeline import decode as dec
from imagemend.pipeline import encode as enc
from tests.support.images import encode


def test_encode_keeps_pixels_exif_and_icc_in_lossless_formats():
    icc = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    rng = np.random.default_rng(1)
    arrays = [rng.integers(0, 255, (4, 6), dtype=np.uint8), rng.integers(0, 255, (4, 6, 2), dtype=np.uint8),
              rng.integers(0, 255, (4, 6, 3), dtype=np.uint8), rng.integers(0, 255, (4, 6, 4), dtype=np.uint8),
              rng.integers(0, 65535, (4, 6), dtype=np.uint16), rng.integers(0, 65535, (4, 6, 3), dtype=np.uint16)]
    ex = Image.Exif()
    ex[0x010F] = "cam"
    for fmt in ("PNG", "TIFF"):
        for arr in arrays:
            colour = arr.ndim == 3 and arr.shape[2] >= 3
            meta = dec.Meta(format=fmt, mode="?", exif=ex.tobytes(), icc=icc if colour else None)
            back = dec.decode(enc.encode(arr, meta, fmt))
            assert np.array_equal(back.pixels, arr), (fmt, arr.shape, arr.dtype)
            if colour:
                assert back.meta.icc == icc
            if arr.dtype == np.uint8 or fmt == "PNG":
                assert Image.open(io.BytesIO(enc.encode(arr, meta, fmt))).getexif()[0x010F] == "cam"
    deep = enc.encode(arrays[5], dec.Meta("PNG", "?"), "PNG")  # 16-bit colour PNG: Pillow reads its high bytes
    assert np.array_equal(np.asarray(Image.open(io.BytesIO(deep))), (arrays[5] >> 8).astype(np.uint8))
    float_rgb = enc.encode(arrays[5].astype(np.float32) / 65535, dec.Meta("PNG", "?"), "PNG")
    assert np.array_equal(dec.decode(float_rgb).pixels, arrays[5])


@pytest.mark.parametrize("fmt,shape,dtype,mode", [
    ("JPEG", (4, 6, 4), np.uint8, "RGB"), ("JPEG", (4, 6, 2), np.uint8, "L"), ("JPEG", (4, 6), np.uint16, "L"),
    ("WEBP", (4, 6), np.uint8, "RGB"), ("WEBP", (4, 6, 2), np.uint8, "RGBA"), ("GIF", (4, 6, 3), np.uint8, "P"),
    ("BMP", (4, 6, 3), np.float32, "RGB"),
])
def test_encode_reduces_to_what_the_format_holds(fmt, shape, dtype, mode):
    arr = np.zeros(shape, dtype=dtype)
    assert Image.open(io.BytesIO(enc.encode(arr, dec.Meta(fmt, "?"), fmt))).mode == mode


def test_jpeg_reencoded_with_its_own_tables():
    rgb = np.random.default_rng(2).integers(0, 255, (32, 32, 3), dtype=np.uint8)
    low = dec.decode(encode(Image.fromarray(rgb), "JPEG", quality=30))
    high = dec.decode(encode(Image.fromarray(rgb), "JPEG", quality=95))
    a, b = enc.encode(low.pixels, low.meta, "JPEG"), enc.encode(high.pixels, high.meta, "JPEG")
    assert Image.open(io.BytesIO(a)).quantization == Image.open(io.BytesIO(encode(Image.fromarray(rgb), "JPEG",
                                                                                   quality=30))).quantization
    assert len(a) < len(b)
    assert len(enc.encode(high.pixels, high.meta, "JPEG", quality=30)) < len(b)


def test_output_names_follow_the_format():
    assert enc.output_name("a/b.jpg", "JPEG", "JPEG") == "a/b.jpg"
    assert enc.output_name("a/b.JPG", "MPO", "JPEG") == "a/b.JPG"
    assert enc.output_name("s/0001.left.jpg", "JPEG", "PNG") == "s/0001.left.png"
    assert enc.output_format("same", "MPO") == "JPEG" and enc.output_format("webp", "PNG") == "WEBP"
