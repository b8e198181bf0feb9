"""The camera-noise reader: where it reads, what it returns, and how a restore uses it."""

import numpy as np
import pytest
import torch

from imagemend.model.core.config import RestoreConfig
from imagemend.model.core.noise_level import MAX_PATCHES, PATCH, NoiseReader, grid_patches, read
from imagemend.model.core.restore import deconvolves


@pytest.mark.parametrize("shape", [(512, 768, 3), (2000, 300, 3), (48, 48), (100, 60, 4)])
def test_patches_cover_the_photo_on_a_grid_within_the_budget(shape):
    img = np.random.default_rng(0).integers(0, 256, shape, dtype=np.uint8)
    patches, brightness = grid_patches(img)
    assert 1 <= len(patches) <= MAX_PATCHES
    assert patches.shape[1:] == (3, PATCH, PATCH) and len(brightness) == len(patches)
    assert float(patches.min()) >= 0 and float(patches.max()) <= 1


def test_photos_smaller_than_a_patch_read_no_noise():
    r = read(NoiseReader().eval(), np.zeros((20, 500, 3), np.uint8))
    assert r["noise_rms"] == 0.0 and np.isnan(r["noise_level_0"])


def test_sixteen_bit_photos_read_on_the_same_scale_as_eight_bit():
    net = NoiseReader().eval()
    torch.manual_seed(0)
    for p in net.parameters():
        torch.nn.init.normal_(p, std=0.1)
    img8 = np.random.default_rng(1).integers(0, 256, (200, 200, 3), dtype=np.uint8)
    a = read(net, img8)
    b = read(net, img8.astype(np.uint16) * 257)
    assert a["noise_rms"] == pytest.approx(b["noise_rms"], rel=1e-4)


def test_a_photo_that_reads_noisy_is_never_deconvolved():
    cfg = RestoreConfig()
    soft = {"edge_blur": cfg.min_edge_blur + 0.5, "edge_anisotropy": 1.0, "noise_sigma": 0.0}
    assert deconvolves(soft, cfg)
    assert not deconvolves({**soft, "noise_sigma": cfg.min_noise_sigma + 1}, cfg)
