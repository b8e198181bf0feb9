"""Score restoration methods on the cases of a suite: per image, then mean and worst per case and method.

A method takes a damaged photo and its case and returns a restored photo. Every (case, method,
photo) gets a Score: the full-reference metrics against the clean photo and the seconds it took,
or, when the method raised, returned nothing or returned an image of another shape, the error.
A failed image is never dropped: the summary of a case and method with any failure carries the
count and no mean, so a report cannot show a number computed over the images that happened to work.
"""

from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass
import time

import numpy as np

from . import metrics
from .suites import Case

Run = Callable[[np.ndarray, Case], np.ndarray]


@dataclass(frozen=True)
class Method:
    name: str
    kind: str  # input | classical | imagemend | single-task
    run: Run
    given: str = ""  # what the method is told that a blind method is not (true sigma, true PSF)


@dataclass
class Score:
    dataset: str
    case: str
    method: str
    key: str
    megapixels: float
    seconds: float
    psnr: float | None = None
    ssim: float | None = None
    ciede2000: float | None = None
    error: str = ""


def identity() -> Method:
    return Method("input", "input", lambda x, c: x)


def score(method: Method, case: Case, clean: np.ndarray, damaged: np.ndarray, key: str, dataset: str,
          which: tuple[str, ...] = metrics.METRICS) -> Score:
    """One method on one damaged photo; an exception or a missing/misshapen output becomes the error."""
    mp = clean.shape[0] * clean.shape[1] / 1e6
    t0 = time.perf_counter()
    try:
        out = method.run(damaged, case)
        seconds = time.perf_counter() - t0
        metrics.check_pair(clean, out)
    except Exception as e:  # reported per image; the summary then shows the failure, not a mean
        return Score(dataset, case.name, method.name, key, mp, time.perf_counter() - t0,
                     error=f"{type(e).__name__}: {e}")
    values = {"psnr": metrics.capped_psnr, "ssim": metrics.ssim, "ciede2000": metrics.ciede2000}
    return Score(dataset, case.name, method.name, key, mp, seconds, **{m: values[m](clean, out) for m in which})


def score_all(methods: Callable[[Case], list[Method]], cases: Iterable[Case], photos: dict[str, np.ndarray],
              dataset: str, which: tuple[str, ...] = metrics.METRICS, log: Callable[[str], None] = print
              ) -> list[Score]:
    """Every method that applies to each case, on every photo (key -> clean 8-bit RGB)."""
    scores = []
    for case in cases:
        chosen = methods(case)
        rows = []
        for key, img in photos.items():
            damaged = case.apply(img, key)  # once per photo, whatever the number of methods
            rows += [score(m, case, img, damaged, key, dataset, which) for m in chosen]
        scores += rows
        summary = summarise(rows)
        for m in chosen:
            s = summary[(dataset, case.name, m.name)]
            log(f"{dataset} {case.name:14} {m.name:26} " + (
                f"PSNR {s['psnr_mean']:6.2f} dB (worst {s['psnr_worst']:6.2f})" if s["psnr_mean"] is not None
                else f"FAILED on {s['failed']} of {s['images']} images: {s['first_error']}"))
    return scores


def summarise(scores: Iterable[Score]) -> dict[tuple[str, str, str], dict]:
    """(dataset, case, method) -> images, failed, mean and worst per metric, worst image, s/MP."""
    groups: dict[tuple[str, str, str], list[Score]] = {}
    for s in scores:
        groups.setdefault((s.dataset, s.case, s.method), []).append(s)
    out = {}
    for k, rows in groups.items():
        ok = [r for r in rows if not r.error]
        failed = [r for r in rows if r.error]
        row = {"images": len(rows), "failed": len(failed), "first_error": failed[0].error if failed else "",
               "failed_images": [r.key for r in failed],
               "seconds_per_mp": sum(r.seconds for r in rows) / max(sum(r.megapixels for r in rows), 1e-9)}
        for m, worst in (("psnr", min), ("ssim", min), ("ciede2000", max)):
            vals = [getattr(r, m) for r in ok]
            have = not failed and vals and all(v is not None for v in vals)
            row[f"{m}_mean"] = float(np.mean(vals)) if have else None
            row[f"{m}_worst"] = float(worst(vals)) if have else None
        if row["psnr_mean"] is not None:
            row["worst_image"] = min(ok, key=lambda r: r.psnr).key
        out[k] = row
    return out


def as_dicts(scores: Iterable[Score]) -> list[dict]:
    return [asdict(s) for s in scores]
