"""Bytes to the model's arrays: every mode, EXIF orientation, and what is refused (pipeline/decode.py)."""

import io

import numpy as np
from PIL import Image, ImageOps
import pytest

from imagemend.pipeline import decode as dec
from imagemend.pipeline import encode as enc
from tests.support.images import animated, encode, png16


def _png(arr, **kw) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, "PNG", **kw)
    return buf.getvalue()


def test_decode_modes_to_model_arrays():
    import tifffile

    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 255, (5, 7, 3), dtype=np.uint8)
    cases = {
        "L": (_png(rgb[..., 0]), (5, 7), np.uint8),
        "LA": (_png(np.dstack([rgb[..., 0], rgb[..., 1]])), (5, 7, 2), np.uint8),
        "RGBA": (_png(np.dstack([rgb, rgb[..., :1]])), (5, 7, 4), np.uint8),
        "I;16": (_png(rng.integers(0, 65535, (5, 7), dtype=np.uint16)), (5, 7), np.uint16),
        "1": (encode(Image.fromarray(rgb[..., 0] > 128), "PNG"), (5, 7), np.uint8),
        "P": (encode(Image.fromarray(rgb).convert("P"), "GIF"), (5, 7, 3), np.uint8),
        "CMYK": (encode(Image.frombytes("CMYK", (7, 5), rng.integers(0, 255, 140, np.uint8).tobytes()), "JPEG"),
                 (5, 7, 3), np.uint8),
        "F": (encode(Image.fromarray(rng.random((5, 7), dtype=np.float32)), "TIFF"), (5, 7), np.float32),
    }
    buf = io.BytesIO()
    deep = rng.integers(0, 65535, (5, 7, 3), dtype=np.uint16)
    tifffile.imwrite(buf, deep, photometric="rgb")
    cases["RGB;16"] = (buf.getvalue(), (5, 7, 3), np.uint16)
    cases["PNG RGB;16"] = (png16(deep), (5, 7, 3), np.uint16)
    cases["PNG RGBA;16"] = (png16(np.dstack([deep, deep[..., :1]])), (5, 7, 4), np.uint16)
    for mode, (data, shape, dtype) in cases.items():
        d = dec.decode(data)
        assert (d.pixels.shape, d.pixels.dtype, d.meta.mode) == (shape, dtype, mode.split()[-1]), mode
        assert d.pixels.dtype.isnative
    for mode in ("RGB;16", "PNG RGB;16"):
        assert np.array_equal(dec.decode(cases[mode][0]).pixels, deep), mode  # 16 bits kept, not cut to 8


@pytest.mark.parametrize("fmt", ["GIF", "PNG", "WEBP", "TIFF"])
def test_animated_images_are_refused_not_cut_to_one_frame(fmt):
    with pytest.raises(dec.AnimatedImage, match="with 3 (frames|full-size pages): not supported"):
        dec.decode(animated(fmt))
    one = dec.decode(animated(fmt, frames=1))  # a single frame saved as an animation is an ordinary image
    assert one.pixels.shape[:2] == (8, 10)


@pytest.mark.parametrize("orientation", range(1, 9))
def test_exif_orientation_applied_and_reset(orientation):
    rgb = np.random.default_rng(orientation).integers(0, 255, (6, 10, 3), dtype=np.uint8)
    ex = Image.Exif()
    ex[0x0112], ex[0x010F] = orientation, "cam"
    data = encode(Image.fromarray(rgb), "PNG", exif=ex.tobytes())
    d = dec.decode(data)
    assert np.array_equal(d.pixels, np.asarray(ImageOps.exif_transpose(Image.open(io.BytesIO(data)))))
    out = Image.open(io.BytesIO(enc.encode(d.pixels, d.meta, "JPEG")))
    assert out.getexif().get(0x0112) == 1 and out.getexif()[0x010F] == "cam"


@pytest.mark.parametrize("data,error", [(b"", dec.EmptyImage), (b"hello", Exception), (None, Exception)])
def test_decode_rejects_non_images(data, error):
    if data is None:
        data = encode(Image.fromarray(np.zeros((64, 64, 3), np.uint8) + 90), "JPEG")[:150]
    with pytest.raises(error):
        dec.decode(data)


def test_decode_refuses_images_over_the_pixel_limit():
    data = encode(Image.new("L", (300, 200)), "PNG")
    with pytest.raises(dec.ImageTooLarge):
        dec.decode(data, max_pixels=300 * 200 - 1)
    assert dec.decode(data, max_pixels=300 * 200).pixels.shape == (200, 300)
