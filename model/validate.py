"""Quick validation during training: PSNR on held-out photos for fixed, seeded damage."""

import numpy as np
import torch

from . import pixels
from .data import to_tensor
from .degrade import degrade, fixed_params, sample_params


def psnr(a: np.ndarray, b: np.ndarray, peak: float = 255.0) -> float:
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float("inf") if mse == 0 else 10 * np.log10(peak**2 / mse)


def to_uint8(x: torch.Tensor) -> np.ndarray:
    """A (3, H, W) tensor in [0, 1] as an HxWx3 8-bit photo."""
    return pixels.to_uint8(x.permute(1, 2, 0).cpu().numpy())


def damaged(images: list[np.ndarray], params: dict | None, seed: int) -> list[np.ndarray]:
    """Each photo damaged with params (or randomly sampled damage when None), reproducibly."""
    out = []
    for i, img in enumerate(images):
        g = torch.Generator().manual_seed(seed + i)
        p = sample_params(1, g) if params is None else {k: v[:1] for k, v in params.items()}
        out.append(to_uint8(degrade(to_tensor(img)[None], p, g).image[0]))
    return out


def validate(net, images: list[np.ndarray]) -> dict[str, float]:
    from .restore import Restorer  # restore imports the network module; keep train importable alone

    r = Restorer(net, device=str(next(net.parameters()).device))
    scores = {}
    for name, params in (("noise25", fixed_params(1, noise_sigma=25)), ("mixed", None)):
        bad = damaged(images, params, seed=1234)
        out = [x.image for x in r.restore(bad)]
        scores[name] = float(np.mean([min(psnr(o, c), 60.0) for o, c in zip(out, images)]))
        scores[name + "_input"] = float(np.mean([min(psnr(b, c), 60.0) for b, c in zip(bad, images)]))
    return scores
