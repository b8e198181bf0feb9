"""Full-reference quality of an image against its clean original: PSNR, SSIM and CIEDE2000.

The definitions are the ones papers and scikit-image use, so numbers compare with published ones:
- PSNR: 10 log10(peak^2 / MSE) over all pixels and channels (psnr below), capped at
  PSNR_CAP dB so that identical images give a number a mean can hold.
- SSIM: Wang et al. 2004, exactly `skimage.metrics.structural_similarity(a, b, channel_axis=-1,
  data_range=peak, gaussian_weights=True, sigma=1.5, use_sample_covariance=False)`: an 11-tap
  Gaussian window (sigma 1.5, truncated at 3.5 sigma, reflected at the edges), K1 = 0.01,
  K2 = 0.03, population covariances, the mean of the SSIM map less a 5-pixel border, averaged over
  channels. Computed here a channel at a time in float32, so a large photo needs a few float32
  planes instead of scikit-image's dozen float64 copies (tests check the two agree).
- CIEDE2000: mean `skimage.color.deltaE_ciede2000` between the sRGB images converted to CIELAB
  (D65, 2 degree observer), a strip of rows at a time (the difference is per pixel).
Images are HxW or HxWxC (C in 1..4, alpha ignored), uint8 or uint16; both must have the same shape.
"""

import numpy as np
from scipy.ndimage import gaussian_filter

PSNR_CAP = 100.0
SSIM_SIGMA, SSIM_TRUNCATE, K1, K2 = 1.5, 3.5, 0.01, 0.03
STRIP = 512  # rows per CIEDE2000 strip
METRICS = ("psnr", "ssim", "ciede2000")


class SizeMismatch(ValueError):
    """An output whose shape differs from its reference: a failure to report, never a score."""


def psnr(a: np.ndarray, b: np.ndarray, peak: float = 255.0) -> float:
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float("inf") if mse == 0 else 10 * np.log10(peak**2 / mse)


def _planes(a: np.ndarray) -> np.ndarray:
    """HxWxC colour planes without alpha."""
    a = a[:, :, None] if a.ndim == 2 else a
    return a[:, :, : 3 if a.shape[2] >= 3 else 1]


def peak(a: np.ndarray) -> float:
    if a.dtype == np.uint8:
        return 255.0
    if a.dtype == np.uint16:
        return 65535.0
    raise ValueError(f"full-reference metrics take uint8 or uint16 images, got {a.dtype}")


def check_pair(ref: np.ndarray, out: np.ndarray | None) -> None:
    """Raise SizeMismatch unless out is an image of ref's shape and type."""
    if out is None:
        raise SizeMismatch("no output image")
    if out.shape != ref.shape or out.dtype != ref.dtype:
        raise SizeMismatch(f"output {out.dtype} {out.shape} does not match the reference {ref.dtype} {ref.shape}")


def capped_psnr(ref: np.ndarray, out: np.ndarray) -> float:
    check_pair(ref, out)
    return min(psnr(_planes(out), _planes(ref), peak(ref)), PSNR_CAP)


def ssim(ref: np.ndarray, out: np.ndarray) -> float:
    """Mean SSIM over channels (the definition in the module docstring)."""
    check_pair(ref, out)
    a, b = _planes(ref), _planes(out)
    c1, c2 = (K1 * peak(ref)) ** 2, (K2 * peak(ref)) ** 2
    pad = int(SSIM_TRUNCATE * SSIM_SIGMA + 0.5)
    if min(a.shape[:2]) < 2 * pad + 1:
        raise ValueError(f"SSIM needs at least {2 * pad + 1} pixels a side, got {a.shape[:2]}")

    def blur(x: np.ndarray) -> np.ndarray:
        return gaussian_filter(x, SSIM_SIGMA, mode="reflect", truncate=SSIM_TRUNCATE)

    scores = []
    for ch in range(a.shape[2]):
        x, y = a[:, :, ch].astype(np.float32), b[:, :, ch].astype(np.float32)
        ux, uy = blur(x), blur(y)
        vx, vy, vxy = blur(x * x) - ux * ux, blur(y * y) - uy * uy, blur(x * y) - ux * uy
        s = ((2 * ux * uy + c1) * (2 * vxy + c2)) / ((ux * ux + uy * uy + c1) * (vx + vy + c2))
        scores.append(s[pad:-pad, pad:-pad].mean(dtype=np.float64))
    return float(np.mean(scores))


def ciede2000(ref: np.ndarray, out: np.ndarray) -> float:
    """Mean CIEDE2000 colour difference of the sRGB images (greyscale is taken as neutral RGB)."""
    from skimage.color import deltaE_ciede2000, rgb2lab

    check_pair(ref, out)
    a, b = _planes(ref), _planes(out)
    scale = peak(ref)
    total = 0.0
    for r0 in range(0, a.shape[0], STRIP):
        sa, sb = (np.broadcast_to(p[r0:r0 + STRIP], (*p[r0:r0 + STRIP].shape[:2], 3)).astype(np.float64) / scale
                  for p in (a, b))
        total += deltaE_ciede2000(rgb2lab(sa), rgb2lab(sb)).sum()
    return float(total / (a.shape[0] * a.shape[1]))


def compare(ref: np.ndarray, out: np.ndarray | None) -> dict[str, float]:
    """PSNR, SSIM and CIEDE2000 of out against ref; SizeMismatch when out is missing or misshapen."""
    check_pair(ref, out)
    return {"psnr": capped_psnr(ref, out), "ssim": ssim(ref, out), "ciede2000": ciede2000(ref, out)}
