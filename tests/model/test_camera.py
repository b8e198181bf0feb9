"""Camera-pipeline damage: deterministic per seed, and each stage does what it says."""

from dataclasses import replace
import io

from PIL import Image, JpegImagePlugin
import pytest
import torch

from imagemend.model.core.config import CameraConfig, DegradationConfig
from imagemend.model.damage import camera
from imagemend.model.damage.degrade import degrade, sample_params


def photo(n=2, size=64, seed=0):
    g = torch.Generator().manual_seed(seed)
    base = torch.rand(n, 3, size // 8, size // 8, generator=g) * 0.8 + 0.1
    return torch.nn.functional.interpolate(base, size=(size, size), mode="bilinear", align_corners=False)


def params(n, seed=0, **over):
    cam = camera.sample_camera(n, torch.Generator().manual_seed(seed))
    return replace(cam, **{k: torch.as_tensor(v).expand(n).clone() if not isinstance(v, torch.Tensor) else v
                           for k, v in over.items()})


def test_same_seed_same_shot_other_seed_other_noise():
    x = photo()
    shots = []
    for seed in (3, 3, 4):
        g = torch.Generator().manual_seed(seed)
        shots.append(camera.shoot(x, camera.sample_camera(2, g), g))
    assert torch.equal(shots[0][0], shots[1][0]) and torch.equal(shots[0][1], shots[1][1])
    assert not torch.equal(shots[0][0], shots[2][0])


def test_unprocess_then_process_is_the_identity():
    x = photo(4)
    cam = params(4)
    assert torch.allclose(camera.process(camera.unprocess(x, cam), cam), x, atol=2e-4)


def test_mosaic_keeps_one_colour_per_pixel():
    x = photo(1)
    m = camera.mosaic(x)[0, 0]
    assert m.shape == x.shape[2:]
    assert torch.equal(m[0::2, 0::2], x[0, 0, 0::2, 0::2])  # R
    assert torch.equal(m[0::2, 1::2], x[0, 1, 0::2, 1::2]) and torch.equal(m[1::2, 0::2], x[0, 1, 1::2, 0::2])  # G
    assert torch.equal(m[1::2, 1::2], x[0, 2, 1::2, 1::2])  # B


@pytest.mark.parametrize("method", camera.DEMOSAIC)
def test_demosaicing_restores_flat_colour_and_interpolates_the_rest(method):
    flat = torch.tensor([0.2, 0.5, 0.7]).view(1, 3, 1, 1).expand(1, 3, 16, 16)
    assert torch.allclose(camera.demosaic(camera.mosaic(flat), method), flat, atol=1e-6)
    smooth = photo(1, 64)
    back = camera.demosaic(camera.mosaic(smooth), method)
    assert (back - smooth).abs().mean() < 0.01  # a smooth photo survives the round trip


def test_raw_noise_variance_grows_with_the_signal_as_configured():
    shot, read = 4e-3, 1e-4
    raw = torch.cat([torch.full((1, 1, 256, 256), 0.1), torch.full((1, 1, 256, 256), 0.6)])
    cam = params(2, shot=shot, read=read)
    noisy = camera._raw_noise(raw, cam, torch.Generator().manual_seed(0))
    var = (noisy - raw).var((1, 2, 3))
    expected = torch.tensor([shot * 0.1 + read, shot * 0.6 + read])
    assert torch.allclose(var, expected, rtol=0.05)
    assert var[1] > 4 * var[0]


def test_jpeg_stage_writes_420_chroma():
    x = photo(1, 64)[0]
    img = Image.open(io.BytesIO(camera.jpeg_bytes(x, 80)))
    assert JpegImagePlugin.get_sampling(img) == 2  # PIL's code for 4:2:0
    back = camera.jpeg_420(x, 80)
    assert back.shape == x.shape and (back - x).abs().mean() < 0.02


def test_sharpening_adds_a_halo_and_resizing_keeps_the_size():
    edge = torch.zeros(1, 3, 32, 32)
    edge[..., 16:] = 0.8
    sharp = camera.sharpen(edge + 0.1, 1.0, 1.0)
    assert sharp[..., 15].max() < 0.1 and sharp[..., 16].min() > 0.9  # undershoot and overshoot
    x = photo(1, 64)
    cam = params(1, sensor_scale=1.7, sharpen_amount=0.0, jpeg_quality=0)
    assert camera.render(x, cam, None).shape == x.shape


def test_camera_samples_in_the_training_prior_are_labelled_with_their_noise():
    cfg = replace(DegradationConfig(), p_clean=0.0, p_noise=1.0, p_camera=1.0, p_blur=0.0, p_cast=0.0,
                  p_exposure=0.0, p_contrast=0.0, camera=replace(CameraConfig(), p_jpeg=0.0))
    g = torch.Generator().manual_seed(0)
    p = sample_params(4, g, cfg)
    d = degrade(photo(4), p, g, cfg)
    assert p["on_camera"].all()
    rms = ((d.image - d.blurred) * 255).square().mean((1, 2, 3)).sqrt()
    assert torch.allclose(d.params["noise_sigma"], rms, rtol=1e-4)
    assert (d.params["noise_sigma"] > 0.5).all()
