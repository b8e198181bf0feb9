"""Do the no-reference estimates mean what they say? Checked on photos damaged by known amounts.

`imagemend run` reports per task the model's severity estimate (Restorer.estimate) and a weight-free
measure (model/core/measures.py). This damages validation photos with the `estimators` suite
(model/evaluation/suites.py), where every case has a known true severity, and reports how each tracks it:

- noise: error of the estimated sigma, 8-bit steps;
- blur: Spearman rank correlation with the true RMS blur radius, over all photos and within each
  photo (the Laplacian variance has no unit of blur, so it is only asked to rank);
- cast: error of the luminance-normalised log channel gains in linear light, max over channels;
- exposure: EV error; contrast: error of the log contrast factor;
- edge blur: the sigma the edges read (model/core/deblur.py, weight-free, what decides the Wiener
  deconvolution) against the Gaussian blur's sigma, and how often each case is deconvolved;
- clean: how often a clean photo is flagged as needing each task.

A weight-free measure is read two ways: alone ("no reference", what one archive photo gives,
converted to the task's unit with the constants below) and as the change from the clean photo
("paired", what the before/after columns of `run` show).

The document (docs/ESTIMATORS.md) is written by model/reports/estimators.py.
"""

from dataclasses import dataclass
import math

import numpy as np

from ..core.color import normalise_gains
from ..core.config import RestoreConfig
from ..core.deblur import read_photo
from ..core.measures import measure
from ..core.tasks import REGISTRY, TASK, TASKS
from .suites import Case

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
    needs: dict | None = None  # tasks the restorer would run (imagemend.model.core.restore.needs)


def collect(photos: dict[str, np.ndarray], cases: tuple[Case, ...], restorer=None) -> list[Reading]:
    """Measure (and, with a restorer, estimate) every case on every photo (key -> clean 8-bit RGB)."""
    from ..core.restore import needs

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
        return _norm_cast(r.model) if task == "cast" else r.model[TASK[task].truth]
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


def truth(case: Case, task: str) -> float | np.ndarray:
    return _vec(case.truth) if task == "cast" else case.truth[TASK[task].truth]


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
    photos the restorer would deconvolve (imagemend.model.core.restore.deconvolves), clean and noisy ones included."""
    from ..core.restore import deconvolves

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
    thresholds = {t.name: getattr(cfg, t.threshold) for t in REGISTRY}
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
