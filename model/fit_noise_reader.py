"""Train the noise reader (model/noise_level.py) on patches of clean photos damaged on the fly.

Damage is the training prior's (model/config.py DegradationConfig: clean, Gaussian, Poisson,
correlated, JPEG and camera-pipeline noise, with blur and tone damage); each patch is labelled
with the RMS of what the damage added on top of the image a restorer should reach.
"""

import argparse
from dataclasses import asdict
import json
import math
import time

from safetensors.torch import save_file
import torch

from .config import DegradationConfig
from .data import list_images, load_rgb, random_crops
from .degrade import degrade, sample_params
from .noise_level import PATCH, NoiseReader

VIEW = 128  # side of the damaged view patches are cut from


def patches_and_labels(images, n: int, g: torch.Generator, cfg: DegradationConfig, per_view: int = 4):
    """per_view random patches of each of n damaged views, and their noise RMS in 8-bit steps."""
    x = random_crops(images, n, VIEW, g)
    d = degrade(x, sample_params(n, g, cfg), g, cfg)
    ys = torch.randint(VIEW - PATCH + 1, (n, per_view), generator=g)
    xs = torch.randint(VIEW - PATCH + 1, (n, per_view), generator=g)
    noisy, target = [], []
    for i in range(n):
        for y, x0 in zip(ys[i].tolist(), xs[i].tolist()):
            noisy.append(d.image[i, :, y:y + PATCH, x0:x0 + PATCH])
            target.append(d.blurred[i, :, y:y + PATCH, x0:x0 + PATCH])
    noisy, target = torch.stack(noisy), torch.stack(target)
    return noisy, ((noisy - target) * 255).square().mean((1, 2, 3)).sqrt()


def fit(data: str, out: str, steps: int, batch: int, lr: float, seed: int) -> dict:
    torch.manual_seed(seed)
    g = torch.Generator().manual_seed(seed)
    images = [load_rgb(f) for f in list_images(data)]
    cfg = DegradationConfig()
    net = NoiseReader()
    opt = torch.optim.AdamW(net.parameters(), lr=lr, weight_decay=1e-4)
    t0, recent = time.time(), []
    for step in range(steps):
        for group in opt.param_groups:
            group["lr"] = lr * 0.5 * (1 + math.cos(math.pi * step / steps))
        x, rms = patches_and_labels(images, batch, g, cfg)
        loss = (net(x) - rms.log1p()).abs().mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        recent = (recent + [loss.item()])[-100:]
        if (step + 1) % 100 == 0:
            print(f"step {step + 1} loss {sum(recent) / len(recent):.4f} ({time.time() - t0:.0f} s)", flush=True)
    info = {"data": data, "photos": len(images), "steps": steps, "batch": batch, "lr": lr, "seed": seed,
            "loss_last_100": sum(recent) / len(recent), "degradation": asdict(cfg), "wall_s": round(time.time() - t0)}
    save_file({k: v.contiguous() for k, v in net.state_dict().items()}, out, metadata={"info": json.dumps(info)})
    return info


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--data", required=True, help="clean training photos (never the validation sets)")
    ap.add_argument("--out", required=True, help="reader weights (safetensors); model.merge puts them in a release")
    ap.add_argument("--steps", type=int, default=3000)
    ap.add_argument("--batch", type=int, default=16, help="views per step, 4 patches each")
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    print(json.dumps(fit(args.data, args.out, args.steps, args.batch, args.lr, args.seed)))


if __name__ == "__main__":
    main()
