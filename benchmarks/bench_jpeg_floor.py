"""What the JPEG noise floor (RestoreConfig.jpeg_noise_floor) costs a clean JPEG: the U-Net runs where, without
the floor, only the readings did. Restorer.restore on clean JPEGs of scikit-image's colour photos, with the floor
and without, interleaved, so that a shared machine slows both alike. Nothing here asserts a speed.

    python benchmarks/bench_jpeg_floor.py --megapixels 1 --repeats 3
"""

import argparse
from dataclasses import replace
import io
import time

import numpy as np
from PIL import Image
from skimage import data
import torch


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--megapixels", type=float, default=1.0)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    from imagemend.model import Restorer
    from imagemend.model.core.config import RestoreConfig

    torch.set_num_threads(args.threads)
    w = int((args.megapixels * 1e6 * 4 / 3) ** 0.5)
    photos = []
    for name in ("astronaut", "coffee", "chelsea", "rocket"):
        buf = io.BytesIO()
        Image.fromarray(getattr(data, name)()).resize((w, w * 3 // 4), Image.Resampling.LANCZOS).save(buf, "JPEG",
                                                                                                     quality=90)
        photos.append(np.asarray(Image.open(buf).convert("RGB")))
    floor = RestoreConfig().jpeg_noise_floor
    off = Restorer(device="cpu", cfg=replace(RestoreConfig(), jpeg_noise_floor=0.0))
    runs = {floor: Restorer(device="cpu"), 0.0: off}
    seconds: dict[float, list[float]] = {k: [] for k in runs}
    for _ in range(args.repeats):
        for k, r in runs.items():
            t = time.perf_counter()
            out = r.restore(photos, jpeg=[True] * len(photos))
            seconds[k].append(time.perf_counter() - t)
            assert all(o.applied["denoise"] for o in out) == (k > 0)
    mp = sum(p.shape[0] * p.shape[1] for p in photos) / 1e6
    for k, v in seconds.items():
        print(f"floor {k:g}: best {min(v):.2f} s for {mp:.1f} MP ({min(v) / mp:.2f} s/MP); runs "
              + ", ".join(f"{x:.2f}" for x in v))
    print(f"ratio: {min(seconds[floor]) / min(seconds[0.0]):.2f}x")


if __name__ == "__main__":
    main()
