"""Deblurring by Wiener deconvolution, with the blur measured on the photo's own edges.

The learned sharpen head undoes a Gaussian blur only in part, and the global branch, which sees
the photo only through a 64x64 grid, reads such a blur low. Edges show blur directly:
a step edge blurred by a Gaussian of sigma s, then re-blurred by sigma a, has a peak gradient
proportional to 1 / sqrt(s^2 + a^2), so the ratio of the peak gradients after two known re-blurs
(a = 1 and 2 px) gives s whatever the edge's contrast (after Hu and de Haan, ICIP 2006). Each
edge gives s along its normal; comparing the readings of four edge orientations
tells a Gaussian blur (about the same in every direction) from motion blur (long along one).
Only the blur present in every direction, the least blurred orientation's, is deconvolved, and
only where the orientations agree: motion blur, on which a Gaussian inverse rings, is left to
the sharpen head.

The deconvolution is a Wiener filter with a gradient prior (noise-to-signal growing with the
squared frequency, as for photos' 1/f^2 spectra), cut to a small spatial kernel so that a
tile only needs `RADIUS` more pixels of context. The blur is read before denoising, on strips
spread over the image; the filter runs after the U-Net's denoising, undoing the damage in the
reverse order it was done.

    python -m imagemend.model.tools.edge_blur_readings --data ../shared/data/train/CBSD432   # per case, to calibrate
"""

from collections.abc import Callable
import math

import numpy as np
import torch
import torch.nn.functional as F

from .color import luminance

REBLUR = (1.0, 2.0)  # px, the two known re-blurs
EDGE_SHARE = 0.03  # the strongest 3 % of gradients (per strip), where they peak across the edge, are edges
ORIENTATIONS = 4  # bins of the edge normal: 0, 45, 90, 135 degrees
MIN_EDGES = 20  # per orientation
SAMPLE = 2**19  # pixels read at most (0.24 s per MP read on 2 cores)
STRIP = 256  # rows read at a time
RADIUS = 12  # px: the deconvolution kernel is (2 RADIUS + 1)^2
WIENER_LAMBDA = 3e-3  # noise-to-signal per squared radian of frequency
MAX_SIGMA = 2.0  # px: beyond this the inverse rings on 8-bit photos; deconvolve this much of it
_MARGIN = int(4 * max(REBLUR) + 0.5) + 2  # derivative kernel radius plus the ridge test's neighbours


def _symmetric(n: int, r: int, device: torch.device) -> torch.Tensor:
    """Indices of n samples padded by r on each side, mirrored about the edge (d c b a | a b c d)."""
    i = torch.arange(-r, n + r, device=device) % (2 * n)
    return torch.where(i >= n, 2 * n - 1 - i, i)


def _gaussian(x: torch.Tensor, sigma: float, dim: int, order: int) -> torch.Tensor:
    """x (H, W) filtered along `dim` by a Gaussian (order 0) or its derivative (order 1), truncated
    at 4 sigma with mirrored borders, as scipy.ndimage.gaussian_filter1d (as a sum of shifted
    copies: three times faster on a CPU than unfolding the windows, and as fast on a GPU)."""
    r = int(4 * sigma + 0.5)
    t = torch.arange(-r, r + 1, dtype=torch.float64)
    k = torch.exp(-0.5 * t * t / sigma**2)
    k = k / k.sum() * (-t / sigma**2 if order else 1)
    n = x.shape[dim]
    padded = x.index_select(dim, _symmetric(n, r, x.device))
    out = torch.zeros_like(x)
    for j, w in enumerate(k.flip(0).tolist()):
        out.add_(padded.narrow(dim, j, n), alpha=w)
    return out


def _ridge(g: torch.Tensor, gx: torch.Tensor, gy: torch.Tensor) -> torch.Tensor:
    """Where the gradient magnitude g peaks across the edge (Canny's non-maximum suppression,
    the normal rounded to 45 degrees): one pixel per edge profile, all along the edge."""
    p = F.pad(g[None, None], (1, 1, 1, 1), mode="replicate")[0, 0]
    h, w = g.shape
    angle = torch.round(torch.atan2(gy, gx) / (math.pi / 4)).long() % 4
    peak = torch.zeros_like(g, dtype=torch.bool)
    for k, (dy, dx) in enumerate(((0, 1), (1, 1), (1, 0), (1, -1))):
        a = p[1 + dy:1 + dy + h, 1 + dx:1 + dx + w]
        b = p[1 - dy:1 - dy + h, 1 - dx:1 - dx + w]
        peak |= (angle == k) & (g >= a) & (g > b)
    return peak


def edge_readings(lum: torch.Tensor, top: int, bottom: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Squared blur sigma and edge-normal orientation (0..pi) at the edges of rows [top, H - bottom)."""
    (sa, sb) = REBLUR
    ax, ay = (_gaussian(_gaussian(lum, sa, 0, oy), sa, 1, ox) for oy, ox in ((0, 1), (1, 0)))
    bx, by = (_gaussian(_gaussian(lum, sb, 0, oy), sb, 1, ox) for oy, ox in ((0, 1), (1, 0)))
    ga, gb = torch.hypot(ax, ay), torch.hypot(bx, by)
    peak = _ridge(gb, bx, by)
    rows = slice(top, lum.shape[0] - bottom)
    ga, gb, peak, bx, by = ga[rows], gb[rows], peak[rows], bx[rows], by[rows]
    if gb.numel() == 0:
        return lum.new_zeros(0), lum.new_zeros(0)
    threshold = torch.quantile(gb.flatten()[:: max(1, gb.numel() // 2**16)], 1 - EDGE_SHARE)
    strong = peak & (gb > threshold.clamp(min=1e-3))
    rho2 = torch.square(ga[strong] / gb[strong])
    s2 = (sb * sb - rho2 * sa * sa) / torch.clamp(rho2 - 1, min=1e-3)
    return s2, torch.remainder(torch.atan2(by[strong], bx[strong]), math.pi)


def orientation_medians(s2: torch.Tensor, theta: torch.Tensor) -> list[float]:
    """Median squared sigma of the edges in each orientation bin (NaN where too few edges)."""
    b = torch.clamp((theta / math.pi * ORIENTATIONS).long(), max=ORIENTATIONS - 1)
    return [float(torch.quantile(s2[b == i], 0.5)) if int((b == i).sum()) >= MIN_EDGES else math.nan
            for i in range(ORIENTATIONS)]


def edge_blur(read: Callable[[int, int], torch.Tensor], height: int, width: int) -> tuple[float, float]:
    """(Gaussian sigma in px of the blur present in every direction, anisotropy): the least
    blurred orientation's reading, and the ratio of the most to the least blurred one's squared
    sigma (about 1.2 for a Gaussian blur, 4 to 10 for motion blur; infinite when some orientation
    has too few edges to tell). `read(a, b)` returns rows [a, b) as (1, 3, h, W) in [0, 1], on
    the device where the reading is computed (a restore's own: in float64, it matches on CPU and GPU).
    Strips spread over the image, at most SAMPLE pixels: the reading settles long before the
    whole of a large photo is read."""
    if min(height, width) <= _MARGIN:
        return 0.0, math.inf
    strips = range(0, height, STRIP)
    step = max(1, math.ceil(len(strips) * min(STRIP, height) * width / SAMPLE))
    s2, theta = [], []
    for a in strips[::step]:
        b = min(height, a + STRIP)
        lo, hi = max(0, a - _MARGIN), min(height, b + _MARGIN)
        v, t = edge_readings(luminance(read(lo, hi).double())[0, 0], a - lo, hi - b)
        s2.append(v), theta.append(t)
    med = orientation_medians(torch.cat(s2), torch.cat(theta))
    if any(math.isnan(m) for m in med) or min(med) <= 0:
        return 0.0, math.inf
    return math.sqrt(min(med)), max(med) / min(med)


def photo_tensor(image: np.ndarray) -> torch.Tensor:
    """An 8-bit RGB photo as (1, 3, H, W) in [0, 1]."""
    return torch.from_numpy(image).permute(2, 0, 1)[None].float() / 255


def read_photo(image: np.ndarray) -> tuple[float, float]:
    """edge_blur of an 8-bit RGB photo held whole in memory, as calibration and validation read them."""
    t = photo_tensor(image)
    return edge_blur(lambda a, b: t[:, :, a:b], t.shape[2], t.shape[3])


def wiener_kernel(sigma: float, lam: float = WIENER_LAMBDA, radius: int = RADIUS) -> torch.Tensor:
    """(2 radius + 1)^2 spatial kernel of the Wiener inverse of a Gaussian blur of `sigma` px."""
    n = 8 * radius
    f = torch.fft.fftfreq(n, dtype=torch.float64)
    f2 = f[:, None] ** 2 + f[None] ** 2
    k = torch.exp(-2 * math.pi**2 * min(sigma, MAX_SIGMA) ** 2 * f2)
    inverse = torch.fft.ifft2(k / (k * k + lam * 4 * math.pi**2 * f2)).real
    inverse = torch.fft.fftshift(inverse)[n // 2 - radius:n // 2 + radius + 1, n // 2 - radius:n // 2 + radius + 1]
    return (inverse / inverse.sum()).float()


def deconvolve(x: torch.Tensor, kernels: torch.Tensor) -> torch.Tensor:
    """Each image of x (B, 3, H, W) convolved with its own symmetric kernel (B, k, k), reflected
    borders. By FFT: a 25x25 depthwise convolution took 5 s of a 12 MP photo's 28 on a CPU."""
    h, w = x.shape[-2:]
    r = kernels.shape[-1] // 2
    xp = F.pad(x.float(), (r, r, r, r), mode="reflect")
    size = xp.shape[-2:]
    spectrum = torch.fft.rfft2(xp) * torch.fft.rfft2(kernels.to(xp), s=size)[:, None]
    # circular convolution with the kernel at the origin: output (i, j) lands at (i + 2r, j + 2r)
    return torch.fft.irfft2(spectrum, s=size)[..., 2 * r:2 * r + h, 2 * r:2 * r + w].to(x.dtype)
