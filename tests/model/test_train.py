"""Training runs on a folder of photos and resumes from its checkpoint exactly."""

from dataclasses import replace

import numpy as np
import pytest
import torch

from imagemend.model.core.config import LossConfig, NetConfig
from imagemend.model.core.net import ImagemendNet
from imagemend.model.core.weights import load_weights
from imagemend.model.training.train import loss_config, train
from tests.support.training import SMALL, photo_folder


def run(folder, out, steps, stop_at=None, **kw):
    torch.set_num_threads(1)
    final = train(str(folder), str(out), replace(SMALL, steps=steps), LossConfig(**kw), NetConfig(), stop_at=stop_at)
    return load_weights(final)


def test_training_learns_and_resumes_exactly(tmp_path):
    folder = photo_folder(tmp_path)
    straight, meta = run(folder, tmp_path / "a", 6)
    assert meta["info"]["steps"] == 6 and (tmp_path / "a" / "train_log.jsonl").exists()
    _, paused = run(folder, tmp_path / "b", 6, stop_at=4)  # an interrupted run
    assert paused["info"]["steps"] == 4
    resumed, meta_b = run(folder, tmp_path / "b", 6)  # picks up last.ckpt written at step 4
    assert meta_b["info"]["steps"] == 6
    for (k, a), (_, b) in zip(straight.state_dict().items(), resumed.state_dict().items()):
        assert torch.allclose(a, b, atol=1e-6), k
    moved = [not torch.equal(a, b) for a, b in zip(ImagemendNet().state_dict().values(),
                                                   straight.state_dict().values())]
    assert np.mean(moved) > 0.9  # training changed the weights


def test_fixed_weighting_trains(tmp_path):
    net, meta = run(photo_folder(tmp_path), tmp_path / "u", 2, weighting="fixed")
    assert meta["info"]["loss"]["weighting"] == "fixed"


def test_global_stage_trains_only_the_global_branch(tmp_path):
    folder = photo_folder(tmp_path)
    joint, _ = run(folder, tmp_path / "j", 2)
    torch.set_num_threads(1)
    final = train(str(folder), str(tmp_path / "g"), replace(SMALL, steps=3), LossConfig(), NetConfig(),
                  stage="global", init_local=str(tmp_path / "j" / "final.safetensors"))
    staged, meta = load_weights(final)
    assert meta["info"]["stage"] == "global"
    for k, v in joint.local.state_dict().items():
        assert torch.equal(v, staged.local.state_dict()[k]), k  # frozen, copied from the joint run
    fresh = ImagemendNet().glob.state_dict()
    assert any(not torch.equal(v, fresh[k]) for k, v in staged.glob.state_dict().items())


def test_local_stage_trains_only_the_unet(tmp_path):
    folder = photo_folder(tmp_path)
    joint, _ = run(folder, tmp_path / "j", 2)
    torch.set_num_threads(1)
    final = train(str(folder), str(tmp_path / "l"), replace(SMALL, steps=3), loss_config("deblur=3", "fixed"),
                  NetConfig(), stage="local", init=str(tmp_path / "j" / "final.safetensors"))
    staged, meta = load_weights(final)
    assert meta["info"]["stage"] == "local" and meta["info"]["loss"]["weights"]["deblur"] == 3.0
    for k, v in joint.glob.state_dict().items():
        assert torch.equal(v, staged.glob.state_dict()[k]), k  # frozen, from --init
    assert any(not torch.equal(v, joint.local.state_dict()[k]) for k, v in staged.local.state_dict().items())


def test_loss_weight_overrides_are_checked():
    assert loss_config("deblur=2.5", "fixed").weights["deblur"] == 2.5
    with pytest.raises(SystemExit, match="unknown loss term"):
        loss_config("sharpness=1", "fixed")


def test_time_budget_ends_the_run_with_final_weights(tmp_path):
    torch.set_num_threads(1)
    final = train(str(photo_folder(tmp_path)), str(tmp_path / "t"), replace(SMALL, steps=100_000), LossConfig(),
                  NetConfig(), minutes=0.05)
    _, meta = load_weights(final)
    assert final.name == "final.safetensors" and 2 < meta["info"]["steps"] < 100_000
    assert meta["info"]["minutes"] == 0.05 and 3 <= meta["info"]["wall_s"] <= 10


def test_uncertainty_weights_learn_at_their_own_rate(tmp_path):
    folder = photo_folder(tmp_path)
    train(str(folder), str(tmp_path / "u"), replace(SMALL, steps=4, lr=1e-5),
          LossConfig(weighting="uncertainty", uncertainty_lr=0.05), NetConfig())
    log_var = torch.load(tmp_path / "u" / "last.ckpt", weights_only=True)["weighting"]["log_var"]
    assert (log_var.abs() > 0.02).all()  # at the network's rate they would have moved about 4e-5
