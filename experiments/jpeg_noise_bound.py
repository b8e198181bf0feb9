"""Should a photo known to be a JPEG file skip the flat-patch noise bound?

    python experiments/jpeg_noise_bound.py ../shared/data/val/CBSD68

JPEG's quantisation flattens flat blocks, so their patches read less noise than the photo has; the
pixel-level lattice detector (model/core/noise_floor.py) misses about a quarter of quality-90 files. For
each photo saved as JPEG (quality 90 and 75, Gaussian noise 0 / 5 / 8 before saving): the share the
restorer would denoise with the bound (the pixels alone) and without it (told it is a JPEG file).
"""

from dataclasses import replace
import io
import sys

import numpy as np
from PIL import Image

from imagemend.model import Restorer
from imagemend.model.data import load_photos


def main(data: str) -> None:
    photos = load_photos(data)
    bounded = Restorer(device="cpu")
    told = Restorer(device="cpu")
    told.cfg = replace(told.cfg, noise_cap=False)  # what jpeg=True does for one photo
    t = bounded.cfg.min_noise_sigma
    rng = np.random.default_rng(0)
    for q in (90, 75):
        for sigma in (0, 5, 8):
            reads = []
            for a in photos.values():
                x = np.clip(a + rng.normal(0, sigma, a.shape), 0, 255).round().astype(np.uint8) if sigma else a
                buf = io.BytesIO()
                Image.fromarray(x).save(buf, "JPEG", quality=q)
                j = np.asarray(Image.open(buf).convert("RGB"))
                reads.append([r.estimate([j])[0]["noise_sigma"] for r in (bounded, told)])
            b, f = np.array(reads).T
            print(f"quality {q}, sigma {sigma}: denoised {np.mean(b >= t):.0%} with the bound, {np.mean(f >= t):.0%} "
                  f"told it is a JPEG; median reading {np.median(b):.2f} / {np.median(f):.2f}", flush=True)


if __name__ == "__main__":
    main(sys.argv[1])
