"""Noise cap A/B (session 6): the restore path with and without model/core/noise_floor.py, on PNG noise and
on noise saved as JPEG (case@quality). Numbers in model/weights/MODEL_CARD.md.

    python experiments/noise_cap_ab.py ../shared/data/val/CBSD68 20 clean,noise15,noise10@85,noise10@95
"""
import io
import sys

import numpy as np
from PIL import Image

from imagemend.model.core.config import RestoreConfig
from imagemend.model.core.noise_floor import jpeg_lattice
from imagemend.model.core.restore import Restorer
from imagemend.model.data import load_photos
from imagemend.model.evaluation import suites
from imagemend.model.metrics import psnr

photos = load_photos(sys.argv[1], int(sys.argv[2]))
on, off = Restorer(), Restorer(cfg=RestoreConfig(noise_cap=False))
cases = {c.name: c for c in suites.suite('estimators')}
def jpg(a, q):
    b = io.BytesIO()
    Image.fromarray(a).save(b, 'JPEG', quality=q)
    return np.asarray(Image.open(b).convert('RGB'))
for spec in sys.argv[3].split(','):
    name, _, q = spec.partition('@')
    rows = []
    for k, a in photos.items():
        y = cases[name].apply(a, k)
        if q:
            y = jpg(y, int(q))
        r1, r0 = on.restore([y])[0], off.restore([y])[0]
        rows.append([min(psnr(y, a), 99), min(psnr(r0.image, a), 99), min(psnr(r1.image, a), 99),
                     r1.estimates['noise_sigma'], r0.estimates['noise_sigma'], jpeg_lattice(y)])
    m = np.array(rows)
    d = m[:, 2] - m[:, 1]
    print(f"{spec:12s} input {m[:, 0].mean():6.2f} off {m[:, 1].mean():6.2f} (worst {m[:, 1].min():6.2f}) "
          f"on {m[:, 2].mean():6.2f} (worst {m[:, 2].min():6.2f}) | on-off mean {d.mean():+.3f} worst {d.min():+.2f} "
          f"| sigma read on {m[:, 3].mean():.1f} off {m[:, 4].mean():.1f} | lattice {(m[:, 5] >= 0.35).mean():.2f}")
