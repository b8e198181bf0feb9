"""The no-reference estimates track the true damage within the tolerances docs/ESTIMATORS.md reports.

Weight-free measures are checked on scikit-image's sample photos against
imagemend.model.evaluation.estimators.TOLERANCES;
the model's severity heads only once trained weights ship (on the untrained placeholder they are
skipped, not loosened).
"""

import argparse
import json

from PIL import Image
import pytest

from imagemend.model.core.restore import Restorer
from imagemend.model.evaluation import estimators
from imagemend.model.evaluation.suites import suite
from imagemend.model.reports import estimators as estimators_doc
from imagemend.model.reports.figures import SAMPLE_PHOTOS, sample_photo
from imagemend.model.reports.provenance import PLACEHOLDER

CASES = ("clean", "noise15", "noise25", "blur-gauss1", "blur-gauss2", "blur-gauss3", "blur-motion5", "blur-motion9",
         "blur-motion13", "cast-warm", "cast-green", "exposure-1", "exposure+0.7", "contrast0.55", "contrast0.85")


def shipped_weights() -> tuple[Restorer | None, str]:
    try:
        r = Restorer(device="cpu")
    except Exception as e:  # e.g. a working tree whose network no longer matches the shipped file
        return None, f"the shipped weights do not load: {type(e).__name__}"
    note = r.meta.get("info", {}).get("note")
    return (None, "the shipped weights are an untrained placeholder") if note == PLACEHOLDER else (r, "")


def failures(checks) -> list[str]:
    return [f"{name}: {value} not {op} {tol}" for name, value, op, tol, ok in checks if not ok]


def test_weight_free_measures_hold_their_tolerances_and_the_command_reports_them(tmp_path):
    photos = tmp_path / "photos"
    photos.mkdir()
    for name in SAMPLE_PHOTOS:
        Image.fromarray(sample_photo(name, 256)).save(photos / f"{name}.png")
    p = argparse.ArgumentParser()
    estimators_doc.add_arguments(p)
    out = tmp_path / "docs" / "ESTIMATORS.md"
    args = ["--data", str(photos), "--out", str(out), "--no-model", "--cases", ",".join(CASES)]
    estimators_doc.main(p.parse_args(args))
    s = json.loads((tmp_path / "docs" / "estimators" / "estimators.json").read_text())
    checks = estimators.check(s, ("measure", "paired"))
    assert len(checks) == 11 and not failures(checks)
    text = out.read_text()
    assert "## Noise sigma" in text and "## Blur" in text and "## Tolerances" in text and "## Edge blur" in text
    assert "| blur-gauss2 | 2 | " in text
    assert "| noise sigma error, paired, sigma 25 |" in text and "| yes |" in text and "**no**" not in text
    assert (tmp_path / "docs" / "estimators" / "estimators.png").stat().st_size > 10_000
    assert s["clean"]["images"] == len(SAMPLE_PHOTOS) and s["blur"]["measure"]["same_kind_worst"] == 1.0


def test_a_broken_estimate_fails_its_tolerance():
    """The checks can fail: an estimate that ignores the photo is caught."""
    photos = {"a": sample_photo("astronaut", 96), "b": sample_photo("coffee", 96)}
    readings = estimators.collect(photos, suite("estimators", ["noise15", "noise25"]))
    for r in readings:
        r.measure = {**r.measure, "noise_sigma": 10.0}
    s = estimators.summary(readings)
    bad = failures(estimators.check(s, ("paired",)))
    assert any("sigma 25" in f for f in bad)


# Targets the shipped weights do not reach yet (model/weights/MODEL_CARD.md): kept as a strict xfail.
KNOWN_GAPS = {"blur rank, model, pooled", "cast error, model", "EV error, model", "contrast factor error (log), model"}


@pytest.fixture(scope="module")
def head_checks():
    r, why = shipped_weights()
    if r is None:
        pytest.skip(why or "no trained weights")
    photos = {f"skimage/{n}": sample_photo(n, 192) for n in SAMPLE_PHOTOS}
    names = ("clean", "noise5", "noise15", "noise25", "noise50", "blur-gauss0.5", "blur-gauss1", "blur-gauss2",
             "blur-gauss3", "blur-motion5", "blur-motion9", "blur-motion13", "cast-warm", "cast-cool", "cast-green",
             "exposure-2", "exposure-1", "exposure+0.7", "contrast0.4", "contrast0.75", "contrast1.3")
    s = estimators.summary(estimators.collect(photos, suite("estimators", list(names)), r))
    checks = estimators.check(s, ("model",))
    assert len(checks) == 10
    return checks


def test_the_trained_severity_heads_hold_their_tolerances(head_checks):
    met = [c for c in head_checks if c[0] not in KNOWN_GAPS]
    assert len(met) == 6 and not failures(met)


@pytest.mark.xfail(strict=True, reason="blur rank, cast, EV and contrast heads miss their targets (MODEL_CARD.md)")
def test_the_global_heads_reach_their_targets(head_checks):
    assert not failures([c for c in head_checks if c[0] in KNOWN_GAPS])
