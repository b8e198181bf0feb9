"""The network's own pieces: what the restore relies on when it skips work."""

import torch
import torch.nn.functional as F

from imagemend.model.core.net import PixelShuffle, pixel_unshuffle


def test_the_cpu_pixel_shuffles_are_torchs():
    x = torch.randn(2, 12, 6, 10)
    assert torch.equal(PixelShuffle()(x), F.pixel_shuffle(x, 2))
    assert torch.equal(pixel_unshuffle(x), F.pixel_unshuffle(x, 2))
    cl = x.contiguous(memory_format=torch.channels_last)
    assert torch.equal(PixelShuffle()(cl), F.pixel_shuffle(x, 2))
    assert torch.equal(pixel_unshuffle(cl), F.pixel_unshuffle(x, 2))


def test_without_sharpen_the_denoise_residual_is_the_same(active_net):
    y = torch.rand(2, 3, 32, 48)
    sigma, blur = torch.tensor([10.0, 25.0]), torch.tensor([0.5, 1.5])
    with torch.inference_mode():
        r_n, r_b = active_net.local(y, sigma, blur)
        s_n, none = active_net.local(y, sigma, blur, sharpen=False)
    assert none is None and torch.equal(r_n, s_n) and r_b.abs().max() > 0
