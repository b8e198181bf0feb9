"""A noise reading that sees camera noise: a small CNN reads the noise RMS of patches.

Camera noise is signal-dependent, spatially correlated (demosaicing), sharpened and partly
quantised away by JPEG; it then barely shows in Immerkaer's energy or in the flattest patches,
which JPEG empties in any photo (PolyU's ISO 1600 to 12800 captures read about 0 on both). As in
CBDNet (Guo et al. 2019) a small network learns to read it instead, trained on the damage that
makes it (model/damage/camera.py, next to Gaussian, Poisson and JPEG damage and clean patches): each
48 px patch on a regular grid gets a reading of its own noise RMS in 8-bit steps, and the photo's
reading is the median of them, so a few textured patches that read as noisy do not decide.
Patches are binned by their mean brightness for a level per intensity (`levels`), which is what
a camera's signal-dependent noise looks like.

    python -m imagemend.model.tools.fit_noise_reader --data ../shared/data/train/CBSD432 --out reader.safetensors
    python -m imagemend.model.tools.merge ... --noise-reader reader.safetensors   # into the shipped weights
"""

import json
from pathlib import Path

import numpy as np
from safetensors import safe_open
from safetensors.torch import load_file
import torch
import torch.nn as nn
import torch.nn.functional as F

from .pixels import white_level
from .stats import immerkaer

PATCH = 48
MAX_PATCHES = 64  # read per photo, on a regular grid
LEVEL_BINS = (0.0, 0.25, 0.5, 0.75, 1.0)  # brightness bins of the per-intensity levels


def _rms(t: torch.Tensor) -> torch.Tensor:
    return t.square().mean((-2, -1)).add(1e-6).sqrt()


def patch_features(x: torch.Tensor) -> torch.Tensor:
    """(B, FEATURES) from (B, 3, P, P) patches in [0, 1]: log RMS of high-pass responses at two
    scales and orientations, on luma and on chroma (camera noise is coloured and correlated over
    a few pixels; JPEG empties the fine scale first), the patch's texture at a coarse scale, and
    its brightness per channel (the noise of a camera grows with the signal)."""
    x = x * 255
    luma = (0.299 * x[:, 0] + 0.587 * x[:, 1] + 0.114 * x[:, 2])[:, None]
    chroma = torch.stack([x[:, 0] - x[:, 1], x[:, 2] - x[:, 1]], 1)
    feats = []
    for plane in (luma, chroma):
        for d in (1, 2):
            feats += [_rms(immerkaer(plane, d)),
                      _rms(plane[..., :, d:] - plane[..., :, :-d]), _rms(plane[..., d:, :] - plane[..., :-d, :])]
    coarse = F.avg_pool2d(luma, 4)
    feats.append(_rms(coarse[..., :, 1:] - coarse[..., :, :-1]) + _rms(coarse[..., 1:, :] - coarse[..., :-1, :]))
    logs = torch.cat([f.mean(1, keepdim=True) for f in feats], 1).log()
    return torch.cat([logs, x.mean((2, 3)) / 255], 1)


FEATURES = 2 * 2 * 3 + 1 + 3


class NoiseReader(nn.Module):
    """log(1 + RMS) of the noise in (B, 3, PATCH, PATCH) patches in [0, 1], from their features."""

    def __init__(self, width: int = 64):
        super().__init__()
        self.register_buffer("mean", torch.zeros(FEATURES))
        self.register_buffer("scale", torch.ones(FEATURES))
        self.mlp = nn.Sequential(nn.Linear(FEATURES, width), nn.ReLU(), nn.Linear(width, width), nn.ReLU(),
                                 nn.Linear(width, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.from_features(patch_features(x))

    def from_features(self, f: torch.Tensor) -> torch.Tensor:
        return self.mlp((f - self.mean) / self.scale)[:, 0]


def grid_patches(pixels: np.ndarray, limit: int = MAX_PATCHES) -> tuple[torch.Tensor, torch.Tensor]:
    """Up to `limit` PATCH x PATCH patches on a regular grid, (N, 3, P, P) in [0, 1], and their mean
    brightness; an image smaller than a patch gives none."""
    arr = pixels[:, :, None] if pixels.ndim == 2 else pixels
    arr = arr[..., :3] if arr.shape[2] >= 3 else np.repeat(arr[..., :1], 3, 2)
    h, w = arr.shape[:2]
    if h < PATCH or w < PATCH:
        return torch.zeros(0, 3, PATCH, PATCH), torch.zeros(0)
    ny = min(h // PATCH, max(1, round(np.sqrt(limit * h / w))))
    nx = min(w // PATCH, max(1, limit // ny))
    ys = np.linspace(0, h - PATCH, ny).astype(int)
    xs = np.linspace(0, w - PATCH, nx).astype(int)
    scale = white_level(arr.dtype)
    p = np.stack([arr[y:y + PATCH, x:x + PATCH] for y in ys for x in xs]).astype(np.float32) / scale
    t = torch.from_numpy(p).permute(0, 3, 1, 2).clamp(0, 1)
    return t, t.mean((1, 2, 3))


def load_reader(path: str | Path) -> NoiseReader:
    """A reader as model/tools/fit_noise_reader.py writes it (the shipped one lives in the main weights file)."""
    net = NoiseReader()
    net.load_state_dict(load_file(str(path)))
    return net.eval()


def reader_fit_info(path: str | Path) -> dict:
    """What model/tools/fit_noise_reader.py recorded about the fit (data, patches, held-out error)."""
    with safe_open(str(path), "pt") as f:
        return json.loads((f.metadata() or {}).get("info", "{}"))


@torch.inference_mode()
def read(net: NoiseReader, pixels: np.ndarray, device: torch.device | str = "cpu") -> dict[str, float]:
    """The photo's noise RMS (median of its patches) and a level per brightness bin (NaN where a
    bin has no patch), all in 8-bit steps."""
    patches, brightness = grid_patches(pixels)
    patches = patches.to(device)
    if not len(patches):
        return {"noise_rms": 0.0, **{f"noise_level_{i}": float("nan") for i in range(len(LEVEL_BINS) - 1)}}
    rms = net(patches).clamp_min(0).expm1().cpu()
    out = {"noise_rms": float(rms.median())}
    for i, (lo, hi) in enumerate(zip(LEVEL_BINS, LEVEL_BINS[1:])):
        inside = (brightness >= lo) & (brightness < hi if hi < 1 else brightness <= hi)
        out[f"noise_level_{i}"] = float(rms[inside].median()) if inside.any() else float("nan")
    return out
