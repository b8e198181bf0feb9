"""The CUDA path against the CPU's fp32: bf16 must not add NaNs, visible error or a colour shift.

Runs only where CUDA exists (skipped in CI, which has no GPU; run on a GPU machine with
`python -m pytest tests/model/test_cuda.py`).
"""

from dataclasses import replace

import numpy as np
import pytest
from skimage import data
import torch

from imagemend.model import Restorer
from imagemend.model.core.config import LossConfig, NetConfig, RestoreConfig
from imagemend.model.core.deblur import edge_blur
from imagemend.model.core.noise_floor import noise_cap
from imagemend.model.core.restore import _Planes
from imagemend.model.core.weights import load_weights
from imagemend.model.metrics import capped_psnr
from imagemend.model.training.train import train
from tests.support.training import SMALL, photo_folder

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")


def damaged() -> list[np.ndarray]:
    rng = np.random.default_rng(0)
    noisy = np.clip(data.astronaut() + rng.normal(0, 20, (512, 512, 3)), 0, 255).astype(np.uint8)
    warm_dark = np.clip(data.coffee() * np.array([0.8, 0.6, 0.45]), 0, 255).astype(np.uint8)
    return [noisy, warm_dark]


@pytest.fixture(scope="module")
def cpu_fp32() -> list:
    return Restorer(device="cpu").restore(damaged())


@pytest.mark.parametrize("amp", [False, True], ids=["fp32", "bf16"])
def test_cuda_restores_like_the_cpu(cpu_fp32, amp):
    cfg = RestoreConfig(tile=256, pixel_budget=4 * 448 * 448)  # several tiles per pass
    for want, got in zip(cpu_fp32, Restorer(device="cuda", amp=amp, cfg=cfg).restore(damaged())):
        assert got.applied == want.applied
        assert np.isfinite(got.image.astype(float)).all()
        assert capped_psnr(want.image, got.image) >= (45.0 if amp else 50.0)
        shift = got.image.astype(float).mean((0, 1)) - want.image.astype(float).mean((0, 1))
        assert np.abs(shift).max() < 0.5  # 8-bit levels: no colour cast from reduced precision


def test_cuda_out_of_memory_halves_the_batch():
    """A real out-of-memory (this process's GPU memory capped a little above what 2 tiles per pass
    take) halves the tiles per pass until they fit, and the restores come out as with 2 from the start."""
    imgs = [damaged()[0]] * 16  # 512 x 512: one tile each; 16 tiles of 704^2 in one pass take about 700 MiB
    side = 512 + 2 * RestoreConfig().halo
    torch.cuda.empty_cache()
    torch.cuda.reset_peak_memory_stats()
    want = Restorer(device="cuda", cfg=RestoreConfig(tile=512, pixel_budget=2 * side**2)).restore(imgs)
    cap = torch.cuda.max_memory_reserved() + 256 * 2**20
    torch.cuda.empty_cache()
    torch.cuda.set_per_process_memory_fraction(cap / torch.cuda.get_device_properties(0).total_memory)
    try:
        r = Restorer(device="cuda", cfg=RestoreConfig(tile=512, pixel_budget=16 * side**2))
        real, passes = r.net.local.forward, []
        r.net.local.forward = lambda y, *a, **k: passes.append(len(y)) or real(y, *a, **k)
        got = r.restore(imgs)
    finally:
        torch.cuda.set_per_process_memory_fraction(1.0)
    assert passes[0] == 16 and min(passes) < 16  # it did run out, and halved
    assert r.cfg.pixel_budget == 16 * side**2  # that call's budget, not the shared config
    assert all(capped_psnr(w.image, g.image) >= 45.0 for w, g in zip(want, got))


def test_cuda_readings_equal_the_cpus():
    """The edge blur and the noise bound run on the restore's device, in float64: same numbers."""
    for img in damaged():
        p = _Planes.of(img)
        on = {dev: (*edge_blur(p.rows(torch.device(dev)), p.height, p.width), noise_cap(img, dev))
              for dev in ("cpu", "cuda")}
        assert on["cuda"] == pytest.approx(on["cpu"], rel=1e-6)


def test_cuda_training_steps(tmp_path):
    final = train(str(photo_folder(tmp_path)), str(tmp_path / "t"), replace(SMALL, steps=3), LossConfig(), NetConfig(),
                  device="cuda")
    net, meta = load_weights(final)
    assert meta["info"]["amp"] is True and meta["info"]["device"].startswith("cuda")
    assert all(torch.isfinite(p).all() for p in net.parameters())
