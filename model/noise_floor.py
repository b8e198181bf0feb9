"""A texture-proof upper bound on the noise sigma, read on the photo's flattest patches.

The noise head reads fine texture (sand with pine needles, porous stone, gravel) as noise, and the
denoiser then smooths clean photos: CBSD68's 175032 reads sigma 9.3 and came back at 30.5 dB.
Texture is rare in a photo's flattest patches, noise is everywhere: the smallest eigenvalue of the
covariance of the flattest 0.5 % of 5x5 patches is the noise variance, which texture barely adds to
(after Liu, Tanaka and Okutomi, IEEE TIP 2013). The reading is biased low (it is a minimum), so it
is mapped to a cap: the sigma at which only 2 % of CBSD432 photos read lower (`CAP_KNOTS`).

JPEG breaks that bound: quantisation flattens the noise in smooth blocks (sigma 10 saved at
quality 85 reads like sigma 3), so the cap is used only where the photo shows no JPEG lattice: the
8x8 block DCT coefficients of luma, aligned as JPEG's, sit on multiples of the quantisation step,
which the mean of cos(2 pi c / q) over the coefficients finds. Quality 95 leaves no lattice we can
see (steps of 1 or 2), and it also leaves the noise in flat blocks.

Heavy noise clips in bright and dark flat areas, which then read low (sigma 50 on CBSD68's 167062
capped at 23), and texture never reads that high (at most 9.3 on CBSD68), so readings from
`RestoreConfig.noise_cap_below` up are left as the head gave them.

    python -m model.noise_floor --data ../shared/data/train/CBSD432   # the knots
"""

import argparse
import math

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view
from scipy.fft import dctn

PATCH = 5
POSITIONS = 40_000  # patches sampled (on a regular grid) per photo
FLAT_SHARE = 0.005  # the flattest 0.5 % of them
MAX_CLIPPED = 0.25  # patches with more clipped pixels than this say nothing about noise
# (sigma, reading) where 2 % of the first 96 CBSD432 photos with Gaussian noise of that sigma read
# lower; `python -m model.noise_floor --data train/CBSD432`
CAP_KNOTS = ((0.0, 0.0), (5.0, 2.16), (10.0, 4.12), (15.0, 5.78), (25.0, 9.02), (35.0, 12.45), (50.0, 16.96))
LATTICE_COEFFICIENTS = ((0, 1), (1, 0), (1, 1), (0, 2), (2, 0))  # low frequencies: coarse steps, many non-zero
LATTICE_STEPS = range(2, 24)
LATTICE_THRESHOLD = 0.35  # clean and noisy PNGs score at most 0.23, quality 85 and below at least 0.48
LATTICE_SAMPLE = 2**20  # pixels of block rows read at most


def _eight_bit(pixels: np.ndarray) -> tuple[np.ndarray, float]:
    """Colour planes (H, W, 1 or 3) and the factor to 8-bit units, whatever the depth."""
    arr = pixels[:, :, None] if pixels.ndim == 2 else pixels
    scale = {np.dtype(np.uint8): 1.0, np.dtype(np.uint16): 255 / 65535}.get(arr.dtype, 255.0)
    return (arr[..., :3] if arr.shape[2] >= 3 else arr[..., :1]), scale


def flat_noise(pixels: np.ndarray) -> float | None:
    """Noise sigma (8-bit steps) of the flattest patches; None when there are too few to tell."""
    arr, scale = _eight_bit(pixels)
    h, w, _ = arr.shape
    if h < PATCH or w < PATCH:
        return None
    step = max(1, math.ceil(math.sqrt((h - PATCH + 1) * (w - PATCH + 1) / POSITIONS)))
    bands = []
    for r0 in range(0, h - PATCH + 1, step):
        band = arr[r0:r0 + PATCH].astype(np.float32) * scale
        win = sliding_window_view(band, PATCH, axis=1)[:, ::step]  # (PATCH, n, c, PATCH)
        bands.append(win.transpose(1, 2, 0, 3).reshape(-1, PATCH * PATCH))
    x = np.concatenate(bands)
    x = x[((x < 0.5) | (x > 254.5)).mean(1) < MAX_CLIPPED].astype(np.float64)
    if len(x) < 100:
        return None
    k = np.arange(PATCH * PATCH).reshape(PATCH, PATCH)
    energy = (np.square(x[:, k[:, 1:]] - x[:, k[:, :-1]]).sum((1, 2))
              + np.square(x[:, k[1:]] - x[:, k[:-1]]).sum((1, 2)))
    flat = x[energy <= np.quantile(energy, FLAT_SHARE)]
    centred = flat - flat.mean(0)
    return math.sqrt(max(float(np.linalg.eigvalsh(centred.T @ centred / len(centred))[0]), 0.0))


def jpeg_lattice(pixels: np.ndarray) -> float:
    """How strongly luma's aligned 8x8 DCT coefficients sit on a lattice (0: none, 1: exactly).
    Only 8-bit images can come from a JPEG; others score 0."""
    if pixels.dtype != np.uint8:
        return 0.0
    arr, _ = _eight_bit(pixels)
    h, w = arr.shape[0] // 8 * 8, arr.shape[1] // 8 * 8
    if h == 0 or w == 0:
        return 0.0
    rows = np.linspace(0, h // 8 - 1, max(1, min(h // 8, LATTICE_SAMPLE // (8 * w)))).astype(int)
    x = np.stack([arr[8 * r:8 * r + 8, :w].astype(np.float64) for r in np.unique(rows)])  # (n, 8, w, c)
    luma = x[..., 0] if x.shape[-1] == 1 else x @ np.array([0.299, 0.587, 0.114])  # JPEG's Y
    blocks = (luma - 128).reshape(len(x), 8, w // 8, 8).transpose(0, 2, 1, 3)
    d = dctn(blocks, axes=(2, 3), norm="ortho")
    scores = []
    for u, v in LATTICE_COEFFICIENTS:
        c = d[:, :, u, v].ravel()
        c = c[np.abs(c) > 0.75]  # zeros are the easy majority; the lattice shows in the rest
        scores.append(0.0 if len(c) < 200 else max(float(np.cos(2 * math.pi * c / q).mean()) for q in LATTICE_STEPS))
    return float(np.median(scores))


def noise_cap(pixels: np.ndarray) -> float:
    """The largest noise sigma (8-bit) the photo's flat patches allow; infinite for a JPEG, or
    where too few patches are left to tell."""
    r = flat_noise(pixels)
    if r is None or jpeg_lattice(pixels) >= LATTICE_THRESHOLD:
        return math.inf
    sigma, read = zip(*CAP_KNOTS)
    return float(np.interp(r, read, sigma)) if r <= read[-1] else sigma[-1] * r / read[-1]


def main(argv: list[str] | None = None) -> None:
    from . import suites
    from .data import load_photos

    ap = argparse.ArgumentParser(description="Flat-patch readings per Gaussian noise sigma: CAP_KNOTS.")
    ap.add_argument("--data", required=True)
    ap.add_argument("--limit", type=int, default=96)
    args = ap.parse_args(argv)
    photos = load_photos(args.data, args.limit)
    for case in suites.suite("estimators", ["clean", "noise5", "noise10", "noise15", "noise25", "noise35", "noise50"]):
        v = [r for k, a in photos.items() if (r := flat_noise(case.apply(a, k))) is not None]
        q = np.percentile(v, [2, 50, 98])
        print(f"sigma {case.truth['noise_sigma']:4.1f}: reading p2 {q[0]:.2f} median {q[1]:.2f} p98 {q[2]:.2f}")


if __name__ == "__main__":
    main()
