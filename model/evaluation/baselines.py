"""Classical methods a user could pick instead of the network, per task (sRGB uint8 in and out).

BASELINES lists them with what each is told: a method given the true noise sigma or the true blur
kernel (PSF) has an advantage no blind method has, and the reports say so. The first method of a
task is its everyday choice (python -m imagemend.model.evaluation.evaluate shows that one); `imagemend report` runs all.
BM3D comes from the optional `bm3d` package (Tampere University's licence: non-commercial use
only, cite Dabov et al. 2007 and Makinen et al. 2020), installed with the `report` extra.
"""

from collections.abc import Callable
from dataclasses import dataclass
import importlib.util

import numpy as np
from skimage.filters import unsharp_mask
from skimage.restoration import denoise_nl_means
import torch

from ..core.color import LUMA, linear_to_srgb, srgb_to_linear
from ..core.pixels import to_uint8
from .suites import Case

RL_ITERATIONS = 30  # chosen on scikit-image sample photos, not on evaluation data


def _lin(img: np.ndarray) -> np.ndarray:
    return srgb_to_linear(torch.from_numpy(img.astype(np.float32) / 255)).numpy()


def _srgb8(lin: np.ndarray) -> np.ndarray:
    return to_uint8(linear_to_srgb(torch.from_numpy(np.clip(lin, 0, 1))).numpy())


def nl_means(img: np.ndarray, sigma: float) -> np.ndarray:
    """Non-local means given the true noise sigma (8-bit units), h = 0.8 sigma as scikit-image advises."""
    s = sigma / 255
    out = denoise_nl_means(img.astype(np.float32) / 255, h=0.8 * s, sigma=s, fast_mode=True,
                           patch_size=5, patch_distance=6, channel_axis=-1)
    return to_uint8(out)


def unsharp(img: np.ndarray, radius: float = 1.5, amount: float = 2.0) -> np.ndarray:
    # channel_axis=-1 and float32 input both give garbage in scikit-image 0.26: use axis 2, float64
    out = unsharp_mask(img / 255.0, radius=radius, amount=amount, channel_axis=2)
    return to_uint8(out)


def bm3d(img: np.ndarray, sigma: float) -> np.ndarray:
    """CBM3D (the `bm3d` package) given the true noise sigma in 8-bit units."""
    import bm3d as bm3d_package

    return to_uint8(bm3d_package.bm3d_rgb(img.astype(np.float64) / 255, sigma / 255))


def richardson_lucy(img: np.ndarray, psf: np.ndarray, iterations: int = RL_ITERATIONS) -> np.ndarray:
    """Richardson-Lucy deconvolution per channel with the true PSF, on a reflected border (zero
    padding would ring from the edges inwards)."""
    from skimage.restoration import richardson_lucy as rl

    p = psf.shape[0]
    x = np.pad(img.astype(np.float64) / 255, ((p, p), (p, p), (0, 0)), mode="reflect")
    out = np.stack([rl(x[:, :, c], psf, num_iter=iterations, clip=True) for c in range(3)], -1)
    return to_uint8(out[p:-p, p:-p])


def _balance(lin: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """Gains that make the per-channel reference values equal, keeping luminance."""
    gains = reference.mean() / (reference + 1e-6)
    gains /= (np.asarray(LUMA) * gains).sum()
    return _srgb8(lin * gains)


def gray_world(img: np.ndarray) -> np.ndarray:
    """Equalise the channel means in linear light, keeping luminance."""
    lin = _lin(img)
    return _balance(lin, lin.reshape(-1, 3).mean(0))


def white_patch(img: np.ndarray, percentile: float = 99.0) -> np.ndarray:
    """Make the brightest pixels neutral: equalise each channel's 99th percentile in linear light
    (a percentile, not the maximum, so that a few clipped highlights do not decide), keeping luminance."""
    lin = _lin(img)
    return _balance(lin, np.percentile(lin.reshape(-1, 3), percentile, axis=0))


def clahe(img: np.ndarray, clip_limit: float = 0.01) -> np.ndarray:
    """Contrast-limited adaptive histogram equalisation of the value channel (scikit-image's defaults)."""
    from skimage.exposure import equalize_adapthist

    return to_uint8(equalize_adapthist(img, clip_limit=clip_limit))


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
    return to_uint8((x - a) / max(b - a, 1e-3))


@dataclass(frozen=True)
class Baseline:
    name: str
    task: str
    run: Callable[[np.ndarray, Case], np.ndarray]
    given: str = ""  # what the method is told that a blind method is not
    package: str = ""  # optional package it needs

    @property
    def available(self) -> bool:
        return not self.package or importlib.util.find_spec(self.package) is not None


BASELINES: tuple[Baseline, ...] = (
    Baseline("nl-means", "denoise", lambda x, c: nl_means(x, c.truth["noise_sigma"]), "true noise sigma"),
    Baseline("bm3d", "denoise", lambda x, c: bm3d(x, c.truth["noise_sigma"]), "true noise sigma", "bm3d"),
    Baseline("unsharp", "deblur", lambda x, c: unsharp(x)),
    Baseline("richardson-lucy", "deblur", lambda x, c: richardson_lucy(x, c.psf()), "true PSF"),
    Baseline("gray-world", "cast", lambda x, c: gray_world(x)),
    Baseline("white-patch", "cast", lambda x, c: white_patch(x)),
    Baseline("auto-exposure", "exposure", lambda x, c: auto_exposure(x)),
    Baseline("clahe", "exposure", lambda x, c: clahe(x)),
    Baseline("auto-levels", "contrast", lambda x, c: auto_levels(x)),
    Baseline("clahe", "contrast", lambda x, c: clahe(x)),
)


def for_task(task: str, names: list[str] | None = None) -> list[Baseline]:
    """The classical methods for a task (none for mixed and clean cases), optionally only the named ones."""
    return [b for b in BASELINES if b.task == task and (names is None or b.name in names)]
