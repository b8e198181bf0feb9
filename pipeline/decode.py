"""Bytes to pixels the model takes (HxW or HxWxC, uint8/uint16/float32), with the metadata to write back.

Every mode Pillow opens goes through: palette and bilevel images become RGB(A) or L, CMYK is
converted to sRGB through its ICC profile when it has one, 16-bit greyscale stays 16-bit, and
16-bit colour TIFFs and PNGs (which Pillow would cut to 8 bits) keep their 16 bits. EXIF orientation
is applied to the pixels, so the written copy is upright with its orientation tag reset to 1. An
animated image (or a TIFF of several full-size pages) is refused: one frame of it is not the image.

Nothing is decoded beyond its budget: the declared size is checked against --max-pixels from the
header alone, a JPEG whose header claims more blocks than its data can code is refused before
decoding, and data that ends before the last row is an error, never rows padded grey.
"""

from dataclasses import dataclass, field
import io
import struct

import numpy as np
from PIL import Image, ImageCms, ImageFile, JpegImagePlugin

Image.MAX_IMAGE_PIXELS = None  # the size limit is RunOptions.max_pixels, checked before decoding
ImageFile.LOAD_TRUNCATED_IMAGES = False  # data that ends early raises instead of padding the missing rows

ORIENT = {  # EXIF orientation -> transform that makes the pixels upright
    2: np.fliplr, 3: lambda a: np.rot90(a, 2), 4: np.flipud, 5: lambda a: np.swapaxes(a, 0, 1),
    6: lambda a: np.rot90(a, -1), 7: lambda a: np.swapaxes(np.rot90(a, 2), 0, 1), 8: lambda a: np.rot90(a, 1),
}
# TIFF tags that describe pixel storage, not the photo: never copied as metadata
_STRUCTURAL = {254, 255, 256, 257, 258, 259, 262, 266, 273, 274, 277, 278, 279, 280, 281, 284, 317, 320,
               322, 323, 324, 325, 338, 339, 340, 341, 530, 531, 532, 34675}
TIFF_TEXT_TAGS = (270, 271, 272, 305, 306, 315, 33432)  # description, make, model, software, date, artist, (c)


class EmptyImage(ValueError):
    pass


class ImageTooLarge(ValueError):
    pass


class AnimatedImage(ValueError):
    """Several frames (GIF, APNG, WebP) or full-size TIFF pages: restoring the first alone would drop the rest."""


class ImageTruncated(ValueError):
    """The data ends before the image's last row (cut short, or a header that claims more than the data holds)."""


# frame markers of Huffman-coded JPEGs (baseline, extended, progressive, lossless, hierarchical); SOF9-15 are
# arithmetic-coded, whose symbols can take less than a bit each
HUFFMAN_FRAMES = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7}


@dataclass
class Meta:
    format: str  # Pillow's name: JPEG, PNG, WEBP, TIFF, BMP, GIF, MPO ...
    mode: str  # the input's mode, e.g. RGB, L, LA, P, CMYK, I;16, RGB;16 and RGBA;16 (16-bit colour)
    exif: bytes | None = None  # orientation already reset to 1
    icc: bytes | None = None
    jpeg: dict = field(default_factory=dict)  # qtables and subsampling, to re-encode at the input's quality
    tiff_compression: str | None = None
    tiff_text: dict = field(default_factory=dict)  # descriptive TIFF tags for 16-bit colour (tifffile) output
    orientation: int = 1


@dataclass
class Decoded:
    pixels: np.ndarray
    meta: Meta

    @property
    def width(self) -> int:
        return self.pixels.shape[1]

    @property
    def height(self) -> int:
        return self.pixels.shape[0]


def reset_orientation(exif: bytes) -> bytes:
    """The same EXIF block with tag 0x0112 set to 1, patched in place (maker notes keep their offsets)."""
    head = 6 if exif.startswith(b"Exif\x00\x00") else 0
    t = exif[head:]
    if len(t) < 8 or t[:2] not in (b"II", b"MM"):
        return exif
    e = "<" if t[:2] == b"II" else ">"
    (ifd,) = struct.unpack(e + "I", t[4:8])
    if ifd + 2 > len(t):
        return exif
    (n,) = struct.unpack(e + "H", t[ifd:ifd + 2])
    out = bytearray(exif)
    for i in range(n):
        pos = ifd + 2 + 12 * i
        if pos + 12 > len(t):
            break
        tag, typ, count = struct.unpack(e + "HHI", t[pos:pos + 8])
        if tag == 0x0112 and typ == 3 and count == 1:
            out[head + pos + 8:head + pos + 10] = struct.pack(e + "H", 1)
    return bytes(out)


def _tiff_exif(im: Image.Image) -> bytes | None:
    """A TIFF's descriptive tags (and its Exif/GPS sub-IFDs) as an EXIF block for any output format."""
    src = im.getexif()
    ex = Image.Exif()
    for tag, value in src.items():
        if tag not in _STRUCTURAL:
            ex[tag] = value
    return ex.tobytes() if len(ex) else None


def _png16(data: bytes) -> np.ndarray:
    """A 16-bit RGB(A) PNG at full depth. Pillow unpacks only each sample's high byte; unpacking the
    same stream as little-endian gives the low bytes, so two decodes by Pillow's own C code suffice."""
    planes = []
    for order in ("B", "L"):
        im = Image.open(io.BytesIO(data))
        im.tile = [t._replace(args=t.args.replace(";16B", ";16" + order)) for t in im.tile]
        im.load()
        planes.append(np.asarray(im).astype(np.uint16))
    return (planes[0] << 8) | planes[1]


def _deep_colour(im: Image.Image, data: bytes) -> np.ndarray | None:
    """16-bit colour pixels of a TIFF or PNG, which Pillow would cut to 8 bits; None for anything else.
    Called before im.load(), while the PNG's tile still names its raw mode."""
    if im.format == "TIFF" and im.mode in ("RGB", "RGBA") and max(im.tag_v2.get(258, (8,))) > 8:
        import tifffile

        arr = tifffile.imread(io.BytesIO(data), key=0)
        return arr if arr.dtype == np.uint16 else np.clip(arr, 0, 65535).astype(np.uint16)
    if im.format == "PNG" and im.tile and im.tile[0].args in ("RGB;16B", "RGBA;16B"):
        return _png16(data)
    return None


def _frames(im: Image.Image) -> int:
    """Frames that are images of their own: an MPO's extra pictures (previews, a stereo pair's other eye)
    and a TIFF's reduced-resolution pages (thumbnails, NewSubfileType bit 0) do not count."""
    n = getattr(im, "n_frames", 1)
    if n == 1 or im.format == "MPO":
        return 1
    if im.format == "TIFF":
        full = 0
        for i in range(n):
            im.seek(i)
            full += not int(im.tag_v2.get(254, 0)) & 1
        im.seek(0)
        return full
    return n


def _to_array(im: Image.Image, meta: Meta) -> np.ndarray:
    """The loaded image in a mode the model takes (meta.icc follows a CMYK conversion)."""
    mode = im.mode
    if mode == "CMYK":
        if meta.icc:
            src = ImageCms.ImageCmsProfile(io.BytesIO(meta.icc))
            srgb = ImageCms.createProfile("sRGB")
            im = ImageCms.profileToProfile(im, src, srgb, outputMode="RGB")
            meta.icc = ImageCms.ImageCmsProfile(srgb).tobytes()
        else:
            im = im.convert("RGB")
    elif mode == "1":
        im = im.convert("L")
    elif mode in ("P", "PA"):
        im = im.convert("RGBA" if mode == "PA" or "transparency" in im.info else "RGB")
    elif mode in ("RGBX", "YCbCr", "LAB", "HSV"):
        im = im.convert("RGB")
    elif mode in ("RGBa", "La"):
        im = im.convert(mode[:-1] + "A")
    arr = np.asarray(im)
    if im.mode.startswith("I;16") or im.mode == "I":
        arr = np.clip(arr, 0, 65535).astype(np.uint16)  # native byte order: the model checks dtype
    elif im.mode == "F":
        arr = arr.astype(np.float32)
    return arr


def jpeg_frame(data: bytes) -> tuple[int, int] | None:
    """(SOF marker, offset of the data after the header) of a JPEG, walking its segments; None when the header
    does not parse."""
    pos, marker = 2, None
    while pos + 4 <= len(data) and data[pos] == 0xFF:
        code = data[pos + 1]
        if code == 0xFF:  # fill byte
            pos += 1
            continue
        if 0xC0 <= code <= 0xCF and code not in (0xC4, 0xC8, 0xCC):
            marker = code
        pos += 2 + int.from_bytes(data[pos + 2:pos + 4], "big")
        if code == 0xDA:
            return (marker, pos) if marker is not None else None
    return None


def check_jpeg_data(data: bytes, width: int, height: int) -> None:
    """Refuse a Huffman JPEG whose header claims more 8x8 blocks than its data can code: each block costs at least
    one bit, so a few KB claiming 12000x9000 is cut short or forged, and libjpeg would pad it grey, not fail."""
    frame = jpeg_frame(data)
    if frame is None or frame[0] not in HUFFMAN_FRAMES:
        return
    coded = len(data) - frame[1]
    blocks = -(-width // 8) * -(-height // 8)
    if blocks > 8 * coded:
        raise ImageTruncated(f"JPEG header claims {width}x{height} ({blocks:,} blocks of 8x8, one bit each at "
                             f"least) but holds {coded:,} bytes of image data: cut short or forged")


def load(im: Image.Image) -> None:
    """Decode the pixels; data that ends before the last row is ImageTruncated (Pillow says OSError)."""
    try:
        im.load()
    except OSError as e:
        if "truncated" in str(e):
            raise ImageTruncated(f"the data ends before the last row ({e})") from e
        raise


def decode(data: bytes, max_pixels: int = 120_000_000) -> Decoded:
    """Pixels and metadata of a single image; raises on anything that is not one readable image."""
    if not data:
        raise EmptyImage("zero-byte file")
    im = Image.open(io.BytesIO(data))
    if im.width * im.height > max_pixels:
        raise ImageTooLarge(f"{im.width}x{im.height} exceeds --max-pixels {max_pixels}")
    frames = _frames(im)
    if frames > 1:
        what = f"TIFF with {frames} full-size pages" if im.format == "TIFF" else \
            f"animated {im.format} with {frames} frames"
        raise AnimatedImage(f"{what}: not supported (restoring the first alone would drop the rest)")
    if im.format in ("JPEG", "MPO"):
        check_jpeg_data(data, im.width, im.height)
    im.seek(0)
    deep = _deep_colour(im, data)  # first: reading a PNG's EXIF can load it and forget its raw mode
    meta = Meta(format=im.format or "PNG", mode=im.mode, icc=im.info.get("icc_profile"))
    exif = im.getexif()
    meta.orientation = int(exif.get(0x0112, 1) or 1)
    if im.format == "TIFF":
        meta.exif = _tiff_exif(im)
        meta.tiff_compression = im.info.get("compression")
        meta.tiff_text = {t: im.tag_v2[t] for t in TIFF_TEXT_TAGS if isinstance(im.tag_v2.get(t), str)}
    elif im.info.get("exif"):
        meta.exif = reset_orientation(im.info["exif"])
    if im.format in ("JPEG", "MPO"):
        meta.jpeg = {"qtables": im.quantization, "subsampling": JpegImagePlugin.get_sampling(im)}
    if deep is None:
        load(im)
        arr = _to_array(im, meta)
    else:
        arr, meta.mode = deep, im.mode + ";16"
    if meta.orientation in ORIENT:
        arr = np.ascontiguousarray(ORIENT[meta.orientation](arr))
    return Decoded(arr, meta)
