"""Deblurring by Wiener deconvolution from the edges' blur reading (model/core/deblur.py)."""

import math

import numpy as np
from PIL import Image
import pytest
from scipy import ndimage as ndi
from skimage import data, filters
import torch

from imagemend.model.core import deblur
from imagemend.model.core.config import RestoreConfig
from imagemend.model.core.restore import Restorer
from imagemend.model.damage.degrade import blur_kernel
from imagemend.model.metrics import psnr
from imagemend.model.tools import edge_blur_readings

ASTRONAUT = data.astronaut().astype(np.float32) / 255  # reads 0.66 px sharp: its own softness


def tensor(img: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(img, dtype=np.float32)).permute(2, 0, 1)[None]


def reading(img: np.ndarray) -> tuple[float, float]:
    t = tensor(img)
    return deblur.edge_blur(lambda a, b: t[:, :, a:b], t.shape[2], t.shape[3])


def motion(img: np.ndarray, length: float) -> np.ndarray:
    k = blur_kernel("motion", length, 1.0, 0.6, 21).double().numpy()
    return np.stack([ndi.convolve(img[..., c], k, mode="reflect") for c in range(3)], -1)


@pytest.mark.parametrize("sigma", [1.0, 1.5, 2.0])
def test_gaussian_blur_reads_its_sigma_added_to_the_photos_own(sigma):
    sharp, _ = reading(ASTRONAUT)
    blurred, anisotropy = reading(filters.gaussian(ASTRONAUT, sigma=sigma, channel_axis=-1))
    assert blurred == pytest.approx(math.hypot(sharp, sigma), rel=0.12)
    assert anisotropy <= RestoreConfig().max_anisotropy


def test_motion_blur_reads_anisotropic_and_is_not_deconvolved():
    _, anisotropy = reading(motion(ASTRONAUT, 9))
    assert anisotropy > 2 * RestoreConfig().max_anisotropy


def test_a_sharp_photo_reads_below_the_threshold():
    assert reading(ASTRONAUT)[0] < RestoreConfig().min_edge_blur


def test_large_photos_are_read_in_a_bounded_sample_of_strips():
    blurred = filters.gaussian(ASTRONAUT, sigma=1.5, channel_axis=-1)
    tall = np.concatenate([blurred] * 8)  # 4096 x 512: 2 MP, twice SAMPLE
    t, rows = tensor(tall), []

    def read(a, b):
        rows.append(b - a)
        return t[:, :, a:b]
    sigma, _ = deblur.edge_blur(read, *t.shape[2:])
    assert sum(rows) * t.shape[3] <= deblur.SAMPLE + len(rows) * 2 * deblur._MARGIN * t.shape[3]
    assert sigma == pytest.approx(reading(blurred)[0], rel=0.15)  # half the photo, a different mix of edges


@pytest.mark.parametrize("shape", [(1, 1), (5, 200), (200, 5)])
def test_images_too_small_for_edges_read_no_blur(shape):
    assert reading(np.random.default_rng(0).random((*shape, 3)))[0] == 0.0


def test_wiener_kernel_keeps_the_mean_and_undoes_most_of_a_gaussian_blur():
    k = deblur.wiener_kernel(1.5)
    assert k.shape == (2 * deblur.RADIUS + 1,) * 2 and float(k.sum()) == pytest.approx(1.0, abs=1e-5)
    rng = np.random.default_rng(1)
    blurred = filters.gaussian(ASTRONAUT, sigma=1.5, channel_axis=-1) + rng.normal(0, 1 / 255, ASTRONAUT.shape)
    y = np.clip(np.round(blurred * 255), 0, 255).astype(np.uint8)
    out = deblur.deconvolve(tensor(y / 255.0), k[None]).clamp(0, 1)[0].permute(1, 2, 0).numpy()
    clean = (ASTRONAUT * 255).round().astype(np.uint8)
    assert psnr((out * 255).round().astype(np.uint8), clean) >= psnr(y, clean) + 2.0


def test_restore_deconvolves_gaussian_blur_and_tiles_stay_exact(active_net):
    img = filters.gaussian(ASTRONAUT[:200, :330], sigma=1.5, channel_axis=-1).astype(np.float32)
    cfg = dict(min_noise_sigma=99.0, min_blur=99.0)  # only the deconvolution acts
    only = {"deblur": 1.0}
    whole = Restorer(active_net, device="cpu", cfg=RestoreConfig(tile=4096, **cfg)).restore([img], only)[0]
    assert whole.applied["deblur"] and whole.estimates["edge_blur"] >= RestoreConfig().min_edge_blur
    assert np.abs(whole.image - img).mean() > 0.005
    tiled = Restorer(active_net, device="cpu", cfg=RestoreConfig(tile=64, **cfg)).restore([img], only)[0].image
    assert np.abs(tiled - whole.image).max() < 1e-5
    half = Restorer(active_net, device="cpu", cfg=RestoreConfig(**cfg)).restore([img], tasks={"deblur": 0.5})[0]
    off = np.abs(half.image - (img + whole.image) / 2)  # strength scales the sharpening
    assert np.quantile(off[(whole.image > 0) & (whole.image < 1)], 0.999) < 1e-4  # (not where it clipped)



def test_the_calibration_command_runs(tmp_path, capsys):
    for i, img in enumerate((data.astronaut()[:160, :200], data.coffee()[:160, :200])):
        Image.fromarray(img).save(tmp_path / f"{i}.png")
    edge_blur_readings.main(["--data", str(tmp_path), "--limit", "2"])
    out = capsys.readouterr().out
    assert "2 photos" in out and "blur-gauss1.5" in out and "blur-motion9" in out
