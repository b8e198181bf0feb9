"""The flat-patch bound on the noise reading and the JPEG lattice that switches it off."""

import io

import numpy as np
from PIL import Image
import pytest
from skimage import data

from imagemend.model.core import noise_floor
from imagemend.model.core.config import RestoreConfig
from imagemend.model.core.restore import Restorer
from imagemend.model.tools import noise_floor_knots

PHOTO = data.astronaut()


def noisy(img: np.ndarray, sigma: float, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.clip(np.round(img + rng.normal(0, sigma, img.shape)), 0, 255).astype(np.uint8)


def jpeg(img: np.ndarray, quality: int) -> np.ndarray:
    buf = io.BytesIO()
    Image.fromarray(img).save(buf, "JPEG", quality=quality)
    return np.asarray(Image.open(buf).convert("RGB"))


@pytest.mark.parametrize("sigma", [5.0, 15.0, 25.0])
def test_the_cap_stays_above_the_true_noise(sigma):
    assert noise_floor.noise_cap(noisy(PHOTO, sigma)) >= sigma


def test_the_cap_is_low_for_a_clean_photo():
    assert noise_floor.noise_cap(PHOTO) < RestoreConfig().min_noise_sigma + 1


def test_jpeg_lattice_is_found_at_usual_qualities_and_not_in_pngs():
    for img in (PHOTO, noisy(PHOTO, 10)):
        assert noise_floor.jpeg_lattice(img) < noise_floor.LATTICE_THRESHOLD
    for q in (50, 75, 85):
        assert noise_floor.jpeg_lattice(jpeg(noisy(PHOTO, 10), q)) >= noise_floor.LATTICE_THRESHOLD
    assert noise_floor.noise_cap(jpeg(noisy(PHOTO, 10), 85)) == np.inf  # noise JPEG flattened: no bound


def test_other_depths_and_tiny_images_are_read():
    assert noise_floor.jpeg_lattice(PHOTO.astype(np.uint16) * 257) == 0.0
    assert noise_floor.flat_noise(noisy(PHOTO, 10).astype(np.uint16) * 257) == pytest.approx(
        noise_floor.flat_noise(noisy(PHOTO, 10)), rel=1e-3)
    for shape in ((1, 1), (3, 40, 3), (7, 7)):
        img = np.zeros(shape, np.uint8)
        assert noise_floor.flat_noise(img) is None and noise_floor.jpeg_lattice(img) == 0.0
        assert noise_floor.noise_cap(img) == np.inf  # no evidence, no bound


def test_restore_leaves_clean_texture_alone_that_the_noise_head_would_smooth(active_net):
    img = PHOTO.copy()
    only = {"denoise": 1.0}
    capped = Restorer(active_net, device="cpu").restore([img], only)[0]
    uncapped = Restorer(active_net, device="cpu", cfg=RestoreConfig(noise_cap=False)).restore([img], only)[0]
    assert uncapped.applied["denoise"]  # the untrained head reads 10 on anything
    assert not capped.applied["denoise"] and np.array_equal(capped.image, img)
    assert capped.estimates["noise_sigma"] <= capped.estimates["noise_sigma_cap"] < uncapped.estimates["noise_sigma"]


def test_heavy_noise_readings_keep_the_heads_value(active_net):
    img = PHOTO.copy()
    uncapped = Restorer(active_net, device="cpu", cfg=RestoreConfig(noise_cap=False)).restore([img])[0]
    above = Restorer(active_net, device="cpu", cfg=RestoreConfig(noise_cap_below=0.0)).restore([img])[0]
    assert above.estimates["noise_sigma"] == uncapped.estimates["noise_sigma"]
    assert np.array_equal(above.image, uncapped.image)


def test_the_knots_command_runs(tmp_path, capsys):
    for i, img in enumerate((data.astronaut()[:160, :200], data.coffee()[:160, :200])):
        Image.fromarray(img).save(tmp_path / f"{i}.png")
    noise_floor_knots.main(["--data", str(tmp_path), "--limit", "2"])
    assert "sigma 25.0" in capsys.readouterr().out


def test_a_photo_known_to_be_a_jpeg_file_keeps_the_heads_reading(active_net):
    img = PHOTO.copy()  # JPEG's quantisation flattens flat blocks: their patches no longer bound the noise
    only = {"denoise": 1.0}
    told = Restorer(active_net, device="cpu").restore([img, img], only, jpeg=[True, False])
    uncapped = Restorer(active_net, device="cpu", cfg=RestoreConfig(noise_cap=False)).restore([img], only)[0]
    assert told[0].estimates["noise_sigma"] == uncapped.estimates["noise_sigma"] and told[0].applied["denoise"]
    assert "noise_sigma_cap" not in told[0].estimates and np.array_equal(told[0].image, uncapped.image)
    assert not told[1].applied["denoise"]  # the same pixels from another file are bounded as before
