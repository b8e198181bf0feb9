"""Full-reference metrics: the same numbers as scikit-image, and a misshapen output is an error, not a score."""

import numpy as np
import pytest
from skimage import data
from skimage.color import deltaE_ciede2000, rgb2lab
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from imagemend.model import metrics
from imagemend.model.evaluation.suites import CASES

PHOTO = data.astronaut()[100:260, 120:320]
DAMAGES = ("noise25", "blur-gauss2", "cast-warm", "exposure-2", "contrast0.55")


def skimage_ssim(a, b, peak=255):
    return structural_similarity(a, b, channel_axis=-1 if a.ndim == 3 else None, data_range=peak,
                                 gaussian_weights=True, sigma=1.5, use_sample_covariance=False)


@pytest.mark.parametrize("case", DAMAGES)
def test_psnr_ssim_ciede2000_match_scikit_image(case):
    bad = CASES[case].apply(PHOTO, "astronaut")
    assert metrics.capped_psnr(PHOTO, bad) == pytest.approx(peak_signal_noise_ratio(PHOTO, bad, data_range=255),
                                                            abs=1e-9)
    assert metrics.ssim(PHOTO, bad) == pytest.approx(skimage_ssim(PHOTO, bad), abs=1e-6)
    want = deltaE_ciede2000(rgb2lab(PHOTO), rgb2lab(bad)).mean()
    assert metrics.ciede2000(PHOTO, bad) == pytest.approx(want, rel=1e-9)


def test_ssim_of_greyscale_and_16_bit_match_scikit_image():
    grey = data.camera()[:90, :120]
    noisy = np.clip(grey + np.random.default_rng(0).normal(0, 12, grey.shape), 0, 255).astype(np.uint8)
    assert metrics.ssim(grey, noisy) == pytest.approx(skimage_ssim(grey, noisy), abs=1e-6)
    a16, b16 = (x.astype(np.uint16) * 257 for x in (grey, noisy))
    assert metrics.ssim(a16, b16) == pytest.approx(skimage_ssim(a16, b16, 65535), abs=1e-5)
    assert metrics.capped_psnr(a16, b16) == pytest.approx(peak_signal_noise_ratio(a16, b16, data_range=65535))


def test_ciede2000_of_greys_is_the_lightness_formula_and_does_not_depend_on_strips(monkeypatch):
    """Two neutral greys differ only in L*: dE00 = |dL| / S_L (Sharma et al. 2005), computed independently here."""
    def lightness(v):
        c = v / 255
        y = c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4
        return 116 * y ** (1 / 3) - 16 if y > (6 / 29) ** 3 else 903.3 * y

    a, b = np.full((20, 30, 3), 100, np.uint8), np.full((20, 30, 3), 130, np.uint8)
    l1, l2 = lightness(100), lightness(130)
    mean_l = (l1 + l2) / 2
    s_l = 1 + 0.015 * (mean_l - 50) ** 2 / np.sqrt(20 + (mean_l - 50) ** 2)
    assert metrics.ciede2000(a, b) == pytest.approx(abs(l2 - l1) / s_l, rel=1e-3)
    bad = CASES["mixed"].apply(PHOTO, "astronaut")
    whole = metrics.ciede2000(PHOTO, bad)
    monkeypatch.setattr(metrics, "STRIP", 7)
    assert metrics.ciede2000(PHOTO, bad) == pytest.approx(whole, rel=1e-12)


def test_identical_images_score_perfectly_with_psnr_capped():
    s = metrics.compare(PHOTO, PHOTO.copy())
    assert s == {"psnr": metrics.PSNR_CAP, "ssim": pytest.approx(1.0), "ciede2000": 0.0}


@pytest.mark.parametrize("out", [None, PHOTO[:-1], PHOTO[:, :, :2], PHOTO.astype(np.uint16), PHOTO.transpose(1, 0, 2)])
def test_a_missing_or_misshapen_output_is_an_error_never_a_score(out):
    with pytest.raises(metrics.SizeMismatch):
        metrics.compare(PHOTO, out)
