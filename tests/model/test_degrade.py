"""Degradations: ranges, determinism per seed, and that each damage does what its parameter says."""

import math

import pytest
import torch

from imagemend.model.core.color import linear_to_srgb, srgb_to_linear
from imagemend.model.core.config import DegradationConfig
from imagemend.model.damage.degrade import blur_amount, blur_kernel, degrade, fixed_params, sample_params


def photos(n=4, size=64, seed=0):
    g = torch.Generator().manual_seed(seed)
    base = torch.rand(n, 3, size // 8, size // 8, generator=g)
    return torch.nn.functional.interpolate(base, size=(size, size), mode="bilinear", align_corners=False)


def test_same_seed_same_damage_other_seed_other_damage():
    x = photos()
    outs = []
    for seed in (7, 7, 8):
        g = torch.Generator().manual_seed(seed)
        outs.append(degrade(x, sample_params(4, g), g))
    assert torch.equal(outs[0].image, outs[1].image)
    assert all(torch.equal(outs[0].params[k], outs[1].params[k]) for k in outs[0].params)
    assert not torch.equal(outs[0].image, outs[2].image)


def test_sampled_parameters_stay_in_documented_ranges():
    cfg = DegradationConfig()
    g = torch.Generator().manual_seed(0)
    p = sample_params(4000, g, cfg)
    on_any = p["on_noise"] | p["on_blur"] | p["on_cast"] | p["on_exposure"] | p["on_contrast"] | p["on_jpeg"]
    assert (~on_any).float().mean() >= cfg.p_clean * 0.8  # a share stays clean
    s = p["noise_sigma"][p["on_noise"]]
    assert s.min() >= cfg.noise_sigma[0] and s.max() <= cfg.noise_sigma[1]
    assert (p["noise_sigma"][~p["on_noise"]] == 0).all()
    ev = p["exposure_ev"][p["on_exposure"]]
    assert ev.min() >= cfg.exposure_ev[0] and ev.max() <= cfg.exposure_ev[1]
    c = p["contrast"][p["on_contrast"]]
    assert c.min() >= cfg.contrast_factor[0] - 1e-6 and c.max() <= cfg.contrast_factor[1] + 1e-6
    assert (p["contrast"][~p["on_contrast"]] == 1).all() and (p["gamma"][~p["on_contrast"]] == 1).all()
    q = p["jpeg_quality"]
    assert q.min() >= cfg.jpeg_quality[0] and q.max() <= cfg.jpeg_quality[1]
    for k in ("noise", "blur", "cast", "exposure", "contrast"):
        share = p["on_" + k].float().mean().item()
        assert abs(share - getattr(cfg, "p_" + k) * (1 - cfg.p_clean)) < 0.04, k


def test_noise_sigma_is_measured_sigma():
    x = torch.full((2, 3, 128, 128), 0.5)
    g = torch.Generator().manual_seed(1)
    d = degrade(x, fixed_params(2, noise_sigma=20), g)
    assert (d.image - d.blurred).std().item() * 255 == pytest.approx(20, rel=0.05)
    assert torch.equal(d.blurred, d.tone)  # no blur asked


def test_blur_amount_equals_gaussian_sigma_and_kernels_are_normalised():
    for kind in ("gaussian", "anisotropic", "motion", "defocus"):
        k = blur_kernel(kind, 2.0, 0.5, 0.3, 21)
        assert k.sum().item() == pytest.approx(1, abs=1e-5) and (k >= 0).all()
    assert blur_amount(blur_kernel("gaussian", 1.5, 1, 0, 21)) == pytest.approx(1.5, rel=0.02)


def test_exposure_and_cast_act_in_linear_light():
    x = torch.full((1, 3, 16, 16), 0.3)
    g = torch.Generator()
    d = degrade(x, fixed_params(1, exposure_ev=1.0), g)
    assert srgb_to_linear(d.tone).mean().item() == pytest.approx(2 * srgb_to_linear(x).mean().item(), rel=1e-3)
    d = degrade(x, fixed_params(1, cast_gains=(1.25, 1.0, 0.75)), g)
    ratio = srgb_to_linear(d.tone).mean((0, 2, 3)) / srgb_to_linear(x).mean((0, 2, 3))
    assert ratio.tolist() == pytest.approx([1.25, 1.0, 0.75], rel=1e-3)


def test_contrast_compresses_around_the_mean():
    x = photos(1)
    d = degrade(x, fixed_params(1, contrast=0.55), torch.Generator())
    assert d.tone.std().item() == pytest.approx(0.55 * x.std().item(), rel=0.02)


def test_srgb_round_trip():
    v = torch.linspace(0, 1, 101)
    assert torch.allclose(linear_to_srgb(srgb_to_linear(v)), v, atol=1e-5)
    assert math.isclose(srgb_to_linear(torch.tensor(0.5)).item(), 0.21404, rel_tol=1e-3)
