"""Deblur threshold sweep: the restore path with and without the Wiener deconvolution, per edge-blur
threshold, on every photo of a folder (session 6; numbers in model/weights/MODEL_CARD.md).

    python experiments/deblur_threshold.py ../shared/data/val/CBSD68 68 blur-gauss1.5,blur-gauss1,clean
"""
import sys

import numpy as np

from imagemend.model.core.config import RestoreConfig
from imagemend.model.core.restore import Restorer
from imagemend.model.data import load_photos
from imagemend.model.evaluation import suites
from imagemend.model.metrics import psnr

photos = load_photos(sys.argv[1], int(sys.argv[2]))
on, off = Restorer(cfg=RestoreConfig(min_edge_blur=0.0)), Restorer(cfg=RestoreConfig(min_edge_blur=99.0))
thrs = (0.7, 0.85, 1.0, 1.1, 1.25)
for case in suites.suite('estimators', sys.argv[3].split(',')):
    rows = []
    for k, img in photos.items():
        y = case.apply(img, k)
        a, b = on.restore([y])[0], off.restore([y])[0]
        ok = a.estimates['edge_anisotropy'] <= 2.0
        pa, pb = min(psnr(a.image, img), 99), min(psnr(b.image, img), 99)
        rows.append([min(psnr(y, img), 99), pb] + [pa if (ok and a.estimates['edge_blur'] >= t) else pb for t in thrs])
    m = np.array(rows)
    sweep = " ".join(f"thr{t}: {m[:, 2 + i].mean():6.2f} (worst vs head {(m[:, 2 + i] - m[:, 1]).min():+.2f})"
                     for i, t in enumerate(thrs))
    print(f"{case.name:14s} input {m[:, 0].mean():6.2f} head {m[:, 1].mean():6.2f} | {sweep}", flush=True)
