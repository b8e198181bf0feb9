"""`imagemend run` end to end on the local filesystem with the in-process FnApiRunner.

Each layout with good records of every mode and bad ones (corrupt, zero-byte, not an image, a tar
member that tries to escape), read back row by row; resume after a finished and after a killed
run; the options that change what is written; the exit codes of the command.
"""

import io
import json
import logging
import os
from pathlib import Path
import signal
import subprocess
import sys
import tarfile
import time

import numpy as np
from PIL import Image
import pyarrow.parquet as pq
import pytest

from imagemend.pipeline import cli
from imagemend.pipeline import decode as dec
from tests.support.archives import build_archive, build_tar_shards
from tests.support.checks import check_run, open_output, read_tables, same_outputs
from tests.support.jobs import run_job
from tests.support.stores import free_port

REPO = Path(__file__).resolve().parents[2]


def snapshot(root: Path) -> dict[str, bytes]:
    return {str(p): p.read_bytes() for p in root.rglob("*") if p.is_file()}


@pytest.mark.parametrize("layout", ["files", "tar", "parquet"])
def test_each_layout_end_to_end(tmp_path, local_store, layout, caplog):
    caplog.set_level(logging.INFO, logger="imagemend")
    archive = build_archive(local_store, layout)
    before = snapshot(tmp_path)
    out = tmp_path / "out"
    # two restores at once, two images per call: several calls per shard in flight, written in order
    # (no bar: its worker log lines are what a cluster shows; the bar has its own tests)
    summary = run_job(archive.input, str(out), restores=2, batch_images=2, progress=False)
    metrics, errors = check_run(archive, str(out), summary)

    after = snapshot(tmp_path)
    assert {p: b for p, b in after.items() if not p.startswith(str(out) + "/")} == before  # inputs untouched
    assert not any("escape" in p for p in after)
    assert not list(tmp_path.parent.glob("escape*")) and not list(tmp_path.parent.parent.glob("escape*"))
    assert len(list((out / "_done").rglob("*.json"))) == archive.shards
    assert len(list((out / "metrics").rglob("*.parquet"))) == archive.shards
    assert summary["beam_counters"]["images"] == len(archive.good)
    assert summary["beam_counters"]["failures"] == len(archive.bad)
    assert summary["beam_counters"]["bytes_read"] == sum(r["bytes_in"] for r in metrics) > 0
    assert any("images/s" in m for m in caplog.messages)  # progress while it runs
    assert sum(m.startswith("imagemend: loaded") for m in caplog.messages) == 1  # one model per process

    by_key = {r["key"]: r for r in metrics}
    if layout == "files":
        assert sorted(str(p.relative_to(out / "images")) for p in (out / "images").rglob("*")
                      if p.is_file()) == sorted(archive.good)
        rgb = Image.open(io.BytesIO(open_output(local_store, by_key["a/rgb.jpg"]["output_uri"])))
        # a restored copy is stored upright; an unchanged one keeps its bytes and its orientation tag
        upright = 1 if by_key["a/rgb.jpg"]["status"] == "restored" else 6
        assert rgb.getexif().get(0x0112, 1) == upright and rgb.getexif()[0x010F] == "imagemend-test-camera"
        assert rgb.info["icc_profile"] == Image.open(Path(archive.input) / "a/rgb.jpg").info["icc_profile"]
        src = np.asarray(Image.open(Path(archive.input) / "a/rgba.png"))
        restored = np.asarray(Image.open(out / "images/a/rgba.png"))
        assert np.array_equal(restored[..., 3], src[..., 3])  # alpha travels untouched
        assert Image.open(out / "images/a/deep.png").mode == "I;16"
        assert by_key["b/c/deep-rgb.png"]["mode"] == "RGB;16"
        deep_rgb = dec.decode((out / "images/b/c/deep-rgb.png").read_bytes())
        assert deep_rgb.meta.mode == "RGB;16" and deep_rgb.pixels.dtype == np.uint16  # still 16 bits a channel
        import tifffile
        assert tifffile.imread(out / "images/b/c/deep.tif").dtype == np.uint16
    if layout == "tar":
        for name in ("shard-000000.tar", "part/shard-000001.tar"):
            with tarfile.open(Path(archive.input) / name) as t_in, tarfile.open(out / "images" / name) as t_out:
                got = {m.name: t_out.extractfile(m).read() for m in t_out}
                kept = [m.name for m in t_in if m.name.split(".")[0] in archive.good]
                assert list(got) == kept  # same members, same order, failed samples left out
                for want in archive.good.values():
                    if want["image_member"] in got:
                        assert {k: got[k] for k in want["sidecars"]} == want["sidecars"]
    if layout == "parquet":
        for s in ("00000", "00001"):
            t_in = pq.read_table(Path(archive.input).parent / f"{s}.parquet")
            t_out = pq.read_table(out / "images" / f"{s}.parquet")
            assert t_out.schema == t_in.schema
            rows = t_out.to_pylist()
            assert [r["key"] for r in rows] == [r["key"] for r in t_in.to_pylist() if r["key"] in archive.good]
            for r in rows:
                assert {k: v for k, v in r.items() if k != "jpg"} == archive.good[r["key"]]["carried"]


def test_rerun_skips_finished_shards_and_overwrite_redoes_them(tmp_path, local_store):
    archive = build_archive(local_store, "tar")
    out = tmp_path / "out"
    first = run_job(archive.input, str(out))
    outputs = {p: (p.read_bytes(), p.stat().st_mtime_ns) for p in (out / "images").rglob("*.tar")}
    metrics_files = {p: p.read_bytes() for p in (out / "metrics").rglob("*.parquet")}

    leftover = out / "images" / ".shard-000000.tar.0123456789ab.partial"  # as a killed writer leaves it
    leftover.write_bytes(b"half a tar")
    second = run_job(archive.input, str(out))
    assert not leftover.exists()
    assert second["counts"]["shards_skipped"] == archive.shards and second["counts"]["shards_processed"] == 0
    assert second["counts"]["images_processed"] == 0
    assert second["counts"]["records"] == first["counts"]["records"]  # counts of the finished shards carry over
    assert {p: (p.read_bytes(), p.stat().st_mtime_ns) for p in (out / "images").rglob("*.tar")} == outputs
    assert {p: p.read_bytes() for p in (out / "metrics").rglob("*.parquet")} == metrics_files
    check_run(archive, str(out), {**second, "run_id": first["run_id"]})  # rows still carry the first run's id

    # other settings would skip every finished shard and leave a mix: the run stops before writing
    with pytest.raises(ValueError, match=r"other settings \(assume \[\] -> \['exposure'\]"):
        run_job(archive.input, str(out), assume=("exposure",), strengths={"denoise": 1.0})
    assert {p: p.read_bytes() for p in (out / "metrics").rglob("*.parquet")} == metrics_files

    third = run_job(archive.input, str(out), overwrite=True)
    assert third["counts"]["shards_processed"] == archive.shards and third["counts"]["shards_skipped"] == 0
    check_run(archive, str(out), third)


def test_killed_run_resumes_to_the_same_outputs(tmp_path, local_store):
    shards = 6
    src = build_tar_shards(local_store, "in", shards=shards, samples=3)
    (tmp_path / "in" / "shard-0003.tar").write_bytes(b"not a tar at all")  # a broken shard resumes too
    ref, out = tmp_path / "ref", tmp_path / "out"
    reference = run_job(src, str(ref))

    env = {**os.environ, "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    proc = subprocess.Popen([sys.executable, "-m", "imagemend.pipeline.cli", "run", "--input", src,
                             "--output", str(out), "--run-id", "killed"], cwd=REPO, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.time() + 240
        while not list((out / "_done").glob("*.json")) and proc.poll() is None and time.time() < deadline:
            time.sleep(0.02)
        os.killpg(proc.pid, signal.SIGKILL)
    finally:
        proc.wait()
    done = sorted(p.name for p in (out / "_done").glob("*.json"))
    assert 1 <= len(done) < shards, f"the run should have been killed midway, not after {done}"
    assert not (out / "summary.json").exists()

    resumed = run_job(src, str(out))
    assert resumed["counts"]["shards_skipped"] == len(done)
    assert resumed["counts"]["shards_processed"] == shards - len(done)
    assert {k: resumed["counts"][k] for k in ("records", "restored", "unchanged", "failed")} == \
        {k: reference["counts"][k] for k in ("records", "restored", "unchanged", "failed")}
    for name in done:  # finished shards were not redone
        assert '"run_id": "killed"' in (out / "_done" / name).read_text()
    assert snapshot(out / "images").keys() == {p.replace(str(ref), str(out)) for p in snapshot(ref / "images")}
    for p, data in snapshot(ref / "images").items():
        assert (out / Path(p).relative_to(ref)).read_bytes() == data, p
    assert not list(out.rglob("*.partial"))
    _, errors = same_outputs(local_store, str(out), str(ref))
    assert len(errors) == 1  # the broken shard, reported once


def test_restores_at_once_write_what_one_restore_writes(tmp_path, local_store):
    archive = build_archive(local_store, "tar")
    run_job(archive.input, str(tmp_path / "one"), restores=1, torch_threads=2)
    run_job(archive.input, str(tmp_path / "two"), restores=2, torch_threads=1, batch_images=2)
    same_outputs(local_store, str(tmp_path / "two"), str(tmp_path / "one"))


def test_weights_replaced_in_place_stop_a_rerun(tmp_path, local_store, active_weights):
    """The output's settings name the weights by their digest: the same path with other weights is caught."""
    import shutil

    from imagemend.model.core.weights import DEFAULT_WEIGHTS

    archive = build_archive(local_store, "tar")
    weights, out = tmp_path / "imagemend.model.safetensors", str(tmp_path / "out")
    shutil.copy(DEFAULT_WEIGHTS, weights)
    run_job(archive.input, out, weights=str(weights))
    shutil.copy(active_weights, weights)
    with pytest.raises(ValueError, match="other settings \\(weights_sha256 '"):
        run_job(archive.input, out, weights=str(weights))
    weights.write_bytes(b"not weights")
    with pytest.raises(ValueError, match="not a readable imagemend weights file"):
        run_job(archive.input, out, weights=str(weights))


def test_strength_zero_and_grey_cast_leave_inputs_byte_identical(tmp_path, local_store):
    archive = build_archive(local_store, "files")
    src = Path(archive.input)
    summary = run_job(archive.input, str(tmp_path / "zero"), strengths={t: 0.0 for t in ("denoise", "deblur", "cast")})
    assert summary["counts"]["unchanged"] == len(archive.good) and summary["counts"]["restored"] == 0
    for key in archive.good:
        assert (tmp_path / "zero/images" / key).read_bytes() == (src / key).read_bytes(), key

    run_job(archive.input, str(tmp_path / "cast"), strengths={"cast": 1.0})  # greyscale has no colour cast
    for key in ("a/grey.png", "a/deep.png"):
        assert (tmp_path / "cast/images" / key).read_bytes() == (src / key).read_bytes(), key


def test_image_format_png_renames_and_reencodes(tmp_path, local_store):
    archive = build_archive(local_store, "files")
    out = tmp_path / "out"
    summary = run_job(archive.input, str(out), image_format="png")
    check_run(archive, str(out), summary, image_format="png")
    for r in read_tables(local_store, str(out), "metrics"):
        assert r["output_format"] == "PNG" and r["output_uri"].endswith(".png")
        assert Image.open(out / "images" / (r["key"].rsplit(".", 1)[0] + ".png")).format == "PNG"


def test_memory_filesystem_in_process(memory_store):
    store = memory_store
    archive = build_archive(store, "parquet")
    out = store.join("out")
    check_run(archive, out, run_job(archive.input, out))


def test_cli_exit_codes(tmp_path, local_store, capsys):
    with pytest.raises(SystemExit) as e:
        cli.main(["run", "--input", str(tmp_path / "nothing-here"), "--output", str(tmp_path / "o")])
    assert e.value.code == 2

    archive = build_archive(local_store, "tar")
    import torch
    if not torch.cuda.is_available():  # asking for CUDA without it is refused before listing, not a CPU run
        with pytest.raises(SystemExit) as e:
            cli.main(["run", "--input", archive.input, "--output", str(tmp_path / "gpu"), "--device", "cuda"])
        assert e.value.code == 2
        assert capsys.readouterr().err.strip().splitlines()[-1:] == [
            "imagemend: --device cuda: CUDA is not available on this machine, where the job runs "
            "(use --device auto or cpu)"]
        assert not (tmp_path / "gpu").exists()

    cli.main(["run", "--input", archive.input, "--output", str(tmp_path / "ok"), "--tasks", "denoise,cast",
              "--strength", "denoise=0.5"])
    captured = capsys.readouterr()
    printed = captured.out
    assert "records: 9 = " in printed and "metrics:" in printed and "errors:" in printed
    # the bar counts every record (tar shards: no total before they are read), failures included
    assert "restoring: 9img" in captured.err and "failed=4" in captured.err
    # docs/RUNNING.md's snippet for reading the outputs runs as written (pyarrow only)
    running = (REPO / "docs" / "RUNNING.md").read_text()
    snippet = running[running.index("import pyarrow.dataset as ds"):].split("```")[0]
    scope: dict = {}
    exec(snippet.replace('"restored/', f'"{tmp_path / "ok"}/'), scope)
    assert scope["metrics"].num_rows + scope["errors"].num_rows == 9
    assert "denoise_applied" in scope["metrics"].column_names


def test_unknown_flags_exit_2_naming_them_and_beam_flags_pass(tmp_path, local_store, capsys):
    archive = build_archive(local_store, "tar")
    out = tmp_path / "out"
    for flags, says in ((["--qualty", "80"], "unrecognized arguments: --qualty 80 (--qualty: did you mean --quality?)"),
                        (["--direct_num_workers", "two"], "argument --direct_num_workers: invalid int value: 'two'"),
                        (["--runner", "FnApiRunner", "--qualty=80"], "unrecognized arguments: --qualty=80")):
        with pytest.raises(SystemExit) as e:
            cli.main(["run", "--input", archive.input, "--output", str(out), *flags])
        err = capsys.readouterr().err
        assert e.value.code == 2 and f"imagemend run: error: {says}" in err, err
        assert not out.exists()  # refused before anything ran
    # Beam's own flags (here the in-process runner, spelled out) pass; flags after `--` go to the runner unchecked
    cli.main(["run", "--input", archive.input, "--output", str(out), "--tasks", "cast", "--runner", "FnApiRunner",
              "--direct_running_mode=in_memory", "--", "--aJavaRunnerOption=1"])
    assert "records: 9 = " in capsys.readouterr().out


def test_launch_errors_are_one_line_and_write_nothing(tmp_path, local_store, s3_endpoint, capsys):
    archive = build_archive(local_store, "tar")
    in_the_way = tmp_path / "a-file"
    in_the_way.write_bytes(b"not a folder")
    s3 = {"key": "testing", "secret": "testing", "client_kwargs": {"region_name": "us-east-1"}}
    closed = {**s3, "client_kwargs": {**s3["client_kwargs"], "endpoint_url": f"http://127.0.0.1:{free_port()}"},
              "config_kwargs": {"retries": {"max_attempts": 1}}}
    missing_bucket = {**s3, "client_kwargs": {**s3["client_kwargs"], "endpoint_url": s3_endpoint}}
    cases = [  # (--input, --output, extra flags, what the line says)
        (archive.input, str(in_the_way / "out"), [], f"cannot write the output {in_the_way}/out: Not a directory"),
        ("s3://photos/in", str(tmp_path / "o1"), ["--input-storage-options", json.dumps(closed)],
         "cannot list the input s3://photos/in: Could not connect to the endpoint URL"),
        (archive.input, "s3://no-such-bucket/out", ["--output-storage-options", json.dumps(missing_bucket)],
         "cannot write the output s3://no-such-bucket/out: "),
    ]
    for src, dst, flags, says in cases:
        with pytest.raises(SystemExit) as e:
            cli.main(["run", "--input", src, "--output", dst, *flags])
        lines = capsys.readouterr().err.strip().splitlines()  # the S3 server's request log goes there too
        assert e.value.code == 1 and lines[-1].startswith(f"imagemend: error: {says}"), lines
        assert not any("Traceback" in line for line in lines), lines
    assert in_the_way.read_bytes() == b"not a folder" and not (tmp_path / "o1").exists()


def test_ctrl_c_says_one_line_exits_130_and_a_rerun_finishes(tmp_path, local_store):
    shards = 12
    src = build_tar_shards(local_store, "in", shards=shards, samples=3)
    out = tmp_path / "out"
    env = {**os.environ, "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    proc = subprocess.Popen([sys.executable, "-m", "imagemend.pipeline.cli", "run", "--input", src,
                             "--output", str(out)],
                            cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))  # as a terminal's
    try:
        deadline = time.time() + 240
        while not list((out / "_done").glob("*.json")) and proc.poll() is None and time.time() < deadline:
            time.sleep(0.02)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=120)
    finally:
        proc.kill()
    assert proc.returncode == 130, err
    assert err.rstrip().splitlines()[-1] == "interrupted: rerun the same command to finish"
    assert "Traceback" not in err and "the job failed" not in err, err
    done = len(list((out / "_done").glob("*.json")))
    assert done < shards, "the run should have been interrupted midway"
    resumed = run_job(src, str(out))
    assert resumed["counts"]["shards_skipped"] == done and resumed["counts"]["records"] == 3 * shards


def test_version_and_schema_commands(capsys):
    from importlib import metadata

    with pytest.raises(SystemExit) as e:
        cli.main(["--version"])
    assert e.value.code == 0 and capsys.readouterr().out.strip() == f"imagemend {metadata.version('imagemend')}"
    cli.main(["schema"])
    out = capsys.readouterr().out
    assert "## metrics/*.parquet" in out and "## errors/*.parquet" in out
    assert "| `estimates_before` | map<string, double> |" in out and "noise_rms" in out
    cli.main(["schema", "--eval"])
    assert "psnr" in capsys.readouterr().out


def test_every_decision_has_its_reason_and_the_summary_counts_them(tmp_path, local_store, caplog, capsys):
    """Per record and task: applied, jpeg noise floor, not requested, disabled by weights or below threshold;
    the same counts per task, the failures by stage and the Beam counters in summary.json; a warning at launch
    for a task asked for that the weights keep off (the shipped weights disable cast)."""
    archive = build_archive(local_store, "files")
    out = str(tmp_path / "o")
    with caplog.at_level(logging.WARNING, logger="imagemend"):
        summary = run_job(archive.input, out, strengths={"denoise": 1.0, "cast": 1.0})
    assert any("keep cast off" in r.getMessage() for r in caplog.records)
    rows = read_tables(local_store, out, "metrics")
    assert {r["cast_reason"] for r in rows} <= {"disabled by weights", "grey image"}
    assert {r["deblur_reason"] for r in rows} == {"not requested"}
    jpeg = [r["format"] == "JPEG" for r in rows]  # a JPEG is denoised at least at the floor (RestoreConfig)
    assert any(jpeg) and not all(jpeg)
    assert {r["denoise_reason"] for r, j in zip(rows, jpeg) if j} <= {"applied", "jpeg noise floor"}
    assert {r["denoise_reason"] for r, j in zip(rows, jpeg) if not j} <= {"applied", "below threshold"}
    assert all(r["denoise_applied"] == (r["denoise_reason"] in ("applied", "jpeg noise floor")) for r in rows)
    saved = json.loads(local_store.fs.cat_file(local_store.fs._strip_protocol(out) + "/summary.json"))
    assert sum(saved["tasks"]["deblur"].values()) == len(rows) == saved["counts"]["records"] - saved["counts"]["failed"]
    assert sum(n for kinds in saved["failures"].values() for n in kinds.values()) == saved["counts"]["failed"]
    assert saved["beam_counters"]["images"] == summary["beam_counters"]["images"] > 0
    err = capsys.readouterr().err  # loose files are counted when listed: the bar has a total
    assert "restoring: 100%" in err and f"{saved['records_listed']}/{saved['records_listed']}" in err


def test_a_seeded_sample_tries_settings_and_a_full_run_after_it_does_every_record_once(tmp_path, local_store):
    from PIL import Image as PILImage

    src = tmp_path / "in"
    src.mkdir()
    for i in range(12):
        PILImage.fromarray(np.full((24, 32, 3), 10 * i, np.uint8)).save(src / f"p{i:02d}.png")
    out = str(tmp_path / "o")
    first = run_job(str(src), out, sample=4, seed=3, files_per_shard=5)
    again = run_job(str(src), str(tmp_path / "o2"), sample=4, seed=3, files_per_shard=5)
    keys = sorted(r["key"] for r in read_tables(local_store, out, "metrics"))
    assert first["counts"]["records"] == 4 and len(keys) == 4 and first["sample"] == 4
    assert keys == sorted(r["key"] for r in read_tables(local_store, str(tmp_path / "o2"), "metrics"))  # seeded
    assert again["counts"]["records"] == 4
    full = run_job(str(src), out, files_per_shard=5)  # the sampled shards are redone whole
    rows = read_tables(local_store, out, "metrics")
    assert sorted(r["key"] for r in rows) == [f"p{i:02d}.png" for i in range(12)] and full["sample"] is None


def test_a_runner_that_cannot_start_leaves_nothing_in_the_output(tmp_path, local_store, capsys):
    """As DataflowRunner without its extra once did: the runner is made before the output is touched."""
    archive = build_archive(local_store, "tar")
    with pytest.raises(SystemExit) as e:
        cli.main(["run", "--input", archive.input, "--output", str(tmp_path / "out"),
                  "--runner", "imagemend_missing_runner_package.Runner"])
    assert e.value.code == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("imagemend: error: the runner cannot start:") and "imagemend_missing" in err[-1]
    assert not (tmp_path / "out").exists()


def test_a_clean_jpeg_is_denoised_at_the_floor_unless_it_is_turned_off(tmp_path, local_store):
    """The default denoises a JPEG at RestoreConfig.jpeg_noise_floor (reason 'jpeg noise floor', the file written
    again) and a PNG of the same pixels not at all; --jpeg-noise-floor 0 gives a clean JPEG back byte for byte;
    the floor is one of the run's settings, so resuming with another stops."""
    from skimage import data

    src = tmp_path / "in"
    src.mkdir()
    photo = data.chelsea()[:160, :224]
    Image.fromarray(photo).save(src / "cat.jpg", quality=90)
    Image.fromarray(photo).save(src / "cat.png")
    run_job(str(src), str(tmp_path / "on"))
    rows = {r["key"]: r for r in read_tables(local_store, str(tmp_path / "on"), "metrics")}
    assert rows["cat.jpg"]["denoise_reason"] == "jpeg noise floor" and rows["cat.jpg"]["status"] == "restored"
    assert rows["cat.png"]["denoise_reason"] == "below threshold" and rows["cat.png"]["status"] == "unchanged"
    run_job(str(src), str(tmp_path / "off"), jpeg_noise_floor=0.0)
    off = {r["key"]: r for r in read_tables(local_store, str(tmp_path / "off"), "metrics")}
    assert off["cat.jpg"]["status"] == "unchanged" and off["cat.jpg"]["denoise_reason"] == "below threshold"
    assert (tmp_path / "off" / "images" / "cat.jpg").read_bytes() == (src / "cat.jpg").read_bytes()
    with pytest.raises(ValueError, match=r"other settings \(jpeg_noise_floor 0.0 -> 4.0"):
        run_job(str(src), str(tmp_path / "off"))
