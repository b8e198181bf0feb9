"""`python -m imagemend.model.tools.noise_floor_knots`: flat-patch readings per Gaussian noise sigma, on clean photos
damaged by the suite: the knots of model/core/noise_floor.py's CAP_KNOTS."""

import argparse

import numpy as np

from ..core.noise_floor import flat_noise
from ..data import load_photos
from ..evaluation import suites


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description="Flat-patch readings per Gaussian noise sigma: CAP_KNOTS.")
    ap.add_argument("--data", required=True)
    ap.add_argument("--limit", type=int, default=96)
    args = ap.parse_args(argv)
    photos = load_photos(args.data, args.limit)
    for case in suites.suite("estimators", ["clean", "noise5", "noise10", "noise15", "noise25", "noise35", "noise50"]):
        v = [r for k, a in photos.items() if (r := flat_noise(case.apply(a, k))) is not None]
        q = np.percentile(v, [2, 50, 98])
        print(f"sigma {case.truth['noise_sigma']:4.1f}: reading p2 {q[0]:.2f} median {q[1]:.2f} p98 {q[2]:.2f}")


if __name__ == "__main__":
    main()
