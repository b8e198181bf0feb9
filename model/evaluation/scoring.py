"""Score restoration methods on the cases of a suite: per image, then mean and worst per case and method.

A method takes a damaged photo and its case and returns a restored photo. Every (case, method,
photo) gets a Score: the full-reference metrics against the clean photo and the seconds it took,
or, when the method raised, returned nothing or returned an image of another shape, the error.
A failed image is never dropped: the summary of a case and method with any failure carries the
count and no mean, so a report cannot show a number computed over the images that happened to work.

A report on every validation photo runs for hours (BM3D alone takes minutes per megapixel), so
scores can be kept in a ScoreCache: a run that stops resumes where it stopped, and a rerun after a
change to the model recomputes the model's rows, not BM3D's. A score is reused only for the same
method version, a fingerprint of the weights and the source of everything that produced it.
"""

from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, fields
import functools
import hashlib
from importlib import metadata
import inspect
import json
from pathlib import Path
import time
from types import ModuleType

import numpy as np

from .. import metrics
from ..core import (
    color,
    config,
    deblur,
    net,
    noise_floor,
    noise_level,
    pixels,
    restore,
    stats,
    tasks,
    tone_cues,
    weights,
)
from ..damage import degrade
from . import baselines, suites
from .suites import Case

Run = Callable[[np.ndarray, Case], np.ndarray]


@dataclass(frozen=True)
class Method:
    name: str
    kind: str  # input | classical | imagemend | single-task
    run: Run
    given: str = ""  # what the method is told that a blind method is not (true sigma, true PSF)
    version: str = ""  # changes whenever the method's output may change (ScoreCache)


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


@functools.cache  # the methods are rebuilt for every case; their sources do not change within a run
def fingerprint(*parts: str | ModuleType) -> str:
    """A short hash of the given strings and modules' source, together with the source of the
    damage and the metrics, which every score depends on."""
    h = hashlib.sha256()
    for part in (degrade, suites, metrics, *parts):
        h.update((inspect.getsource(part) if isinstance(part, ModuleType) else part).encode())
    return h.hexdigest()[:16]


def identity() -> Method:
    return Method("input", "input", lambda x, c: x, version=fingerprint("identity"))


class ScoreCache:
    """Scores already computed, one JSON line each, appended as they come: an interrupted run
    loses at most the line it was writing (a torn last line is ignored). Failures are not kept:
    they are computed again, and still reported if they fail again."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.rows: dict[tuple, Score] = {}
        self.reused = self.added = 0
        if self.path.exists():
            for line in self.path.read_text().splitlines():
                try:
                    d = json.loads(line)
                except json.JSONDecodeError:
                    continue
                version = d.pop("version")
                s = Score(**{f.name: d[f.name] for f in fields(Score)})
                self.rows[(s.dataset, s.case, s.method, s.key, version)] = s

    def get(self, m: Method, dataset: str, case: str, key: str, which: tuple[str, ...]) -> Score | None:
        s = self.rows.get((dataset, case, m.name, key, m.version))
        if s is None or any(getattr(s, w) is None for w in which):
            return None
        self.reused += 1
        return s

    def put(self, m: Method, s: Score) -> None:
        if s.error:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("a") as f:
            f.write(json.dumps({**asdict(s), "version": m.version}) + "\n")
        self.rows[(s.dataset, s.case, s.method, s.key, m.version)] = s
        self.added += 1


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
              dataset: str, which: tuple[str, ...] = metrics.METRICS, log: Callable[[str], None] = print,
              cache: ScoreCache | None = None) -> list[Score]:
    """Every method that applies to each case, on every photo (key -> clean 8-bit RGB)."""
    scores = []
    for case in cases:
        chosen = methods(case)
        rows = []
        for key, img in photos.items():
            kept = {m.name: cache.get(m, dataset, case.name, key, which) for m in chosen} if cache else {}
            if any(kept.get(m.name) is None for m in chosen):
                damaged = case.apply(img, key)  # once per photo, whatever the number of methods
            for m in chosen:
                s = kept.get(m.name)
                if s is None:
                    s = score(m, case, img, damaged, key, dataset, which)
                    if cache:
                        cache.put(m, s)
                rows.append(s)
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


def _versions(*packages: str) -> str:
    found = []
    for p in packages:
        try:
            found.append(f"{p} {metadata.version(p)}")
        except metadata.PackageNotFoundError:
            found.append(f"{p} absent")
    return ", ".join(found)


def classical(b: baselines.Baseline) -> Method:
    return Method(b.name, "classical", b.run, b.given,
                  fingerprint(b.name, baselines, color, _versions("scikit-image", "bm3d", "numpy", "torch")))


# the code a model's scores depend on: a change to any of it recomputes them
# (tests/model/test_report.py checks that every module restore draws on is here)
RESTORE_MODULES = (restore, net, stats, color, config, deblur, noise_floor, noise_level, pixels, weights, tasks,
                   tone_cues)


def model_version(name: str, r: "restore.Restorer") -> str:
    return fingerprint(name, r.weights_sha256, str(r.cfg), *RESTORE_MODULES, _versions("torch", "numpy", "scipy"))
