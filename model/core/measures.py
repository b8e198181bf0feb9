"""Weight-free, no-reference measures of an image, one per task, taken before and after restoration.

Pure numpy (the pipeline measures every image with them, model/evaluation/estimators.py validates them).
They need no model, so they show what a restoration did even where the model's own estimates are
off, and they stay comparable when the weights change. Computed over strips of rows: a 50 MP
photo needs a few strips' worth of memory, not a float copy of the whole image; above SAMPLE pixels
only every k-th strip is measured (all are local statistics, so an even sample estimates them well).

- noise_sigma: Immerkaer's fast noise estimate, averaged over colour channels, in 8-bit steps (denoise).
- laplacian_var: variance of the 3x3 Laplacian of luma, 8-bit units squared; falls with blur (deblur).
- cast: grey-world cast, the largest |log(channel mean / luminance)| in linear light (cast); cast_r,
  cast_g, cast_b are the three log ratios: for a grey-world scene they equal the cast's luminance-
  normalised log gains (imagemend.model.core.color.normalise_gains), so they estimate the cast itself.
- luminance: mean luma in [0, 1], with clipped_high / clipped_low, the share of pixels whose
  brightest channel is >= 0.995 / <= 0.005 (exposure).
- rms_contrast: standard deviation of luma in [0, 1] (contrast).
"""

import math

import numpy as np

from .color import LUMA
from .pixels import white_level

NAMES = ("noise_sigma", "laplacian_var", "cast", "cast_r", "cast_g", "cast_b", "luminance", "clipped_high",
         "clipped_low", "rms_contrast")
STRIP = 256
SAMPLE = 8_000_000  # pixels measured at most per image
_LUTS: dict[int, np.ndarray] = {}


def _srgb_to_linear(x: np.ndarray) -> np.ndarray:
    return np.where(x <= 0.04045, x / 12.92, ((x + 0.055) / 1.055) ** 2.4).astype(np.float32)


def _linear_sums(block: np.ndarray, scale: float) -> np.ndarray:
    """Per-channel sums of linear-light values: for integer pixels, a histogram of each channel
    against a lookup table (exact, and far cheaper than converting every pixel)."""
    if block.dtype.kind == "f":
        return _srgb_to_linear(np.clip(block, 0, 1)).reshape(-1, 3).sum(0, dtype=np.float64)
    n = int(scale)
    if n not in _LUTS:
        _LUTS[n] = _srgb_to_linear(np.arange(n + 1, dtype=np.float64) / n).astype(np.float64)
    return np.array([np.bincount(block[:, :, c].ravel(), minlength=n + 1) @ _LUTS[n] for c in range(3)])


def measure(pixels: np.ndarray) -> dict[str, float | None]:
    """The measures of one image (HxW or HxWxC; alpha ignored); None where a measure does not apply."""
    arr = pixels[:, :, None] if pixels.ndim == 2 else pixels
    h, w, c = arr.shape
    nc = 3 if c >= 3 else 1
    scale = white_level(arr.dtype)
    weights = np.asarray(LUMA, dtype=np.float32)
    s = dict(abs_m=0.0, lap=0.0, lap2=0.0, lum=0.0, lum2=0.0, high=0, low=0)
    lin = np.zeros(3)
    every = max(1, math.ceil(h * w / SAMPLE))
    # integer pixels are thresholded and differenced as integers: exact, and half the memory traffic
    ints = arr.dtype.kind == "u"  # uint8 or uint16 (model/core/pixels.py)
    hi_level, lo_level = (math.ceil(0.995 * scale), math.floor(0.005 * scale)) if ints else (0.995, 0.005)
    n = inner = 0
    for r0 in range(0, h, STRIP * every):
        r1 = min(h, r0 + STRIP)
        n += (r1 - r0) * w
        a, b = max(0, r0 - 1), min(h, r1 + 1)
        block = arr[a:b, :, :nc]
        x = block.astype(np.float32) / np.float32(scale)
        if scale == 1.0:
            x = np.clip(x, 0, 1)
        y = x[:, :, 0] * weights[0] + x[:, :, 1] * weights[1] + x[:, :, 2] * weights[2] if nc == 3 else x[:, :, 0]
        core = y[r0 - a:r1 - a].astype(np.float64)
        s["lum"] += core.sum()
        s["lum2"] += np.square(core).sum()
        raw = block if ints else x
        core_x = raw[r0 - a:r1 - a]
        peak = np.maximum(np.maximum(core_x[:, :, 0], core_x[:, :, 1]), core_x[:, :, 2]) if nc == 3 else core_x[:, :, 0]
        # (elementwise: numpy's max over a last axis of 3 took half of measure's time)
        s["high"] += int((peak >= hi_level).sum())
        s["low"] += int((peak <= lo_level).sum())
        if nc == 3:
            lin += _linear_sums(block[r0 - a:r1 - a], scale)
        lo, hi = max(r0, 1) - a, min(r1, h - 1) - a
        if hi > lo and w >= 3:
            inner += (hi - lo) * (w - 2)
            # the kernel is separable; |m| <= 16 * scale, so 8-bit fits int16 and 16-bit int32
            v = raw[lo - 1:hi + 1].astype(np.int16 if scale <= 255 else np.int32) if ints else x[lo - 1:hi + 1]
            d = v[:, :-2] - 2 * v[:, 1:-1] + v[:, 2:]
            m = d[:-2] - 2 * d[1:-1] + d[2:]
            s["abs_m"] += np.abs(m).sum(dtype=np.int64 if ints else np.float64) / (nc * (scale if ints else 1.0))
            up, mid, dn = y[lo - 1:hi - 1], y[lo:hi], y[lo + 1:hi + 1]
            lap = up[:, 1:-1] + dn[:, 1:-1] + mid[:, :-2] + mid[:, 2:] - 4 * mid[:, 1:-1]
            s["lap"] += lap.sum(dtype=np.float64)
            s["lap2"] += np.square(lap).sum(dtype=np.float64)
    mean = s["lum"] / n
    out: dict[str, float | None] = {
        "noise_sigma": None, "laplacian_var": None, "cast": None, "cast_r": None, "cast_g": None, "cast_b": None,
        "luminance": mean,
        "clipped_high": s["high"] / n, "clipped_low": s["low"] / n,
        "rms_contrast": math.sqrt(max(0.0, s["lum2"] / n - mean * mean)),
    }
    if inner:
        out["noise_sigma"] = 255.0 * math.sqrt(math.pi / 2) * s["abs_m"] / (6.0 * inner)
        lap_mean = s["lap"] / inner
        out["laplacian_var"] = 255.0**2 * max(0.0, s["lap2"] / inner - lap_mean**2)
    if nc == 3:
        means = lin / n
        lum = float(means @ np.asarray(LUMA))
        if lum > 1e-6:
            ratios = np.log((means + 1e-6) / (lum + 1e-6))
            out["cast"] = float(np.max(np.abs(ratios)))
            out["cast_r"], out["cast_g"], out["cast_b"] = (float(v) for v in ratios)
    return {k: (None if v is None else float(v)) for k, v in out.items()}
