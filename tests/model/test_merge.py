"""Joining a local-stage U-Net and a global-stage branch keeps each half and the whole history."""

import torch

from imagemend.model.core.net import ImagemendNet
from imagemend.model.core.weights import load_weights, save_weights
from imagemend.model.tools.merge import merge


def test_merge_takes_each_half_from_its_file_and_keeps_the_history(tmp_path):
    files = {}
    for seed, name, info in ((1, "base", {"stages": [{"stage": "joint", "steps": 6}]}),
                             (2, "local", {"stage": "local", "steps": 4, "data": "photos"}),
                             (3, "global", {"stage": "global", "steps": 5, "data": "photos"})):
        torch.manual_seed(seed)
        files[name] = tmp_path / f"{name}.safetensors"
        save_weights(files[name], ImagemendNet(), info)
    merge(str(files["local"]), str(files["global"]), str(files["base"]), str(tmp_path / "out.safetensors"),
          commit="abc")
    net, meta = load_weights(tmp_path / "out.safetensors")
    local, glob = load_weights(files["local"])[0], load_weights(files["global"])[0]
    for k, v in net.state_dict().items():
        want = (local if k.startswith("local.") else glob).state_dict()[k]
        assert torch.equal(v, want), k
    assert [(s["stage"], s["steps"]) for s in meta["info"]["stages"]] == [("joint", 6), ("local", 4), ("global", 5)]
    assert meta["info"]["stages"][1]["commit"] == "abc" and "thresholds" not in meta["info"]


def test_a_new_unet_under_the_shipped_branch_keeps_its_calibration(tmp_path):
    calibrated = {"stages": [{"stage": "joint", "steps": 6}], "thresholds": {"min_noise_sigma": 2.0},
                  "noise_curve": {"raw": [0, 5], "sigma": [0, 5]}, "calibration": {"images": 9}}
    for seed, name, info in ((1, "shipped", calibrated), (2, "local", {"stage": "local", "steps": 4})):
        torch.manual_seed(seed)
        save_weights(tmp_path / f"{name}.safetensors", ImagemendNet(), info)
    shipped = str(tmp_path / "shipped.safetensors")
    merge(str(tmp_path / "local.safetensors"), shipped, shipped, str(tmp_path / "out.safetensors"))
    info = load_weights(tmp_path / "out.safetensors")[1]["info"]
    assert {k: info[k] for k in ("thresholds", "noise_curve", "calibration")} == {
        k: calibrated[k] for k in ("thresholds", "noise_curve", "calibration")}
    assert [(s["stage"], s["steps"]) for s in info["stages"]] == [("joint", 6), ("local", 4)]


def test_several_local_runs_are_averaged_weight_by_weight(tmp_path):
    paths = []
    for seed in (1, 2, 3):
        torch.manual_seed(seed)
        paths.append(str(tmp_path / f"run{seed}.safetensors"))
        save_weights(paths[-1], ImagemendNet(), {"stage": "local", "steps": seed})
    merge(paths[1:], paths[0], None, str(tmp_path / "soup.safetensors"))
    net, meta = load_weights(tmp_path / "soup.safetensors")
    a, b = (load_weights(p)[0].local.state_dict() for p in paths[1:])
    for k, v in net.local.state_dict().items():
        assert torch.allclose(v, (a[k] + b[k]) / 2), k
    assert [s["steps"] for s in meta["info"]["stages"]] == [2, 3, 1]
    assert [s.get("averaged_with") for s in meta["info"]["stages"]] == [1, 1, None]
