"""Can the extremes of a photo tell tone damage from a clean photo, at a do-no-harm threshold?

    python experiments/tone_extremes.py ../shared/data/train/CBSD432 ../shared/data/val/CBSD68

A blind correction may act only where no clean photo reads as damaged (a clean photo must come back
at >= 40 dB), so the useful question is what share of damaged photos reads beyond every clean
training photo. For each statistic: its range on the clean photos (min, 2 %, median, 98 %, max),
then, per damage case on the held-out photos, the share below the clean minimum and above the
clean maximum. The statistics are the white-patch cues a classical method uses: how bright the
brightest pixels are (log2 of linear luminance at the 99th / 99.9th percentile and at the
maximum), the colour of the brightest 1 % (log R/B, log G over the R-B mean), the 0.5-99.5 %
range of luma, and the share of clipped pixels.
"""

import sys

import numpy as np

from imagemend.model.data import load_photos
from imagemend.model.evaluation import suites

CASES = ("exposure-1", "exposure-2", "exposure+0.7", "contrast0.55", "contrast0.75", "cast-warm", "cast-cool",
         "cast-green")
LUMA = np.array([0.2126, 0.7152, 0.0722])


def extremes(a: np.ndarray) -> dict[str, float]:
    x = a.astype(np.float64) / 255
    lin = np.where(x <= 0.04045, x / 12.92, ((x + 0.055) / 1.055) ** 2.4)
    lum = lin @ LUMA
    q99, q999 = np.quantile(lum, [0.99, 0.999])
    r, g, b = lin[lum >= q99].mean(0) + 1e-6
    lo, hi = np.quantile(x @ LUMA, [0.005, 0.995])
    return {"ev99": np.log2(q99 + 1e-6), "ev999": np.log2(q999 + 1e-6), "evmax": np.log2(lum.max() + 1e-6),
            "log_rb": np.log(r / b), "log_g": np.log(g / np.sqrt(r * b)), "range": hi - lo,
            "clipped": float((a.max(2) >= 254).mean())}


def main(clean_dir: str, val_dir: str) -> None:
    clean = [extremes(a) for a in load_photos(clean_dir).values()]
    ref = {k: np.array([c[k] for c in clean]) for k in clean[0]}
    print("clean photos: " + "; ".join(f"{k} {' / '.join(f'{v:.2f}' for v in np.quantile(x, [0, .02, .5, .98, 1]))}"
                                       for k, x in ref.items()))
    photos = load_photos(val_dir)
    for case in suites.suite("standard", list(CASES)):
        got = [extremes(case.apply(a, key)) for key, a in photos.items()]
        cols = []
        for k, x in ref.items():
            v = np.array([s[k] for s in got])
            cols.append(f"{k} {np.median(v):.2f} (<min {np.mean(v < x.min()):.0%}, >max {np.mean(v > x.max()):.0%})")
        print(f"{case.name}: " + "; ".join(cols), flush=True)


if __name__ == "__main__":
    main(*sys.argv[1:3])
