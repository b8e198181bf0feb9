"""Told tone damage read from statistics (model/core/tone_cues.py): the cues move with the damage, the
fit command writes a table the restorer reads, and any photo mode reads."""

import json

import numpy as np
from PIL import Image
import pytest
from skimage import data

from imagemend.model.core import tone_cues
from imagemend.model.damage.degrade import damaged, fixed_params
from imagemend.model.tools import fit_tone_cues

PHOTO = (data.astronaut() * 0.8).astype(np.uint8)  # no clipped highlights: every cue moves exactly


def _damaged_view(**damage) -> np.ndarray:
    return tone_cues.rgb_view(damaged([PHOTO], fixed_params(1, **damage), seed=3)[0])


def test_each_cue_moves_with_its_damage():
    """What makes a least-squares combination of cues work: the damage adds itself to every cue
    (up to 8-bit rounding, and to darks that the 1/4096 floor holds)."""
    clean = tone_cues.rgb_view(PHOTO)
    gains = (1.2, 1.0, 0.8)  # luminance-normalised by neither: chroma is what the cues read
    shift = tone_cues.cast_cues(_damaged_view(cast_gains=gains)) - tone_cues.cast_cues(clean)
    np.testing.assert_allclose(shift, np.tile(np.log([1.2, 0.8]), len(shift) // 2), atol=0.03)
    # the group reading's cheap cues are cast_cues' power means: grey world, shades of grey, grey edge
    np.testing.assert_allclose(tone_cues.mean_cues(clean), tone_cues.cast_cues(clean)[[*range(8), *range(20, 24)]],
                               rtol=1e-12)
    shift = tone_cues.exposure_cues(_damaged_view(exposure_ev=-1.0)) - tone_cues.exposure_cues(clean)
    np.testing.assert_allclose(shift[:4], -1.0, atol=0.03)  # the power means of linear luminance
    np.testing.assert_allclose(shift[6:12], -1.0, atol=0.06)  # log luminance from its 25th to 99.9th percentile
    shift = tone_cues.contrast_cues(_damaged_view(contrast=0.55)) - tone_cues.contrast_cues(clean)
    np.testing.assert_allclose(shift[:6], np.log(0.55), atol=0.03)  # five percentile spreads and the std


def test_any_photo_reads_as_its_8_bit_rgb():
    """Greyscale, RGBA (alpha ignored), 16-bit, one pixel: the view is sRGB in [0, 1], long side ~VIEW."""
    view = tone_cues.rgb_view(PHOTO)
    assert view.shape == (256, 256, 3) and view.min() >= 0 and view.max() <= 1
    deep = PHOTO.astype(np.uint16) * 257
    np.testing.assert_allclose(tone_cues.rgb_view(deep), view, atol=1e-6)
    rgba = np.dstack([PHOTO, np.zeros(PHOTO.shape[:2], np.uint8)])
    np.testing.assert_array_equal(tone_cues.rgb_view(rgba), view)
    grey = PHOTO[..., 1]
    assert np.all(tone_cues.rgb_view(grey) == tone_cues.rgb_view(grey)[..., :1])
    assert tone_cues.rgb_view(PHOTO[:1, :1]).shape == (1, 1, 3)
    assert tone_cues.rgb_view(np.zeros((2000, 3, 3), np.uint8)).shape == (666, 1, 3)
    for cues in tone_cues.CUES.values():
        assert np.isfinite(cues(tone_cues.rgb_view(PHOTO[:1, :1]))).all()


def test_fit_recovers_a_linear_rule():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(400, 5)) * [1, 2, 3, 4, 5] + 7
    y = x @ [0.5, -1.0, 0.0, 0.25, 0.1] + 2.0
    f = tone_cues.fit(x, y, ridge=0.0)
    np.testing.assert_allclose([f(v)[0] for v in x[:10]], y[:10], atol=1e-9)
    again = tone_cues.Fit(**json.loads(json.dumps(vars(f))))
    np.testing.assert_allclose(again(x[0]), f(x[0]))
    bent = x[:, 0] * x[:, 1] - x[:, 2] ** 2  # what clipping does to exposure's cues, in miniature
    assert np.abs([tone_cues.fit(x, bent, ridge=0.0)(v)[0] for v in x] - bent).max() > 1.0
    f = tone_cues.fit(x, bent, ridge=0.0, quadratic=True)
    np.testing.assert_allclose([f(v)[0] for v in x[:10]], bent[:10], atol=1e-6)
    far = f(x[0] + [1e4, -1e4, 0, 0, 0])[0]  # a photo beyond every copy the fit saw is not extrapolated
    assert bent.min() <= far <= bent.max()
    assert abs(far - f(np.clip(x[0] + [1e4, -1e4, 0, 0, 0], x.min(0), x.max(0)))[0]) < 1e-9


def test_the_fit_command_writes_a_table_for_every_told_set(tmp_path):
    photos = tmp_path / "photos"
    photos.mkdir()
    for name in ("chelsea", "coffee", "rocket"):
        Image.fromarray(getattr(data, name)()[::4, ::4]).save(photos / f"{name}.png")
    out = tmp_path / "table.json"
    fit_tone_cues.main(["--data", str(photos), "--per-photo", "48", "--out", str(out)])
    table = tone_cues.load_table(out)
    assert set(table) == {"cast", "exposure", "contrast", "cast,exposure", "cast,contrast", "exposure,contrast",
                          "cast,exposure,contrast"}
    assert all(list(fits) == key.split(",") for key, fits in table.items())
    read = tone_cues.read(PHOTO, ["contrast", "cast"], table)
    assert read["cast"].shape == (3,) and isinstance(read["contrast"], float) and 0 < read["mean_luma"] < 1
    with pytest.raises(ValueError, match="too few to fit"):
        fit_tone_cues.main(["--data", str(photos), "--per-photo", "2", "--out", str(out)])


def test_the_shipped_table_is_fitted_on_the_training_photos():
    info = json.loads(tone_cues.TABLE.read_text())
    assert info["photos"] == 432 and "CBSD432" in info["data"]
    assert min(info["samples"].values()) >= 500


def test_undo_curve_inverts_a_contrast_change():
    curve = tone_cues.undo_contrast_curve(np.log(0.5), 0.4, 17)
    x = np.linspace(0.2, 0.6, 17)  # compressed values stay inside the clip
    squeezed = 0.4 + 0.5 * (x - 0.4)
    np.testing.assert_allclose(np.interp(squeezed, np.linspace(0, 1, 17), curve.numpy()), x, atol=1e-6)
