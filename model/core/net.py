"""The imagemend network: a global branch for colour and tone, a local U-Net for noise and blur.

Global branch. From a fixed grid of whole-image statistics (model/core/stats.py) a small CNN predicts,
once per image, one severity per task (noise sigma, blur radius, cast log-gains, exposure EV,
contrast factor and gamma) and the parameters of a global correction: white-balance gains and an
exposure gain in linear light, and a monotone tone curve in sRGB. The cast is located as in FFCC
(Barron and Tsai 2017): a cast translates the log-chroma histogram, so each candidate cast is
scored by correlating the histogram with one learned filter as large as the histogram (by FFT),
plus a learned prior over casts; the soft argmax of the scores is the cast.
Being computed once, the correction is the same for every tile of a large image.

Local branch. A U-Net at half resolution (pixel-unshuffled, as FFDNet) removes noise and blur,
conditioned on the estimated noise sigma and blur radius given as constant maps. Two heads
predict separate residuals, one that denoises and one that sharpens, so each can be scaled.

Restoration is local first (undoing what happened last), then the global correction. All output
layers start at zero, so an untrained network is the identity.
"""

import torch
import torch.nn as nn
import torch.nn.functional as F

from .color import LUMA, linear_to_srgb, normalise_gains, srgb_to_linear
from .config import NetConfig
from .noise_level import NoiseReader
from .stats import CHANNELS, CHROMA_RANGE

SIGMA_SCALE, BLUR_SCALE = 25.0, 1.5  # conditioning maps are severity / scale
CHROMA_GAIN = 10.0  # chroma scores span tens of units; stored / 10, Adam's steps suit them
LN2 = 0.6931471805599453


class ResBlock(nn.Module):
    def __init__(self, w: int):
        super().__init__()
        self.c1, self.c2 = nn.Conv2d(w, w, 3, padding=1), nn.Conv2d(w, w, 3, padding=1)

    def forward(self, x):
        return x + self.c2(F.relu(self.c1(x)))


def _stage(w: int, n: int) -> nn.Sequential:
    return nn.Sequential(*[ResBlock(w) for _ in range(n)])


def pixel_unshuffle(x: torch.Tensor) -> torch.Tensor:
    """F.pixel_unshuffle(x, 2); on the CPU written as the reshape it is, which runs 2.5 times faster."""
    if x.device.type != "cpu":
        return F.pixel_unshuffle(x, 2)
    b, c, h, w = x.shape
    return x.reshape(b, c, h // 2, 2, w // 2, 2).permute(0, 1, 3, 5, 2, 4).reshape(b, 4 * c, h // 2, w // 2)


class PixelShuffle(nn.PixelShuffle):
    """nn.PixelShuffle(2); on the CPU written as the reshape it is, which runs twice as fast."""

    def __init__(self):
        super().__init__(2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.device.type != "cpu":
            return super().forward(x)
        b, c, h, w = x.shape
        return x.reshape(b, c // 4, 2, 2, h, w).permute(0, 1, 4, 2, 5, 3).reshape(b, c // 4, 2 * h, 2 * w)


def _up(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout * 4, 1), PixelShuffle())


def _head(w: int) -> nn.Sequential:
    conv = nn.Conv2d(w, 12, 3, padding=1)
    nn.init.zeros_(conv.weight), nn.init.zeros_(conv.bias)
    return nn.Sequential(conv, PixelShuffle())


class LocalNet(nn.Module):
    """Conditional U-Net; input sides must be multiples of 8."""

    def __init__(self, cfg: NetConfig):
        super().__init__()
        (w1, w2, w3), (n1, n2, n3) = cfg.widths, cfg.blocks
        self.inp = nn.Conv2d(4 * 5, w1, 3, padding=1)
        self.enc1, self.down1 = _stage(w1, n1), nn.Conv2d(w1, w2, 2, stride=2)
        self.enc2, self.down2 = _stage(w2, n2), nn.Conv2d(w2, w3, 2, stride=2)
        self.mid = _stage(w3, n3)
        self.up2, self.dec2 = _up(w3, w2), _stage(w2, n2)
        self.up1, self.dec1 = _up(w2, w1), _stage(w1, n1)
        self.denoise, self.deblur = _head(w1), _head(w1)

    def forward(self, y: torch.Tensor, sigma: torch.Tensor, blur: torch.Tensor, sharpen: bool = True):
        """Residuals (denoise, deblur) for y (B, 3, H, W) given per-sample sigma (8-bit) and blur (px);
        without `sharpen` the deblur residual is None (a restore that does not use it skips its head)."""
        b, _, h, w = y.shape
        maps = torch.stack([sigma / SIGMA_SCALE, blur / BLUR_SCALE], 1).to(y)[:, :, None, None]
        x = pixel_unshuffle(torch.cat([y, maps.expand(b, 2, h, w)], 1))
        s1 = self.enc1(self.inp(x))
        s2 = self.enc2(self.down1(s1))
        x = self.mid(self.down2(s2))
        x = self.dec2(self.up2(x) + s2)
        x = self.dec1(self.up1(x) + s1)
        return self.denoise(x), self.deblur(x) if sharpen else None


def colour_features(stats: torch.Tensor) -> torch.Tensor:
    """Gray-world and white-patch cues in linear light (log), and luminance quantiles (log)."""
    lin = srgb_to_linear(stats[:, :3]).flatten(2)
    mean = lin.mean(2).clamp_min(1e-4).log()
    patch = lin.quantile(torch.tensor([0.5, 0.98], device=lin.device), dim=2).clamp_min(1e-4).log()
    lum = (lin * lin.new_tensor(LUMA).view(1, 3, 1)).sum(1)
    lq = lum.quantile(torch.tensor([0.1, 0.5, 0.9], device=lin.device), dim=1).clamp_min(1e-4).log().t()
    return torch.cat([mean - mean.mean(1, keepdim=True), patch.permute(1, 0, 2).flatten(1), mean, lq], 1)


class GlobalNet(nn.Module):
    """Severities and global correction parameters from the statistics grid."""

    OUTPUTS = {"noise": 1, "blur": 1, "cast": 3, "exposure": 1, "contrast": 2}

    def __init__(self, cfg: NetConfig):
        super().__init__()
        w, self.knots = cfg.global_width, cfg.curve_knots
        layers, cin = [], CHANNELS
        for cout in (w, w, 2 * w, 2 * w):  # 64 -> 4 cells
            layers += [nn.Conv2d(cin, cout, 3, stride=2, padding=1), nn.ReLU()]
            cin = cout
        self.features = nn.Sequential(*layers)
        n = cfg.thumb  # chroma bins; the filter covers every offset between two bins, without wrap-around
        self.chroma_filter = nn.Parameter(torch.zeros(2 * n, 2 * n))
        self.chroma_prior = nn.Parameter(torch.zeros(n, n))
        self.trunk = nn.Sequential(nn.Linear(4 * w + CHANNELS + 6 + 15, 128), nn.ReLU(), nn.Linear(128, 128), nn.ReLU())
        sizes = dict(self.OUTPUTS, curve=self.knots + 1)
        self.heads = nn.ModuleDict({k: nn.Linear(128, n) for k, n in sizes.items()})
        for head in self.heads.values():
            nn.init.zeros_(head.weight), nn.init.zeros_(head.bias)

    @staticmethod
    def prepare(stats: torch.Tensor) -> torch.Tensor:
        rgb, energy, clip = stats[:, :3], stats[:, 3:5], stats[:, 5:CHANNELS]
        return torch.cat([rgb, (energy + 1e-6).log().add(8).div(4), clip], 1)

    def illuminant(self, hist: torch.Tensor) -> torch.Tensor:
        """Soft argmax (u, v) of the learned score map over the chroma histogram, (B, 2)."""
        b, n = hist.shape[0], hist.shape[-1]
        h = torch.fft.rfft2(hist[:, 0].sqrt(), s=(2 * n, 2 * n))
        score = torch.fft.irfft2(h * torch.fft.rfft2(self.chroma_filter), s=(2 * n, 2 * n))[:, :n, :n]
        p = (CHROMA_GAIN * (score + self.chroma_prior)).flatten(1).softmax(1).view(b, n, n)
        centres = (torch.arange(n, device=hist.device) + 0.5) / n * 2 * CHROMA_RANGE - CHROMA_RANGE
        return torch.stack([(p.sum(2) * centres).sum(1), (p.sum(1) * centres).sum(1)], 1)

    def forward(self, stats: torch.Tensor) -> dict[str, torch.Tensor]:
        stats = stats.float()
        x = self.prepare(stats)
        f = self.features(x)
        noise_floor = x[:, 3:5].flatten(2).quantile(torch.tensor([0.05, 0.25, 0.5], device=x.device), dim=2)
        h = self.trunk(torch.cat([f.mean((2, 3)), f.amax((2, 3)), x.mean((2, 3)),
                                  noise_floor.permute(1, 0, 2).flatten(1), colour_features(stats)], 1))
        o = {k: head(h) for k, head in self.heads.items()}
        u, v = self.illuminant(stats[:, CHANNELS:CHANNELS + 1]).unbind(1)
        k = self.knots
        steps = F.softplus(o["curve"][:, 1:]) / (k * LN2)  # identity at zero
        return {
            "noise_sigma": 10 * F.softplus(o["noise"][:, 0]) / LN2,  # starts at 10
            "blur": F.softplus(o["blur"][:, 0]),
            # a gain g on a channel moves u = log(g/r) by log g_g - log g_r: undo the located shift
            "cast_log_gain": normalise_gains(torch.stack([-u, torch.zeros_like(u), -v], 1) + o["cast"]),
            "exposure_ev": o["exposure"][:, 0],
            "contrast": o["contrast"][:, 0],  # log contrast factor
            "gamma": o["contrast"][:, 1],  # log gamma
            "curve": torch.cat([o["curve"][:, :1], o["curve"][:, :1] + steps.cumsum(1)], 1),
        }


def apply_curve(x: torch.Tensor, curve: torch.Tensor) -> torch.Tensor:
    """Piecewise-linear per-image curve (B, K+1) on [0, 1], applied to every channel."""
    b, k = x.shape[0], curve.shape[1] - 1
    pos = x.clamp(0, 1).reshape(b, -1) * k
    i = pos.detach().floor().clamp(max=k - 1).long()
    lo, hi = curve.gather(1, i), curve.gather(1, i + 1)
    return (lo + (pos - i) * (hi - lo)).reshape(x.shape)


def identity_curve(like: torch.Tensor) -> torch.Tensor:
    return torch.linspace(0, 1, like.shape[1], device=like.device).expand_as(like)


def correct_tone(z: torch.Tensor, est: dict, strength: dict | None = None) -> torch.Tensor:
    """Undo contrast (curve), then exposure and cast in linear light; strengths scale each task."""
    s = {"cast": 1.0, "exposure": 1.0, "contrast": 1.0, **(strength or {})}
    b = z.shape[0]

    def per_sample(v):
        return torch.as_tensor(v, dtype=z.dtype, device=z.device).reshape(-1).expand(b)

    ident = identity_curve(est["curve"])
    curve = ident + per_sample(s["contrast"])[:, None] * (est["curve"] - ident)
    gain = (-est["cast_log_gain"] * per_sample(s["cast"])[:, None]
            - est["exposure_ev"][:, None] * per_sample(s["exposure"])[:, None] * LN2).exp()
    lin = srgb_to_linear(apply_curve(z, curve.to(z))) * gain.to(z)[:, :, None, None]
    return linear_to_srgb(lin)


class ImagemendNet(nn.Module):
    def __init__(self, cfg: NetConfig = NetConfig()):
        super().__init__()
        self.cfg = cfg
        self.glob, self.local = GlobalNet(cfg), LocalNet(cfg)
        self.noise_reader: NoiseReader | None = None  # camera noise (model/core/noise_level.py); weights may carry one

    def estimate(self, stats: torch.Tensor) -> dict[str, torch.Tensor]:
        return self.glob(stats)

    def forward(self, y: torch.Tensor, est: dict, sigma: torch.Tensor | None = None,
                blur: torch.Tensor | None = None, strength: dict | None = None) -> dict[str, torch.Tensor]:
        """Restore crops y whose whole-image estimates are est; sigma/blur override the conditioning."""
        s = {"denoise": 1.0, "deblur": 1.0, **(strength or {})}
        sigma = est["noise_sigma"].detach() if sigma is None else sigma
        blur = est["blur"].detach() if blur is None else blur
        r_n, r_b = self.local(y, sigma, blur)

        def scale(v):
            return torch.as_tensor(v, dtype=y.dtype, device=y.device).reshape(-1, 1, 1, 1)

        denoised = y + scale(s["denoise"]) * r_n
        deblurred = denoised + scale(s["deblur"]) * r_b
        return {"denoised": denoised, "deblurred": deblurred, "restored": correct_tone(deblurred, est, s)}
