"""Train the noise reader (model/core/noise_level.py) on patches of clean photos damaged on the fly.

Damage is the training prior's (model/core/config.py DegradationConfig: clean, Gaussian, Poisson,
correlated, JPEG and camera-pipeline noise, with blur and tone damage); each patch is labelled
with the RMS of the noise the damage added (before any JPEG: the reader measures noise, not JPEG's
error, so a clean web JPEG reads clean) on top of the image a restorer should reach.
"""

import argparse
from dataclasses import asdict
import json
import math
import time

from safetensors.torch import save_file
import torch

from ..core.config import DegradationConfig
from ..core.noise_level import PATCH, NoiseReader, patch_features
from ..damage.degrade import degrade, sample_params
from ..data import list_images, load_rgb, random_crops

VIEW = 128  # side of the damaged view patches are cut from
VIEWS_PER_DRAW = 32


def patches_and_labels(images, n: int, g: torch.Generator, cfg: DegradationConfig, per_view: int = 4):
    """per_view random patches of each of n damaged views, and their noise RMS in 8-bit steps."""
    x = random_crops(images, n, VIEW, g)
    d = degrade(x, sample_params(n, g, cfg), g, cfg)
    ys = torch.randint(VIEW - PATCH + 1, (n, per_view), generator=g)
    xs = torch.randint(VIEW - PATCH + 1, (n, per_view), generator=g)
    noisy, before, target = [], [], []
    for i in range(n):
        for y, x0 in zip(ys[i].tolist(), xs[i].tolist()):
            noisy.append(d.image[i, :, y:y + PATCH, x0:x0 + PATCH])
            before.append(d.noisy[i, :, y:y + PATCH, x0:x0 + PATCH])
            target.append(d.blurred[i, :, y:y + PATCH, x0:x0 + PATCH])
    before, target = torch.stack(before), torch.stack(target)
    return torch.stack(noisy), ((before - target) * 255).square().mean((1, 2, 3)).sqrt()


def fit(data: str, out: str, views: int, steps: int, lr: float, seed: int) -> dict:
    """Damage `views` views (8 patches each) once, then fit the reader's MLP on their features."""
    torch.manual_seed(seed)
    g = torch.Generator().manual_seed(seed)
    images = [load_rgb(f) for f in list_images(data)]
    cfg = DegradationConfig()
    t0 = time.time()
    feats, labels = [], []
    with torch.no_grad():
        for _ in range(0, views, VIEWS_PER_DRAW):
            x, rms = patches_and_labels(images, VIEWS_PER_DRAW, g, cfg, per_view=8)
            feats.append(patch_features(x)), labels.append(rms.log1p())
    f, y = torch.cat(feats), torch.cat(labels)
    hold = torch.rand(len(y), generator=g) < 0.1  # held-out patches: the reported error
    net = NoiseReader()
    net.mean.copy_(f[~hold].mean(0)), net.scale.copy_(f[~hold].std(0).clamp_min(1e-3))
    opt = torch.optim.Adam(net.mlp.parameters(), lr=lr)
    for step in range(steps):
        for group in opt.param_groups:
            group["lr"] = lr * 0.5 * (1 + math.cos(math.pi * step / steps))
        idx = torch.randint(int((~hold).sum()), (4096,), generator=g)
        loss = (net.from_features(f[~hold][idx]) - y[~hold][idx]).abs().mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    with torch.no_grad():
        err = (net.from_features(f[hold]) - y[hold]).abs()
    info = {"data": data, "photos": len(images), "views": views, "patches": len(y), "steps": steps, "lr": lr,
            "seed": seed, "held_out_error_log1p": {"mean": float(err.mean()), "median": float(err.median())},
            "degradation": asdict(cfg), "wall_s": round(time.time() - t0)}
    save_file({k: v.contiguous() for k, v in net.state_dict().items()}, out, metadata={"info": json.dumps(info)})
    return info


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--data", required=True, help="clean training photos (never the validation sets)")
    ap.add_argument("--out", required=True,
                    help="reader weights (safetensors); imagemend.model.tools.merge puts them in a release")
    ap.add_argument("--views", type=int, default=4000, help="damaged views of the photos, 8 patches each")
    ap.add_argument("--steps", type=int, default=3000)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    print(json.dumps(fit(args.data, args.out, args.views, args.steps, args.lr, args.seed)))


if __name__ == "__main__":
    main()
