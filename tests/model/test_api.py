"""The Python API: one image or a list, arrays, PIL images and paths, and nothing ambiguous."""

import numpy as np
from PIL import Image
import pytest
from skimage import data
import torch

from imagemend.model import Restorer
from imagemend.model.metrics import psnr

PHOTO = data.astronaut()[:128, :160]


@pytest.fixture(scope="module")
def restorer():
    return Restorer(device="cpu")


def noisy(seed=0, sigma=20):
    rng = np.random.default_rng(seed)
    return np.clip(PHOTO + rng.normal(0, sigma, PHOTO.shape), 0, 255).astype(np.uint8)


def test_one_image_as_an_array_a_pil_image_or_a_path(restorer, tmp_path):
    img = noisy()
    Image.fromarray(img).save(tmp_path / "n.png")
    Image.fromarray(img).save(tmp_path / "n.jpg", quality=95)
    a = restorer.restore_one(img)
    assert a.image.shape == img.shape and a.applied["denoise"] and psnr(a.image, PHOTO) > psnr(img, PHOTO) + 3
    assert np.array_equal(restorer.restore_one(Image.fromarray(img)).image, a.image)
    assert np.array_equal(restorer.restore_one(tmp_path / "n.png").image, a.image)
    assert np.array_equal(restorer.restore_one(str(tmp_path / "n.png")).image, a.image)
    faint = noisy(sigma=6)  # the flat patches bound its reading, except in a JPEG
    Image.fromarray(faint).save(tmp_path / "f.png")
    Image.fromarray(faint).save(tmp_path / "f.jpg", quality=98)
    assert "noise_sigma_cap" in restorer.restore_one(tmp_path / "f.png").estimates
    assert "noise_sigma_cap" not in restorer.restore_one(tmp_path / "f.jpg").estimates


def test_a_list_restores_each_and_a_lone_image_is_refused_with_the_way_out(restorer):
    out = restorer.restore([noisy(1), PHOTO])
    assert len(out) == 2 and out[0].applied["denoise"] and not any(out[1].applied.values())
    for one in (noisy(), Image.fromarray(PHOTO), "photo.png"):
        with pytest.raises(TypeError, match="restore_one"):
            restorer.restore(one)
    with pytest.raises(TypeError, match="HxWxC NumPy array"):
        restorer.restore([torch.zeros(3, 8, 8)])
