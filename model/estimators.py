"""Do the no-reference estimates mean what they say? Checked on photos damaged by known amounts.

`imagemend run` reports per task the model's severity estimate (Restorer.estimate) and a weight-free
measure (model/measures.py). This damages validation photos with the `estimators` suite
(model/suites.py), where every case has a known true severity, and reports how each tracks it:

- noise: error of the estimated sigma, 8-bit steps;
- blur: Spearman rank correlation with the true RMS blur radius, over all photos and within each
  photo (the Laplacian variance has no unit of blur, so it is only asked to rank);
- cast: error of the luminance-normalised log channel gains in linear light, max over channels;
- exposure: EV error; contrast: error of the log contrast factor;
- edge blur: the sigma the edges read (model/deblur.py, weight-free, what decides the Wiener
  deconvolution) against the Gaussian blur's sigma, and how often each case is deconvolved;
- clean: how often a clean photo is flagged as needing each task.

A weight-free measure is read two ways: alone ("no reference", what one archive photo gives,
converted to the task's unit with the constants below) and as the change from the clean photo
("paired", what the before/after columns of `run` show).

    imagemend estimators --data ../shared/data/val/CBSD68 --data ../shared/data/val/Set14
"""

import argparse
from dataclasses import dataclass
import json
import math
from pathlib import Path

import numpy as np

from .color import normalise_gains
from .config import TASKS, RestoreConfig
from .deblur import read_photo
from .measures import measure
from .suites import Case, suite

REF_LUMA = 0.46  # sRGB value of mid grey (18 % reflectance): where a no-reference EV estimate puts 0 EV
REF_RMS = 0.20  # RMS luma contrast taken as normal: where a no-reference contrast estimate puts factor 1
EV_GAMMA = 2.2  # sRGB values are roughly linear light ** (1 / 2.2)
SOURCES = ("model", "measure", "paired")
CAST = ("cast_r", "cast_g", "cast_b")


@dataclass
class Reading:
    """One damaged photo: its case, the weight-free measures of it and of its clean original, the model's view."""
    key: str
    case: Case
    measure: dict
    clean: dict
    model: dict | None = None  # Restorer.estimate severities
    needs: dict | None = None  # tasks the restorer would run (model.restore.needs)


def collect(photos: dict[str, np.ndarray], cases: tuple[Case, ...], restorer=None) -> list[Reading]:
    """Measure (and, with a restorer, estimate) every case on every photo (key -> clean 8-bit RGB)."""
    from .restore import needs

    out = []
    for key, img in photos.items():
        clean = measure(img)
        bad = [c.apply(img, key) for c in cases]
        est = restorer.estimate(bad) if restorer is not None else [None] * len(cases)
        for case, b, e in zip(cases, bad, est):
            m = dict(zip(("edge_blur", "edge_anisotropy"), read_photo(b)), **measure(b))
            out.append(Reading(key, case, m, clean, e, needs(e, restorer.cfg) if e is not None else None))
    return out


def _vec(d: dict, keys=CAST) -> np.ndarray:
    return np.array([d[k] for k in keys], dtype=np.float64)


def _norm_cast(d: dict) -> np.ndarray:
    import torch

    return normalise_gains(torch.from_numpy(_vec(d))[None])[0].numpy()


def estimate(r: Reading, task: str, source: str) -> float | np.ndarray | None:
    """A reading's estimate of its task's severity, in the unit of Case.truth (the cast: a vector)."""
    m, c = r.measure, r.clean
    if source == "model":
        if r.model is None:
            return None
        return _norm_cast(r.model) if task == "cast" else r.model[TRUTH_KEY[task]]
    if task == "denoise":
        if m["noise_sigma"] is None:
            return None
        return m["noise_sigma"] if source == "measure" else math.sqrt(max(0.0, m["noise_sigma"] ** 2
                                                                           - c["noise_sigma"] ** 2))
    if task == "deblur":  # a rank only: blurrier is higher, like the truth
        return -m["laplacian_var"] if source == "measure" else -m["laplacian_var"] / max(c["laplacian_var"], 1e-9)
    if task == "cast":
        return _vec(m) if source == "measure" else _vec(m) - _vec(c)
    if task == "exposure":
        ref = REF_LUMA if source == "measure" else c["luminance"]
        return EV_GAMMA * math.log2(max(m["luminance"], 1e-6) / ref)
    if task == "contrast":
        ref = REF_RMS if source == "measure" else c["rms_contrast"]
        return math.log(max(m["rms_contrast"], 1e-6) / max(ref, 1e-6))
    raise ValueError(task)


TRUTH_KEY = {"denoise": "noise_sigma", "deblur": "blur", "cast": "cast", "exposure": "exposure_ev",
             "contrast": "contrast"}


def truth(case: Case, task: str) -> float | np.ndarray:
    return _vec(case.truth) if task == "cast" else case.truth[TRUTH_KEY[task]]


def _errors(readings: list[Reading], task: str, source: str) -> tuple[np.ndarray, np.ndarray]:
    """Absolute errors (max over channels for the cast) and signed errors (nan for the cast)."""
    ab, sg = [], []
    for r in readings:
        e = estimate(r, task, source)
        if e is None:
            continue
        d = np.asarray(e) - truth(r.case, task)
        ab.append(float(np.max(np.abs(d))))
        sg.append(float(d) if np.ndim(d) == 0 else math.nan)
    return np.array(ab), np.array(sg)


def _error_row(readings: list[Reading], task: str, sources) -> dict:
    row = {}
    for s in sources:
        ab, sg = _errors(readings, task, s)
        if len(ab):
            row[s] = {"mae": float(ab.mean()), "p90": float(np.percentile(ab, 90)), "bias": float(np.mean(sg)),
                      "n": len(ab)}
            if task != "cast":
                row[s]["mean_estimate"] = float(np.mean([estimate(r, task, s) for r in readings]))
    return row


def _spearman(x: list[float], y: list[float]) -> float | None:
    from scipy.stats import spearmanr

    if len(set(x)) < 2 or len(set(y)) < 2:
        return None
    return float(spearmanr(x, y).statistic)


def blur_ranks(readings: list[Reading], sources) -> dict:
    """Spearman of each estimate with the true blur radius: over all photos, and the mean within photos."""
    rows = [r for r in readings if r.case.task in ("deblur", "clean")]
    out = {}
    for s in sources:
        if s == "paired":  # within a photo the paired ratio ranks exactly as the measure does
            continue
        pairs = [(r.case.truth["blur"], estimate(r, "deblur", s)) for r in rows]
        pairs = [(t, e) for t, e in pairs if e is not None]
        if not pairs:
            continue
        within = []
        for key in dict.fromkeys(r.key for r in rows):
            mine = [(r.case.truth["blur"], estimate(r, "deblur", s)) for r in rows if r.key == key]
            rho = _spearman([t for t, _ in mine], [e for _, e in mine])
            if rho is not None:
                within.append(rho)
        same_kind = []  # one blur shape at a time (gaussian, motion): a sound estimate must rank these exactly
        for key in dict.fromkeys(r.key for r in rows):
            for kind in {r.case.name.rsplit("blur-", 1)[-1].rstrip("0123456789.") for r in rows
                         if r.case.task == "deblur"}:
                mine = [(r.case.truth["blur"], estimate(r, "deblur", s)) for r in rows if r.key == key
                        and (r.case.task == "clean" or r.case.name.startswith(f"blur-{kind}"))]
                rho = _spearman([t for t, _ in mine], [e for _, e in mine])
                if rho is not None:
                    same_kind.append(rho)
        out[s] = {"pooled": _spearman([t for t, _ in pairs], [e for _, e in pairs]),
                  "within_mean": float(np.mean(within)) if within else None,
                  "within_worst": float(np.min(within)) if within else None,
                  "same_kind_worst": float(np.min(same_kind)) if same_kind else None}
    return out


def edge_blur_rows(readings: list[Reading], cfg: RestoreConfig | None = None) -> dict:
    """Per case, the edges' sigma reading: its error where the case is a Gaussian blur of known
    sigma (the photo's own blur adds in quadrature, so small sigmas read high), and the share of
    photos the restorer would deconvolve (model.restore.deconvolves), clean and noisy ones included."""
    from .restore import deconvolves

    cfg = cfg or RestoreConfig()
    out = {}
    for case in dict.fromkeys(r.case for r in readings if r.case.task in ("clean", "denoise", "deblur")):
        mine = [r.measure for r in readings if r.case == case]
        read = np.array([m["edge_blur"] for m in mine])
        kind, size = case.kwargs.get("blur", (None, None))
        row = {"sigma": size if kind == "gaussian" else None, "median": float(np.median(read)),
               "deconvolved": float(np.mean([deconvolves(m, cfg) for m in mine])),
               "anisotropy_median": float(np.median([m["edge_anisotropy"] for m in mine]))}
        if row["sigma"] is not None:
            err = np.abs(read - size)
            row.update(mae=float(err.mean()), bias=float(np.mean(read - size)), p90=float(np.percentile(err, 90)))
        out[case.name] = row
    return out


def clean_flags(readings: list[Reading], cfg: RestoreConfig | None = None) -> dict:
    """Share of clean photos flagged per task: by the model's thresholds, and by the same thresholds
    applied to the weight-free estimates where they share the unit; and the 90th percentile of each."""
    clean = [r for r in readings if r.case.task == "clean"]
    if not clean:
        return {}
    cfg = cfg or RestoreConfig()  # the restorer's own (calibrated) thresholds when it is given
    out: dict = {"images": len(clean)}
    if clean[0].needs is not None:
        out["model"] = {t: float(np.mean([r.needs[t] for r in clean])) for t in TASKS}
    thresholds = {"denoise": cfg.min_noise_sigma, "deblur": cfg.min_blur, "cast": cfg.min_cast,
                  "exposure": cfg.min_exposure, "contrast": cfg.min_contrast}
    size = {"denoise": abs, "cast": lambda v: float(np.max(np.abs(v))), "exposure": abs}  # same unit as the model
    out["measure"] = {t: float(np.mean([size[t](estimate(r, t, "measure")) >= thresholds[t] for r in clean
                                        if estimate(r, t, "measure") is not None]))
                      for t in size}
    out["measure_p90"] = {t: float(np.percentile([size[t](estimate(r, t, "measure")) for r in clean
                                                  if estimate(r, t, "measure") is not None], 90))
                          for t in size}
    out["thresholds"] = thresholds
    return out


def summary(readings: list[Reading], cfg: RestoreConfig | None = None) -> dict:
    """Every figure of docs/ESTIMATORS.md, as JSON (cfg: the thresholds clean photos are held to)."""
    sources = [s for s in SOURCES if s != "model" or any(r.model is not None for r in readings)]
    out: dict = {"images": len({r.key for r in readings}), "blur": blur_ranks(readings, sources),
                 "edge_blur": edge_blur_rows(readings, cfg), "clean": clean_flags(readings, cfg)}
    for task in ("denoise", "cast", "exposure", "contrast"):
        mine = [r for r in readings if r.case.task == task]
        cases = list(dict.fromkeys(r.case for r in mine))
        out[task] = {"all": _error_row(mine, task, sources),
                     "cases": {c.name: {"truth": (truth(c, task).tolist() if task == "cast" else truth(c, task)),
                                        **_error_row([r for r in mine if r.case == c], task, sources)}
                               for c in cases}}
    out["blur"]["cases"] = {c.name: {"truth": c.truth["blur"], **{
        s: {"mean_estimate": float(np.mean([estimate(r, "deblur", s) for r in readings if r.case == c]))}
        for s in sources if s != "paired" and all(estimate(r, "deblur", s) is not None
                                                   for r in readings if r.case == c)}}
        for c in dict.fromkeys(r.case for r in readings if r.case.task in ("deblur", "clean"))}
    return out


# ---------------------------------------------------------------- what the tests hold them to

# (name, source, path into summary(), "<=" or ">=", tolerance). The weight-free tolerances were measured on
# scikit-image's sample photos (tests/model/test_estimators.py holds them to these) with a margin; the model's
# are what trained weights must reach for the per-task measures of `run` to mean something, and are checked
# only on trained weights.
TOLERANCES = (
    ("noise sigma error, paired, sigma 15", "paired", ("denoise", "cases", "noise15", "paired", "mae"), "<=", 1.0),
    ("noise sigma error, paired, sigma 25", "paired", ("denoise", "cases", "noise25", "paired", "mae"), "<=", 2.5),
    ("blur rank, one blur shape within a photo", "measure", ("blur", "measure", "same_kind_worst"), ">=", 1.0),
    ("blur rank, all photos and shapes pooled", "measure", ("blur", "measure", "pooled"), ">=", 0.6),
    ("cast error, paired, mean", "paired", ("cast", "all", "paired", "mae"), "<=", 0.05),
    # a gain above 1 cannot show in clipped highlights: bright photos make the tail (0.15 on CBSD68/Set14)
    ("cast error, paired, 90th percentile", "paired", ("cast", "all", "paired", "p90"), "<=", 0.2),
    ("EV error, paired", "paired", ("exposure", "all", "paired", "mae"), "<=", 0.15),
    ("contrast factor error (log), paired", "paired", ("contrast", "all", "paired", "mae"), "<=", 0.05),
    # the edges need a few hundred pixels a side: the test photos are 256 px
    ("edge blur error, Gaussian sigma 2", "measure", ("edge_blur", "blur-gauss2", "mae"), "<=", 0.3),
    ("edge blur: clean photos deconvolved", "measure", ("edge_blur", "clean", "deconvolved"), "<=", 0.05),
    ("edge blur: motion blur 9 px deconvolved", "measure", ("edge_blur", "blur-motion9", "deconvolved"), "<=", 0.1),
    ("noise sigma error, model", "model", ("denoise", "all", "model", "mae"), "<=", 2.5),
    ("blur rank, model, pooled", "model", ("blur", "model", "pooled"), ">=", 0.8),
    ("cast error, model", "model", ("cast", "all", "model", "mae"), "<=", 0.1),
    ("EV error, model", "model", ("exposure", "all", "model", "mae"), "<=", 0.3),
    ("contrast factor error (log), model", "model", ("contrast", "all", "model", "mae"), "<=", 0.2),
    *((f"clean photos flagged for {t}, model", "model", ("clean", "model", t), "<=", 0.25) for t in TASKS),
)


def check(s: dict, sources: tuple[str, ...] = SOURCES) -> list[tuple[str, float | None, str, float, bool]]:
    """(name, measured, op, tolerance, holds) for every tolerance of the given sources."""
    out = []
    for name, source, path, op, tol in TOLERANCES:
        if source not in sources:
            continue
        v = s
        for k in path:
            v = v.get(k) if isinstance(v, dict) else None
        ok = v is not None and (v <= tol if op == "<=" else v >= tol)
        out.append((name, v, op, tol, ok))
    return out


# ---------------------------------------------------------------- the document

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
              "The sigma `model/deblur.py` reads on the photo's edges decides the Wiener deconvolution: from "
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
              "What `tests/model/test_estimators.py` holds the estimators to (`TOLERANCES` in model/estimators.py; "
              "the tests run on scikit-image's sample photos, the model's only on trained weights), against "
              "these photos:", "", "| check | measured | tolerance | holds |", "|---|---|---|---|"]
    lines += [f"| {n} | {'-' if v is None else f'{v:.3f}'} | {op} {t:g} | {'yes' if ok else '**no**'} |"
              for n, v, op, t, ok in check(s, tuple(sources))]
    c = s.get("clean") or {}
    if c:
        lines += ["", f"## Clean photos flagged as damaged ({c['images']} photos)", "",
                  "The model flags a task when its estimate reaches the task's threshold (`RestoreConfig`, "
                  "calibrated per weights file by model/calibrate.py; then `run` applies the task). The "
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

    from .data import load_photos
    from .figures import estimator_scatter
    from .provenance import commit, header, is_placeholder
    from .restore import Restorer
    from .weights import DEFAULT_WEIGHTS

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
