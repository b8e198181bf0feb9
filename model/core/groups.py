"""Tone and colour damage read per group of photos, not per photo.

One photo cannot tell its own exposure, colour and contrast from damage: clean photos' readings
spread about as far as the damages we undo. An archive's photos share their damage (a scan batch,
a roll, a camera on the wrong white balance), and over a group of n photos the photos' spread
shrinks by sqrt(n) while a shared damage does not. What does not shrink is the spread between
collections, which the prior carries. So, per group:

1. each photo's reading, on the 256 px view: exposure in EV and contrast as a log factor from the
   told-set fit of all three tone tasks; the cast (log R/G, log B/G) as the least-variance combination
   of the six power-mean colour cues (tone_cues.mean_cues) among those that move with a cast exactly,
   as each cue does until highlights clip (best linear unbiased; the weights, fitted on CBSD432, are the
   prior's cast_weights). The told fit's cast reading is shrunk toward "no cast" and bent, so a group's
   mean of it could not say how much to undo;
2. a robust group reading: readings beyond 3 MADs of the median dropped, the rest averaged
   (NegPy's roll average with outliers dropped; nearly a mean's efficiency on clean data);
3. a test of the group reading against a prior of clean groups (model/weights/group_prior.json):
   clean group readings scatter around the clean mean by the collections' spread (tau^2, an
   unseen archive is another collection) plus the photos' spread over n (sigma^2 / n, or the group's
   own spread where that is the wider: `spread`). A task is corrected only where "clean" is rejected
   at level alpha / k, k the tasks a group may correct (Bonferroni over them, so a clean group comes
   back wholly untouched with probability at least 1 - alpha). Which tasks a group may correct is a
   setting (`tasks`; GROUP_TASKS, the cast alone, by default: held out, exposure and contrast fire on
   clean groups of real camera photos, model/weights/eval-groups/results.md); a task outside `tasks`
   is tested and reported, not applied;
4. each photo's damage, in a corrected group: a batch is a mixture, some photos share the damage and
   some do not (half a box faded, a roll with frames from another camera). Each photo's reading
   r_i ~ pi N(mu0 + delta, S) + (1 - pi) N(mu0, S), mu0 and S the prior's clean mean and per-photo
   (within) covariance; delta, the shared damage's reading shift, and pi, the damaged share, are fitted
   by EM_STEPS steps of EM from delta = the robust group reading minus mu0 and pi all but 1 (pi = 1
   exactly is a fixed point of EM, so pi is kept half a photo from 0 and n). A photo's damage is its
   posterior probability of the damaged component times delta over the gain: a clean photo in a
   half-damaged group keeps most of itself, which one shrunk damage for the whole group did not
   (MODEL_CARD.md, "Per group of photos", has what each choice measured).
"""

from dataclasses import asdict, dataclass, field
import functools
import json
import math
from pathlib import Path
from statistics import NormalDist

import numpy as np

from . import tone_cues
from .tasks import TONE_TASKS as TASKS
from .weights import WEIGHTS_DIR

PRIOR = WEIGHTS_DIR / "group_prior.json"
SLICES = {"cast": slice(0, 2), "exposure": slice(2, 3), "contrast": slice(3, 4)}  # columns of a reading
COLUMNS = ("cast_rg", "cast_bg", "exposure_ev", "contrast_log")
FULL = "cast,exposure,contrast"  # the told-set fit read: an archive may have any of the three
OUTLIER_MADS = 3.0
EM_STEPS = 10
MIN_GROUP = 8
# the tasks a group corrects by default: those whose held-out false-alarm rate on clean groups meets the 1 %
# target (model/weights/eval-groups/results.md); exposure and contrast are opt-in
GROUP_TASKS = ("cast",)
NOT_CHOSEN = "not a group task (opt in with --group-tasks)"
CLEAN = "clean prior not rejected"


def photo_reading(pixels: np.ndarray, table: dict | None = None, cast_weights: list[list[float]] | None = None
                  ) -> np.ndarray:
    """A photo's tone readings (COLUMNS): the cues' cast chroma, and the told fit's exposure and contrast."""
    fits = (table or _table())[FULL]
    view = tone_cues.rgb_view(pixels)
    cast = (_cast_weights() if cast_weights is None else np.asarray(cast_weights)) @ tone_cues.mean_cues(view)
    return np.concatenate([cast, *(fits[t](tone_cues.CUES[t](view)) for t in ("exposure", "contrast"))])


_table = functools.cache(tone_cues.load_table)  # the shipped tone-cue fits, read once per process


@functools.cache
def _cast_weights() -> np.ndarray:
    return np.asarray(GroupPrior.load().cast_weights)


def edge_only() -> list[list[float]]:
    """Cast weights that read the grey-edge 6-norm cue alone (mean_cues' last pair)."""
    return np.hstack([np.zeros((2, 10)), np.eye(2)]).tolist()


def robust_mean(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per column: the mean of the readings within OUTLIER_MADS scaled MADs of the median, and
    which readings were kept (all, where the MAD is 0)."""
    x = np.atleast_2d(x)
    med = np.median(x, 0)
    mad = 1.4826 * np.median(np.abs(x - med), 0)
    keep = np.abs(x - med) <= OUTLIER_MADS * np.where(mad > 0, mad, np.inf)
    return np.array([x[keep[:, j], j].mean() for j in range(x.shape[1])]), keep


@dataclass
class GroupPrior:
    """Clean groups' readings: mean (per column), covariance between collections (tau^2) and of
    photos within one (sigma^2), both 4x4 over COLUMNS; and each reading's gain, its shift per unit
    of its damage below and above zero (a reading shift over its gain is the damage); and the weights
    that make the cast reading of the colour cues (photo_reading)."""
    mean: list[float]
    between: list[list[float]]
    within: list[list[float]]
    provenance: dict = field(default_factory=dict)
    gain: list[list[float]] = field(default_factory=lambda: [[1.0, 1.0]] * len(COLUMNS))
    cast_weights: list[list[float]] = field(default_factory=edge_only)  # 2 x mean_cues: the cast reading

    @classmethod
    def load(cls, path: Path = PRIOR) -> "GroupPrior":
        return cls(**json.loads(Path(path).read_text()))

    def save(self, path: Path = PRIOR) -> None:
        Path(path).write_text(json.dumps(asdict(self), indent=1) + "\n")

    def block(self, task: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        s = SLICES[task]
        return np.asarray(self.mean)[s], np.asarray(self.between)[s, s], np.asarray(self.within)[s, s]

    def damage(self, task: str, shift: np.ndarray) -> np.ndarray:
        """Reading shifts from the clean mean (task's columns, any leading shape) in damage units."""
        g = np.asarray(self.gain)[SLICES[task]]
        return shift / np.where(shift < 0, g[:, 0], g[:, 1])


@dataclass
class TaskDecision:
    corrected: bool
    reason: str  # "corrected", "clean prior not rejected", "too small" or NOT_CHOSEN (tested, not applied)
    estimate: list[float]  # the group's damage: its robust reading's shift from the clean mean over the gain
    statistic: float  # squared Mahalanobis distance from clean (chi-square, 1 or 2 dof)
    critical: float  # the statistic's rejection threshold


@dataclass
class Share:
    """A corrected task's fitted mixture: all a photo of the group needs to get its damage from its own reading,
    so a job carries one per group to its photos, not one damage per photo."""
    mean: list[float]  # the prior's clean mean (the task's columns)
    precision: list[list[float]]  # the inverse of the photos' (within) covariance
    shift: list[float]  # delta: the damaged component's reading shift from the clean mean
    log_odds: float  # log(pi / (1 - pi)), the damaged share's
    damage: list[float]  # delta over the gain: what a photo sure to share the damage is told

    def weight(self, reading: np.ndarray) -> float:
        """The photo's posterior probability of sharing the damage (the logistic of the log odds, overflow-free)."""
        x, P, d = np.asarray(reading, np.float64) - self.mean, np.asarray(self.precision), np.asarray(self.shift)
        return float(0.5 * (1 + math.tanh((x @ P @ d - d @ P @ d / 2 + self.log_odds) / 2)))

    def told(self, reading: np.ndarray) -> list[float]:
        return (self.weight(reading) * np.asarray(self.damage)).tolist()


@dataclass
class GroupDecision:
    size: int
    reading: list[float]  # robust group reading (COLUMNS)
    tasks: dict[str, TaskDecision]
    shares: dict[str, Share]  # per corrected task, its mixture
    readings: np.ndarray = field(default_factory=lambda: np.zeros((0, len(COLUMNS))), repr=False, compare=False)

    def tone(self) -> list[dict | None]:
        """What Restorer.restore(tone=...) takes: per photo decided on, the told damages (None: per-photo
        behaviour)."""
        return [photo_tone(self.shares, r) for r in self.readings]


def photo_tone(shares: dict[str, Share], reading: np.ndarray) -> dict | None:
    """A photo's damage per corrected task, from its own reading (COLUMNS) and its group's shares, as
    Restorer.restore(tone=) takes it (exposure and contrast as numbers); None where no task is corrected."""
    told = {t: sh.told(np.asarray(reading)[SLICES[t]]) for t, sh in shares.items()}
    return {t: v if t == "cast" else v[0] for t, v in told.items()} or None


def _critical(dof: int, level: float) -> float:
    """Chi-square quantile 1 - level for 1 or 2 degrees of freedom (closed forms, no SciPy)."""
    if dof == 2:
        return -2 * math.log(level)
    return NormalDist().inv_cdf(1 - level / 2) ** 2


def decide(readings: np.ndarray, prior: GroupPrior, alpha: float = 0.01, min_group: int = MIN_GROUP,
           tasks: tuple[str, ...] = GROUP_TASKS) -> GroupDecision:
    """The group's decision per task and each photo's damage (readings: one row per photo, COLUMNS). Every
    task is tested at level alpha / len(tasks); only those in `tasks` are corrected, the others report
    their statistic and estimate with the reason NOT_CHOSEN."""
    unknown = set(tasks) - set(TASKS)
    if unknown:
        raise ValueError(f"group tasks must be among {', '.join(TASKS)}, not {', '.join(sorted(unknown))}")
    level = alpha / max(len(tasks), 1)
    x = np.atleast_2d(np.asarray(readings, dtype=np.float64))
    n = len(x)
    m, keep = robust_mean(x) if n else (np.full(len(COLUMNS), np.nan), np.zeros((0, len(COLUMNS)), bool))
    out, shares = {}, {}
    for t in TASKS:
        s = SLICES[t]
        mu, tau2, sigma2 = prior.block(t)
        d = m[s] - mu
        rows = keep[:, s].all(1) if n else np.zeros(0, bool)
        k = max(int(rows.sum()), 1)  # readings the mean rests on
        cov = tau2 + spread(sigma2, x[rows][:, s]) / k
        stat = float(d @ np.linalg.solve(cov, d)) if n else 0.0
        crit = _critical(len(d), level)
        if n < min_group:
            out[t] = TaskDecision(False, "too small", prior.damage(t, d).tolist(), stat, crit)
            continue
        dmg = prior.damage(t, d)
        if t not in tasks:
            out[t] = TaskDecision(False, NOT_CHOSEN, dmg.tolist(), stat, crit)
            continue
        hit = stat > crit
        out[t] = TaskDecision(hit, "corrected" if hit else CLEAN, dmg.tolist(), stat, crit)
        if hit:  # each photo: its posterior probability of sharing the damage times the mixture's damage
            _, delta, pi = mixture(x[:, s] - mu, d, sigma2)
            shares[t] = Share(mu.tolist(), np.linalg.inv(sigma2).tolist(), delta.tolist(), math.log(pi / (1 - pi)),
                              prior.damage(t, delta).tolist())
    return GroupDecision(n, m.tolist(), out, shares, x)


def spread(within: np.ndarray, x: np.ndarray) -> np.ndarray:
    """The photos' covariance a group's mean is judged with: the prior's clean one, or in each direction where the
    group's own readings (rows of x) scatter wider, theirs. Photos that each carry a damage of their own (a box of
    prints faded each its own way) scatter wider than clean ones, and their mean then strays from the clean mean
    without a damage they share (MODEL_CARD.md, "Per group of photos")."""
    if len(x) <= x.shape[1] + 1:  # too few photos to say how they scatter
        return within
    L = np.linalg.cholesky(within)
    Li = np.linalg.inv(L)
    w, V = np.linalg.eigh(Li @ np.atleast_2d(np.cov(x.T)) @ Li.T)
    return L @ (V * np.maximum(w, 1.0)) @ V.T @ L.T


def mixture(shift: np.ndarray, start: np.ndarray, S: np.ndarray, steps: int = EM_STEPS
            ) -> tuple[np.ndarray, np.ndarray, float]:
    """EM for shift_i ~ pi N(delta, S) + (1 - pi) N(0, S) (photos' reading shifts from the clean mean, rows):
    each photo's posterior probability of the damaged component, delta and pi."""
    n, P = len(shift), np.linalg.inv(S)
    delta, pi = np.asarray(start, dtype=np.float64), (n + 0.5) / (n + 1)

    def posterior() -> np.ndarray:  # the logistic of the log odds damaged : clean, overflow-free
        z = shift @ P @ delta - delta @ P @ delta / 2 + math.log(pi / (1 - pi))
        return 0.5 * (1 + np.tanh(z / 2))

    for _ in range(steps):
        w = posterior()
        delta = w @ shift / w.sum() if w.sum() > 0 else delta
        pi = (w.sum() + 0.5) / (n + 1)
    return posterior(), delta, pi
