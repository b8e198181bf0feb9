"""The same job on the other runners it must support, and the README's quick start.

- FnApiRunner with several worker processes (--direct_running_mode=multi_processing), as on a
  cluster: each process loads its own model and the Reshuffle spreads shards over them.
- PortableRunner with the embedded job server and a LOOPBACK environment: the code path of
  Spark, Flink and Dataflow, without Java or Docker.

Each writes what the in-process runner writes for the same input: rows and image bytes.
- `imagemend demo`, with photos scikit-image ships, on the in-process runner.
"""

import json
import os
from pathlib import Path

from PIL import Image

from imagemend.pipeline import cli
from tests.support.archives import build_archive
from tests.support.checks import check_run, same_outputs
from tests.support.jobs import run_job

REPO = Path(__file__).resolve().parents[2]


def test_multi_process_local_runner(tmp_path, local_store, monkeypatch):
    monkeypatch.setenv("PYTHONPATH", str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    archive = build_archive(local_store, "tar")
    out = str(tmp_path / "out")
    summary = run_job(archive.input, out, beam=["--direct_running_mode=multi_processing", "--direct_num_workers=2"])
    metrics, _ = check_run(archive, out, summary)
    workers = {r["worker"] for r in metrics}
    assert not any(w.endswith(f":{os.getpid()}") for w in workers)  # restored in the worker processes
    assert len(workers) == 2  # the Reshuffle spread the two shards over both (without it one gets all)
    run_job(archive.input, str(tmp_path / "ref"))
    same_outputs(local_store, out, str(tmp_path / "ref"))


def test_portable_runner_embedded_job_server_loopback(tmp_path, local_store):
    archive = build_archive(local_store, "parquet")
    out = str(tmp_path / "out")
    summary = run_job(archive.input, out,
                      beam=["--runner=PortableRunner", "--job_endpoint=embed", "--environment_type=LOOPBACK"])
    check_run(archive, out, summary)
    run_job(archive.input, str(tmp_path / "ref"))
    same_outputs(local_store, out, str(tmp_path / "ref"))


def test_demo_quick_start(tmp_path, capsys):
    out = tmp_path / "demo"
    cli.main(["demo", "--output", str(out), "--max-side", "40"])
    printed = capsys.readouterr().out
    inputs = sorted(p.name for p in (out / "input").iterdir())
    assert len(inputs) == 7 and "camera.png" in inputs and "logo.png" in inputs
    summary = json.loads((out / "restored/summary.json").read_text())
    assert summary["counts"]["records"] == 7 and summary["counts"]["failed"] == 0
    restored = sorted(p.name for p in (out / "restored/images").iterdir())
    assert restored == inputs
    assert Image.open(out / "restored/images/camera.png").mode == "L"
    assert Image.open(out / "restored/images/logo.png").mode == "RGBA"
    for what in ("restored images:", "metrics:", "errors:", "records: 7 = ", "astronaut.jpg", "logo.png"):
        assert what in printed
    assert str(out / "restored") in printed
