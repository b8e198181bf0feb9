"""Camera-pipeline damage: real sensor noise is added in raw, before the camera's processing.

After Brooks et al., "Unprocessing Images for Learned Raw Denoising" (CVPR 2019), with the
higher-order chain of BSRGAN / Real-ESRGAN at the end. A clean sRGB photo is unprocessed to a
plausible raw mosaic (inverse tone curve, inverse sRGB gamma, inverse colour matrix drawn as a
random mix of real cameras' matrices, inverse white balance and digital gain, RGGB Bayer mosaic);
shot and read noise are added there (variance = shot * signal + read, the two tied on a log-log
line as measured on real sensors); then the camera's forward pipeline runs again: demosaicing
(bilinear or Malvar-He-Cutler), white balance, colour matrix, gamma and tone curve, sharpening
(an unsharp-mask halo), optional downscaling from a larger sensor, the camera's noise reduction
(which leaves real camera noise correlated over a few pixels: on PolyU's captures the noise's
neighbour correlation is 0.4 to 0.8, white noise's 0), and JPEG with 4:2:0 chroma.
What comes out is noise that is signal-dependent, correlated across channels and neighbours,
and partly quantised away, as in a real camera JPEG. The same chain without noise and JPEG is
the clean render a restorer should reach.
"""

from dataclasses import dataclass
import io
import math

import numpy as np
from PIL import Image
import torch
import torch.nn.functional as F

from ..core.color import linear_to_srgb, srgb_to_linear
from ..core.config import CameraConfig
from ..core.pixels import to_uint8

# XYZ -> camera matrices of four cameras (as published with the unprocessing paper)
XYZ2CAM = torch.tensor([
    [[1.0234, -0.2969, -0.2266], [-0.5625, 1.6328, -0.0469], [-0.0703, 0.2188, 0.6406]],
    [[0.4913, -0.0541, -0.0202], [-0.6130, 1.3513, 0.2906], [-0.1564, 0.2151, 0.7183]],
    [[0.8380, -0.2630, -0.0639], [-0.2887, 1.0725, 0.2496], [-0.0627, 0.1427, 0.5438]],
    [[0.6596, -0.2079, -0.0562], [-0.4782, 1.3016, 0.1933], [-0.0970, 0.1581, 0.5181]],
])
RGB2XYZ = torch.tensor([[0.4124564, 0.3575761, 0.1804375], [0.2126729, 0.7151522, 0.0721750],
                        [0.0193339, 0.1191920, 0.9503041]])
DEMOSAIC = ("bilinear", "malvar")
LUMA_YUV = (0.299, 0.587, 0.114)


@dataclass
class CameraParams:
    """One draw per sample; `noise` scales the variance (0 renders the clean image)."""
    rgb2cam: torch.Tensor  # (B, 3, 3), rows sum to 1
    wb: torch.Tensor  # (B, 3) red, green, blue gains the camera applies
    shot: torch.Tensor  # (B,) variance per unit of linear signal
    read: torch.Tensor  # (B,) signal-independent variance
    demosaic: torch.Tensor  # (B,) index into DEMOSAIC
    sharpen_amount: torch.Tensor  # (B,) 0 = no sharpening
    sharpen_radius: torch.Tensor  # (B,) Gaussian sigma of the unsharp mask, px
    sensor_scale: torch.Tensor  # (B,) sensor pixels per output pixel along a side (1 = no resizing)
    nr_luma: torch.Tensor  # (B,) in-camera noise reduction: Gaussian sigma (px) on the noise's luma, 0 = off
    nr_chroma: torch.Tensor  # (B,) and on its chroma, which cameras smooth harder
    jpeg_quality: torch.Tensor  # (B,) 0 = no JPEG


def _uniform(g: torch.Generator, n: int, lo: float, hi: float) -> torch.Tensor:
    return lo + (hi - lo) * torch.rand(n, generator=g)


def sample_camera(n: int, g: torch.Generator, cfg: CameraConfig = CameraConfig()) -> CameraParams:
    w = _uniform(g, n * len(XYZ2CAM), 1e-8, 1.0).view(n, -1, 1, 1)
    xyz2cam = (XYZ2CAM[None] * w).sum(1) / w.sum(1)
    rgb2cam = xyz2cam @ RGB2XYZ
    rgb2cam = rgb2cam / rgb2cam.sum(-1, keepdim=True)
    digital = 1 / (cfg.digital_gain[0] + cfg.digital_gain[1] * torch.randn(n, generator=g)).clamp(0.5, 1.2)
    wb = torch.stack([_uniform(g, n, *cfg.red_gain), torch.ones(n), _uniform(g, n, *cfg.blue_gain)], 1)
    wb = wb * digital[:, None]
    log_shot = _uniform(g, n, math.log(cfg.shot[0]), math.log(cfg.shot[1]))
    slope, intercept = cfg.read_line
    log_read = slope * log_shot + intercept + cfg.read_jitter * torch.randn(n, generator=g)
    sharpen = torch.rand(n, generator=g) < cfg.p_sharpen
    resize = torch.rand(n, generator=g) < cfg.p_resize
    jpeg = torch.rand(n, generator=g) < cfg.p_jpeg
    nr = torch.rand(n, generator=g) < cfg.p_noise_reduction
    return CameraParams(
        rgb2cam=rgb2cam, wb=wb, shot=log_shot.exp(), read=log_read.exp(),
        demosaic=torch.randint(len(DEMOSAIC), (n,), generator=g),
        sharpen_amount=_uniform(g, n, *cfg.sharpen_amount) * sharpen,
        sharpen_radius=_uniform(g, n, *cfg.sharpen_radius),
        sensor_scale=torch.where(resize, _uniform(g, n, *cfg.sensor_scale), 1.0),
        nr_luma=_uniform(g, n, *cfg.nr_luma) * nr,
        nr_chroma=_uniform(g, n, *cfg.nr_chroma) * nr,
        jpeg_quality=torch.where(jpeg, torch.randint(cfg.jpeg_quality[0], cfg.jpeg_quality[1] + 1, (n,), generator=g),
                                 0),
    )


def smoothstep(x: torch.Tensor) -> torch.Tensor:
    """The global tone curve cameras apply after gamma (Brooks et al.'s stand-in for it)."""
    x = x.clamp(0, 1)
    return 3 * x**2 - 2 * x**3


def inverse_smoothstep(y: torch.Tensor) -> torch.Tensor:
    y = y.clamp(0, 1)
    return 0.5 - torch.sin(torch.asin(1 - 2 * y) / 3)


def _colour(x: torch.Tensor, m: torch.Tensor) -> torch.Tensor:
    return torch.einsum("bij,bjhw->bihw", m.to(x), x)


def unprocess(x: torch.Tensor, cam: CameraParams) -> torch.Tensor:
    """sRGB (B, 3, H, W) -> linear camera RGB before white balance, highlights kept unclipped
    by gains that fade to 1 near white (as the paper's safe inversion)."""
    lin = srgb_to_linear(inverse_smoothstep(x))
    lin = _colour(lin, cam.rgb2cam)
    gains = (1 / cam.wb).to(x)[:, :, None, None]
    mask = ((lin.mean(1, keepdim=True) - 0.9).clamp_min(0) / 0.1).square()
    return lin * torch.maximum(mask + (1 - mask) * gains, gains)


def mosaic(x: torch.Tensor) -> torch.Tensor:
    """RGGB Bayer mosaic (B, 1, H, W) of camera RGB: one colour per pixel."""
    m = x[:, 1:2].clone()
    m[:, :, 0::2, 0::2] = x[:, 0:1, 0::2, 0::2]
    m[:, :, 1::2, 1::2] = x[:, 2:3, 1::2, 1::2]
    return m


def _k(rows) -> torch.Tensor:
    return torch.tensor(rows, dtype=torch.float32)


# Malvar, He and Cutler (ICASSP 2004): gradient-corrected linear interpolation, 5x5 kernels / 8, one
# per role: G at R or B; R (B) where its neighbours of that colour lie in the row, the column, the diagonals
_MHC = torch.stack([
    _k([[0, 0, -1, 0, 0], [0, 0, 2, 0, 0], [-1, 2, 4, 2, -1], [0, 0, 2, 0, 0], [0, 0, -1, 0, 0]]),  # G at R, B
    _k([[0, 0, .5, 0, 0], [0, -1, 0, -1, 0], [-1, 4, 5, 4, -1], [0, -1, 0, -1, 0], [0, 0, .5, 0, 0]]),  # row
    _k([[0, 0, -1, 0, 0], [0, -1, 4, -1, 0], [.5, 0, 5, 0, .5], [0, -1, 4, -1, 0], [0, 0, -1, 0, 0]]),  # column
    _k([[0, 0, -1.5, 0, 0], [0, 2, 0, 2, 0], [-1.5, 0, 6, 0, -1.5], [0, 2, 0, 2, 0], [0, 0, -1.5, 0, 0]]),  # diagonal
]) / 8
# bilinear: the same four roles, each the mean of the nearest samples of the wanted colour
_BILINEAR = torch.stack([
    F.pad(_k([[0, 1, 0], [1, 0, 1], [0, 1, 0]]) / 4, (1, 1, 1, 1)),
    F.pad(_k([[0, 0, 0], [1, 0, 1], [0, 0, 0]]) / 2, (1, 1, 1, 1)),
    F.pad(_k([[0, 1, 0], [0, 0, 0], [0, 1, 0]]) / 2, (1, 1, 1, 1)),
    F.pad(_k([[1, 0, 1], [0, 0, 0], [1, 0, 1]]) / 4, (1, 1, 1, 1)),
])


def demosaic(m: torch.Tensor, method: str) -> torch.Tensor:
    """RGGB mosaic (B, 1, H, W), H and W even -> camera RGB (B, 3, H, W)."""
    kernels = {"bilinear": _BILINEAR, "malvar": _MHC}[method].to(m)[:, None]
    g_rb, row, col, diag = F.conv2d(F.pad(m, (2, 2, 2, 2), mode="reflect"), kernels).unbind(1)
    m = m[:, 0]
    h, w = m.shape[-2:]
    yy = torch.arange(h, device=m.device)[:, None] % 2
    xx = torch.arange(w, device=m.device)[None] % 2
    at_r, at_b = (yy == 0) & (xx == 0), (yy == 1) & (xx == 1)
    g_in_r_row, g_in_b_row = (yy == 0) & (xx == 1), (yy == 1) & (xx == 0)
    r = torch.where(at_r, m, torch.where(g_in_r_row, row, torch.where(g_in_b_row, col, diag)))
    b = torch.where(at_b, m, torch.where(g_in_b_row, row, torch.where(g_in_r_row, col, diag)))
    g = torch.where(at_r | at_b, g_rb, m)
    return torch.stack([r, g, b], 1)


def process(raw_rgb: torch.Tensor, cam: CameraParams) -> torch.Tensor:
    """Camera RGB -> sRGB display: white balance, colour matrix back to sRGB, gamma, tone curve."""
    x = raw_rgb * cam.wb.to(raw_rgb)[:, :, None, None]
    x = _colour(x.clamp(0, 1), torch.linalg.inv(cam.rgb2cam))
    return smoothstep(linear_to_srgb(x.clamp(0, 1)))


def _gaussian_blur(x: torch.Tensor, sigma: float) -> torch.Tensor:
    r = max(1, math.ceil(3 * sigma))
    t = torch.arange(-r, r + 1, dtype=x.dtype, device=x.device)
    k = torch.exp(-0.5 * (t / sigma) ** 2)
    k = k / k.sum()
    c = x.shape[1]
    x = F.pad(x, (r, r, r, r), mode="reflect")
    x = F.conv2d(x, k.view(1, 1, 1, -1).expand(c, 1, 1, -1), groups=c)
    return F.conv2d(x, k.view(1, 1, -1, 1).expand(c, 1, -1, 1), groups=c)


def sharpen(x: torch.Tensor, amount: float, radius: float) -> torch.Tensor:
    """Unsharp mask, the halo cameras add to every JPEG."""
    return (x + amount * (x - _gaussian_blur(x, radius))).clamp(0, 1) if amount > 0 else x


def jpeg_bytes(x: torch.Tensor, quality: int) -> bytes:
    """One (3, H, W) image saved as JPEG with 4:2:0 chroma subsampling, as cameras save."""
    arr = to_uint8(x.permute(1, 2, 0).cpu().numpy())
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="JPEG", quality=int(quality), subsampling=2)
    return buf.getvalue()


def jpeg_420(x: torch.Tensor, quality: int) -> torch.Tensor:
    """Round-trip one (3, H, W) image through `jpeg_bytes`."""
    out = np.asarray(Image.open(io.BytesIO(jpeg_bytes(x, quality))).convert("RGB"), dtype=np.float32) / 255
    return torch.from_numpy(out).permute(2, 0, 1).to(x)


def _raw_noise(raw: torch.Tensor, cam: CameraParams, g: torch.Generator) -> torch.Tensor:
    seed = int(torch.randint(2**62, (1,), generator=g))
    z = torch.randn(raw.shape, generator=torch.Generator(raw.device).manual_seed(seed), device=raw.device,
                    dtype=raw.dtype)
    var = cam.shot.to(raw).view(-1, 1, 1, 1) * raw.clamp_min(0) + cam.read.to(raw).view(-1, 1, 1, 1)
    return raw + var.sqrt() * z


def render(x: torch.Tensor, cam: CameraParams, g: torch.Generator | None) -> torch.Tensor:
    """Clean sRGB (B, 3, H, W), H and W even, through the camera: with noise drawn from g, or the
    clean render with g=None. JPEG is left to `shoot`: the clean render has none."""
    out = torch.empty_like(x)
    for i in range(len(x)):  # per sample: demosaicing method, sensor size and sharpening differ
        one = CameraParams(**{k: v[i:i + 1] for k, v in cam.__dict__.items()})
        xi, h, w = x[i:i + 1], x.shape[2], x.shape[3]
        s = float(one.sensor_scale[0])
        if s > 1:  # a larger sensor: the camera's output is a downscale of its own render
            xi = F.interpolate(xi, size=(2 * round(h * s / 2), 2 * round(w * s / 2)), mode="bilinear",
                               align_corners=False).clamp(0, 1)
        raw = mosaic(unprocess(xi, one))
        if g is not None:
            raw = _raw_noise(raw, one, g)
        y = process(demosaic(raw, DEMOSAIC[int(one.demosaic[0])]), one)
        if s > 1:
            y = F.interpolate(y, size=(h, w), mode="bilinear", antialias=True, align_corners=False)
        out[i] = sharpen(y, float(one.sharpen_amount[0]), float(one.sharpen_radius[0]))[0]
    return out


def noise_reduction(noise: torch.Tensor, luma_sigma: float, chroma_sigma: float) -> torch.Tensor:
    """The camera's noise reduction as it acts on the noise: its luma and chroma low-passed apart. It
    leaves the noise spatially correlated over a few pixels (blotchy), as in real camera JPEGs."""
    w = noise.new_tensor(LUMA_YUV).view(1, 3, 1, 1)
    luma = (noise * w).sum(1, keepdim=True)
    chroma = noise - luma
    if luma_sigma > 0:
        luma = _gaussian_blur(luma, luma_sigma)
    if chroma_sigma > 0:
        chroma = _gaussian_blur(chroma, chroma_sigma)
    return luma + chroma


def capture(x: torch.Tensor, cam: CameraParams, g: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """(noisy capture quantised to 8 bits, before JPEG; clean render) of clean sRGB photos x."""
    clean = render(x, cam, None)
    noise = render(x, cam, g) - clean
    for i in range(len(x)):
        noise[i] = noise_reduction(noise[i:i + 1], float(cam.nr_luma[i]), float(cam.nr_chroma[i]))[0]
    return ((clean + noise).clamp(0, 1) * 255).round() / 255, clean


def shoot(x: torch.Tensor, cam: CameraParams, g: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """(noisy camera JPEG, clean render) of clean sRGB photos x."""
    noisy, clean = capture(x, cam, g)
    for i in torch.nonzero(cam.jpeg_quality).flatten().tolist():
        noisy[i] = jpeg_420(noisy[i], int(cam.jpeg_quality[i]))
    return noisy, clean


def noise_rms(noisy: torch.Tensor, clean: torch.Tensor) -> torch.Tensor:
    """Per-sample RMS of what the camera added, in 8-bit steps: the noise sigma a camera sample is
    labelled with (for white Gaussian noise it is the sigma itself)."""
    return ((noisy - clean) * 255).square().mean((1, 2, 3)).sqrt()
