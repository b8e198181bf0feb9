"""Quick validation during training: PSNR on held-out photos for fixed, seeded damage."""

import numpy as np

from ..damage.degrade import damaged, fixed_params
from ..metrics import psnr


def validate(net, images: list[np.ndarray]) -> dict[str, float]:
    from ..core.restore import Restorer  # restore imports the network module; keep train importable alone

    r = Restorer(net, device=str(next(net.parameters()).device))
    scores = {}
    for name, params in (("noise25", fixed_params(1, noise_sigma=25)), ("mixed", None)):
        bad = damaged(images, params, seed=1234)
        out = [x.image for x in r.restore(bad)]
        scores[name] = float(np.mean([min(psnr(o, c), 60.0) for o, c in zip(out, images)]))
        scores[name + "_input"] = float(np.mean([min(psnr(b, c), 60.0) for b, c in zip(bad, images)]))
    return scores
