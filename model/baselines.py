"""Classical methods a user could pick instead of the network, one per task (sRGB uint8 in and out)."""

import numpy as np
from skimage.filters import unsharp_mask
from skimage.restoration import denoise_nl_means
import torch

from .color import LUMA, linear_to_srgb, srgb_to_linear


def _lin(img: np.ndarray) -> np.ndarray:
    return srgb_to_linear(torch.from_numpy(img.astype(np.float32) / 255)).numpy()


def _srgb8(lin: np.ndarray) -> np.ndarray:
    return (linear_to_srgb(torch.from_numpy(np.clip(lin, 0, 1))).numpy() * 255 + 0.5).astype(np.uint8)


def nl_means(img: np.ndarray, sigma: float) -> np.ndarray:
    """Non-local means given the true noise sigma (8-bit units), h = 0.8 sigma as scikit-image advises."""
    s = sigma / 255
    out = denoise_nl_means(img.astype(np.float32) / 255, h=0.8 * s, sigma=s, fast_mode=True,
                           patch_size=5, patch_distance=6, channel_axis=-1)
    return (np.clip(out, 0, 1) * 255 + 0.5).astype(np.uint8)


def unsharp(img: np.ndarray, radius: float = 1.5, amount: float = 2.0) -> np.ndarray:
    # channel_axis=-1 and float32 input both give garbage in scikit-image 0.26: use axis 2, float64
    out = unsharp_mask(img / 255.0, radius=radius, amount=amount, channel_axis=2)
    return (np.clip(out, 0, 1) * 255 + 0.5).astype(np.uint8)


def gray_world(img: np.ndarray) -> np.ndarray:
    """Equalise the channel means in linear light, keeping luminance."""
    lin = _lin(img)
    means = lin.reshape(-1, 3).mean(0) + 1e-6
    gains = means.mean() / means
    gains /= (np.asarray(LUMA) * gains).sum()
    return _srgb8(lin * gains)


def auto_exposure(img: np.ndarray, target: float = 0.5) -> np.ndarray:
    """Linear-light gain that puts the median luminance at sRGB mid grey."""
    lin = _lin(img)
    y = np.median(lin @ np.asarray(LUMA, dtype=np.float32))
    return _srgb8(lin * (srgb_to_linear(torch.tensor(target)).item() / max(float(y), 1e-4)))


def auto_levels(img: np.ndarray, lo: float = 1.0, hi: float = 99.0) -> np.ndarray:
    """Stretch the 1st..99th luminance percentiles to the full range, same map for every channel."""
    x = img.astype(np.float32) / 255
    y = x @ np.asarray(LUMA, dtype=np.float32)
    a, b = np.percentile(y, [lo, hi])
    return (np.clip((x - a) / max(b - a, 1e-3), 0, 1) * 255 + 0.5).astype(np.uint8)
