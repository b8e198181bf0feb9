"""Calibration writes thresholds into the weights: from clean photos, or off for a distrusted head."""

import math

import numpy as np
from PIL import Image
import pytest
from skimage import data
import torch

from imagemend.model.core.config import RestoreConfig
from imagemend.model.core.restore import Restorer, read_sigma
from imagemend.model.core.weights import load_weights, save_weights
from imagemend.model.tools.calibrate import main


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
    clean = Restorer(weights, device="cpu").estimate([data.chelsea()[:120, :160]])[0]
    assert found["min_noise_sigma"] >= 1.1 * clean["noise_sigma"] - 1e-6  # above what clean photos read
    curve = meta["info"]["noise_curve"]  # readings map to the Gaussian sigma the suite added
    assert curve["sigma"] == [0, 5, 10, 15, 25, 35, 50] and all(np.diff(curve["raw"]) > 0)
    cast = (data.chelsea()[:120, :160] * [1.0, 0.7, 0.5]).astype("uint8")
    assert not Restorer(weights, device="cpu").restore([cast], {"cast": 1.0})[0].applied["cast"]
    anyway = Restorer(weights, device="cpu", cfg=RestoreConfig(min_cast=0.0), calibrated=False)
    assert anyway.restore([cast], {"cast": 1.0})[0].applied["cast"]  # the same photo, thresholds not applied


def test_noise_readings_map_through_the_knots():
    curve = {"raw": [0.5, 7.0, 12.0, 52.0], "sigma": [0.0, 5.0, 10.0, 50.0]}
    raw = torch.tensor([0.0, 0.5, 3.75, 7.0, 32.0, 52.0, 60.0])
    assert read_sigma(raw, curve).tolist() == pytest.approx([0.0, 0.0, 2.5, 5.0, 30.0, 50.0, 58.0])
