"""Fitting the clean-group prior of model/core/groups.py on pseudo-groups of clean photos.

Clean photos of several collections are read (imagemend.model.core.groups.photo_reading) and cut into seeded
pseudo-groups of 8 to 40 photos. The prior's within-group covariance is the pooled covariance of
readings within those groups; its between-collection covariance is that of the collections' mean
readings (each collection weighs the same): an unseen archive is one more collection, and the
collections differ (BSDS, Set14, CSun_Hays80 and the PolyU70 references differ in their average
exposure and colour). CBSD432 and CBSD68 are both BSDS and count as one collection.

It also measures how each reading answers its own damage (the gain, below and above zero): the told
fits are shrunk toward "no damage" and clipping bends them, so a group's damage is its reading shift over
the gain. The gains come from CBSD432 copies with the training prior's ranges of each damage alone. The
cast's reading is not a fit to casts: it combines colour cues that each move with a cast exactly until
highlights clip, with the weights of least variance over CBSD432's clean photos (`cast_weights`), and its
gain is 1 (a gain or a cue response measured on the prior's strong casts, which clip, would overcorrect the
moderate casts that clip little).

The shipped prior is written by imagemend.model.tools.fit_group_prior; imagemend.model.evaluation.groups
refits it with the measured collection left out, so false alarms are never measured with a prior that saw
the photos.
"""

from pathlib import Path

import numpy as np
from PIL import Image

from ..core import tone_cues
from ..core.config import DegradationConfig
from ..core.groups import COLUMNS, SLICES, GroupPrior, photo_reading
from ..damage.degrade import damaged, fixed_params
from ..data import list_images

LONG_SIDE = 512  # photos are read at most this long (the 256 px view is read from it)
# collection -> (source, glob under the data root). BSDS counts once: CBSD432 and CBSD68 are one source
COLLECTIONS = {"CBSD432": ("BSDS", "train/CBSD432/*"), "CBSD68": ("BSDS", "val/CBSD68/*"),
               "Set14": ("Set14", "val/Set14/*"), "CSun_Hays80": ("CSun_Hays80", "extra/CSun_Hays80/*"),
               "PolyU70": ("PolyU70", "val/real/PolyU70/*_mean.JPG")}


def load_collection(root: str | Path, name: str, long_side: int = LONG_SIDE) -> dict[str, np.ndarray]:
    """A collection's photos as 8-bit RGB, area-reduced to at most `long_side` px, keyed by file name."""
    out = {}
    for f in list_images(str(Path(root) / COLLECTIONS[name][1])):
        with Image.open(f) as img:
            img = img.convert("RGB")
            scale = long_side / max(img.size)
            if scale < 1:
                img = img.resize((round(img.width * scale), round(img.height * scale)), Image.Resampling.BOX)
            out[Path(f).name] = np.asarray(img)
    return out


def pseudo_groups(n: int, rng: np.random.Generator, sizes: tuple[int, int] = (8, 40)) -> list[np.ndarray]:
    """A shuffled collection of n photos cut into consecutive groups of random sizes in `sizes`."""
    order, groups, i = rng.permutation(n), [], 0
    while i + sizes[0] <= n:
        k = int(rng.integers(sizes[0], sizes[1] + 1))
        groups.append(order[i:i + k])
        i += k
    return groups


def cast_weights(photos: list[np.ndarray]) -> list[list[float]]:
    """The cast reading's weights over tone_cues.mean_cues (2 x cues): among the combinations that move by a
    cast's log chroma exactly (weights summing to the identity over the cues), the one of least variance over
    the clean photos, (J' S^-1 J)^-1 J' S^-1 with S the cues' covariance (Aitken's best linear unbiased)."""
    cues = np.array([tone_cues.mean_cues(tone_cues.rgb_view(a)) for a in photos])
    si = np.linalg.inv(np.cov(cues.T))
    j = np.tile(np.eye(2), (cues.shape[1] // 2, 1))
    return np.linalg.solve(j.T @ si @ j, j.T @ si).tolist()


def response(photos: list[np.ndarray], seed: int = 0) -> list[list[float]]:
    """Per column, the reading's shift per unit of its own damage, for damage below and above zero
    (least squares through the origin), from one copy of each photo per damage, drawn from the
    training prior's ranges (model/core/config.py DegradationConfig); 1 for the cast's columns."""
    cfg, rng = DegradationConfig(), np.random.default_rng(seed)
    shift: dict[str, list[tuple[float, float]]] = {"exposure": [], "contrast": []}
    for i, a in enumerate(photos):
        base = photo_reading(a)
        draws = {"exposure": ("exposure_ev", rng.uniform(*cfg.exposure_ev)),
                 "contrast": ("contrast", np.exp(rng.uniform(*np.log(cfg.contrast_factor))))}
        for t, (k, v) in draws.items():
            r = photo_reading(damaged([a], fixed_params(1, **{k: float(v)}), seed + i)[0]) - base
            shift[t].append((v if t == "exposure" else np.log(v), r[SLICES[t]][0]))
    gains = [[1.0, 1.0], [1.0, 1.0]]
    for t in ("exposure", "contrast"):
        v, r = np.array(shift[t]).T
        gains.append([float(v[m] @ r[m] / (v[m] @ v[m])) for m in (v < 0, v > 0)])
    return gains


def fit_prior(readings: dict[str, np.ndarray], seed: int = 0, provenance: dict | None = None,
              gain: list[list[float]] | None = None, weights: list[list[float]] | None = None) -> GroupPrior:
    """readings: collection -> (photos, COLUMNS), read with the cast `weights` (the shipped prior's by default).
    Collections of one source (COLLECTIONS) are pooled."""
    sources: dict[str, list[np.ndarray]] = {}
    for name, r in readings.items():
        sources.setdefault(COLLECTIONS.get(name, (name,))[0], []).append(r)
    rng = np.random.default_rng(seed)
    means, resid, counts = [], [], {}
    for src, parts in sorted(sources.items()):
        r = np.concatenate(parts)
        counts[src] = len(r)
        means.append(r.mean(0))
        for g in pseudo_groups(len(r), rng):
            resid.append((r[g] - r[g].mean(0)) * np.sqrt(len(g) / (len(g) - 1)))
    means, resid = np.array(means), np.concatenate(resid)
    within = resid.T @ resid / len(resid)
    # the spread of collection means, less what their own photos' spread puts into it
    between = np.cov(means.T, ddof=1) - within * np.mean([1 / c for c in counts.values()])
    between = _nearest_psd(between)
    prov = {"sources": counts, "pseudo_group_photos": len(resid), "seed": seed, "columns": list(COLUMNS),
            **(provenance or {})}
    return GroupPrior(means.mean(0).tolist(), between.tolist(), within.tolist(), prov,
                      gain or [[1.0, 1.0]] * len(COLUMNS), weights or GroupPrior.load().cast_weights)


def _nearest_psd(a: np.ndarray, floor: float = 1e-6) -> np.ndarray:
    w, v = np.linalg.eigh((a + a.T) / 2)
    return (v * np.maximum(w, floor)) @ v.T


def read_all(root: str | Path, names, weights: list[list[float]] | None = None,
             loaded: dict[str, list[np.ndarray]] | None = None) -> dict[str, np.ndarray]:
    """Each collection's readings (photos, COLUMNS); `loaded` holds collections the caller has read already."""
    loaded = loaded or {}
    return {n: np.array([photo_reading(a, cast_weights=weights)
                         for a in (loaded[n] if n in loaded else load_collection(root, n).values())])
            for n in names}
