"""`imagemend train`: joint training of all task heads on clean photos damaged on the fly.

Each step takes a batch of whole-image views (the global branch must see whole images, as it
will at inference), damages them, estimates severities from their statistics grid, and trains
the local U-Net on a random crop of each. The local branch is conditioned on the true severity
for half the samples and on the (detached) estimate for the rest, so it learns to trust the map
and to survive the estimator's errors. Checkpoints hold everything needed to resume exactly.

Stages: "joint" trains both branches; "global" trains the global branch alone on the ideal
local output (it does not depend on the U-Net); "local" trains the U-Net alone under a frozen
global branch. The branches can so be trained apart, in parallel, and merged.
"""

import argparse
from dataclasses import replace
import json
import math
import os
from pathlib import Path
import sys
import time

import torch
from tqdm import tqdm

from ..core.config import DegradationConfig, LossConfig, NetConfig, TrainConfig
from ..core.net import ImagemendNet, correct_tone
from ..core.stats import tensor_stats
from ..core.tasks import TASK, TASKS
from ..core.weights import load_local, load_weights, pick_device, save_weights
from ..damage.degrade import degrade, sample_params
from ..data import list_images, load_rgb, random_crops
from .loss import Weighting, task_losses
from .validate import validate

CAMERA_READ_ERROR = 0.2  # log-normal spread of the conditioning around a camera sample's true noise
def damage_for(tasks: tuple[str, ...], cfg: DegradationConfig = DegradationConfig()) -> DegradationConfig:
    """Only the damage that the chosen tasks repair (single-task models train on their own task)."""
    off = {f"p_{TASK[t].damage}": 0.0 for t in TASKS if t not in tasks}
    if "denoise" not in tasks:
        off["p_jpeg"] = 0.0
    return replace(cfg, **off)


def crop_batch(t: torch.Tensor, oy: list[int], ox: list[int], p: int) -> torch.Tensor:
    return torch.stack([t[i, :, y:y + p, x:x + p] for i, (y, x) in enumerate(zip(oy, ox))])


def train_step(net, weighting, images, g, cfg: TrainConfig, dcfg: DegradationConfig, device, amp,
               stage: str = "joint"):
    lo, hi = cfg.global_size
    side = 8 * int(torch.randint(lo // 8, hi // 8 + 1, (1,), generator=g))
    x = random_crops(images, cfg.batch, side, g, device)
    p = sample_params(cfg.batch, g, dcfg)
    d = degrade(x, p, g, dcfg)
    oy = torch.randint(side - cfg.patch + 1, (cfg.batch,), generator=g).tolist()
    ox = torch.randint(side - cfg.patch + 1, (cfg.batch,), generator=g).tolist()
    true = (torch.rand(cfg.batch, generator=g) < 0.5).to(device)
    # camera noise is read by model/core/noise_level.py, not by the head: condition on its truth, off by
    # the reading's typical error
    camera = p["on_camera"].to(device)
    jitter = (CAMERA_READ_ERROR * torch.randn(cfg.batch, generator=g)).exp().to(device)
    with torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp):
        with torch.set_grad_enabled(stage != "local"):
            est = net.estimate(tensor_stats(d.image))
        sigma = torch.where(true, d.params["noise_sigma"], est["noise_sigma"].detach().float())
        sigma = torch.where(camera, d.params["noise_sigma"] * jitter, sigma)
        blur = torch.where(true, d.params["blur"], est["blur"].detach().float())
        if stage != "global":
            pred = net(crop_batch(d.image, oy, ox, cfg.patch), est, sigma, blur)
        else:  # global stage: correct the ideal local output, the tone-damaged clean crop
            tone = crop_batch(d.tone, oy, ox, cfg.patch)
            pred = {"denoised": tone, "deblurred": tone, "restored": correct_tone(tone, est)}
    target = {"blurred": crop_batch(d.blurred, oy, ox, cfg.patch), "tone": crop_batch(d.tone, oy, ox, cfg.patch),
              "clean": crop_batch(x, oy, ox, cfg.patch), "params": d.params}
    losses = task_losses({k: v.float() for k, v in pred.items()},
                         {k: v.float() for k, v in est.items()}, target)
    return weighting(losses), losses


def lr_at(step: int, cfg: TrainConfig, done: float | None = None) -> float:
    """Linear warm-up, then cosine decay over `done`, the share of the run completed (by default
    steps / cfg.steps; a run with a time budget passes the larger of that and time used / budget)."""
    if step < cfg.warmup:
        return (step + 1) / cfg.warmup
    done = (step - cfg.warmup) / max(1, cfg.steps - cfg.warmup) if done is None else done
    return 0.5 * (1 + math.cos(math.pi * min(1.0, done)))


def save_checkpoint(path: Path, **state) -> None:
    tmp = path.with_suffix(".tmp")
    torch.save(state, tmp)
    os.replace(tmp, path)  # a crash mid-write never leaves a broken checkpoint


def train(data: str, out: str, cfg: TrainConfig, loss_cfg: LossConfig, net_cfg: NetConfig,
          tasks: tuple[str, ...] = TASKS, val: str | None = None, device: str = "auto",
          init: str | None = None, restart: bool = False, stop_at: int | None = None,
          stage: str = "joint", init_local: str | None = None, minutes: float | None = None,
          amp: bool | None = None) -> Path:
    """Train to cfg.steps (resuming from out/last.ckpt); stop_at pauses earlier, resumable later.
    With `minutes`, the run ends when that much training time is spent or at cfg.steps, whichever
    is first, and the learning rate decays over whichever it will reach first (a GPU lease is
    measured in minutes, not steps). amp: bf16 autocast, by default on CUDA.

    stage "joint" trains everything; "global" only the global branch (the U-Net frozen, taken
    from init_local), on the ideal local output; "local" only the U-Net, under the global branch
    of init."""
    try:
        dev = pick_device(device)
    except ValueError as e:
        raise SystemExit(str(e)) from e
    amp = dev.type == "cuda" if amp is None else amp
    outdir = Path(out)
    outdir.mkdir(parents=True, exist_ok=True)
    dcfg = damage_for(tasks)
    torch.manual_seed(cfg.seed)
    g = torch.Generator().manual_seed(cfg.seed)
    files = list_images(data)
    if not files:
        raise SystemExit(f"no images found at {data}")
    images = [load_rgb(f) for f in files]
    val_images = [load_rgb(f) for f in list_images(val)[:8]] if val else []
    net = load_weights(init)[0] if init else ImagemendNet(net_cfg)
    if init_local:
        net.local.load_state_dict(load_local(init_local))
    net = net.to(dev).train()
    weighting = Weighting(loss_cfg).to(dev)
    trained = {"joint": net, "global": net.glob, "local": net.local}[stage]
    groups = [{"params": list(trained.parameters()), "base_lr": cfg.lr}]
    if loss_cfg.weighting == "uncertainty":  # the log-variances: their own rate, no decay (model/training/loss.py)
        groups.append({"params": list(weighting.parameters()), "base_lr": loss_cfg.uncertainty_lr,
                       "weight_decay": 0.0})
    params = [p for g in groups for p in g["params"]]
    opt = torch.optim.AdamW(groups, lr=cfg.lr, weight_decay=cfg.weight_decay)
    ckpt, step, wall = outdir / "last.ckpt", 0, 0.0  # wall: training seconds of earlier runs
    if ckpt.exists() and not restart:
        state = torch.load(ckpt, weights_only=True, map_location=dev)
        net.load_state_dict(state["net"]), weighting.load_state_dict(state["weighting"])
        opt.load_state_dict(state["opt"])
        g.set_state(state["rng"]), torch.set_rng_state(state["torch_rng"])
        step, wall = int(state["step"]), float(state["wall"])
        print(f"resumed from {ckpt} at step {step}", file=sys.stderr)
    info = {"data": data, "images": len(images), "tasks": list(tasks), "stage": stage, "init": init,
            "init_local": init_local,
            "train": cfg.__dict__,
            "loss": loss_cfg.__dict__, "device": str(dev), "amp": amp, "minutes": minutes}
    log = open(outdir / "train_log.jsonl", "a")  # noqa: SIM115 (open for the whole run)
    bar = tqdm(total=cfg.steps, initial=step, mininterval=5, dynamic_ncols=True, file=sys.stderr)
    t0, seen = time.time(), 0
    end = min(cfg.steps, stop_at or cfg.steps)
    budget = 60 * minutes if minutes else math.inf

    def spent() -> float:  # training seconds, this run and the ones it resumes
        return wall + time.time() - t0

    out_of_time = spent() >= budget
    while step < end and not out_of_time:
        done = max((step - cfg.warmup) / max(1, cfg.steps - cfg.warmup), spent() / budget)
        for group in opt.param_groups:
            group["lr"] = group["base_lr"] * lr_at(step, cfg, done)
        loss, parts = train_step(net, weighting, images, g, cfg, dcfg, dev, amp, stage)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        step, seen = step + 1, seen + cfg.batch
        out_of_time = spent() >= budget
        rate = seen / (time.time() - t0)
        bar.update(1)
        bar.set_postfix(loss=f"{loss.item():.4f}", img_s=f"{rate:.1f}", refresh=False)
        if step % 50 == 0:
            log.write(json.dumps({"step": step, "loss": loss.item(), **{k: v.item() for k, v in parts.items()},
                                  "lr": opt.param_groups[0]["lr"], "img_s": rate, "weights": weighting.effective()})
                      + "\n")
            log.flush()
        if step % cfg.ckpt_every == 0 or step == end or out_of_time:
            save_checkpoint(ckpt, net=net.state_dict(), weighting=weighting.state_dict(), opt=opt.state_dict(),
                            rng=g.get_state(), torch_rng=torch.get_rng_state(), step=step, wall=spent())
        if val_images and (step % cfg.val_every == 0 or step == cfg.steps):
            net.eval()
            scores = validate(net, val_images)
            net.train()
            bar.write(f"step {step} val " + " ".join(f"{k}={v:.2f}" for k, v in scores.items()))
            log.write(json.dumps({"step": step, "val": scores}) + "\n")
            log.flush()
        if step % cfg.val_every == 0 or step == end or out_of_time:
            info.update(steps=step, wall_s=round(spent()))
            save_weights(outdir / "latest.safetensors", net, info)
    bar.close()
    if step < cfg.steps and not out_of_time:
        return outdir / "latest.safetensors"
    final = outdir / "final.safetensors"
    info.update(steps=step, wall_s=round(spent()))
    save_weights(final, net.cpu().eval(), info)
    return final


def add_arguments(p: argparse.ArgumentParser) -> None:
    d = TrainConfig()
    p.add_argument("--data", required=True, help="folder, glob or fsspec URL of clean photos")
    p.add_argument("--out", required=True, help="folder for checkpoints, logs and weights")
    p.add_argument("--val", help="folder of held-out photos for periodic validation PSNR")
    p.add_argument("--tasks", default=",".join(TASKS), help="comma-separated subset of " + ",".join(TASKS))
    p.add_argument("--loss-weights", default="",
                   help="override task loss weights, e.g. deblur=3,exposure=0.3 (defaults in model/core/config.py)")
    p.add_argument("--weighting", choices=("fixed", "uncertainty"), default=LossConfig().weighting)
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    p.add_argument("--init", help="start from these weights instead of random")
    p.add_argument("--restart", action="store_true", help="ignore an existing checkpoint in --out")
    p.add_argument("--threads", type=int, default=os.cpu_count())
    p.add_argument("--stop-at", type=int, help="pause at this step (resume later with the same --out)")
    p.add_argument("--stage", choices=("joint", "global", "local"), default="joint",
                   help="global: train only the global branch, the U-Net frozen from --init-local; "
                        "local: train only the U-Net, the global branch frozen from --init")
    p.add_argument("--init-local", help="weights file whose local U-Net to start from (any global branch)")
    p.add_argument("--minutes", type=float, help="training time budget: stop and finish the schedule by then")
    p.add_argument("--precision", choices=("auto", "bf16", "fp32"), default="auto",
                   help="auto: bf16 autocast on CUDA, fp32 elsewhere")
    for name in ("steps", "batch", "patch", "lr", "val_every", "ckpt_every", "seed"):
        p.add_argument("--" + name.replace("_", "-"), type=type(getattr(d, name)), default=getattr(d, name))


def loss_config(overrides: str, weighting: str) -> LossConfig:
    """LossConfig with "task=w,..." overrides of its default weights."""
    weights = dict(LossConfig().weights)
    for item in filter(None, overrides.split(",")):
        name, _, value = item.partition("=")
        if name not in weights:
            raise SystemExit(f"unknown loss term {name!r}; choose from {sorted(weights)}")
        weights[name] = float(value)
    return LossConfig(weights=weights, weighting=weighting)


def main(args: argparse.Namespace) -> None:
    torch.set_num_threads(args.threads)
    tasks = tuple(t for t in args.tasks.split(",") if t)
    unknown = set(tasks) - set(TASKS)
    if unknown:
        raise SystemExit(f"unknown task(s) {sorted(unknown)}; choose from {TASKS}")
    cfg = replace(TrainConfig(), **{k: getattr(args, k) for k in
                                    ("steps", "batch", "patch", "lr", "val_every", "ckpt_every", "seed")})
    final = train(args.data, args.out, cfg, loss_config(args.loss_weights, args.weighting), NetConfig(), tasks,
                  args.val, args.device, args.init, args.restart, args.stop_at, args.stage, args.init_local,
                  args.minutes, None if args.precision == "auto" else args.precision == "bf16")
    print(f"weights written to {final}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    add_arguments(parser)
    main(parser.parse_args())
