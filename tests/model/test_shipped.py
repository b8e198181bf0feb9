"""The shipped weights on photos they never saw: what they repair, what they leave alone.

Margins sit below what the weights reach (model/weights/MODEL_CARD.md), so they catch a broken or
mismatched weights file, not a small regression. Tasks the shipped weights do not repair yet are
strict xfails: the day they start working, the xfail fails and the margin must be written down.
"""

import numpy as np
import pytest
from skimage import data

from imagemend.model import Restorer
from imagemend.model.core.config import RestoreConfig
from imagemend.model.core.tasks import THRESHOLD
from imagemend.model.damage.degrade import damaged, fixed_params
from imagemend.model.evaluation import suites
from imagemend.model.metrics import psnr

PHOTOS = [data.chelsea(), data.coffee()]
NOT_YET = pytest.mark.xfail(strict=True, reason="the global heads are not accurate enough yet: below their "
                                               "calibrated thresholds the task stays off (MODEL_CARD.md)")
CASES = {  # damage, minimum mean PSNR gain over the damaged input (dB)
    "noise15": (dict(noise_sigma=15), 4.0),
    "noise25": (dict(noise_sigma=25), 5.0),
    "noise50": (dict(noise_sigma=50), 7.0),
    # blind, blur is repaired only beyond the softness of real clean camera photos (the PolyU70 references
    # read up to 2.6 px on the sharpen head, 2.0 on the edges), so a 1.5 px blur is left alone
    "blur": pytest.param(dict(blur=("gaussian", 1.5), noise_sigma=1), 1.0, marks=pytest.mark.xfail(
        strict=True, reason="thresholds raised above real soft photos (MODEL_CARD.md)")),
    "cast": pytest.param(dict(cast_gains=(1.25, 1.0, 0.75)), 1.0, marks=NOT_YET),
    "exposure": pytest.param(dict(exposure_ev=-1.0), 1.0, marks=NOT_YET),
    "contrast": pytest.param(dict(contrast=0.55), 1.0, marks=NOT_YET),
}


@pytest.fixture(scope="module")
def restorer():
    return Restorer(device="cpu")


@pytest.mark.parametrize("damage,gain", list(CASES.values()), ids=list(CASES))
def test_shipped_weights_repair(restorer, damage, gain):
    bad = damaged(PHOTOS, fixed_params(1, **damage), seed=11)
    fixed = [r.image for r in restorer.restore(bad)]
    before = np.mean([psnr(b, c) for b, c in zip(bad, PHOTOS)])
    after = np.mean([psnr(f, c) for f, c in zip(fixed, PHOTOS)])
    assert after >= before + gain, f"{before:.2f} -> {after:.2f} dB"


def test_shipped_weights_do_no_harm_on_clean_photos(restorer):
    for photo, res in zip(PHOTOS, restorer.restore(PHOTOS)):
        assert psnr(res.image, photo) >= 40.0, res.applied


def test_shipped_weights_are_trained_and_calibrated(restorer):
    info = restorer.meta["info"]
    assert info.get("name") == "imagemend-base" and "thresholds" in info
    assert sum(s["steps"] for s in info["stages"]) >= 5000
    assert info["calibration"]["disabled"] == ["cast"] and info["calibration"]["reason"]  # MODEL_CARD.md


@pytest.mark.parametrize("sigma", [10, 25, 50])
def test_shipped_noise_readings_are_gaussian_sigma(restorer, sigma):
    """The calibrated reading (model/tools/calibrate.py) is within 15 % of the Gaussian sigma added
    (issue 2's target); 5 to 11 % on CBSD68 (MODEL_CARD.md)."""
    assert restorer.noise_curve is not None
    noisy = damaged(PHOTOS, fixed_params(1, noise_sigma=sigma), seed=5)
    for e in restorer.estimate(noisy):
        assert abs(e["noise_sigma"] - sigma) <= 0.15 * sigma, e["noise_sigma"]


# told, mean PSNR gain over the damaged input (dB): +1.1 / +8.0 / +10.4 / +9.4 here; the heads told gave
# about +1.5 at +0.7 EV and contrast 55 % on CBSD68, and cast not at all
TOLD = {"cast-warm": 0.5, "exposure-1": 5.0, "exposure+0.7": 5.0, "contrast0.55": 5.0}


@pytest.mark.parametrize("case,gain", list(TOLD.items()), ids=list(TOLD))
def test_told_the_damage_the_tone_is_read_from_the_photo(case, gain):
    """Blind, the tone tasks stay off (the xfails above); told the archive has the damage, its
    statistics say how strong (model/core/tone_cues.py) and the correction gains, even the cast that the
    weights disable blind; the other thresholds stay the calibrated ones."""
    task = suites.CASES[case].task
    told, blind = Restorer(device="cpu", assume=(task,)), Restorer(device="cpu")
    assert getattr(told.cfg, THRESHOLD[task]) == getattr(RestoreConfig(), THRESHOLD[task])
    assert told.cfg.min_noise_sigma == blind.cfg.min_noise_sigma
    bad = damaged(PHOTOS, fixed_params(1, **suites.CASES[case].kwargs), seed=11)
    fixed = [r.image for r in told.restore(bad)]
    before = np.mean([psnr(b, c) for b, c in zip(bad, PHOTOS)])
    after = np.mean([psnr(f, c) for f, c in zip(fixed, PHOTOS)])
    assert after >= before + gain, f"{before:.2f} -> {after:.2f} dB"


def test_told_an_unknown_task_is_refused():
    with pytest.raises(ValueError, match="zoom"):
        Restorer(device="cpu", assume=("zoom",))


def camera_shot(photo: np.ndarray, shot: float, seed: int = 3, blur: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """(noisy camera JPEG, clean render) of a photo through the camera pipeline at one noise level."""
    from dataclasses import replace

    import torch

    from imagemend.model.damage import camera
    from imagemend.model.damage.degrade import apply_blur, blur_kernel

    g = torch.Generator().manual_seed(seed)
    x = torch.from_numpy(photo.copy()).permute(2, 0, 1)[None].float() / 255
    if blur:
        x = apply_blur(x, blur_kernel("gaussian", blur, 1.0, 0.0, 21)[None])
    cam = replace(camera.sample_camera(1, g), shot=torch.tensor([shot]), read=torch.tensor([shot / 100]),
                  sensor_scale=torch.ones(1), jpeg_quality=torch.tensor([90]))
    noisy, clean = camera.shoot(x, cam, g)
    return tuple((t[0].permute(1, 2, 0).numpy() * 255 + 0.5).astype(np.uint8) for t in (noisy, clean))


def test_shipped_weights_remove_camera_noise(restorer):
    """Noise made in raw and passed through a camera (demosaicing, noise reduction, sharpening, JPEG) is
    read by the camera-noise reader and removed: +0.6 dB here (chelsea at a high ISO's shot noise)."""
    noisy, clean = camera_shot(PHOTOS[0][:300, :450], 8e-3)
    res = restorer.restore([noisy], jpeg=[True])[0]
    assert res.applied["denoise"] and res.estimates["noise_rms"] >= restorer.cfg.min_camera_noise
    assert psnr(res.image, clean) >= psnr(noisy, clean) + 0.4


def test_a_soft_noisy_camera_photo_is_not_deconvolved(restorer):
    """Soft enough to deconvolve were it clean, but noisy: its edges are read through the noise, and
    deconvolving a noisy camera photo turns the noise into mottle."""
    noisy, _ = camera_shot(PHOTOS[0][:300, :450], 2e-3, blur=2.6)
    res = restorer.restore([noisy], jpeg=[True])[0]
    assert res.estimates["edge_blur"] >= restorer.cfg.min_edge_blur  # it reads soft enough ...
    assert res.applied["denoise"] and not res.applied["deblur"]  # ... but is only denoised


def _as_jpeg(photo: np.ndarray, quality: int = 75) -> np.ndarray:
    import io

    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(photo).save(buf, "JPEG", quality=quality)
    return np.asarray(Image.open(io.BytesIO(buf.getvalue())).convert("RGB"))


def test_a_jpeg_is_denoised_at_the_floor_and_a_clean_one_stays_above_40_db(restorer):
    """Camera noise after the camera's processing reads as clean, so a JPEG is denoised at least at
    RestoreConfig.jpeg_noise_floor. Noise like PolyU70's (RMS 4, correlated over a pixel, then JPEG) gains; a
    clean JPEG changes by less than the 40 dB bar; the same pixels not from a JPEG are left exactly alone;
    a floor of 0 turns it off."""
    from dataclasses import replace

    from scipy.ndimage import gaussian_filter

    floor = restorer.cfg.jpeg_noise_floor
    assert floor > 0
    clean = PHOTOS[0][:300, :400]
    noise = gaussian_filter(np.random.default_rng(0).normal(size=clean.shape), (0.5, 0.5, 0))
    noisy = _as_jpeg(np.clip(clean + 4 * noise / noise.std(), 0, 255).round().astype(np.uint8), 90)
    res = restorer.restore([noisy], jpeg=[True])[0]
    assert res.reasons["denoise"] == "jpeg noise floor" and res.estimates["noise_sigma"] == floor
    assert psnr(res.image, clean) >= psnr(noisy, clean) + 0.3
    photos = [_as_jpeg(p) for p in PHOTOS]
    for photo, res in zip(photos, restorer.restore(photos, jpeg=[True] * len(photos))):
        assert res.reasons["denoise"] == "jpeg noise floor" and 40.0 <= psnr(res.image, photo) < 100
    for photo, res in zip(photos, restorer.restore(photos, jpeg=[False] * len(photos))):
        assert not res.applied["denoise"] and np.array_equal(res.image, photo)
    off = Restorer(device="cpu", cfg=replace(RestoreConfig(), jpeg_noise_floor=0.0))
    for photo, res in zip(photos, off.restore(photos, jpeg=[True] * len(photos))):
        assert not res.applied["denoise"] and np.array_equal(res.image, photo)
