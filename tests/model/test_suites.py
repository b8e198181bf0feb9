"""Evaluation suites: each case does what its name says, the same way every time, whatever the order."""

import hashlib
import math
import subprocess
import sys

import numpy as np
import pytest
from skimage import data

from imagemend.model.core.color import LUMA
from imagemend.model.evaluation.suites import CASES, SUITES, suite

PHOTO = data.chelsea()[:96, :128]


def digest(img: np.ndarray) -> str:
    return hashlib.sha256(img.tobytes()).hexdigest()


def test_the_damage_of_a_photo_depends_on_case_and_key_only():
    cases = suite("quick")
    forward = {c.name: digest(c.apply(PHOTO, "a/b.png")) for c in cases}
    other = data.coffee()[:96, :128]
    backward = {}
    for c in reversed(cases):  # another order, other photos in between: the same damage
        c.apply(other, "other.png")
        backward[c.name] = digest(c.apply(PHOTO, "a/b.png"))
    assert forward == backward
    noise = CASES["noise25"]
    assert digest(noise.apply(PHOTO, "a/c.png")) != forward["noise25"]  # another key, another realisation
    assert CASES["clean"].apply(PHOTO, "x").tobytes() == PHOTO.tobytes()


def test_the_damage_is_the_same_in_a_fresh_process():
    code = ("import hashlib; from skimage import data; from imagemend.model.evaluation.suites import CASES; "
            "print(hashlib.sha256(CASES['mixed'].apply(data.chelsea()[:96, :128], 'a/b.png').tobytes()).hexdigest())")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == digest(CASES["mixed"].apply(PHOTO, "a/b.png"))


def test_cases_do_what_their_names_say():
    flat = np.full((128, 128, 3), 128, np.uint8)
    for s in (15, 25, 50):
        got = CASES[f"noise{s}"].apply(flat, "flat").astype(float).std()
        assert got == pytest.approx(s, rel=0.05 if s < 50 else 0.12)  # sigma 50 is clipped at 0 and 255 a little
    lin = (np.linspace(0.05, 0.2, 96)[None, :, None] * np.ones((64, 96, 3))) ** (1 / 2.2)
    dark = (lin * 255).round().astype(np.uint8)

    def linear_mean(img):
        x = img.astype(float) / 255
        return np.where(x <= 0.04045, x / 12.92, ((x + 0.055) / 1.055) ** 2.4).reshape(-1, 3).mean(0)

    for ev in (-1.0, 0.5):
        ratio = linear_mean(CASES[f"exposure{ev:+g}"].apply(dark, "k")) / linear_mean(dark)
        assert ratio == pytest.approx(np.full(3, 2.0**ev), rel=0.03)
    warm = CASES["cast-warm"]
    gains = linear_mean(warm.apply(dark, "k")) / linear_mean(dark)
    assert gains == pytest.approx(warm.kwargs["cast_gains"], rel=0.03)
    assert float(np.dot(LUMA, warm.kwargs["cast_gains"])) == pytest.approx(1.0, abs=1e-3)  # luminance kept
    assert np.log(gains) - np.log(gains) @ np.asarray(LUMA) == pytest.approx(
        [warm.truth[k] for k in ("cast_r", "cast_g", "cast_b")], abs=0.03)
    for c in (0.55, 0.75):
        y = PHOTO.astype(float) @ np.asarray(LUMA)
        yc = CASES[f"contrast{c:g}"].apply(PHOTO, "k").astype(float) @ np.asarray(LUMA)
        assert yc.std() / y.std() == pytest.approx(c, rel=0.02)
        assert CASES[f"contrast{c:g}"].truth["contrast"] == pytest.approx(math.log(c))


def test_blur_cases_carry_their_kernel_and_its_radius():
    g = CASES["blur-gauss2"]
    psf = g.psf()
    assert psf.shape == (21, 21) and psf.sum() == pytest.approx(1.0) and psf[10, 10] == psf.max()
    assert g.truth["blur"] == pytest.approx(2.0, rel=1e-3)
    m = CASES["blur-motion9"]
    assert m.truth["blur"] > 1.5 and (m.psf() > 0).sum() < (psf > 1e-4).sum()
    assert CASES["noise25"].psf() is None
    assert PHOTO.astype(float).std() > g.apply(PHOTO, "k").astype(float).std()


def test_the_standard_suite_covers_what_the_issue_lists():
    names = set(SUITES["standard"])
    assert {"noise15", "noise25", "noise50", "cast-warm", "cast-cool", "cast-green", "exposure-2", "exposure-1",
            "exposure+0.7", "mixed", "clean"} <= names
    assert any(n.startswith("blur-gauss") for n in names) and any(n.startswith("blur-motion") for n in names)
    assert any(n.startswith("contrast0") for n in names)
    assert set(SUITES["quick"]) <= set(CASES) and {c.task for c in suite("quick")} == {
        "denoise", "deblur", "cast", "exposure", "contrast", "mixed", "clean"}
    assert [c.name for c in suite("standard", ["clean", "noise25"])] == ["noise25", "clean"]  # the suite's order
    with pytest.raises(ValueError, match="unknown suite"):
        suite("nope")
    with pytest.raises(ValueError, match="not in suite"):
        suite("quick", ["noise15"])
