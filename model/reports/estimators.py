"""docs/ESTIMATORS.md: the estimators' errors (model/evaluation/estimators.py) as tables and a figure.

    imagemend estimators --data ../shared/data/val/CBSD68 --data ../shared/data/val/Set14
"""

import argparse
import json
import math
from pathlib import Path

from ..core.config import RestoreConfig
from ..core.tasks import TASKS
from ..evaluation.estimators import SOURCES, check, collect, summary
from ..evaluation.suites import suite

UNITS = {"denoise": "sigma, 8-bit steps", "cast": "max |log gain| over channels, linear light",
         "exposure": "EV", "contrast": "log contrast factor"}
LABEL = {"model": "model head", "measure": "weight-free, no reference", "paired": "weight-free, paired"}


def _cell(d: dict | None, key: str = "mae", fmt: str = ".2f") -> str:
    return "-" if not d or d.get(key) is None or math.isnan(d[key]) else format(d[key], fmt)


def markdown(s: dict, header: list[str], cfg: RestoreConfig | None = None) -> str:
    sources = [x for x in SOURCES if x in s["denoise"]["all"]]
    lines = ["# No-reference estimators: do they track the true damage?", "", *header, ""]
    lines += ["Each cell: mean absolute error / bias (estimate minus truth); `p90` is the 90th percentile of the "
              "absolute error. *No reference* is what one archive photo gives; *paired* is the change from the "
              "clean photo, which is what the `_before`/`_after` columns of `imagemend run` compare.", ""]
    for task, title in (("denoise", "Noise sigma"), ("exposure", "Exposure"), ("contrast", "Contrast factor"),
                        ("cast", "Colour cast")):
        lines += [f"## {title} ({UNITS[task]})", "",
                  "| case | truth | " + " | ".join(f"{LABEL[x]}: MAE / bias" for x in sources) + " |",
                  "|---|---|" + "---|" * len(sources)]
        for name, row in [*s[task]["cases"].items(), ("**all**", s[task]["all"])]:
            t = row.get("truth")
            tt = "-" if t is None else (" / ".join(f"{v:+.3f}" for v in t) if isinstance(t, list) else f"{t:g}")
            cells = [f"{_cell(row.get(x))} / {_cell(row.get(x), 'bias', '+.2f')}" if task != "cast"
                     else f"{_cell(row.get(x), 'mae', '.3f')} (p90 {_cell(row.get(x), 'p90', '.3f')})"
                     for x in sources]
            lines.append(f"| {name} | {tt} | " + " | ".join(cells) + " |")
        lines.append("")
    b = s["blur"]
    lines += ["## Blur (Spearman rank correlation with the true RMS blur radius)", "",
              "The weight-free measure is the variance of the Laplacian of luma, negated (blurrier is lower). "
              "*Pooled* ranks all photos and cases together (what a threshold on one photo relies on); "
              "*within* ranks the cases of each photo (what a before/after change relies on).", "",
              "| estimate | pooled | within a photo, mean | within a photo, worst |", "|---|---|---|---|"]
    for x, row in b.items():
        if x in SOURCES:
            lines.append(f"| {LABEL[x]} | {_cell(row, 'pooled')} | {_cell(row, 'within_mean')} | "
                         f"{_cell(row, 'within_worst')} |")
    lines += ["", "## Edge blur reading (Gaussian sigma, px; weight-free)", "",
              "The sigma `model/core/deblur.py` reads on the photo's edges decides the Wiener deconvolution: from "
              f"{(cfg or RestoreConfig()).min_edge_blur:g} px on (`min_edge_blur`), where the four edge orientations "
              "agree (anisotropy at most `max_anisotropy`; motion blur is left to the sharpen head). A photo's own "
              "blur adds in quadrature, so small sigmas read high. *Deconvolved*: share of the photos the restorer "
              "would deconvolve.", "",
              "| case | sigma | median reading | MAE / bias | p90 error | median anisotropy | deconvolved |",
              "|---|---|---|---|---|---|---|"]
    for name, row in s["edge_blur"].items():
        sigma = "-" if row["sigma"] is None else f"{row['sigma']:g}"
        err = "-" if "mae" not in row else f"{row['mae']:.2f} / {row['bias']:+.2f}"
        lines.append(f"| {name} | {sigma} | {row['median']:.2f} | {err} | {_cell(row, 'p90')} | "
                     f"{row['anisotropy_median']:.2f} | {100 * row['deconvolved']:.0f} % |")
    lines += ["", "## Tolerances", "",
              "What `tests/model/test_estimators.py` holds the estimators to (`TOLERANCES` in "
              "model/evaluation/estimators.py; "
              "the tests run on scikit-image's sample photos, the model's only on trained weights), against "
              "these photos:", "", "| check | measured | tolerance | holds |", "|---|---|---|---|"]
    lines += [f"| {n} | {'-' if v is None else f'{v:.3f}'} | {op} {t:g} | {'yes' if ok else '**no**'} |"
              for n, v, op, t, ok in check(s, tuple(sources))]
    c = s.get("clean") or {}
    if c:
        lines += ["", f"## Clean photos flagged as damaged ({c['images']} photos)", "",
                  "The model flags a task when its estimate reaches the task's threshold (`RestoreConfig`, "
                  "calibrated per weights file by model/tools/calibrate.py; then `run` applies the task). The "
                  "weight-free estimates are held to the same thresholds where they "
                  "share the unit; their 90th percentile on clean photos is the lowest threshold that would "
                  "flag at most one clean photo in ten.", "",
                  "| task | model flags | weight-free flags | weight-free p90 on clean photos | threshold |",
                  "|---|---|---|---|---|"]
        for t in TASKS:
            m = c.get("model", {}).get(t)
            w, p = c["measure"].get(t), c["measure_p90"].get(t)
            th = c["thresholds"].get(t)
            lines.append(f"| {t} | {'-' if m is None else f'{100 * m:.0f} %'} | "
                         f"{'-' if w is None else f'{100 * w:.0f} %'} | {'-' if p is None else f'{p:.3f}'} | "
                         f"{'-' if th is None else th} |")
    return "\n".join(lines) + "\n"


def main(args: argparse.Namespace) -> None:
    import torch

    from ..core.restore import Restorer
    from ..core.weights import DEFAULT_WEIGHTS
    from ..data import load_photos
    from .figures import estimator_scatter
    from .provenance import commit, header, is_placeholder

    code = commit()
    torch.set_num_threads(args.threads)
    cases = suite("estimators", args.cases.split(",") if args.cases else None)
    weights = args.weights or str(DEFAULT_WEIGHTS)
    r = None if args.no_model else Restorer(weights, device="cpu")
    readings, sources = [], []
    for d in args.data:
        photos = load_photos(d, args.limit)
        sources.append(f"`{d}` ({len(photos)} photos)")
        print(f"{d}: {len(photos)} photos x {len(cases)} cases", flush=True)
        readings += collect(photos, cases, r)
    s = summary(readings, r.cfg if r is not None else None)
    out = Path(args.out)
    assets = out.parent / "estimators"
    assets.mkdir(parents=True, exist_ok=True)
    (assets / "estimators.json").write_text(json.dumps(s, indent=1))
    figure = estimator_scatter(readings, assets / "estimators.png")
    head = ["Generated by `imagemend estimators`; do not edit by hand, rerun the command.", "",
            *header(None, r, Path(weights).name, cases, code), "- photos: " + "; ".join(sources)
            + (f", first {args.limit} of each" if args.limit else "")]
    if r is not None and is_placeholder(r):
        head += ["", "> **The shipped weights are an untrained placeholder**: the model-head columns measure the "
                 "placeholder; rerun once trained weights ship."]
    text = markdown(s, head, r.cfg if r is not None else None)
    text += f"\n![estimates against the truth]({figure.relative_to(out.parent)})\n"
    out.write_text(text)
    print(text)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data", action="append", required=True, help="folder of clean validation photos (repeatable)")
    p.add_argument("--out", default="out/ESTIMATORS.md", help="the Markdown file; figures go beside it (the "
                   "project's own is made with --out docs/ESTIMATORS.md)")
    p.add_argument("--weights", help="weights file (default: the shipped weights)")
    p.add_argument("--no-model", action="store_true", help="only the weight-free measures")
    p.add_argument("--limit", type=int, help="only the first N photos of each folder")
    p.add_argument("--cases", help="comma-separated subset of the estimators suite")
    p.add_argument("--threads", type=int, default=2)
