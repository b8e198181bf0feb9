"""Named, seeded evaluation suites: the one definition of what every evaluation case does to a photo.

A case is one fixed damage (imagemend.model.damage.degrade.fixed_params) named after what it is. It is applied with
a generator seeded from the suite seed, the case name and the photo's key (its path under the data
folder), so a photo gets the same damage whatever order it is read in, whichever worker reads it
and whichever suite holds the case. `imagemend eval`, `imagemend report`, `imagemend estimators`
and `python -m imagemend.model.evaluation.evaluate` all take their cases from here.
"""

from dataclasses import dataclass
from functools import cached_property
import hashlib
import math

import numpy as np
import torch

from ..core.color import LUMA, normalise_gains
from ..core.config import DegradationConfig
from ..core.tasks import TASKS
from ..damage.degrade import damaged, fixed_params, kernels_for

SEED = 2024
KINDS = (*TASKS, "mixed", "clean")  # what a case exercises: one task, several, or none


@dataclass(frozen=True)
class Case:
    name: str
    task: str  # the task that repairs it (one of TASKS), "mixed" or "clean"
    damage: tuple[tuple[str, object], ...]  # keyword arguments of fixed_params, as pairs (hashable)

    @property
    def kwargs(self) -> dict:
        return dict(self.damage)

    def params(self) -> dict:
        return fixed_params(1, **self.kwargs)

    def seed(self, key: str) -> int:
        """Seed of this case on the photo with this key: independent of order, machine and suite."""
        digest = hashlib.sha256(f"{SEED}|{self.name}|{key}".encode()).digest()
        return int.from_bytes(digest[:8], "little") % 2**62

    def apply(self, image: np.ndarray, key: str) -> np.ndarray:
        """The damaged copy of an 8-bit RGB photo (the clean case returns an exact copy)."""
        if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
            raise ValueError(f"cases apply to 8-bit RGB photos, got {image.dtype} {image.shape}")
        if not self.damage:
            return image.copy()
        return damaged([image], self.params(), self.seed(key))[0]

    def psf(self) -> np.ndarray | None:
        """The blur kernel the case convolves with (None without blur): Richardson-Lucy is given it."""
        if "blur" not in self.kwargs:
            return None
        kernels, _ = kernels_for(self.params(), DegradationConfig().blur_kernel)
        return kernels[0].double().numpy()

    @cached_property
    def truth(self) -> dict[str, float]:
        """The true severities, in the units of the model's estimates (imagemend.model.core.restore.severities)."""
        p = self.params()
        _, amount = kernels_for(p, DegradationConfig().blur_kernel)
        log_gains = p["cast_log_gain"].double()
        gains = normalise_gains(log_gains)[0]
        luminance_ev = math.log2(float((log_gains.exp()[0] * torch.tensor(LUMA, dtype=torch.float64)).sum()))
        return {"noise_sigma": float(p["noise_sigma"][0]), "blur": float(amount[0]),
                "cast_r": float(gains[0]), "cast_g": float(gains[1]), "cast_b": float(gains[2]),
                "cast": float(gains.abs().max()), "exposure_ev": float(p["exposure_ev"][0]) + luminance_ev,
                "contrast": math.log(float(p["contrast"][0])), "gamma": math.log(float(p["gamma"][0]))}

    def describe(self) -> str:
        k = self.kwargs
        parts = []
        if "noise_sigma" in k:
            parts.append(f"Gaussian noise sigma {k['noise_sigma']:g}")
        if "blur" in k:
            kind, size = k["blur"]
            what = {"gaussian": "Gaussian blur sigma", "motion": "motion blur length"}.get(kind, f"{kind} blur")
            parts.append(f"{what} {size:g} px (RMS radius {self.truth['blur']:.2f} px)")
        if "cast_gains" in k:
            parts.append("linear-light channel gains " + "/".join(f"{g:g}" for g in k["cast_gains"])
                         + " (luminance kept)")
        if "exposure_ev" in k:
            parts.append(f"{k['exposure_ev']:+g} EV (clipped)")
        if "contrast" in k:
            parts.append(f"contrast x{k['contrast']:g} around mean luma")
        if "gamma" in k:
            parts.append(f"gamma {k['gamma']:g}")
        return ", ".join(parts) or "none: the photo as it is"


def _case(name: str, task: str, **damage) -> Case:
    return Case(name, task, tuple(damage.items()))


def _neutral(r: float, g: float, b: float) -> tuple[float, float, float]:
    """Gains scaled to keep luminance, as training draws casts: a cast case changes colour, not exposure."""
    k = sum(w * v for w, v in zip(LUMA, (r, g, b)))
    return (round(r / k, 4), round(g / k, 4), round(b / k, 4))


_BLUR_NOISE = 1.0  # every blurred photo carries some sensor noise; sigma 1 keeps deconvolution honest
CASES: dict[str, Case] = {c.name: c for c in (
    _case("clean", "clean"),
    *(_case(f"noise{s}", "denoise", noise_sigma=float(s)) for s in (5, 10, 15, 25, 35, 50)),
    *(_case(f"blur-gauss{s:g}", "deblur", blur=("gaussian", s), noise_sigma=_BLUR_NOISE)
      for s in (0.5, 1.0, 1.5, 2.0, 3.0)),
    *(_case(f"blur-motion{s}", "deblur", blur=("motion", float(s)), noise_sigma=_BLUR_NOISE) for s in (5, 9, 13)),
    _case("cast-warm", "cast", cast_gains=_neutral(1.25, 1.0, 0.75)),
    _case("cast-cool", "cast", cast_gains=_neutral(0.8, 1.0, 1.25)),
    _case("cast-green", "cast", cast_gains=_neutral(0.85, 1.2, 0.85)),
    _case("cast-magenta", "cast", cast_gains=_neutral(1.15, 0.85, 1.15)),
    _case("cast-faint", "cast", cast_gains=_neutral(1.08, 1.0, 0.92)),
    *(_case(f"exposure{ev:+g}", "exposure", exposure_ev=ev) for ev in (-2.0, -1.5, -1.0, -0.5, 0.5, 0.7, 1.0)),
    *(_case(f"contrast{c:g}", "contrast", contrast=c) for c in (0.4, 0.55, 0.75, 0.85, 1.3)),
    _case("mixed", "mixed", noise_sigma=15.0, blur=("gaussian", 1.0), cast_gains=_neutral(1.2, 1.0, 0.8),
          exposure_ev=-0.7, contrast=0.75),
)}

SUITES: dict[str, tuple[str, ...]] = {
    # the suite: each task at two or three severities, one mixed case, and the clean photo
    "standard": ("noise15", "noise25", "noise50", "blur-gauss1", "blur-gauss2", "blur-motion9",
                 "cast-warm", "cast-cool", "cast-green", "exposure-2", "exposure-1", "exposure+0.7",
                 "contrast0.75", "contrast0.55", "mixed", "clean"),
    # the acceptance cases of the shipped model (model/weights/MODEL_CARD.md)
    "targets": ("noise15", "noise25", "noise50", "blur-gauss1.5", "cast-warm", "exposure-1", "exposure+0.7",
                "contrast0.55", "clean"),
    # one case per task: tests and smoke runs
    "quick": ("noise25", "blur-gauss2", "cast-warm", "exposure-1", "contrast0.55", "mixed", "clean"),
    # severity sweeps for validating the no-reference estimators (model/evaluation/estimators.py)
    "estimators": ("clean", "noise5", "noise10", "noise15", "noise25", "noise35", "noise50",
                   "blur-gauss0.5", "blur-gauss1", "blur-gauss1.5", "blur-gauss2", "blur-gauss3",
                   "blur-motion5", "blur-motion9", "blur-motion13", "cast-faint", "cast-warm", "cast-cool",
                   "cast-green", "cast-magenta", "exposure-2", "exposure-1.5", "exposure-1", "exposure-0.5",
                   "exposure+0.5", "exposure+0.7", "exposure+1", "contrast0.4", "contrast0.55", "contrast0.75",
                   "contrast0.85", "contrast1.3"),
}


def suite(name: str, only: list[str] | None = None) -> tuple[Case, ...]:
    """The cases of a named suite, optionally only the named ones (in the suite's order)."""
    if name not in SUITES:
        raise ValueError(f"unknown suite {name!r}; choose from {', '.join(SUITES)}")
    names = SUITES[name]
    if only:
        unknown = [c for c in only if c not in names]
        if unknown:
            raise ValueError(f"case(s) {unknown} are not in suite {name!r}: {', '.join(names)}")
        names = tuple(c for c in names if c in only)
    return tuple(CASES[c] for c in names)


def markdown(cases: tuple[Case, ...]) -> str:
    """The cases as a Markdown table, for the reports that use them."""
    lines = ["| case | task | damage |", "|---|---|---|"]
    lines += [f"| `{c.name}` | {c.task} | {c.describe()} |" for c in cases]
    return "\n".join(lines)


def _check() -> None:
    for name, names in SUITES.items():
        missing = [c for c in names if c not in CASES]
        assert not missing, f"suite {name} names unknown cases {missing}"
    assert all(c.task in KINDS for c in CASES.values())


_check()
