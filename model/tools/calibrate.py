"""Calibrate when a task counts as needed: thresholds from the estimates on clean photos.

A severity head never reads exactly zero on a clean photo (texture looks like noise, a sunset
looks like a cast). Each task's threshold is set above what the estimator reports for a high
quantile of clean training photos, so clean photos are left alone, and stored in the weights
file, since it belongs to that estimator. The global tasks get the maximum over clean photos:
a wrong cast, exposure or contrast correction changes every pixel, while a denoiser at a small
sigma does little harm.

    python -m imagemend.model.tools.calibrate --data ../shared/data/train/CBSD432 --weights W [--disable cast]

--disable keeps a task off whatever its estimate (threshold infinity), for a head that fails on
photos it was not calibrated on; the reason is stored with the thresholds.

The noise head is trained on a mix of noise kinds (Poisson, correlated, JPEG), so on plain
Gaussian noise it reads a few steps high. Its median reading on the same photos with Gaussian
noise of known sigma gives a monotone map from reading to sigma, stored as knots; restores
report the mapped sigma, take the denoise threshold on that scale and condition the U-Net on it
(training conditions it half the time on the true sigma, half on the head's raw reading, so the
U-Net knows both scales; what the map gains is in MODEL_CARD.md).
"""

import argparse

import numpy as np
import torch

from ..core.config import RestoreConfig
from ..core.restore import Restorer
from ..core.weights import DEFAULT_WEIGHTS, load_weights, save_weights
from ..data import load_photos
from ..evaluation import suites

MEASURE = {"min_noise_sigma": "noise_sigma", "min_blur": "blur", "min_cast": "cast",
           "min_exposure": "exposure_ev", "min_contrast": "contrast_curve", "min_edge_blur": "edge_blur",
           "min_camera_noise": "noise_rms"}


# a wrong global correction harms the whole photo; a deconvolution or a camera-noise reading that
# fires on a clean photo changes all of it too
GLOBAL = ("min_cast", "min_exposure", "min_contrast", "min_edge_blur", "min_camera_noise")
TONE = ("min_cast", "min_exposure", "min_contrast")


def thresholds(estimates: list[dict], quantile: float, global_quantile: float,
               margin: float = 1.1) -> dict[str, float]:
    """Per task, the margin above the quantile of clean photos' readings (never below cfg's floor);
    a reading the estimates lack (no camera-noise reader) keeps cfg's value."""
    floor = RestoreConfig()
    found = {}
    for k, m in MEASURE.items():
        values = [abs(e[m]) for e in estimates if m in e and np.isfinite(e[m])]
        q = float(np.quantile(values, global_quantile if k in GLOBAL else quantile)) if values else 0.0
        found[k] = max(getattr(floor, k), margin * q)
    return found


NOISE_CURVE_IMAGES = 96  # a median settles long before 432 photos
NOISE_CASES = ("clean", "noise5", "noise10", "noise15", "noise25", "noise35", "noise50")


def noise_curve(r: Restorer, photos: dict[str, np.ndarray],
                limit: int = NOISE_CURVE_IMAGES) -> dict[str, list[float]]:
    """Knots (median raw reading, true sigma) over the suite's Gaussian noise cases on the first
    `limit` photos, made increasing."""
    photos = dict(list(photos.items())[:limit])
    raw, sigma = [], []
    for case in suites.suite("estimators", list(NOISE_CASES)):
        readings = [e["noise_sigma"] for e in r.estimate([case.apply(a, k) for k, a in photos.items()])]
        raw.append(float(np.median(readings))), sigma.append(case.truth["noise_sigma"])
    for i in range(1, len(raw)):  # strictly increasing, as the map needs
        raw[i] = max(raw[i], raw[i - 1] + 1e-3)
    return {"raw": raw, "sigma": sigma}


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", required=True, help="clean photos (the training set is fine: nothing is fitted)")
    p.add_argument("--weights", default=str(DEFAULT_WEIGHTS), help="rewritten in place with the thresholds")
    p.add_argument("--quantile", type=float, default=0.98, help="for denoise and deblur")
    p.add_argument("--global-quantile", type=float, default=1.0, help="for cast, exposure and contrast")
    p.add_argument("--disable", action="append", default=[], choices=[m.removeprefix("min_") for m in GLOBAL],
                   help="keep this global task off (repeatable); say why with --reason")
    p.add_argument("--reason", default="", help="why tasks are disabled, stored in the weights")
    p.add_argument("--real", action="append", default=[],
                   help="more clean photos (real camera photos, web JPEGs; a folder or a glob): every threshold "
                        "is also set above the largest of their readings (repeatable)")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--real-tone", action="append", default=[],
                   help="real photos that may be noisy or soft but whose exposure, colour and contrast are as "
                        "shot (e.g. RNI15): only the tone thresholds are set above their readings (repeatable)")
    p.add_argument("--raise-only", action="store_true",
                   help="keep the thresholds and noise map the weights carry, add those they lack, and only raise "
                        "them to clear the --real photos (behaviour elsewhere stays as it was measured)")
    a = p.parse_args(argv)
    torch.set_num_threads(a.threads)
    photos = load_photos(a.data)
    net, meta = load_weights(a.weights)
    kept = meta["info"].get("thresholds", {}) if a.raise_only else {}
    r = Restorer(a.weights, device="cpu", calibrated=a.raise_only)
    if a.raise_only:
        curve = meta["info"].get("noise_curve")
    else:
        r.noise_curve = curve = noise_curve(r, photos)  # the denoise threshold is taken on the mapped scale
    found = {**thresholds(r.estimate(list(photos.values())), a.quantile, a.global_quantile), **kept}
    real = {}
    # no real clean photo may read as damaged: every task at the maximum; noisy real photos, their tone
    # as shot, raise the tone thresholds only
    for url, tasks in [*((u, list(found)) for u in a.real), *((u, TONE) for u in a.real_tone)]:
        more = load_photos(url)
        real[url] = len(more)
        jpeg = [k.lower().endswith((".jpg", ".jpeg")) for k in more]
        extra = thresholds(r.estimate(list(more.values()), jpeg=jpeg), 1.0, 1.0)
        found.update({k: max(found[k], extra[k]) for k in tasks})
    found.update({f"min_{t}": float("inf") for t in a.disable})
    before = meta["info"].get("calibration", {}) if a.raise_only else {}
    info = {**meta["info"], "thresholds": found, "noise_curve": curve,
            "calibration": {**before, "data": a.data, "images": len(photos), "raise_only": a.raise_only,
                            "noise_curve_images": min(NOISE_CURVE_IMAGES, len(photos)), "quantile": a.quantile,
                            "global_quantile": a.global_quantile, "real": real, "disabled": a.disable,
                            "reason": a.reason}}
    save_weights(a.weights, net, info)
    print(found, curve)


if __name__ == "__main__":
    main()
