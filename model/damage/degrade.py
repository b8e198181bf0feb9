"""Seeded, batched synthesis of archive damage, returning what was done to each sample.

The order follows a camera and an archive: colour cast and exposure happen in linear light
(white balance, shutter), contrast and gamma in the display domain (prints, scans), then optical
blur, then sensor noise, then JPEG. The restorer undoes them in reverse, so we keep the two
intermediate images it must reach: `tone` (damage before blur) and `blurred` (before noise).
All random draws come from one CPU generator, so a seed gives the same batch; the per-pixel
noise is drawn on the batch's own device from a seed taken from it (drawing tens of millions
of normals on the CPU and copying them over was the slowest part of a GPU training step), so
the noise is the same per seed and device.
"""

from dataclasses import dataclass
import math

import numpy as np
import torch
import torch.nn.functional as F

from ..core.color import linear_to_srgb, luminance, normalise_gains, srgb_to_linear
from ..core.config import DegradationConfig
from ..core.pixels import to_tensor, to_uint8
from . import camera

BLUR_KINDS = ("gaussian", "anisotropic", "motion", "defocus")


@dataclass
class Degraded:
    image: torch.Tensor  # (B, 3, H, W) damaged input, sRGB in [0, 1]
    tone: torch.Tensor  # clean photo after colour and tone damage only
    blurred: torch.Tensor  # tone, blurred: what is left once noise is removed
    params: dict[str, torch.Tensor]  # per-sample severities (zero where a damage is off)
    noisy: torch.Tensor  # blurred plus noise, before JPEG: the noise a reader should see, not JPEG's error


def _uniform(g: torch.Generator, n: int, lo: float, hi: float) -> torch.Tensor:
    return lo + (hi - lo) * torch.rand(n, generator=g)


def _log_uniform(g: torch.Generator, n: int, lo: float, hi: float) -> torch.Tensor:
    return _uniform(g, n, math.log(lo), math.log(hi)).exp()


def blur_kernel(kind: str, size: float, ratio: float, angle: float, k: int) -> torch.Tensor:
    """One normalised k x k kernel; `size` is sigma, motion length or disc radius in px."""
    r = torch.arange(k, dtype=torch.float64) - k // 2
    yy, xx = torch.meshgrid(r, r, indexing="ij")
    c, s = math.cos(angle), math.sin(angle)
    u, v = c * xx + s * yy, -s * xx + c * yy
    if kind in ("gaussian", "anisotropic"):
        sv = size * (ratio if kind == "anisotropic" else 1.0)
        ker = torch.exp(-0.5 * ((u / size) ** 2 + (v / sv) ** 2))
    elif kind == "motion":
        t = u.clamp(-size / 2, size / 2)
        ker = (1 - ((u - t) ** 2 + v**2).sqrt()).clamp_min(0)
    else:  # defocus disc, anti-aliased edge
        ker = (size + 0.5 - (xx**2 + yy**2).sqrt()).clamp(0, 1)
    return (ker / ker.sum()).float()


def blur_amount(kernel: torch.Tensor) -> float:
    """RMS radius per axis: equals sigma for an isotropic Gaussian, comparable across kinds."""
    k = kernel.shape[-1]
    r = torch.arange(k, dtype=kernel.dtype) - k // 2
    yy, xx = torch.meshgrid(r, r, indexing="ij")
    my, mx = (kernel * yy).sum(), (kernel * xx).sum()
    return float(((kernel * ((yy - my) ** 2 + (xx - mx) ** 2)).sum() / 2).sqrt())


def apply_blur(x: torch.Tensor, kernels: torch.Tensor) -> torch.Tensor:
    """Per-sample kernels (B, k, k) as one grouped convolution, reflect-padded."""
    b, ch, h, w = x.shape
    k = kernels.shape[-1]
    p = k // 2
    mode = "reflect" if min(h, w) > p else "replicate"
    xp = F.pad(x.reshape(1, b * ch, h, w), (p, p, p, p), mode=mode)
    weight = kernels.to(x).repeat_interleave(ch, 0).unsqueeze(1)
    return F.conv2d(xp, weight.flip(-1, -2), groups=b * ch).reshape(b, ch, h, w)


def apply_tone(x: torch.Tensor, log_gains: torch.Tensor, ev: torch.Tensor,
               contrast: torch.Tensor, gamma: torch.Tensor) -> torch.Tensor:
    """Cast and exposure in linear light (with clipping), then contrast and gamma in sRGB."""
    lin = srgb_to_linear(x) * (log_gains.exp() * (2.0 ** ev)[:, None]).to(x)[:, :, None, None]
    y = linear_to_srgb(lin.clamp(0, 1))
    m = luminance(y).mean((2, 3), keepdim=True)
    y = (m + contrast.to(x)[:, None, None, None] * (y - m)).clamp(0, 1)
    return y ** gamma.to(x)[:, None, None, None]


def sample_params(n: int, g: torch.Generator, cfg: DegradationConfig = DegradationConfig()) -> dict:
    """Draw which damages apply to each of n samples and how strong they are."""
    on = {k: torch.rand(n, generator=g) < getattr(cfg, f"p_{k}")
          for k in ("noise", "blur", "cast", "exposure", "contrast", "jpeg")}
    clean = torch.rand(n, generator=g) < cfg.p_clean
    on = {k: v & ~clean for k, v in on.items()}
    p = {"on_" + k: v for k, v in on.items()}
    p["noise_sigma"] = _uniform(g, n, *cfg.noise_sigma) * on["noise"]
    kinds = torch.multinomial(torch.tensor([0.35, 0.25, 0.2, 0.2]), n, True, generator=g)
    p["blur_kind"] = kinds
    p["blur_size"] = torch.stack([
        _uniform(g, 1, *{0: cfg.blur_sigma, 1: cfg.blur_sigma, 2: cfg.motion_length,
                         3: cfg.defocus_radius}[int(kd)])[0] for kd in kinds]) if n else torch.zeros(0)
    p["blur_ratio"] = _uniform(g, n, *cfg.blur_aniso_ratio)
    p["blur_angle"] = _uniform(g, n, 0, math.pi)
    p["cast_log_gain"] = normalise_gains(
        (torch.rand(n, 3, generator=g) * 2 - 1) * cfg.cast_log_gain) * on["cast"][:, None]
    p["exposure_ev"] = _uniform(g, n, *cfg.exposure_ev) * on["exposure"]
    p["contrast"] = torch.where(on["contrast"], _log_uniform(g, n, *cfg.contrast_factor), 1.0)
    use_gamma = on["contrast"] & (torch.rand(n, generator=g) < cfg.p_gamma)
    p["gamma"] = torch.where(use_gamma, _log_uniform(g, n, *cfg.gamma), 1.0)
    p["noise_kind"] = torch.multinomial(
        torch.tensor([1 - cfg.p_noise_grey - cfg.p_noise_correlated, cfg.p_noise_grey,
                      cfg.p_noise_correlated]), n, True, generator=g)
    p["noise_poisson"] = torch.where(torch.rand(n, generator=g) < cfg.p_noise_poisson,
                                     torch.rand(n, generator=g), 0.0)
    p["jpeg_quality"] = torch.randint(cfg.jpeg_quality[0], cfg.jpeg_quality[1] + 1, (n,), generator=g)
    p["on_camera"] = on["noise"] & (torch.rand(n, generator=g) < cfg.p_camera)
    p["camera"] = camera.sample_camera(n, g, cfg.camera)
    return p


def kernels_for(p: dict, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Blur kernels (identity where blur is off) and their RMS radius, per sample."""
    n = len(p["on_blur"])
    ks = torch.zeros(n, k, k)
    ks[:, k // 2, k // 2] = 1
    amount = torch.zeros(n)
    for i in range(n):
        if p["on_blur"][i]:
            ks[i] = blur_kernel(BLUR_KINDS[int(p["blur_kind"][i])], float(p["blur_size"][i]),
                                float(p["blur_ratio"][i]), float(p["blur_angle"][i]), k)
            amount[i] = blur_amount(ks[i])
    return ks, amount


def add_noise(x: torch.Tensor, p: dict, g: torch.Generator) -> torch.Tensor:
    """Gaussian, grey, channel-correlated or Poisson-Gaussian noise; sigma is the std at mid grey."""
    b = x.shape[0]
    seed = int(torch.randint(2**62, (1,), generator=g))
    z = torch.randn(x.shape, generator=torch.Generator(x.device).manual_seed(seed), device=x.device, dtype=x.dtype)
    kind = p["noise_kind"].to(x.device)
    z = torch.where((kind == 1)[:, None, None, None], z[:, :1].expand_as(z), z)
    mix = torch.full((3, 3), 0.35).fill_diagonal_(1.0).to(x)
    corr = torch.einsum("ij,bjhw->bihw", mix / mix.norm(dim=1, keepdim=True), z)
    z = torch.where((kind == 2)[:, None, None, None], corr, z)
    f = p["noise_poisson"].to(x).view(b, 1, 1, 1)
    std = (p["noise_sigma"].to(x) / 255).view(b, 1, 1, 1) * ((1 - f) + 2 * f * x).clamp_min(0).sqrt()
    return x + std * z


def degrade(x: torch.Tensor, p: dict, g: torch.Generator, cfg: DegradationConfig = DegradationConfig()) -> Degraded:
    """Apply sampled damage to clean sRGB images (B, 3, H, W) in [0, 1]; output is 8-bit quantised."""
    tone = apply_tone(x, p["cast_log_gain"], p["exposure_ev"], p["contrast"], p["gamma"])
    kernels, amount = kernels_for(p, cfg.blur_kernel)
    blurred = tone.clone()  # an identity kernel leaves a sample as it is: convolve only the blurred ones
    on = torch.nonzero(p["on_blur"]).flatten()
    if len(on):
        here = on.to(x.device)
        blurred[here] = apply_blur(tone[here], kernels[on])
    noisy = (add_noise(blurred, p, g).clamp(0, 1) * 255).round() / 255
    cam = p.get("on_camera", torch.zeros(len(x), dtype=torch.bool))
    sigma = p["noise_sigma"].float().clone()
    if cam.any():  # noise through a camera: its clean render is what a restorer reaches
        idx = torch.nonzero(cam).flatten()
        one = camera.CameraParams(**{k: v[idx] for k, v in p["camera"].__dict__.items()})
        here = idx.to(x.device)
        noisy[here], clean = camera.capture(blurred[here], one, g)
        sharp = p["on_blur"][idx].to(x.device)
        tone[here] = torch.where(sharp[:, None, None, None], camera.render(tone[here], one, None), clean)
        blurred[here] = clean
        sigma[idx] = camera.noise_rms(noisy[here], clean).cpu()
    y = noisy.clone()
    quality = torch.where(p["on_jpeg"], p["jpeg_quality"], 0)
    if cam.any():
        quality = torch.where(cam, p["camera"].jpeg_quality, quality)
    for i in torch.nonzero(quality).flatten().tolist():
        y[i] = camera.jpeg_420(y[i], int(quality[i]))
    params = {
        "noise_sigma": sigma,
        "blur": amount,
        "cast_log_gain": p["cast_log_gain"].float(),
        "exposure_ev": p["exposure_ev"].float(),
        "contrast": p["contrast"].float().log(),
        "gamma": p["gamma"].float().log(),
    }
    return Degraded(y, tone, blurred, {k: v.to(x.device) for k, v in params.items()}, noisy)


def fixed_params(n: int, *, noise_sigma: float = 0.0, blur: tuple[str, float] | None = None,
                 cast_gains: tuple[float, float, float] | None = None, exposure_ev: float = 0.0,
                 contrast: float = 1.0, gamma: float = 1.0, jpeg_quality: int | None = None) -> dict:
    """The same named damage for all n samples: evaluation cases are built from this."""
    z = torch.zeros(n, dtype=torch.bool)
    lg = torch.zeros(n, 3) if cast_gains is None else torch.tensor(cast_gains).log().expand(n, 3).clone()
    return {
        "on_noise": z | (noise_sigma > 0), "on_blur": z | (blur is not None),
        "on_jpeg": z | (jpeg_quality is not None),
        "noise_sigma": torch.full((n,), float(noise_sigma)),
        "noise_kind": torch.zeros(n, dtype=torch.long), "noise_poisson": torch.zeros(n),
        "blur_kind": torch.full((n,), BLUR_KINDS.index(blur[0]) if blur else 0),
        "blur_size": torch.full((n,), blur[1] if blur else 0.0),
        "blur_ratio": torch.full((n,), 0.5), "blur_angle": torch.full((n,), 0.6),
        "cast_log_gain": lg, "exposure_ev": torch.full((n,), float(exposure_ev)),
        "contrast": torch.full((n,), float(contrast)), "gamma": torch.full((n,), float(gamma)),
        "jpeg_quality": torch.full((n,), jpeg_quality or 95),
    }


def damaged(images: list[np.ndarray], params: dict | None, seed: int) -> list[np.ndarray]:
    """Each 8-bit photo damaged with params (or randomly sampled damage when None), reproducibly."""
    out = []
    for i, img in enumerate(images):
        g = torch.Generator().manual_seed(seed + i)
        p = sample_params(1, g) if params is None else {k: v[:1] for k, v in params.items()}
        out.append(to_uint8(degrade(to_tensor(img)[None], p, g).image[0].permute(1, 2, 0).cpu().numpy()))
    return out
