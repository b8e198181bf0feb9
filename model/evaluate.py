"""Blind quality of a weights file on held-out photos, next to the damaged input and classical baselines.

    python -m model.evaluate --data ../shared/data/val/CBSD68 --out docs/eval

Every case damages each photo with a fixed, seeded degradation; the network is given no hint of
which. Writes results.json and results.md (means, worst image, severity-head accuracy, speed).
"""

import argparse
import json
from pathlib import Path
import time

import numpy as np
import torch

from . import baselines
from .config import TASKS
from .data import list_images, load_rgb
from .degrade import fixed_params
from .restore import Restorer
from .validate import damaged, psnr
from .weights import DEFAULT_WEIGHTS

CASES = {  # name: (damage, {baseline name: function(damaged image) -> image})
    "noise15": (dict(noise_sigma=15), {"nl-means": lambda x: baselines.nl_means(x, 15)}),
    "noise25": (dict(noise_sigma=25), {"nl-means": lambda x: baselines.nl_means(x, 25)}),
    "noise50": (dict(noise_sigma=50), {"nl-means": lambda x: baselines.nl_means(x, 50)}),
    "blur1.5+noise1": (dict(blur=("gaussian", 1.5), noise_sigma=1), {"unsharp": baselines.unsharp}),
    "cast-warm": (dict(cast_gains=(1.25, 1.0, 0.75)), {"gray-world": baselines.gray_world}),
    "exposure-1": (dict(exposure_ev=-1.0), {"auto-exposure": baselines.auto_exposure}),
    "exposure+0.7": (dict(exposure_ev=0.7), {"auto-exposure": baselines.auto_exposure}),
    "contrast0.55": (dict(contrast=0.55), {"auto-levels": baselines.auto_levels}),
    "clean": ({}, {}),
}
SEED = 2024


def evaluate_cases(r: Restorer, photos: list[np.ndarray], names: list[str]) -> dict:
    out = {}
    for case, (damage, methods) in CASES.items():
        bad = damaged(photos, fixed_params(1, **damage), SEED)
        t0 = time.time()
        fixed = [x.image for x in r.restore(bad)]
        seconds = time.time() - t0
        rows = {"input": [psnr(b, c) for b, c in zip(bad, photos)],
                "imagemend": [psnr(f, c) for f, c in zip(fixed, photos)]}
        for m, fn in methods.items():
            rows[m] = [psnr(fn(b), c) for b, c in zip(bad, photos)]
        if case == "clean":  # do no harm: compare the output with its own input
            rows = {"imagemend vs input": [psnr(f, b) for f, b in zip(fixed, bad)]}
        out[case] = {m: {"mean": float(np.mean(np.minimum(v, 100))), "worst": float(np.min(v)),
                         "worst_image": names[int(np.argmin(v))]} for m, v in rows.items()}
        out[case]["imagemend"] = out[case].get("imagemend", out[case].get("imagemend vs input"))
        out[case]["seconds_per_mp"] = seconds / (sum(p.size for p in photos) / 3e6)
        print(case, {m: round(v["mean"], 2) for m, v in out[case].items() if isinstance(v, dict)}, flush=True)
    return out


def severity_accuracy(r: Restorer, photos: list[np.ndarray]) -> dict:
    noise = {}
    for s in (10, 15, 25, 35, 50):
        est = np.array([e["noise_sigma"] for e in r.estimate(damaged(photos, fixed_params(1, noise_sigma=s), SEED))])
        rel = np.abs(est / s - 1)
        noise[str(s)] = {"mean_estimate": float(est.mean()), "mean_rel_error": float(rel.mean()),
                         "share_within_15pct": float((rel <= 0.15).mean())}
    exposure = {}
    for ev in (-1.5, -1.0, -0.5, 0.5, 0.7, 1.0):
        est = np.array([e["exposure_ev"] for e in r.estimate(damaged(photos, fixed_params(1, exposure_ev=ev), SEED))])
        err = np.abs(est - ev)
        exposure[str(ev)] = {"mean_estimate": float(est.mean()), "mean_abs_error": float(err.mean()),
                             "share_within_0.25ev": float((err <= 0.25).mean())}
    clean = r.restore(photos)
    flagged = {t: float(np.mean([x.applied[t] for x in clean])) for t in TASKS}
    return {"noise_sigma": noise, "exposure_ev": exposure, "clean_flagged_share": flagged}


def speed(r: Restorer, megapixels: float = 12.0, repeats: int = 1) -> dict:
    """Seconds for one photo of the given size (a sample photo resized, then lightly noised)."""
    from PIL import Image
    from skimage import data

    w = int((megapixels * 1e6 * 4 / 3) ** 0.5)
    h = int(w * 3 / 4)
    img = np.asarray(Image.fromarray(data.astronaut()).resize((w, h), Image.BICUBIC))
    img = np.clip(img + np.random.default_rng(0).normal(0, 10, img.shape), 0, 255).astype(np.uint8)
    times = []
    for _ in range(repeats):
        t0 = time.time()
        r.restore([img])
        times.append(time.time() - t0)
    best = min(times)
    return {"megapixels": w * h / 1e6, "seconds": best, "mp_per_s": w * h / 1e6 / best,
            "threads": torch.get_num_threads()}


def markdown(res: dict) -> str:
    lines = [f"Weights `{res['weights']}` (sha256 `{res['sha256'][:16]}`), {res['images']} photos from "
             f"`{res['data']}`, blind (no hint of the damage), seed {SEED}.", "",
             "| case | input | imagemend (mean / worst) | baseline (mean / worst) |", "|---|---|---|---|"]
    for case, row in res["cases"].items():
        base = [f"{m}: {v['mean']:.2f} / {v['worst']:.2f}" for m, v in row.items()
                if isinstance(v, dict) and m not in ("input", "imagemend", "imagemend vs input")]
        inp = f"{row['input']['mean']:.2f}" if "input" in row else "-"
        im = row["imagemend"]
        label = " (PSNR vs its own input)" if case == "clean" else ""
        lines.append(f"| {case}{label} | {inp} | {im['mean']:.2f} / {im['worst']:.2f} | {'; '.join(base) or '-'} |")
    sev = res["severity"]
    lines += ["", "| true noise sigma | mean estimate | mean rel. error | within 15 % |", "|---|---|---|---|"]
    lines += [f"| {s} | {v['mean_estimate']:.1f} | {100 * v['mean_rel_error']:.1f} % | "
              f"{100 * v['share_within_15pct']:.0f} % |" for s, v in sev["noise_sigma"].items()]
    lines += ["", "| true EV | mean estimate | mean abs. error | within 0.25 EV |", "|---|---|---|---|"]
    lines += [f"| {e} | {v['mean_estimate']:+.2f} | {v['mean_abs_error']:.2f} | "
              f"{100 * v['share_within_0.25ev']:.0f} % |" for e, v in sev["exposure_ev"].items()]
    lines += ["", "Clean photos flagged as damaged (share per task): " +
              ", ".join(f"{t} {100 * v:.0f} %" for t, v in sev["clean_flagged_share"].items())]
    if "speed" in res:
        s = res["speed"]
        lines += ["", f"Speed: {s['megapixels']:.1f} MP photo in {s['seconds']:.1f} s = {s['mp_per_s']:.2f} MP/s "
                      f"({s['threads']} CPU threads, default tile settings)."]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", required=True, help="held-out clean photos (folder, glob or URL)")
    p.add_argument("--weights", default=str(DEFAULT_WEIGHTS))
    p.add_argument("--out", required=True, help="folder for results.json and results.md")
    p.add_argument("--limit", type=int, help="only the first N photos")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--no-speed", action="store_true")
    a = p.parse_args(argv)
    torch.set_num_threads(a.threads)
    files = list_images(a.data)[: a.limit]
    photos, names = [load_rgb(f) for f in files], [Path(f).name for f in files]
    r = Restorer(a.weights, device="cpu")
    res = {"weights": Path(a.weights).name, "sha256": r.weights_sha256, "data": a.data, "images": len(photos),
           "cases": evaluate_cases(r, photos, names), "severity": severity_accuracy(r, photos)}
    if not a.no_speed:
        res["speed"] = speed(r)
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps(res, indent=1))
    (out / "results.md").write_text(markdown(res))
    print(markdown(res))


if __name__ == "__main__":
    main()
