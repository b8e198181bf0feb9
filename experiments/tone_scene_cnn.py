"""Can a CNN that sees the scene tell tone damage from a clean photo, at a do-no-harm threshold?

    python experiments/tone_scene_cnn.py ../shared/data/train/CBSD432 ../shared/data/val/CBSD68 --minutes 40
    python experiments/tone_scene_cnn.py ../shared/data/train/CBSD432 ../shared/data/val/CBSD68 --target cast

The shipped global branch reads whole-image statistics and cannot tell an underexposed photo from a
dark scene (MODEL_CARD, "What this model does not do yet"); neither can a photo's extremes
(experiments/tone_extremes.py). This trains a small CNN on a thumbnail's content (sRGB and log
linear luminance) to read the exposure EV and log contrast that the training prior's tone damages
(imagemend.model.damage.degrade) applied, on 360 CBSD432 photos; the other 72 are clean photos it never saw, whose
largest reading sets the do-no-harm threshold. It then reports, on CBSD68, the reading error on
clean photos and per damage case, the share of damaged photos beyond the threshold, the clean
photos beyond it, and the PSNR gain of undoing the read exposure where the gate fires.

`--target cast` asks the same of the colour cast (the next step MODEL_CARD names for it): the CNN
also sees log chroma in linear light and reads the cast's luminance-normalised log gains; the gate
is the largest cast (max |log gain|) it reads on the 72 clean photos, and the gain is that of
dividing the read gains out where it fires.
"""

import argparse
import math
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from imagemend.model.core.color import linear_to_srgb, luminance, normalise_gains, srgb_to_linear
from imagemend.model.damage.degrade import apply_tone, sample_params
from imagemend.model.data import load_photos
from imagemend.model.evaluation import suites

BASE = (106, 160)  # a BSDS photo / 3, landscape
THUMB = (96, 144)  # what the CNN sees, pooled by 2 inside


def base_view(a: np.ndarray) -> torch.Tensor:
    """An 8-bit photo as a (3, 106, 160) float view, portraits turned landscape."""
    x = torch.from_numpy(a).permute(2, 0, 1).float()[None] / 255
    if x.shape[2] > x.shape[3]:
        x = x.transpose(2, 3)
    return F.interpolate(x, size=BASE, mode="area")[0]


def features(x: torch.Tensor, chroma: bool = False) -> torch.Tensor:
    """sRGB plus log2 linear luminance (centred), and with chroma log(R/G), log(B/G) in linear
    light, pooled to 48 x 72."""
    lin = srgb_to_linear(x)
    planes = [x * 2 - 1, torch.log2(luminance(lin).clamp_min(1 / 1024)) / 4 + 1]
    if chroma:
        log = lin.clamp_min(1 / 1024).log()
        planes.append((log[:, [0, 2]] - log[:, 1:2]) / 2)
    return F.avg_pool2d(torch.cat(planes, 1), 2)


class SceneNet(nn.Module):
    def __init__(self, width: tuple[int, ...] = (32, 64, 96, 128), cast: bool = False):
        super().__init__()
        self.cast = cast
        layers, c = [], 6 if cast else 4
        for w in width:
            layers += [nn.Conv2d(c, w, 3, 2, 1), nn.GELU(), nn.Conv2d(w, w, 3, 1, 1), nn.GELU()]
            c = w
        self.body = nn.Sequential(*layers)
        self.head = nn.Sequential(nn.Linear(2 * c, 128), nn.GELU(), nn.Dropout(0.2), nn.Linear(128, 3 if cast else 2))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        f = self.body(features(x, self.cast))
        return self.head(torch.cat([f.mean((2, 3)), f.amax((2, 3))], 1))


def batch(views: torch.Tensor, n: int, g: torch.Generator, cast: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """n random crops (75-100 % of each side, flipped half the time) with the prior's tone damage;
    targets: EV and log contrast, or the cast's normalised log gains."""
    idx = torch.randint(len(views), (n,), generator=g)
    out = []
    for i in idx.tolist():
        s = 0.75 + 0.25 * float(torch.rand(1, generator=g))
        h, w = round(BASE[0] * s), round(BASE[1] * s)
        y = int(torch.randint(BASE[0] - h + 1, (1,), generator=g))
        x = int(torch.randint(BASE[1] - w + 1, (1,), generator=g))
        c = views[i, :, y:y + h, x:x + w]
        c = c.flip(-1) if torch.rand(1, generator=g) < 0.5 else c
        out.append(F.interpolate(c[None], size=THUMB, mode="bilinear", antialias=True, align_corners=False)[0])
    x = torch.stack(out)
    p = sample_params(n, g)
    y = apply_tone(x, p["cast_log_gain"], p["exposure_ev"], p["contrast"], p["gamma"])
    q = (y * 255).round() / 255
    if cast:
        return q, normalise_gains(p["cast_log_gain"])
    return q, torch.stack([p["exposure_ev"], p["contrast"].log()], 1)


def thumb(a: np.ndarray) -> torch.Tensor:
    return F.interpolate(base_view(a)[None], size=THUMB, mode="bilinear", antialias=True, align_corners=False)[0]


@torch.no_grad()
def read(net: SceneNet, photos: list[np.ndarray]) -> np.ndarray:
    net.eval()
    out = net(torch.stack([thumb(a) for a in photos])).numpy()
    net.train()
    return out


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return 10 * math.log10(255**2 / max(mse, 1e-10))


def undo_gains(a: np.ndarray, gains: float | np.ndarray) -> np.ndarray:
    """An 8-bit photo divided by linear-light gains (one, or one per channel), back in sRGB."""
    x = torch.from_numpy(a).float() / 255
    y = linear_to_srgb((srgb_to_linear(x) / torch.as_tensor(gains, dtype=torch.float32)).clamp(0, 1))
    return (y * 255 + 0.5).clamp(0, 255).byte().numpy()


def report_cast(net: SceneNet, held: list[np.ndarray], val: str) -> None:
    """The cast gate on clean photos the CNN never saw, then every cast case of the estimators suite."""
    gate = np.abs(read(net, held)).max(1)
    print(f"clean readings, max |log gain|: held-out 72 median {np.median(gate):.3f} max {gate.max():.3f}", flush=True)
    photos = load_photos(val)
    for case in suites.suite("estimators", ["clean", "cast-faint", "cast-warm", "cast-cool", "cast-green",
                                            "cast-magenta"]):
        damaged = [case.apply(a, k) for k, a in photos.items()]
        r = read(net, damaged)
        t = np.array([case.truth[k] for k in ("cast_r", "cast_g", "cast_b")])
        err = np.abs(r - t).max(1)
        fire = np.abs(r).max(1) > gate.max()
        clean = list(photos.values())
        undone = [psnr(undo_gains(d, g), a) for d, a, g in zip(damaged, clean, np.exp(r))]  # every photo corrected
        if case.truth["cast"] == 0:  # do no harm: the outputs against the clean photos themselves
            worst = min((p for p, f in zip(undone, fire) if f), default=math.inf)
            print(f"clean: flagged {fire.mean():.0%}, worst PSNR against itself {worst:.2f} dB gated, "
                  f"{min(undone):.2f} dB undone on every photo; reading max |log gain| median {np.median(err):.3f}",
                  flush=True)
            continue
        before = [psnr(d, a) for d, a in zip(damaged, clean)]
        gain = [u - b if f else 0.0 for u, b, f in zip(undone, before, fire)]
        ungated = [u - b for u, b in zip(undone, before)]
        print(f"{case.name} (cast {case.truth['cast']:.2f}): error max |log gain| mean {err.mean():.3f} median"
              f" {np.median(err):.3f}; beyond the clean gate {fire.mean():.0%}; gain where it fires, over all photos"
              f" {np.mean(gain):+.2f} dB (worst {min(gain):+.2f}); undone on every photo {np.mean(ungated):+.2f} dB",
              flush=True)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("train")
    ap.add_argument("val")
    ap.add_argument("--minutes", type=float, default=40)
    ap.add_argument("--batch", type=int, default=48)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--target", choices=("tone", "cast"), default="tone")
    args = ap.parse_args()
    cast = args.target == "cast"
    torch.manual_seed(args.seed)
    g = torch.Generator().manual_seed(args.seed)
    train = list(load_photos(args.train).values())
    fit, held = train[:360], train[360:]
    views = torch.stack([base_view(a) for a in fit])
    net = SceneNet(cast=cast)
    print(f"SceneNet: {sum(p.numel() for p in net.parameters()):,} parameters", flush=True)
    opt = torch.optim.AdamW(net.parameters(), lr=1e-3, weight_decay=1e-3)
    t0, step, run = time.time(), 0, 0.0
    total = args.minutes * 60
    while (el := time.time() - t0) < total:
        for group in opt.param_groups:
            group["lr"] = 1e-3 * 0.5 * (1 + math.cos(math.pi * el / total))
        x, y = batch(views, args.batch, g, cast)
        loss = F.smooth_l1_loss(net(x), y, beta=0.1)
        opt.zero_grad()
        loss.backward()
        opt.step()
        run = 0.98 * run + 0.02 * loss.item()
        step += 1
        if step % 200 == 0 and cast:
            r = np.abs(read(net, held)).max(1)
            print(f"step {step} {el / 60:.1f} min loss {run:.4f} held-out clean cast mean {r.mean():.3f}"
                  f" max {r.max():.3f}", flush=True)
        elif step % 200 == 0:
            r = read(net, held)
            print(f"step {step} {el / 60:.1f} min loss {run:.4f} held-out clean |EV| mean {np.abs(r[:, 0]).mean():.3f}"
                  f" max {np.abs(r[:, 0]).max():.3f}", flush=True)
    torch.save(net.state_dict(), f"/tmp/scene_net_{args.target}.pt")
    if cast:
        report_cast(net, held, args.val)
        return

    r_held, r_fit = read(net, held), read(net, fit)
    lo_ev, hi_ev = r_held[:, 0].min(), r_held[:, 0].max()
    lo_c = r_held[:, 1].min()
    print(f"clean readings, EV: held-out 72 min {lo_ev:.2f} max {hi_ev:.2f}; fitted 360 min {r_fit[:, 0].min():.2f}"
          f" max {r_fit[:, 0].max():.2f}. log contrast: held-out min {lo_c:.2f}, fitted min {r_fit[:, 1].min():.2f}")
    photos = load_photos(args.val)
    for case in suites.suite("standard", ["clean", "exposure-2", "exposure-1", "exposure+0.7", "contrast0.55",
                                          "contrast0.75", "cast-warm"]):
        damaged = [case.apply(a, k) for k, a in photos.items()]
        r = read(net, damaged)
        t = case.truth
        err = np.abs(r[:, 0] - t["exposure_ev"])
        fire = (r[:, 0] < lo_ev) | (r[:, 0] > hi_ev)
        gain = [psnr(undo_gains(d, 2.0 ** e) if f else d, a) - psnr(d, a)
                for d, a, e, f in zip(damaged, photos.values(), r[:, 0], fire)]
        print(f"{case.name}: EV error mean {err.mean():.2f} median {np.median(err):.2f};"
              f" within 0.25 EV {np.mean(err <= 0.25):.0%}; beyond the clean EV range {fire.mean():.0%};"
              f" contrast below the clean minimum {np.mean(r[:, 1] < lo_c):.0%}; gain where it fires, over all"
              f" photos {np.mean(gain):+.2f} dB", flush=True)


if __name__ == "__main__":
    main()
