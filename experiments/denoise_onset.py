"""A denoise strength that rises from the threshold instead of switching on at it: does it keep
clean textured photos untouched (the 40 dB target) without losing the low-noise cases?

    python experiments/denoise_onset.py ../shared/data/val/CBSD68 68 clean,noise5,noise10,noise15

For each photo: the severities, then a restore with denoise strength min(1, (sigma - t) / (w t)),
t the calibrated threshold, for each onset width w (0: the hard switch the release uses).
"""

from dataclasses import replace
import sys

import numpy as np

from imagemend.model import Restorer
from imagemend.model.core.config import TASKS
from imagemend.model.data import load_photos
from imagemend.model.evaluation import suites
from imagemend.model.metrics import capped_psnr, psnr

WIDTHS = (0.0, 0.5, 1.0)


def main(data: str, limit: int, cases: str) -> None:
    r = Restorer(device="cpu")
    r.cfg = replace(r.cfg, denoise_onset=0.0)  # the hard switch; the widths below are applied here
    t = r.cfg.min_noise_sigma
    photos = load_photos(data, limit)
    for case in suites.suite("estimators", cases.split(",")):
        scores = {w: [] for w in WIDTHS}
        for key, img in photos.items():
            y = case.apply(img, key)
            sigma = r.estimate([y])[0]["noise_sigma"]
            for w in WIDTHS:
                s = 1.0 if w == 0 else float(np.clip((sigma - t) / (w * t), 0, 1))
                out = r.restore([y], {task: (s if task == "denoise" else 1.0) for task in TASKS})[0].image
                scores[w].append(capped_psnr(out, y) if case.name == "clean" else psnr(out, img))
        print(case.name, "  ".join(f"w={w}: mean {np.mean(v):.2f} worst {np.min(v):.2f}" for w, v in scores.items()),
              flush=True)


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]), sys.argv[3])
