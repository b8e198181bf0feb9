"""Tone damage read from a photo's statistics, for photos the caller says are damaged.

The global branch's tone heads are trained on a prior where most photos are undamaged, so they
shrink towards "no damage": told that an archive is underexposed, they undo about half of a -1 EV
shift (MODEL_CARD). Once the caller vouches for the damage, the question changes from "is this
photo damaged?" (which natural photos' own range of exposure, colour and contrast keeps us from
answering, MODEL_CARD) to "by how much?", and plain statistics answer that well: each cue below
moves with the damage exactly (a cast adds its log chroma to every colour cue, an exposure shift
its EV to every log-luminance cue, a contrast change its log factor to every luma spread), so the
damage is the cue minus what the cue reads on a clean photo, and a least-squares combination of
many cues (Cheng, Price, Cohen and Brown, CVPR 2015, do this with trees for the illuminant) lets
the cues' errors cancel. Each told set has its own combinations, fitted on CBSD432 copies with the
training prior's damage (noise, blur and JPEG included) and some of the told tone damages, no other:

    python -m imagemend.model.tools.fit_tone_cues --data ../shared/data/train/CBSD432 --workers 2   # writes TABLE

The cues are read on a view of the photo area-averaged to a long side of about VIEW px.
"""

from dataclasses import dataclass
import json
import math
from pathlib import Path

import numpy as np
import torch

from .color import LUMA, normalise_gains, srgb_to_linear
from .pixels import white_level
from .tasks import TONE_TASKS
from .weights import WEIGHTS_DIR

TABLE = WEIGHTS_DIR / "tone_cues.json"
VIEW = 256  # long side of the view the cues are read on
LOG_FLOOR = 1 / 4096  # linear light: darker than this reads as this


def _linear(s: np.ndarray) -> np.ndarray:
    return srgb_to_linear(torch.from_numpy(s)).numpy()


def rgb_view(pixels: np.ndarray) -> np.ndarray:
    """Any photo (HxW, HxWx1..4, any depth) as (h, w, 3) sRGB floats in [0, 1], area-averaged to a
    long side of about VIEW px: the same scene reads the same at any resolution, and noise
    (which the statistics at the extremes are sensitive to) is averaged down."""
    arr = pixels[:, :, None] if pixels.ndim == 2 else pixels
    arr = arr[..., :3] if arr.shape[2] >= 3 else arr[..., :1]
    b = min(math.ceil(max(arr.shape[:2]) / VIEW), *arr.shape[:2])
    h, w, c = arr.shape[0] // b, arr.shape[1] // b, arr.shape[2]
    top = white_level(arr.dtype)
    # integers sum exactly, and rows first along memory: five times faster than one float sum over both axes
    acc = np.float64 if arr.dtype.kind == "f" else np.uint32 if top * b * b < 2 ** 32 else np.uint64
    rows = arr[:h * b, :w * b].reshape(h, b, w * b * c).sum(1, dtype=acc)  # a 50 MP photo is never copied as floats
    view = rows.reshape(h, w, b, c).sum(2, dtype=acc) / (b * b * top)
    return np.repeat(view, 3 // c, axis=2)


def _chroma(v: np.ndarray) -> np.ndarray:
    log = np.log(np.maximum(v, LOG_FLOOR))
    return np.array([log[0] - log[1], log[2] - log[1]])


def cast_cues(view: np.ndarray) -> np.ndarray:
    """Log chroma (log R/G, log B/G, linear light) of colour constancy statistics: grey world,
    shades of grey, white patch at three percentiles, the brightest pixels, the median, and grey
    edge (the mean and 6-norm of each channel's gradient magnitude; van de Weijer et al. 2007)."""
    lin = _linear(view)
    x = lin.reshape(-1, 3)
    y = x @ LUMA
    top = [x[y >= np.percentile(y, 100 - q)].mean(0) for q in (1, 5)]
    stats = [*_power_means(x), *np.percentile(x, [95, 99, 99.5], axis=0), *top, np.median(x, 0),
             *_edge_means(_gradients(lin))]
    return np.concatenate([_chroma(v) for v in stats])


def mean_cues(view: np.ndarray) -> np.ndarray:
    """cast_cues' power means alone (grey world, shades of grey, grey edge): no percentile and no sort, so
    cheap enough for every photo of an archive; a group's cast reading combines them (groups.photo_reading)."""
    lin = _linear(view)
    return np.concatenate([_chroma(v) for v in (*_power_means(lin.reshape(-1, 3)), *_edge_means(_gradients(lin)))])


def _power_means(x: np.ndarray) -> list[np.ndarray]:
    """Grey world and shades of grey (p 2, 4, 8) of pixel rows. Sums run over each channel's contiguous row, as
    (n, 3).mean(0) runs 5 to 10 times slower."""
    c = np.ascontiguousarray(x.T)
    c2 = c * c
    c4 = c2 * c2
    return [c.mean(1), np.sqrt(c2.mean(1)), c4.mean(1) ** 0.25, (c4 * c4).mean(1) ** 0.125]


def _edge_means(grad: np.ndarray) -> list[np.ndarray]:
    """Grey edge: the mean and the 6-norm of the gradient magnitudes (rows as in _power_means)."""
    c = np.ascontiguousarray(grad.T)
    c2 = c * c
    return [c.mean(1), (c2 * c2 * c2).mean(1) ** (1 / 6)]


def _gradients(lin: np.ndarray) -> np.ndarray:
    """Each channel's gradient magnitude, one row per pixel (a one-pixel-wide view: its values)."""
    return np.hypot(*np.gradient(lin, axis=(0, 1))).reshape(-1, 3) if min(lin.shape[:2]) > 1 else lin.reshape(-1, 3)


def exposure_cues(view: np.ndarray) -> np.ndarray:
    """Log2 linear luminance: its power means, percentiles and spread, and the clipped and black shares."""
    s = view.reshape(-1, 3)
    y = np.maximum(_linear(s) @ LUMA, LOG_FLOOR)
    log = np.log2(y)
    return np.array([*(np.log2((y ** p).mean()) / p for p in (1, 2, 4, 8)),
                     *np.percentile(log, [1, 5, 25, 50, 75, 95, 99, 99.9]), log.mean(), log.std(),
                     (s.max(1) >= 254.5 / 255).mean(), (y <= 2 * LOG_FLOOR).mean()])


def contrast_cues(view: np.ndarray) -> np.ndarray:
    """Log spreads of sRGB luma between percentile pairs and its log std; mean luma and the black and white shares."""
    s = view.reshape(-1, 3)
    y = s @ LUMA
    p = np.percentile(y, [0.5, 1, 5, 10, 25, 75, 90, 95, 99, 99.5])
    spreads = [p[9 - i] - p[i] for i in range(5)]
    return np.array([*np.log(np.maximum(spreads, 1e-3)), math.log(y.std() + 1e-4), y.mean(),
                     (y <= 0.5 / 255).mean(), (y >= 254.5 / 255).mean()])


CUES = {"cast": cast_cues, "exposure": exposure_cues, "contrast": contrast_cues}


@dataclass
class Fit:
    """One damage's least-squares combination: standardised cues (and, quadratic, their pairwise
    products) -> the damage's parameters. Cues and readings are held to the range the fit saw:
    a photo beyond it (a dark photo at -2 EV can lie many standard deviations beyond every
    training copy) would otherwise be extrapolated, wildly once squared."""
    mean: list[float]
    std: list[float]
    lo: list[float]  # standardised cues' range in the fit's copies
    hi: list[float]
    coef: list[list[float]]  # (terms + 1, outputs); the last row is the intercept
    out_lo: list[float]  # the damage parameters' range in the fit's copies
    out_hi: list[float]
    quadratic: bool = False

    def terms(self, cues: np.ndarray) -> np.ndarray:
        z = (np.atleast_2d(cues) - np.asarray(self.mean)) / np.asarray(self.std)
        z = z.clip(np.asarray(self.lo), np.asarray(self.hi))
        if self.quadratic:
            i, j = np.triu_indices(z.shape[1])
            z = np.concatenate([z, z[:, i] * z[:, j]], 1)
        return np.concatenate([z, np.ones((len(z), 1))], 1)

    def __call__(self, cues: np.ndarray) -> np.ndarray:
        return (self.terms(cues) @ np.asarray(self.coef))[0].clip(self.out_lo, self.out_hi)


def fit(cues: np.ndarray, target: np.ndarray, ridge: float = 1e-3, quadratic: bool = False) -> Fit:
    """Ridge regression (the ridge keeps near-duplicate cues from cancelling wildly)."""
    mean, std = cues.mean(0), cues.std(0) + 1e-9
    z, y = (cues - mean) / std, target.reshape(len(cues), -1)
    f = Fit(mean.tolist(), std.tolist(), z.min(0).tolist(), z.max(0).tolist(), [], y.min(0).tolist(),
            y.max(0).tolist(), quadratic)
    x = f.terms(cues)
    penalty = ridge * len(x) * np.diag([1.0] * (x.shape[1] - 1) + [0.0])
    f.coef = np.linalg.solve(x.T @ x + penalty, x.T @ y).tolist()
    return f


def told_key(tasks) -> str:
    return ",".join(t for t in TONE_TASKS if t in tasks)


def load_table(path: Path = TABLE) -> dict[str, dict[str, Fit]]:
    """Told set ("cast,exposure") -> task -> its fit."""
    return {k: {t: Fit(**f) for t, f in fits.items()} for k, fits in json.loads(path.read_text())["fits"].items()}


def chroma_to_log_gains(c: np.ndarray) -> torch.Tensor:
    """(log R/G, log B/G) -> per-channel log gains that keep luminance, as the damage draws casts."""
    return normalise_gains(torch.tensor([[c[0], 0.0, c[1]]], dtype=torch.float32))[0]


def read(pixels: np.ndarray, tasks, table: dict[str, dict[str, Fit]]) -> dict[str, float | torch.Tensor]:
    """The told damages of one photo: cast as normalised log gains, exposure in EV, contrast as its
    log factor around the mean luma (which the undo curve needs too). Each told set has fits of its
    own: a photo told to be underexposed and flat reads its exposure among contrast changes."""
    s = rgb_view(pixels)
    fits = table[told_key(tasks)]
    out: dict = {"mean_luma": mean_luma(s)}
    for t, f in fits.items():
        v = f(CUES[t](s))
        out[t] = chroma_to_log_gains(v) if t == "cast" else float(v[0])
    return out


def mean_luma(view: np.ndarray) -> float:
    """The mean sRGB luma of a view (rgb_view): what a contrast change pivots on."""
    return float((view @ np.asarray(LUMA)).mean())


def undo_contrast_curve(log_factor: float, mean_luma: float, knots: int) -> torch.Tensor:
    """The curve (knots on [0, 1]) that stretches luma back around its mean by exp(-log_factor)."""
    x = torch.linspace(0, 1, knots)
    return (mean_luma + (x - mean_luma) * math.exp(-log_factor)).clamp(0, 1)
