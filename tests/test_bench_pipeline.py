"""benchmarks/bench_pipeline.py, the `pipeline` part of benchmarks/bench_model.py, on two tiny photos.

Checks the harness (every row there, both runner modes really used, figures that are numbers),
never a speed: the photos are a few thousand pixels and the network is the seeded test network.
"""

import math
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def bench(monkeypatch):
    import torch

    monkeypatch.syspath_prepend(str(REPO / "benchmarks"))
    monkeypatch.setenv("PYTHONPATH", str(REPO))  # the worker processes import imagemend; restored afterwards
    threads = torch.get_num_threads()
    import bench_pipeline

    yield bench_pipeline
    torch.set_num_threads(threads)


def test_pipeline_benchmark_rows(bench, active_weights, tmp_path):
    res = bench.bench_pipeline([0.003], images=2, workers=(1, 2), threads=2, weights=active_weights, repeats=1,
                               fixed=False, tmp=str(tmp_path), log=lambda row: None)
    rows = {r["run"]: r for r in res["pipeline"]}
    assert list(rows) == ["model alone (restore)", "model + output estimates", "model alone, 2 restores at once",
                          "job, in-process", "job, in-process, 1 restore at a time", "job, 2 worker processes"]
    for r in rows.values():
        assert r["images"] == 2 and 0.002 < r["megapixels"] < 0.004
        assert r["seconds"] > 0 and r["mp_per_s"] > 0 and math.isfinite(r["vs_model"])
        assert math.isclose(r["mp_per_s"], r["megapixels"] * r["images"] / r["seconds"])
    assert rows["model alone (restore)"]["vs_model"] == 1.0
    plans = {run: (r["processes"], r["restores"], r["torch_threads"]) for run, r in rows.items()}
    assert plans["job, in-process"] == plans["model alone, 2 restores at once"] == (1, 2, 1)  # 2 cores, 2 x 1
    assert plans["job, in-process, 1 restore at a time"] == plans["model alone (restore)"] == (1, 1, 2)
    assert plans["job, 2 worker processes"] == (2, 1, 1)  # both workers got a shard, each one core
    assert rows["job, in-process"]["vs_model_at_once"] > 0 and rows["model alone (restore)"]["vs_model_at_once"] is None
    multi = rows["job, 2 worker processes"]
    for r in (rows["job, in-process"], multi):
        assert r["restore_s"] > 0 and r["decode_s"] > 0 and r["encode_s"] >= 0
        assert r["fixed_s"] is None and r["net_mp_per_s"] is None

    batching = res["batching"]
    assert [r["batching"] for r in batching] == ["as the job", "1 image per call",
                                                 "1 image per call, 1 tile per pass"]
    assert all(r["mp_per_s"] > 0 and r["forward_passes"] >= 1 for r in batching)
    assert batching[0]["images_per_call"] == 1  # as the job: 2 photos in 2 shards (one per worker), a call each
    assert batching[0]["forward_passes"] == 2 and batching[0]["tiles_per_pass"] == 1
    assert batching[2]["tiles_per_pass"] == 1 and batching[2]["gain"] == 1.0
    assert not list(tmp_path.iterdir())  # the temporary inputs and outputs are gone


def test_job_calls_group_like_the_job(bench):
    import numpy as np

    imgs = [np.zeros((10, 10, 3), np.uint8)] * 7
    # a call closes at the pixel budget or the image count, and never spans two shards
    assert [len(c) for c in bench.job_calls(imgs, 4, pixel_budget=250, batch_images=32)] == [3, 1, 3]
    assert [len(c) for c in bench.job_calls(imgs, 7, pixel_budget=10**9, batch_images=2)] == [2, 2, 2, 1]
