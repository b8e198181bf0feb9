"""`python -m imagemend.model.tools.edge_blur_readings`: the edge blur reading and the deconvolution's gain per case,
on clean photos damaged by the suite: where RestoreConfig.min_edge_blur comes from."""

import argparse

import numpy as np

from ..core.config import RestoreConfig
from ..core.deblur import deconvolve, photo_tensor, read_photo, wiener_kernel
from ..data import load_photos
from ..evaluation import suites
from ..metrics import psnr


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description="Edge blur readings and the deconvolution's gain per case: "
                                 "where RestoreConfig.min_edge_blur comes from.")
    ap.add_argument("--data", required=True)
    ap.add_argument("--limit", type=int, default=96)
    ap.add_argument("--threshold", type=float, default=RestoreConfig().min_edge_blur,
                    help="deconvolve from this reading on (px)")
    args = ap.parse_args(argv)
    photos = load_photos(args.data, args.limit)
    names = ("clean", "noise15", "noise50", "blur-gauss0.5", "blur-gauss1", "blur-gauss1.5", "blur-gauss2",
             "blur-gauss3", "blur-motion5", "blur-motion9", "blur-motion13")
    print(f"{len(photos)} photos; sigma read, px; PSNR gain of deconvolving from {args.threshold} px on, dB")
    for case in suites.suite("estimators", list(names)):
        read, gain = [], []
        for key, img in photos.items():
            y = case.apply(img, key)
            sigma, anisotropy = read_photo(y)
            read.append(sigma)
            if sigma >= args.threshold and anisotropy <= RestoreConfig().max_anisotropy:
                out = deconvolve(photo_tensor(y), wiener_kernel(sigma)[None]).clamp(0, 1)[0].permute(1, 2, 0)
                gain.append(psnr((out * 255).round().byte().numpy(), img) - psnr(y, img))
        q = np.quantile(read, [0.0, 0.05, 0.5, 0.95, 1.0])
        g = f"mean {sum(gain) / len(photos):+.2f}, worst {min(gain, default=0):+.2f}" if gain else "-"
        print(f"{case.name:14s} truth {case.truth['blur']:4.2f}  read: min {q[0]:.2f} p5 {q[1]:.2f} median {q[2]:.2f} "
              f"p95 {q[3]:.2f} max {q[4]:.2f}  deconvolved {len(gain):3d}: {g}", flush=True)


if __name__ == "__main__":
    main()
