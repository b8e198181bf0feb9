"""The weight-free pixel measures written beside each output (model/core/measures.py)."""


import numpy as np
import pytest

from imagemend.model.core import measures


def test_measures_respond_to_what_they_measure():
    rng = np.random.default_rng(3)
    flat = np.full((120, 160, 3), 128.0)
    noisy = np.clip(flat + rng.normal(0, 10, flat.shape), 0, 255).round().astype(np.uint8)
    assert abs(measures.measure(noisy)["noise_sigma"] - 10) < 1.0
    assert measures.measure(flat.astype(np.uint8))["noise_sigma"] == 0

    from skimage import data, filters
    photo = data.camera()[::2, ::2]
    blurred = (filters.gaussian(photo, 2) * 255).round().astype(np.uint8)
    assert measures.measure(blurred)["laplacian_var"] < 0.2 * measures.measure(photo)["laplacian_var"]

    neutral = np.full((8, 8, 3), 100, np.uint8)
    tinted = neutral * np.array([1.3, 1.0, 0.7])
    assert measures.measure(neutral)["cast"] < 1e-3 and measures.measure(tinted.astype(np.uint8))["cast"] > 0.2
    half = np.zeros((10, 10), np.uint8)
    half[:5] = 255
    m = measures.measure(half)
    assert (m["clipped_high"], m["clipped_low"], m["luminance"]) == (0.5, 0.5, 0.5)
    assert m["rms_contrast"] == pytest.approx(0.5) and m["cast"] is None
    assert measures.measure(np.zeros((1, 1, 3), np.uint16))["noise_sigma"] is None


def test_measures_do_not_depend_on_strips_or_dtype(monkeypatch):
    rng = np.random.default_rng(4)
    img = rng.integers(0, 255, (50, 40, 3), dtype=np.uint8)
    whole = measures.measure(img)
    as16 = measures.measure(img.astype(np.uint16) * 257)
    asf = measures.measure(img.astype(np.float32) / 255)
    monkeypatch.setattr(measures, "STRIP", 7)
    strips = measures.measure(img)
    for k, v in whole.items():
        assert strips[k] == pytest.approx(v) and as16[k] == pytest.approx(v, rel=1e-4, abs=1e-6)
        assert asf[k] == pytest.approx(v, rel=1e-4, abs=1e-6)
    monkeypatch.setattr(measures, "SAMPLE", 500)  # beyond SAMPLE pixels only some strips are measured
    sampled = measures.measure(img)
    assert sampled["noise_sigma"] == pytest.approx(whole["noise_sigma"], rel=0.1)
