"""The parts of benchmarks/bench_gpu.py that run without a GPU, on tiny photos: the harness (rows,
processes really started together), never a speed."""

import math
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_readings_and_processes_rows(monkeypatch):
    monkeypatch.syspath_prepend(str(REPO / "benchmarks"))
    monkeypatch.setenv("PYTHONPATH", str(REPO))  # the spawned processes import imagemend
    import bench_gpu

    rows = bench_gpu.readings("cpu", 0.01, 1)
    assert [r["reading"] for r in rows] == ["edge_blur", "noise_cap"] and all(r["seconds"] > 0 for r in rows)
    rows = bench_gpu.processes("cpu", 0.01, 2, [1, 2], 2)
    assert [(r["processes"], r["torch_threads"], r["photos"]) for r in rows] == [(1, 2, 2), (2, 1, 4)]
    assert all(math.isfinite(r["mp_per_s"]) and r["mp_per_s"] > 0 for r in rows)
