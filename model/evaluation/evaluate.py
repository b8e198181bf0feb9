"""Blind quality of a weights file on held-out photos, next to the damaged input and classical baselines.

    python -m imagemend.model.evaluation.evaluate --data ../shared/data/val/CBSD68 --out docs/eval

Every case of the suite (model/evaluation/suites.py, `standard` unless --suite says otherwise) damages each
photo with a fixed degradation seeded from the case and the photo's name; the network is given no
hint of which. Writes results.json and results.md (means, worst image, severity-head accuracy, speed).
"""

import argparse
from collections.abc import Callable
from dataclasses import replace
import json
from pathlib import Path
import time

import numpy as np
import torch

from ..core.restore import Restorer
from ..core.tasks import TASK
from ..core.weights import DEFAULT_WEIGHTS
from ..data import load_photos
from . import baselines, estimators, suites
from .scoring import Method, identity, score_all, summarise

SEED = suites.SEED
MODEL_VS_INPUT = "imagemend vs input"


def methods_for(r: Restorer) -> Callable[[suites.Case], list[Method]]:
    """The damaged input, the model, and each task's everyday classical method (the first it lists)."""
    model = Method("imagemend", "imagemend", lambda x, c: r.restore([x])[0].image)

    def pick(case: suites.Case) -> list[Method]:
        if case.task == "clean":  # do no harm: the clean case's input is the clean photo itself
            return [replace(model, name=MODEL_VS_INPUT)]
        first = baselines.for_task(case.task)[:1]
        return [identity(), model, *(Method(b.name, "classical", b.run, b.given) for b in first)]

    return pick


def evaluate_cases(r: Restorer, photos: dict[str, np.ndarray], cases: tuple[suites.Case, ...]) -> dict:
    scores = score_all(methods_for(r), cases, photos, "eval", which=("psnr",))
    out = {}
    for (_, case, method), row in summarise(scores).items():
        if row["psnr_mean"] is None:
            raise RuntimeError(f"{case}: {method} failed on {row['failed']} photos: {row['first_error']}")
        out.setdefault(case, {})[method] = {"mean": row["psnr_mean"], "worst": row["psnr_worst"],
                                            "worst_image": row["worst_image"]}
        if method in ("imagemend", MODEL_VS_INPUT):
            out[case]["imagemend"] = out[case][method]
            out[case]["seconds_per_mp"] = row["seconds_per_mp"]
    return out


def severity_accuracy(r: Restorer, photos: dict[str, np.ndarray]) -> dict:
    """Noise and exposure estimates against the truth, and clean photos flagged, from model/evaluation/estimators.py."""
    levels = ("noise10", "noise15", "noise25", "noise35", "noise50", "exposure-1.5", "exposure-1", "exposure-0.5",
              "exposure+0.5", "exposure+0.7", "exposure+1", "clean")
    readings = estimators.collect(photos, tuple(suites.CASES[c] for c in levels), r)
    noise, exposure = {}, {}
    for case in dict.fromkeys(x.case for x in readings if x.case.task != "clean"):
        key = TASK[case.task].truth
        est = np.array([x.model[key] for x in readings if x.case == case])
        true = case.truth[key]
        if case.task == "denoise":
            rel = np.abs(est / true - 1)
            noise[f"{true:g}"] = {"mean_estimate": float(est.mean()), "mean_rel_error": float(rel.mean()),
                                  "share_within_15pct": float((rel <= 0.15).mean())}
        else:
            err = np.abs(est - true)
            exposure[str(round(true, 2))] = {"mean_estimate": float(est.mean()), "mean_abs_error": float(err.mean()),
                                             "share_within_0.25ev": float((err <= 0.25).mean())}
    return {"noise_sigma": noise, "exposure_ev": exposure,
            "clean_flagged_share": estimators.clean_flags(readings, r.cfg)["model"]}


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
    told = res.get("assumed")
    hint = f"told the photos need {', '.join(told)} (`--assume`)" if told else "blind (no hint of the damage)"
    lines = [f"Weights `{res['weights']}` (sha256 `{res['sha256'][:16]}`), {res['images']} photos from "
             f"`{res['data']}`, {hint}, suite `{res.get('suite', 'standard')}`, "
             f"seed {SEED}.", "",
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
    p.add_argument("--suite", default="standard", choices=list(suites.SUITES),
                   help="cases (model/evaluation/suites.py)")
    p.add_argument("--cases", default="", help="comma-separated cases of the suite (default: all of them)")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--no-speed", action="store_true")
    p.add_argument("--assume", default="", help="comma-separated tasks the restorer is told the photos need "
                   "(Restorer's assume): not blind any more, and clean photos get corrected too")
    a = p.parse_args(argv)
    torch.set_num_threads(a.threads)
    photos = load_photos(a.data, a.limit)
    assume = [t for t in a.assume.split(",") if t]
    r = Restorer(a.weights, device="cpu", assume=assume)
    res = {"weights": Path(a.weights).name, "sha256": r.weights_sha256, "data": a.data, "images": len(photos),
           "suite": a.suite, "assumed": assume,
           "cases": evaluate_cases(r, photos, suites.suite(a.suite, [c for c in a.cases.split(",") if c] or None)),
           "severity": severity_accuracy(r, photos)}
    if not a.no_speed:
        res["speed"] = speed(r)
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps(res, indent=1))
    (out / "results.md").write_text(markdown(res))
    print(markdown(res))


if __name__ == "__main__":
    main()
