"""sRGB transfer functions and luminance: casts and exposure live in linear light."""

import torch

LUMA = (0.2126, 0.7152, 0.0722)  # Rec. 709 weights for linear RGB


def srgb_to_linear(x: torch.Tensor) -> torch.Tensor:
    x = x.clamp(0, 1)
    return torch.where(x <= 0.04045, x / 12.92, ((x + 0.055) / 1.055) ** 2.4)


def linear_to_srgb(x: torch.Tensor) -> torch.Tensor:
    x = x.clamp(0, 1)
    return torch.where(x <= 0.0031308, x * 12.92, 1.055 * x.clamp_min(1e-8) ** (1 / 2.4) - 0.055)


def luminance(x: torch.Tensor) -> torch.Tensor:
    """Weighted channel sum of a (B, 3, H, W) tensor, keeping the channel dim."""
    w = x.new_tensor(LUMA).view(1, 3, 1, 1)
    return (x * w).sum(1, keepdim=True)


def normalise_gains(log_gains: torch.Tensor) -> torch.Tensor:
    """Shift (B, 3) log gains so the gains keep luminance: a cast changes colour, not brightness."""
    g = log_gains.exp()
    w = log_gains.new_tensor(LUMA)
    return log_gains - (g * w).sum(-1, keepdim=True).log()
