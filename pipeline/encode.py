"""Pixels back to bytes in the output format, keeping EXIF (orientation 1), the ICC profile and JPEG quality.

By default an image keeps its format and a JPEG is re-encoded with its own quantisation tables,
so a restored copy is about the size and quality of its source. When the format cannot hold the
pixels they are reduced to the nearest mode it can (16-bit colour only fits TIFF and PNG; WebP has
no greyscale; JPEG has no alpha), and the file extension follows a format change. Pillow writes
neither 16-bit colour format: TIFF goes through tifffile, PNG through the small writer below.
"""

import io
import posixpath
import struct
import zlib

import numpy as np
from PIL import Image

from imagemend.model.core.pixels import to_uint8

from .decode import Meta

FORMATS = {"png": "PNG", "jpeg": "JPEG", "webp": "WEBP", "tiff": "TIFF"}
EXTENSIONS = {"PNG": ".png", "JPEG": ".jpg", "WEBP": ".webp", "TIFF": ".tif", "BMP": ".bmp", "GIF": ".gif"}
MODES = {  # modes Pillow writes for each format, preferred first
    "JPEG": ("L", "RGB"), "PNG": ("L", "LA", "RGB", "RGBA", "I;16"), "WEBP": ("RGB", "RGBA"),
    "TIFF": ("L", "LA", "RGB", "RGBA", "I;16", "F"), "BMP": ("L", "RGB", "RGBA"), "GIF": ("L", "P"),
}
REDUCE = {"LA": ("L", "RGBA"), "RGBA": ("RGB", "P"), "L": ("RGB",), "RGB": ("P",), "I;16": ("L",)}
TIFF_COMPRESSIONS = {"tiff_lzw", "tiff_deflate", "tiff_adobe_deflate", "packbits"}


def output_format(choice: str, input_format: str) -> str:
    """Pillow's format name for the output: the input's own unless --image-format says otherwise."""
    if choice != "same":
        return FORMATS[choice]
    if input_format == "MPO":  # multi-picture JPEG from cameras: the first picture, as JPEG
        return "JPEG"
    return input_format if input_format in MODES else "PNG"


def same_format(input_format: str, fmt: str) -> bool:
    return fmt == input_format or (fmt == "JPEG" and input_format == "MPO")


def output_name(name: str, input_format: str, fmt: str) -> str:
    """The input's name when the format is kept; otherwise its last extension follows the format."""
    if same_format(input_format, fmt):
        return name
    return posixpath.splitext(name)[0] + EXTENSIONS[fmt]


def _mode_of(arr: np.ndarray) -> str:
    if arr.dtype.kind == "f":
        return "F"
    if arr.dtype == np.uint16:
        return "I;16"
    return "L" if arr.ndim == 2 else {2: "LA", 3: "RGB", 4: "RGBA"}[arr.shape[2]]


def _to_uint8(arr: np.ndarray) -> np.ndarray:
    if arr.dtype == np.uint8:
        return arr
    if arr.dtype == np.uint16:
        return ((arr.astype(np.uint32) + 128) // 257).astype(np.uint8)
    return to_uint8(arr)


def _to_uint16(arr: np.ndarray) -> np.ndarray:
    return arr if arr.dtype == np.uint16 else np.floor(np.clip(arr, 0, 1) * 65535 + 0.5).astype(np.uint16)


def _image(arr: np.ndarray, fmt: str) -> Image.Image:
    """A Pillow image of arr in a mode that fmt can write."""
    if arr.ndim == 3 and arr.shape[2] == 1:
        arr = arr[:, :, 0]
    grey = arr.ndim == 2
    if arr.dtype.kind == "f" and not (grey and fmt == "TIFF"):
        arr = _to_uint16(arr)
    if arr.dtype == np.uint16 and not (grey and "I;16" in MODES[fmt]):
        arr = _to_uint8(arr)
    im = Image.fromarray(arr.astype(np.float32) if _mode_of(arr) == "F" else arr)
    while im.mode not in MODES[fmt]:
        options = REDUCE[im.mode]
        target = next((m for m in options if m in MODES[fmt]), options[0])
        if target == "P":
            im = im.convert("RGB").quantize(256)
        elif im.mode == "I;16":
            im = Image.fromarray(_to_uint8(np.asarray(im)))
        else:
            im = im.convert(target)
    return im


def _tifffile(arr: np.ndarray, meta: Meta) -> bytes:
    """16-bit colour TIFF, which Pillow cannot write; keeps the ICC profile and descriptive tags."""
    import tifffile

    buf = io.BytesIO()
    tags = [(tag, "s", 0, value, True) for tag, value in sorted(meta.tiff_text.items())]
    deflate = meta.tiff_compression in ("tiff_deflate", "tiff_adobe_deflate")
    tifffile.imwrite(buf, arr, photometric="rgb", iccprofile=meta.icc, extratags=tags,
                     compression="zlib" if deflate else None)
    return buf.getvalue()


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def _png16(arr: np.ndarray, meta: Meta) -> bytes:
    """16-bit RGB(A) PNG, which Pillow cannot write; keeps the ICC profile and EXIF as Pillow stores them.
    Every row uses the Up filter (a vectorised difference with the row above), which suits photos."""
    h, w, c = arr.shape
    rows = arr.astype(">u2").view(np.uint8).reshape(h, w * c * 2)
    up = np.diff(rows, axis=0, prepend=np.zeros((1, rows.shape[1]), np.uint8))  # uint8 wraps: mod 256
    raw = np.hstack([np.full((h, 1), 2, np.uint8), up]).tobytes()
    chunks = [_png_chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 16, 2 if c == 3 else 6, 0, 0, 0))]
    if meta.icc:
        chunks.append(_png_chunk(b"iCCP", b"ICC Profile\0\0" + zlib.compress(meta.icc)))
    if meta.exif:
        chunks.append(_png_chunk(b"eXIf", meta.exif.removeprefix(b"Exif\x00\x00")))
    chunks += [_png_chunk(b"IDAT", zlib.compress(raw, 6)), _png_chunk(b"IEND", b"")]
    return b"\x89PNG\r\n\x1a\n" + b"".join(chunks)


def encode(pixels: np.ndarray, meta: Meta, fmt: str, quality: int | None = None) -> bytes:
    """Bytes of pixels as fmt, with the input's EXIF and (when the colour model is kept) ICC profile."""
    colour = pixels.ndim == 3 and pixels.shape[2] >= 3
    if fmt == "TIFF" and colour and pixels.dtype != np.uint8:
        return _tifffile(_to_uint16(pixels), meta)
    if fmt == "PNG" and colour and pixels.dtype != np.uint8:
        return _png16(_to_uint16(pixels), meta)
    im = _image(pixels, fmt)
    kw: dict = {}
    if meta.exif and fmt in ("JPEG", "PNG", "WEBP", "TIFF"):
        kw["exif"] = meta.exif
    if meta.icc and fmt in ("JPEG", "PNG", "WEBP", "TIFF") and (im.mode in ("RGB", "RGBA")) == colour:
        kw["icc_profile"] = meta.icc
    if fmt == "JPEG":
        tables = meta.jpeg.get("qtables")
        if quality is None and tables and len(tables) >= (1 if im.mode == "L" else 2):
            kw["qtables"] = tables
            if meta.jpeg.get("subsampling", -1) >= 0 and im.mode == "RGB":
                kw["subsampling"] = meta.jpeg["subsampling"]
        else:
            kw["quality"] = quality or 92
    elif fmt == "WEBP":
        kw["quality"] = quality or 90
    elif fmt == "TIFF" and meta.tiff_compression in TIFF_COMPRESSIONS:
        kw["compression"] = meta.tiff_compression
    buf = io.BytesIO()
    im.save(buf, format=fmt, **kw)
    return buf.getvalue()
