"""Reruns that reconcile (issue #19, item 6): re-sharded and deleted inputs, a photo replaced by another of the
same size, an output reached through a symlink inside the input, and two jobs started on one output.

Every case runs the real job (in-process FnApiRunner, or the command in a subprocess) on files the test makes,
then reads the output back: each key once, nothing stale left, nothing of another live run removed.
"""

import json
import os
from pathlib import Path
import socket
import subprocess
import sys
import time

from PIL import Image
import pytest

from imagemend.pipeline import cli, lease, sources
from imagemend.pipeline.options import InputOptions, OutputOptions
from imagemend.pipeline.reconcile import UnlistedShards
from tests.support.archives import build_tar_shards
from tests.support.checks import read_tables
from tests.support.images import encode, pixels
from tests.support.jobs import run_job
from tests.support.stores import Store

REPO = Path(__file__).resolve().parents[2]


def bmp(seed: int) -> bytes:
    """A small photo whose file size depends on its dimensions only: another seed, same size, other pixels."""
    return encode(Image.fromarray(pixels(24, 32, 3, seed)), "BMP")


def photos(folder: Path, names: list[str], seed: int = 0) -> None:
    for i, name in enumerate(names):
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_bytes(bmp(seed + i))


def keys(out: Path, kind: str = "metrics") -> list[str]:
    return sorted(r["key"] for r in read_tables(Store(str(out)), str(out), kind))


def files(out: Path, sub: str) -> list[str]:
    return sorted(str(p.relative_to(out / sub)) for p in (out / sub).rglob("*") if p.is_file())


def test_resharding_refuses_then_prunes_and_keeps_each_key_once(tmp_path):
    src, out = tmp_path / "in", tmp_path / "out"
    names = [f"{i:02d}.bmp" for i in range(8)]
    photos(src, names)
    run_job(str(src), str(out), files_per_shard=2)
    assert files(out, "_done") == [f"part-{i:05d}.json" for i in range(4)]
    before = {p: p.read_bytes() for p in (out / "metrics").rglob("*.parquet")}

    with pytest.raises(UnlistedShards, match=r"holds 1 finished shards that this input's listing does not have "
                                             r"\(part-00003\).*--files-per-shard changed.*--prune"):
        run_job(str(src), str(out), files_per_shard=3)
    assert {p: p.read_bytes() for p in (out / "metrics").rglob("*.parquet")} == before  # refused: nothing touched

    summary = run_job(str(src), str(out), files_per_shard=3, prune=True)
    assert keys(out) == sorted(names) and summary["counts"]["records"] == len(names)  # each key once
    assert files(out, "_done") == [f"part-{i:05d}.json" for i in range(3)]
    assert files(out, "metrics") == [f"part-{i:05d}.parquet" for i in range(3)]
    assert files(out, "images") == sorted(names)


def test_deleted_inputs_are_pruned_and_a_deleted_photo_leaves_its_shard(tmp_path):
    store = Store(str(tmp_path))
    src, out = Path(build_tar_shards(store, "in", shards=3, samples=2)), tmp_path / "out"
    run_job(str(src), str(out))
    assert "shard-0001.parquet" in files(out, "_stats")  # pass 1's kept readings (--group-by folder)
    (src / "shard-0001.tar").unlink()
    with pytest.raises(UnlistedShards, match=r"holds 1 finished shards .*\(shard-0001\)"):
        run_job(str(src), str(out))
    summary = run_job(str(src), str(out), prune=True)
    assert summary["counts"]["shards_skipped"] == 2 and summary["counts"]["records"] == 4
    assert keys(out) == ["0000000", "0000001", "0020000", "0020001"]
    for sub, name in (("images", "shard-0001.tar"), ("metrics", "shard-0001.parquet"),
                      ("errors", "shard-0001.parquet"), ("_stats", "shard-0001.parquet"), ("_done", "shard-0001.json")):
        assert name not in files(out, sub)

    loose, out2 = tmp_path / "loose", tmp_path / "out2"
    photos(loose, ["a.bmp", "b.bmp", "c.bmp"])
    run_job(str(loose), str(out2))
    (loose / "b.bmp").unlink()  # the shard's members changed: it is redone without the photo, no --prune needed
    summary = run_job(str(loose), str(out2))
    assert summary["counts"]["shards_processed"] == 1 and summary["counts"]["records"] == 2
    assert keys(out2) == ["a.bmp", "c.bmp"] and files(out2, "images") == ["a.bmp", "c.bmp"]


def test_a_photo_replaced_by_one_of_the_same_size_is_restored_again(tmp_path):
    src, out = tmp_path / "in", tmp_path / "out"
    photos(src, ["x/a.bmp", "y/b.bmp"])
    first = run_job(str(src), str(out), image_format="png")
    old = (out / "images/x/a.png").read_bytes()
    stat = (src / "x/a.bmp").stat()
    replacement = bmp(99)
    assert len(replacement) == stat.st_size
    (src / "x/a.bmp").write_bytes(replacement)

    second = run_job(str(src), str(out), image_format="png")
    assert second["counts"]["shards_processed"] == 1 and second["counts"]["shards_skipped"] == 1
    rows = {r["key"]: r for r in read_tables(Store(str(out)), str(out), "metrics")}
    assert rows["x/a.bmp"]["run_id"] == second["run_id"] and rows["y/b.bmp"]["run_id"] == first["run_id"]
    assert (out / "images/x/a.png").read_bytes() != old
    marker = json.loads((out / "_done/x/part-00000.json").read_text())
    assert marker["input"] == sources.list_files(str(src), {})[0]


def test_a_symlinked_output_inside_the_input_is_never_read_back(tmp_path):
    src = tmp_path / "in"
    photos(src, ["a.bmp", "b.bmp", "c.bmp"])
    (src / "restored").mkdir()
    out = tmp_path / "out"
    out.symlink_to(src / "restored")  # the output, named outside the input, lies inside it
    for _ in range(2):
        summary = run_job(str(src), str(out))
        assert summary["counts"]["records"] == 3 and keys(out) == ["a.bmp", "b.bmp", "c.bmp"]

    (tmp_path / "in-link").symlink_to(out / "images")  # an input that is, resolved, inside the output
    with pytest.raises(ValueError, match="inside output"):
        sources.list_shards(InputOptions(str(tmp_path / "in-link")), OutputOptions(str(out)))


def _lease(out: Path, **kw) -> None:
    now = time.time()
    out.mkdir(parents=True, exist_ok=True)
    (out / "_lease.json").write_text(json.dumps({"run_id": "other-run", "host": "elsewhere", "pid": 1,
                                                 "started": now - 60, "heartbeat": now, **kw}))


def test_an_output_leased_by_a_live_run_is_refused_and_its_temporaries_kept(tmp_path, capsys):
    src, out = tmp_path / "in", tmp_path / "out"
    photos(src, ["a.bmp"])
    partial = out / "images" / ".imagemend-0123456789ab.partial"  # the other run's file being written
    partial.parent.mkdir(parents=True)
    partial.write_bytes(b"half")
    _lease(out)
    with pytest.raises(SystemExit) as e:
        cli.main(["run", "--input", str(src), "--output", str(out)])
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert e.value.code == 1 and err.startswith("imagemend: error: output in use by run other-run on elsewhere:1 "
                                                "since "), err
    assert "if that run is dead, wait 1" in err and err.endswith(f"s or remove {out}/_lease.json")
    assert partial.read_bytes() == b"half" and not (out / "_done").exists()

    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    for stale in ({"heartbeat": time.time() - lease.FRESH_S - 1},  # no heartbeat for too long
                  {"host": socket.gethostname(), "pid": int(dead.stdout)}):  # a process of this host that is gone
        _lease(out, **stale)
        partial.write_bytes(b"half")
        assert run_job(str(src), str(out))["counts"]["records"] == 1
        assert not partial.exists() and not (out / "_lease.json").exists()  # taken over, cleaned, released


def test_the_lease_heartbeat_is_refreshed_and_released(tmp_path):
    fs = Store(str(tmp_path)).fs
    owner = lease.Owner.this("beating")
    path = lease.acquire(fs, str(tmp_path), owner)
    first = json.loads(Path(path).read_text())["heartbeat"]
    with lease.kept(fs, path, owner, every_s=0.05):
        time.sleep(0.3)
        assert json.loads(Path(path).read_text())["heartbeat"] > first
        with pytest.raises(lease.OutputInUse, match="output in use by run beating"):
            lease.acquire(fs, str(tmp_path), lease.Owner.this("second"))
    assert not Path(path).exists()


def test_two_jobs_at_once_the_second_is_refused_and_the_first_finishes(tmp_path, capsys):
    store = Store(str(tmp_path))
    src, out = build_tar_shards(store, "in", shards=8, samples=6), tmp_path / "out"
    env = {**os.environ, "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    first = subprocess.Popen([sys.executable, "-m", "imagemend.pipeline.cli", "run", "--input", src,
                              "--output", str(out), "--run-id", "first", "--no-progress"], cwd=REPO, env=env,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.time() + 120
        while not (out / "_lease.json").exists() and first.poll() is None and time.time() < deadline:
            time.sleep(0.02)
        with pytest.raises(SystemExit) as second:  # started in this process, while the first job runs
            cli.main(["run", "--input", src, "--output", str(out), "--run-id", "second"])
        still_running = first.poll() is None
        stdout, stderr = first.communicate(timeout=300)
    finally:
        first.kill()
    err = capsys.readouterr().err
    assert second.value.code == 1 and "imagemend: error: output in use by run first on " in err, err
    assert still_running, "the first job should still have been running when the second was refused"
    assert first.returncode == 0, stderr
    assert "records: 48 = " in stdout
    assert not list(out.rglob("*.partial")) and not (out / "_lease.json").exists()
    assert len(keys(out)) + len(keys(out, "errors")) == 48 and len(files(out, "_done")) == 8
    assert not (out / "_runs" / "second").exists()


def test_an_object_replaced_by_one_of_the_same_size_is_restored_again_on_s3(s3_store):
    """On an object store the listing's ETag tells the new object from the old one."""
    s3_store.put("in", "x", "a.bmp", bmp(0))
    s3_store.put("in", "y", "b.bmp", bmp(1))
    out = s3_store.join("out")
    run_job(s3_store.join("in"), out, storage_options=s3_store.storage_options)
    s3_store.put("in", "x", "a.bmp", bmp(99))
    again = run_job(s3_store.join("in"), out, storage_options=s3_store.storage_options)
    assert again["counts"]["shards_processed"] == 1 and again["counts"]["shards_skipped"] == 1
    assert not s3_store.fs.exists(s3_store.path("out", "_lease.json"))
