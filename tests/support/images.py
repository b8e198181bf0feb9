"""Small generated images in every mode and format the job promises to take (never photos from /work/shared/data)."""

import io
import zlib

import numpy as np
from PIL import Image, ImageCms

ICC = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
MAKE = "imagemend-test-camera"


def pixels(h: int, w: int, c: int, seed: int, dtype=np.uint8) -> np.ndarray:
    """A smooth gradient with some noise: photo-like enough for every codec, a few hundred bytes."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w]
    base = [(xx / max(w, 1)), (yy / max(h, 1)), ((xx + yy) / max(w + h, 1)), np.full((h, w), 0.8)]
    img = np.stack([base[i % 4] for i in range(c)], -1) * 0.8 + 0.1
    img = np.clip(img + rng.normal(0, 0.03, img.shape), 0, 1)
    peak = 65535 if dtype == np.uint16 else 255
    out = np.round(img * peak).astype(dtype)
    return out[:, :, 0] if c == 1 else out


def encode(img: Image.Image, fmt: str, **kw) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format=fmt, **kw)
    return buf.getvalue()


def png16(arr: np.ndarray) -> bytes:
    """A 16-bit RGB(A) PNG written by hand, unfiltered (Pillow cannot write one; the job's writer filters)."""
    h, w, c = arr.shape

    def chunk(kind: bytes, data: bytes) -> bytes:
        return len(data).to_bytes(4, "big") + kind + data + zlib.crc32(kind + data).to_bytes(4, "big")

    rows = b"".join(b"\0" + row.tobytes() for row in arr.astype(">u2"))
    head = w.to_bytes(4, "big") + h.to_bytes(4, "big") + bytes([16, 2 if c == 3 else 6, 0, 0, 0])
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", head) + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b"")


def animated(fmt: str, frames: int = 3) -> bytes:
    """A tiny animation (GIF, PNG or WEBP) of grey frames getting brighter."""
    ims = [Image.fromarray(np.full((8, 10, 3), 40 * i, np.uint8)) for i in range(frames)]
    return encode(ims[0], fmt, save_all=True, append_images=ims[1:], duration=100)


def exif_bytes(orientation: int = 1) -> bytes:
    ex = Image.Exif()
    ex[0x010F] = MAKE
    ex[0x0112] = orientation
    return ex.tobytes()


def sample_images(seed: int = 0) -> dict[str, tuple[bytes, dict]]:
    """name -> (bytes, what the metrics row must say): every mode and format the job promises to take."""
    import tifffile

    def tif16(h, w):
        buf = io.BytesIO()
        tifffile.imwrite(buf, pixels(h, w, 3, seed + 9, np.uint16), photometric="rgb")
        return buf.getvalue()

    cmyk = Image.frombytes("CMYK", (48, 32), pixels(32, 48, 4, seed + 5).tobytes())
    return {
        "rgb.jpg": (encode(Image.fromarray(pixels(48, 64, 3, seed)), "JPEG", quality=90, exif=exif_bytes(6),
                           icc_profile=ICC), dict(width=48, height=64, mode="RGB", format="JPEG")),
        "grey.png": (encode(Image.fromarray(pixels(40, 32, 1, seed + 1)), "PNG"),
                     dict(width=32, height=40, mode="L", format="PNG")),
        "rgba.png": (encode(Image.fromarray(pixels(40, 50, 4, seed + 2)), "PNG", icc_profile=ICC),
                     dict(width=50, height=40, mode="RGBA", format="PNG")),
        "deep.png": (encode(Image.fromarray(pixels(44, 36, 1, seed + 3, np.uint16)), "PNG"),
                     dict(width=36, height=44, mode="I;16", format="PNG")),
        "cmyk.jpg": (encode(cmyk, "JPEG", quality=90), dict(width=48, height=32, mode="CMYK", format="JPEG")),
        "pal.gif": (encode(Image.fromarray(pixels(35, 33, 3, seed + 6)).convert("P"), "GIF"),
                    dict(width=33, height=35, mode="P", format="GIF")),
        "tiny.bmp": (encode(Image.fromarray(pixels(1, 1, 3, seed + 7)), "BMP"),
                     dict(width=1, height=1, mode="RGB", format="BMP")),
        "photo.webp": (encode(Image.fromarray(pixels(40, 56, 3, seed + 8)), "WEBP", quality=90, exif=exif_bytes()),
                       dict(width=56, height=40, mode="RGB", format="WEBP")),
        "deep.tif": (tif16(32, 40), dict(width=40, height=32, mode="RGB;16", format="TIFF")),
        "deep-rgb.png": (png16(pixels(30, 42, 3, seed + 10, np.uint16)),
                         dict(width=42, height=30, mode="RGB;16", format="PNG")),
    }


def corrupt_jpeg(seed: int) -> bytes:
    return encode(Image.fromarray(pixels(48, 64, 3, seed)), "JPEG")[:200]
