"""The statistics grid the global branch sees: strip-wise equals whole, casts move the chroma histogram."""

import math

from skimage import data
import torch
import torch.nn.functional as F

from imagemend.model.core.color import linear_to_srgb, srgb_to_linear
from imagemend.model.core.stats import CHANNELS, CHROMA_RANGE, grid_stats, immerkaer, tensor_stats


def photo():
    return torch.from_numpy(data.coffee()[:150, :220].copy()).permute(2, 0, 1)[None].float() / 255


def test_strips_give_the_same_grid_as_one_pass():
    x = photo()
    whole = tensor_stats(x)
    strips = grid_stats(lambda a, b: x[:, :, a:b], x.shape[2], x.shape[3], strip=7)
    assert torch.allclose(whole, strips, atol=1e-5)


def test_tiny_images_fill_the_grid_and_noise_raises_the_energy_planes():
    assert tensor_stats(torch.rand(1, 3, 1, 1)).shape == (1, CHANNELS + 1, 64, 64)
    x = photo()
    g = torch.Generator().manual_seed(0)
    noisy = (x + 20 / 255 * torch.randn(x.shape, generator=g)).clamp(0, 1)
    e_clean, e_noisy = tensor_stats(x)[0, 3].median(), tensor_stats(noisy)[0, 3].median()
    assert e_noisy > 4 * e_clean
    assert 14 < math.sqrt(e_noisy) * 255 < 26  # Immerkaer's operator reads about sigma 20


def centroid(hist: torch.Tensor) -> torch.Tensor:
    n = hist.shape[-1]
    c = (torch.arange(n) + 0.5) / n * 2 * CHROMA_RANGE - CHROMA_RANGE
    return torch.stack([(hist.sum(1) * c).sum(), (hist.sum(0) * c).sum()])


def test_a_cast_translates_the_chroma_histogram():
    x = photo()
    gains = torch.tensor([1.25, 1.0, 0.75])
    cast = linear_to_srgb(srgb_to_linear(x) * gains.view(1, 3, 1, 1))
    h0, h1 = tensor_stats(x)[0, CHANNELS], tensor_stats(cast)[0, CHANNELS]
    assert abs(h0.sum().item() - 1) < 1e-5
    shift = centroid(h1) - centroid(h0)
    expected = torch.tensor([-math.log(1.25), -math.log(0.75)])  # u = log g/r, v = log g/b
    assert torch.allclose(shift, expected, atol=0.08)


def test_immerkaer_is_the_3x3_kernel_and_reads_the_noise_sigma():
    x = torch.rand(2, 3, 40, 50, generator=torch.Generator().manual_seed(1))
    k = torch.tensor([[1.0, -2, 1], [-2, 4, -2], [1, -2, 1]]).view(1, 1, 3, 3) / 6
    for d in (1, 2):
        ref = F.conv2d(x.reshape(6, 1, 40, 50), k, dilation=d).reshape(2, 3, 40 - 2 * d, 50 - 2 * d)
        assert torch.allclose(immerkaer(x, d), ref, atol=1e-6)
    noise = torch.randn(1, 1, 400, 400, generator=torch.Generator().manual_seed(2)) * 0.1
    assert abs(immerkaer(noise, 1).square().mean().sqrt().item() - 0.1) < 0.003
