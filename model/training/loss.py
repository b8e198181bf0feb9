"""Per-task losses and their weighted sum, L = sum_t w_t L_t.

Each task has its own target, so each head learns its own job:
  denoise   |y + r_n - blurred|           the denoise head removes noise and nothing else
  deblur    |y + r_n + r_b - tone|        the sharpen head removes the blur that remains
  contrast  (correct(z) - clean)^2        the tone curve (and, through it, the whole chain)
  cast      (log g_hat - log g)^2         white-balance gains, linear light
  exposure  (ev_hat - ev)^2
  severity  |log(1 + sigma_hat) - log(1 + sigma)| + squared errors of blur radius, log contrast, log gamma
Squared errors for everything global: most samples carry no cast, exposure or contrast error, so
an L1 loss makes "no correction" (the median) a stable answer for every ambiguous photo and the
heads never move (measured: a tone curve trained on L1 pixels stayed near identity); the squared
error regresses to the mean and keeps them learning.
Uncertainty weighting (Kendall et al. 2018) replaces w_t by learned exp(-s_t) plus s_t.
"""

import torch
import torch.nn as nn

from ..core.config import LossConfig

LOSS_TERMS = ("denoise", "deblur", "cast", "exposure", "contrast", "severity")


def charbonnier(a: torch.Tensor, b: torch.Tensor, eps: float = 1e-3) -> torch.Tensor:
    return ((a - b).square() + eps * eps).sqrt().mean()


def task_losses(pred: dict, est: dict, target: dict) -> dict[str, torch.Tensor]:
    """pred: denoised, deblurred, restored crops; est: global branch outputs; target: crops and params."""
    p = target["params"]
    sev = ((est["noise_sigma"].clamp_min(0).log1p() - p["noise_sigma"].log1p()).abs().mean()
           + (est["blur"] - p["blur"]).square().mean()
           + (est["contrast"] - p["contrast"]).square().mean()
           + (est["gamma"] - p["gamma"]).square().mean())
    return {
        "denoise": charbonnier(pred["denoised"], target["blurred"]),
        "deblur": charbonnier(pred["deblurred"], target["tone"]),
        "contrast": (pred["restored"] - target["clean"]).square().mean(),
        "cast": (est["cast_log_gain"] - p["cast_log_gain"]).square().mean(),
        "exposure": (est["exposure_ev"] - p["exposure_ev"]).square().mean(),
        "severity": sev,
    }


class Weighting(nn.Module):
    """Fixed weights, or learned homoscedastic-uncertainty weights seeded from them."""

    def __init__(self, cfg: LossConfig = LossConfig()):
        super().__init__()
        self.mode = cfg.weighting
        self.register_buffer("w", torch.tensor([cfg.weights[t] for t in LOSS_TERMS]))
        self.log_var = nn.Parameter(torch.zeros(len(LOSS_TERMS)), requires_grad=self.mode == "uncertainty")

    def effective(self) -> dict[str, float]:
        """w_t exp(-s_t): the weight each term has now (the fixed w_t unless learned)."""
        w = self.w * torch.exp(-self.log_var) if self.mode == "uncertainty" else self.w
        return {t: round(float(v), 4) for t, v in zip(LOSS_TERMS, w)}

    def forward(self, losses: dict[str, torch.Tensor]) -> torch.Tensor:
        l = torch.stack([losses[t] for t in LOSS_TERMS])
        if self.mode == "uncertainty":
            return (self.w * l * torch.exp(-self.log_var) + self.log_var).sum()
        return (self.w * l).sum()
