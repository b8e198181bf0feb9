"""The project's evaluation command (`python -m imagemend.model.evaluation.evaluate`) on photos a test makes."""

import json

from PIL import Image
from skimage import data

from imagemend.model.evaluation import evaluate


def test_the_evaluation_command_runs_the_named_cases_and_says_what_it_was_told(tmp_path):
    photos = tmp_path / "photos"
    photos.mkdir()
    for name, img in (("chelsea", data.chelsea()), ("coffee", data.coffee())):
        Image.fromarray(img[:96, :128]).save(photos / f"{name}.png")
    out = tmp_path / "out"
    evaluate.main(["--data", str(photos), "--suite", "targets", "--cases", "exposure-1,clean", "--assume", "exposure",
                   "--no-speed", "--threads", "1", "--out", str(out)])
    res = json.loads((out / "results.json").read_text())
    assert res["images"] == 2 and list(res["cases"]) == ["exposure-1", "clean"] and res["assumed"] == ["exposure"]
    assert res["cases"]["exposure-1"]["imagemend"]["mean"] > res["cases"]["exposure-1"]["input"]["mean"]  # told
    assert "told the photos need exposure" in (out / "results.md").read_text()

    evaluate.main(["--data", str(photos), "--suite", "targets", "--cases", "clean", "--no-speed", "--out", str(out)])
    assert "blind (no hint of the damage)" in (out / "results.md").read_text()
