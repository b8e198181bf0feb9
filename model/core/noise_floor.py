"""A texture-proof upper bound on the noise sigma, read on the photo's flattest patches.

The noise head reads fine texture (sand with pine needles, porous stone, gravel) as noise, and the
denoiser then smooths clean photos.
Texture is rare in a photo's flattest patches, noise is everywhere: the smallest eigenvalue of the
covariance of the flattest 0.5 % of 5x5 patches is the noise variance, which texture barely adds to
(after Liu, Tanaka and Okutomi, IEEE TIP 2013). The reading is biased low (it is a minimum), so it
is mapped to a cap: the sigma at which only 2 % of CBSD432 photos read lower (`CAP_KNOTS`).

JPEG breaks that bound: quantisation flattens the noise in smooth blocks (sigma 10 saved at
quality 85 reads like sigma 3), so the cap is used only where the photo shows no JPEG lattice: the
8x8 block DCT coefficients of luma, aligned as JPEG's, sit on multiples of the quantisation step,
which the mean of cos(2 pi c / q) over the coefficients finds. Quality 95 leaves no lattice we can
see (steps of 1 or 2), and it also leaves the noise in flat blocks.

Heavy noise clips in bright and dark flat areas, which then read low, while texture never reads
as high as heavy noise, so readings from `RestoreConfig.noise_cap_below` up are left as the head
gave them.

    python -m imagemend.model.tools.noise_floor_knots --data ../shared/data/train/CBSD432   # the knots
"""

import math
import statistics

import numpy as np
import torch

from .pixels import white_level

PATCH = 5
POSITIONS = 40_000  # patches sampled (on a regular grid) per photo
FLAT_SHARE = 0.005  # the flattest 0.5 % of them
MAX_CLIPPED = 0.25  # patches with more clipped pixels than this say nothing about noise
# (sigma, reading) where 2 % of the first 96 CBSD432 photos with Gaussian noise of that sigma read
# lower; `python -m imagemend.model.tools.noise_floor_knots --data train/CBSD432`
CAP_KNOTS = ((0.0, 0.0), (5.0, 2.16), (10.0, 4.12), (15.0, 5.78), (25.0, 9.02), (35.0, 12.45), (50.0, 16.96))
LATTICE_COEFFICIENTS = ((0, 1), (1, 0), (1, 1), (0, 2), (2, 0))  # low frequencies: coarse steps, many non-zero
LATTICE_STEPS = range(2, 24)
LATTICE_THRESHOLD = 0.35  # clean and noisy PNGs score at most 0.23, quality 85 and below at least 0.48
LATTICE_SAMPLE = 2**20  # pixels of block rows read at most


def _eight_bit(pixels: np.ndarray, device: torch.device | str) -> tuple[torch.Tensor, float]:
    """Colour planes (H, W, 1 or 3) on `device` and the factor to 8-bit units, whatever the depth.
    8-bit pixels travel as bytes (a 12 MP photo is 36 MB: milliseconds to a GPU)."""
    arr = pixels[:, :, None] if pixels.ndim == 2 else pixels
    arr = arr[..., :3] if arr.shape[2] >= 3 else arr[..., :1]
    scale = 255 / white_level(arr.dtype)
    arr = np.ascontiguousarray(arr if arr.dtype == np.uint8 else arr.astype(np.float32))
    return torch.from_numpy(arr if arr.flags.writeable else arr.copy()).to(device), scale


def flat_noise(pixels: np.ndarray, device: torch.device | str = "cpu") -> float | None:
    """Noise sigma (8-bit steps) of the flattest patches; None when there are too few to tell."""
    arr, scale = _eight_bit(pixels, device)
    h, w, c = arr.shape
    if h < PATCH or w < PATCH:
        return None
    step = max(1, math.ceil(math.sqrt((h - PATCH + 1) * (w - PATCH + 1) / POSITIONS)))
    rows = (torch.arange(0, h - PATCH + 1, step, device=device)[:, None] + torch.arange(PATCH, device=device)).flatten()
    bands = arr[rows].float().view(-1, PATCH, w, c) * scale  # a band of PATCH rows per patch row
    x = bands.unfold(2, PATCH, step).permute(0, 2, 3, 1, 4).reshape(-1, PATCH * PATCH)  # one patch per colour
    x = x[((x < 0.5) | (x > 254.5)).float().mean(1) < MAX_CLIPPED].double()
    if len(x) < 100:
        return None
    p = x.view(-1, PATCH, PATCH)
    energy = (p[:, :, 1:] - p[:, :, :-1]).square().sum((1, 2)) + (p[:, 1:] - p[:, :-1]).square().sum((1, 2))
    flat = x[energy <= torch.quantile(energy, FLAT_SHARE)]
    centred = flat - flat.mean(0)
    return math.sqrt(max(float(torch.linalg.eigvalsh(centred.T @ centred / len(centred))[0]), 0.0))


def _dct_matrix(n: int = 8) -> torch.Tensor:
    """The orthonormal DCT-II: D @ block @ D.T is a block's 2D DCT, as JPEG takes it."""
    k, i = torch.arange(n, dtype=torch.float64)[:, None], torch.arange(n, dtype=torch.float64)[None]
    d = torch.cos(math.pi * (2 * i + 1) * k / (2 * n)) * math.sqrt(2 / n)
    d[0] /= math.sqrt(2)
    return d


def jpeg_lattice(pixels: np.ndarray, device: torch.device | str = "cpu") -> float:
    """How strongly luma's aligned 8x8 DCT coefficients sit on a lattice (0: none, 1: exactly).
    Only 8-bit images can come from a JPEG; others score 0."""
    if pixels.dtype != np.uint8:
        return 0.0
    arr, _ = _eight_bit(pixels, device)
    h, w = arr.shape[0] // 8 * 8, arr.shape[1] // 8 * 8
    if h == 0 or w == 0:
        return 0.0
    blocks = np.unique(np.linspace(0, h // 8 - 1, max(1, min(h // 8, LATTICE_SAMPLE // (8 * w)))).astype(int))
    rows = torch.from_numpy(8 * blocks[:, None] + np.arange(8)).flatten().to(device)
    x = arr[rows, :w].double()  # (n * 8, w, c)
    luma = x[..., 0] if x.shape[-1] == 1 else x @ torch.tensor([0.299, 0.587, 0.114], dtype=x.dtype, device=device)
    b = (luma - 128).view(len(blocks), 8, w // 8, 8).transpose(1, 2)  # (n, w / 8, 8, 8)
    dct = _dct_matrix().to(device)
    d = dct @ b @ dct.T
    steps = torch.tensor(list(LATTICE_STEPS), dtype=x.dtype, device=device)
    scores = []
    for u, v in LATTICE_COEFFICIENTS:
        c = d[:, :, u, v].flatten()
        c = c[c.abs() > 0.75]  # zeros are the easy majority; the lattice shows in the rest
        scores.append(0.0 if len(c) < 200 else float(torch.cos(2 * math.pi * c[:, None] / steps).mean(0).max()))
    return statistics.median(scores)


def noise_cap(pixels: np.ndarray, device: torch.device | str = "cpu") -> float:
    """The largest noise sigma (8-bit) the photo's flat patches allow; infinite for a JPEG, or
    where too few patches are left to tell. Computed on `device` (a restore's own)."""
    r = flat_noise(pixels, device)
    if r is None or jpeg_lattice(pixels, device) >= LATTICE_THRESHOLD:
        return math.inf
    sigma, read = zip(*CAP_KNOTS)
    return float(np.interp(r, read, sigma)) if r <= read[-1] else sigma[-1] * r / read[-1]
