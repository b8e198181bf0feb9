"""Calibration writes thresholds into the weights: from clean photos, or off for a distrusted head."""

import math

from PIL import Image
from skimage import data

from model.calibrate import main
from model.config import RestoreConfig
from model.restore import Restorer
from model.weights import load_weights, save_weights


def test_thresholds_are_stored_and_a_disabled_task_never_runs(tmp_path, active_net):
    folder = tmp_path / "clean"
    folder.mkdir()
    for name in ("chelsea", "coffee"):
        Image.fromarray(getattr(data, name)()[:120, :160]).save(folder / f"{name}.png")
    weights = tmp_path / "w.safetensors"
    save_weights(weights, active_net, {"name": "test"})
    main(["--data", str(folder), "--weights", str(weights), "--threads", "1",
          "--disable", "cast", "--reason", "cast head distrusted"])
    _, meta = load_weights(weights)  # still passes its checksum
    found, calibration = meta["info"]["thresholds"], meta["info"]["calibration"]
    assert math.isinf(found["min_cast"]) and calibration["disabled"] == ["cast"]
    assert calibration["reason"] == "cast head distrusted" and calibration["images"] == 2
    clean = Restorer(weights, device="cpu", calibrated=False).estimate([data.chelsea()[:120, :160]])[0]
    assert found["min_noise_sigma"] >= 1.1 * clean["noise_sigma"] - 1e-6  # above what clean photos read
    cast = (data.chelsea()[:120, :160] * [1.0, 0.7, 0.5]).astype("uint8")
    assert not Restorer(weights, device="cpu").restore([cast], {"cast": 1.0})[0].applied["cast"]
    anyway = Restorer(weights, device="cpu", cfg=RestoreConfig(min_cast=0.0), calibrated=False)
    assert anyway.restore([cast], {"cast": 1.0})[0].applied["cast"]  # the same photo, thresholds not applied
