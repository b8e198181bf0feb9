"""Clean training photos from any folder, glob or fsspec URL, held in memory as uint8."""

import io

import fsspec
import numpy as np
from PIL import Image, ImageOps
import torch

from .core.pixels import IMAGE_SUFFIXES


def list_images(url: str) -> list[str]:
    """Image files under a folder, or matching a glob, sorted so a seed means the same data."""
    fs, path = fsspec.core.url_to_fs(url)
    found = fs.find(path) if fs.isdir(path) else fs.glob(path)
    proto = fs.protocol if isinstance(fs.protocol, str) else fs.protocol[0]
    prefix = "" if proto in ("file", "local") else f"{proto}://"
    return sorted(prefix + p for p in found if p.lower().endswith(IMAGE_SUFFIXES))


def load_rgb(url: str) -> np.ndarray:
    with fsspec.open(url, "rb") as f:
        img = Image.open(io.BytesIO(f.read()))
        return np.array(ImageOps.exif_transpose(img).convert("RGB"))


def load_photos(url: str, limit: int | None = None) -> dict[str, np.ndarray]:
    """The first `limit` photos under a folder or glob, keyed by their path under it (what seeds a case)."""
    fs, base = fsspec.core.url_to_fs(url)
    base = base.rstrip("/") if fs.isdir(base) else base.rsplit("/", 1)[0]
    out = {}
    for f in list_images(url)[:limit]:
        path = fs._strip_protocol(f)
        out[path[len(base) + 1:] if path.startswith(base + "/") else path.rsplit("/", 1)[-1]] = load_rgb(f)
    return out


def random_crops(images: list[np.ndarray], n: int, size: int, g: torch.Generator,
                 device: torch.device | str = "cpu") -> torch.Tensor:
    """n random size x size crops with random flips and transposes, as a (n, 3, size, size) batch
    on `device` (moved there as bytes: converting to float is a training step's costliest CPU work)."""
    out = []
    for i in torch.randint(len(images), (n,), generator=g).tolist():
        img = images[i]
        if min(img.shape[:2]) < size:
            raise ValueError(f"training photo {img.shape[:2]} smaller than crop {size}")
        y = int(torch.randint(img.shape[0] - size + 1, (1,), generator=g))
        x = int(torch.randint(img.shape[1] - size + 1, (1,), generator=g))
        c = img[y:y + size, x:x + size]
        flip, transpose = torch.randint(2, (2,), generator=g).tolist()
        c = c[:, ::-1] if flip else c
        out.append(c.transpose(1, 0, 2) if transpose else c)
    return torch.from_numpy(np.stack(out)).to(device).permute(0, 3, 1, 2).float() / 255
