"""What every benchmark shares: the photo they time, the timer and the restorer they build."""

import time

import numpy as np
from PIL import Image
import torch


def photo(megapixels: float, seed: int = 0, noise: float = 8.0) -> np.ndarray:
    """A sample photo resized to the given size (4:3), with mild noise (sigma `noise`) so every task has work."""
    from skimage import data

    w = int((megapixels * 1e6 * 4 / 3) ** 0.5)
    h = max(1, int(w * 3 / 4))
    img = np.asarray(Image.fromarray(data.astronaut()).resize((w, h), Image.BILINEAR))
    return np.clip(img + np.random.default_rng(seed).normal(0, noise, img.shape), 0, 255).astype(np.uint8)


def best_of(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        times.append(time.perf_counter() - t0)
    return min(times)


def restorer(device: str, weights: str | None, **cfg):
    from imagemend.model import Restorer
    from imagemend.model.core.config import RestoreConfig
    from imagemend.model.core.weights import DEFAULT_WEIGHTS

    return Restorer(weights=weights or DEFAULT_WEIGHTS, device=device, cfg=RestoreConfig(**cfg))
