"""Tone and colour read per group of photos (issue #21), through the real job: by default a group corrects the
cast alone (a folder with a shared green cast is corrected, a folder with a shared -1 EV is tested, reported
and left as it came); opted in with --group-tasks, a folder that shares a -1 EV shift is detected and corrected
while a clean folder is left alone; groups by folder, EXIF camera model and a
Parquet column; a group under --min-group falls back to per-photo behaviour; the groups Parquet explains; a
rerun reads the kept pass-1 readings instead of the photos, and a rerun with another grouping stops.

The photos are crops of scikit-image's colour photos, darkened in linear light with the model's own damage.
"""

from functools import cache
import io
from pathlib import Path
import pickle

import numpy as np
from PIL import Image
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from imagemend.model.core.groups import NOT_CHOSEN
from imagemend.model.damage.degrade import damaged, fixed_params
from imagemend.model.evaluation.suites import CASES
from imagemend.model.metrics import psnr
from imagemend.pipeline import groups, job, shard
from imagemend.pipeline.options import RunOptions
from imagemend.pipeline.sources import Record, Shard
from tests.support.jobs import run_job

N = 10  # photos per group: over the default --min-group of 8
ALL = ("cast", "exposure", "contrast")  # --group-tasks all: exposure and contrast opted in
SIDE = 160


@cache
def clean_photos() -> tuple[np.ndarray, ...]:
    from skimage import data

    out = []
    for name in ("astronaut", "chelsea", "coffee", "rocket"):
        a = getattr(data, name)()
        h, w = a.shape[:2]
        out += [a[y:y + SIDE, x:x + SIDE] for y, x in ((0, 0), (h // 3, w // 3), (h - SIDE, w - SIDE))]
    return tuple(np.ascontiguousarray(a) for a in out[:N])


@cache
def dark_photos() -> tuple[np.ndarray, ...]:
    """Every photo darkened by 2**-1 in linear light (-1 EV), as a batch of underexposed scans would be."""
    return tuple(damaged(list(clean_photos()), fixed_params(1, exposure_ev=-1), seed=0))


@cache
def green_photos() -> tuple[np.ndarray, ...]:
    """Every photo with the suites' green cast (cast-green: gains 0.77, 1.09, 0.77 at constant luminance), as a
    roll printed on a shifted paper would be. (The suites' cool cast lies along the warm-cool spread of clean
    photos' colour: on these warm crops a prior of clean groups does not reject it at n = 10.)"""
    gains = dict(CASES["cast-green"].damage)["cast_gains"]
    return tuple(damaged(list(clean_photos()), fixed_params(1, cast_gains=gains), seed=0))


def png(a: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(a).save(buf, "PNG")
    return buf.getvalue()


def jpeg(a: np.ndarray, model: str | None = None, taken: str | None = None) -> bytes:
    exif = Image.Exif()
    if model:
        exif[groups.EXIF_MODEL] = model
    if taken:
        exif.get_ifd(groups.EXIF_IFD)[groups.EXIF_DATETIME_ORIGINAL] = taken
    buf = io.BytesIO()
    Image.fromarray(a).save(buf, "JPEG", quality=95, exif=exif.tobytes() if (model or taken) else b"")
    return buf.getvalue()


def write(folder: Path, photos, name: str = "{:02d}.png", encode=png) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for i, a in enumerate(photos):
        (folder / name.format(i)).write_bytes(encode(a))


def metrics(out: Path) -> list[dict]:
    return [r for p in sorted((out / "metrics").rglob("*.parquet")) for r in pq.read_table(p).to_pylist()]


def group_rows(out: Path) -> dict[str, dict]:
    return {r["group"]: r for r in pq.read_table(out / "groups" / "groups.parquet").to_pylist()}


def decoded(path: Path) -> np.ndarray:
    return np.asarray(Image.open(path).convert("RGB"))


def psnr8(a: np.ndarray, b: np.ndarray) -> float:
    return float(psnr(a, b))


@pytest.fixture(scope="module")
def folder_run(tmp_path_factory):
    """dark/ (a shared -1 EV) and clean/ beside it, over several shards each, grouped by folder (the default),
    every tone task opted in (--group-tasks all)."""
    root = tmp_path_factory.mktemp("groups")
    src, out = root / "in", root / "out"
    write(src / "dark", dark_photos())
    write(src / "clean", clean_photos())
    summary = run_job(str(src), str(out), files_per_shard=4, group_tasks=ALL)  # a group spans three shards
    return src, out, summary


@pytest.fixture(scope="module")
def default_run(tmp_path_factory):
    """dark/ (a shared -1 EV), green/ (a shared green cast) and clean/, with the default --group-tasks (cast)."""
    root = tmp_path_factory.mktemp("groups-default")
    src, out = root / "in", root / "out"
    write(src / "dark", dark_photos())
    write(src / "green", green_photos())
    write(src / "clean", clean_photos())
    return src, out, run_job(str(src), str(out))


def test_by_default_a_shared_cast_is_corrected_and_a_shared_underexposure_is_only_reported(default_run):
    src, out, summary = default_run
    g = group_rows(out)
    assert set(g) == {"dark", "green", "clean"}
    # the green folder's cast: corrected from the group's reading, each photo closer to its clean original
    assert g["green"]["cast_corrected"] and g["green"]["cast_reason"] == "corrected"
    rows = {r["key"]: r for r in metrics(out)}
    assert all(rows[f"green/{i:02d}.png"]["cast_reason"] == "group" for i in range(N))
    before = [psnr8(d, c) for d, c in zip(green_photos(), clean_photos())]
    after = [psnr8(decoded(out / "images" / "green" / f"{i:02d}.png"), c) for i, c in enumerate(clean_photos())]
    # on these ten scikit-image crops +2.8 dB: the mixture gives photos whose own colours cancel the cast less of
    # the correction; the issue's +3 dB target is the evaluation's (groups of 20 photos, model/evaluation/groups.py)
    assert np.mean(after) >= np.mean(before) + 2, (np.mean(before), np.mean(after))
    assert sum(a > b for a, b in zip(after, before)) >= N - 1
    print(f"green folder PSNR {np.mean(before):.2f} -> {np.mean(after):.2f} dB")
    # the dark folder's -1 EV: tested and read as a darkening, but not a group task by default
    dark = g["dark"]
    assert not dark["exposure_corrected"] and dark["exposure_reason"] == NOT_CHOSEN and "--group-tasks" in NOT_CHOSEN
    assert dark["exposure_statistic"] > dark["exposure_critical"] and dark["exposure_estimate"][0] < -0.5
    assert not dark["cast_corrected"] and dark["cast_reason"] == "clean prior not rejected"
    for i in range(N):
        r = rows[f"dark/{i:02d}.png"]
        assert r["group"] == "dark" and r["exposure_reason"] != "group" and r["contrast_reason"] != "group"
        c = rows[f"clean/{i:02d}.png"]
        assert not any(c[f"{t}_applied"] for t in ALL)
    assert summary["tasks"]["exposure"].get("group", 0) == 0 and summary["tasks"]["cast"]["group"] == N
    assert summary["groups"]["group_tasks"] == ["cast"]
    assert summary["groups"]["decisions"]["dark"]["exposure"] == NOT_CHOSEN
    assert summary["groups"]["counts"]["exposure"] == {NOT_CHOSEN: 3}
    assert summary["groups"]["counts"]["cast"] == {"corrected": 1, "clean prior not rejected": 2}
    assert NOT_CHOSEN in job.report(summary)


def test_a_folder_with_a_shared_underexposure_is_corrected_and_a_clean_folder_is_left_alone(folder_run):
    src, out, summary = folder_run
    rows = {r["key"]: r for r in metrics(out)}
    assert len(rows) == 2 * N and {r["group"] for r in rows.values()} == {"dark", "clean"}
    for i in range(N):
        dark, clean = rows[f"dark/{i:02d}.png"], rows[f"clean/{i:02d}.png"]
        assert dark["group"] == "dark" and dark["exposure_applied"] and dark["exposure_reason"] == "group"
        assert not any(clean[f"{t}_applied"] for t in ("cast", "exposure", "contrast"))
        assert clean["exposure_reason"] == "clean prior not rejected"
        written = out / "images" / "clean" / f"{i:02d}.png"
        assert (written.read_bytes() == (src / "clean" / f"{i:02d}.png").read_bytes()
                or psnr8(decoded(written), clean_photos()[i]) >= 40)
    before = [psnr8(d, c) for d, c in zip(dark_photos(), clean_photos())]
    after = [psnr8(decoded(out / "images" / "dark" / f"{i:02d}.png"), c) for i, c in enumerate(clean_photos())]
    assert np.mean(after) >= np.mean(before) + 3, (np.mean(before), np.mean(after))
    assert sum(a > b for a, b in zip(after, before)) >= N - 1
    print(f"dark folder PSNR {np.mean(before):.2f} -> {np.mean(after):.2f} dB")


def test_the_groups_parquet_and_the_summary_give_each_groups_decision_and_reason(folder_run):
    _, out, summary = folder_run
    g = group_rows(out)
    assert set(g) == {"dark", "clean"} and g["dark"]["size"] == N == g["clean"]["size"]
    assert g["dark"]["exposure_corrected"] and g["dark"]["exposure_reason"] == "corrected"
    assert g["dark"]["exposure_statistic"] > g["dark"]["exposure_critical"]
    assert -2 < g["dark"]["exposure_estimate"][0] < -0.5  # read as a darkening (-1.42 EV with the gains of 6acf6aa)
    assert g["dark"]["reading_exposure_ev"] < g["clean"]["reading_exposure_ev"] - 0.6
    for t in ("cast", "exposure", "contrast"):
        assert not g["clean"][f"{t}_corrected"] and g["clean"][f"{t}_reason"] == "clean prior not rejected"
    assert summary["groups"]["group_by"] == "folder"
    assert summary["groups"]["decisions"]["dark"]["exposure"] == "corrected"
    assert summary["groups"]["counts"]["exposure"] == {"corrected": 1, "clean prior not rejected": 1}
    assert summary["tasks"]["exposure"]["group"] == N
    assert "groups:          2 by folder" in job.report(summary)  # the terminal's lines
    stats = sorted(p.name for p in (out / "_stats").rglob("*.parquet"))
    assert len(stats) == 6  # one per shard: 3 + 3


def test_a_rerun_after_completion_reads_the_kept_readings_not_the_photos(folder_run):
    src, out, first = folder_run
    assert first["beam_counters"]["group_stats_read_photos"] == 2 * N
    again = run_job(str(src), str(out), files_per_shard=4, group_tasks=ALL)
    assert again["counts"]["shards_skipped"] == 6
    assert again["beam_counters"].get("group_stats_read_photos", 0) == 0
    assert again["beam_counters"]["group_stats_kept_shards"] == 6
    assert again["groups"]["decisions"] == first["groups"]["decisions"]


def test_a_corrected_groups_photos_are_told_their_damage_by_the_reading_pass_1_kept(tmp_path, monkeypatch):
    """Pass 2 does not read a photo of a corrected group again: the reading its group was decided on is in
    _stats/, and tells it the same damage."""
    from imagemend.model.core import groups as mg

    calls = []
    reading = mg.photo_reading
    monkeypatch.setattr(mg, "photo_reading", lambda *a, **k: calls.append(1) or reading(*a, **k))
    write(tmp_path / "in" / "green", green_photos())
    summary = run_job(str(tmp_path / "in"), str(tmp_path / "out"), files_per_shard=4)
    assert summary["groups"]["counts"]["cast"] == {"corrected": 1}
    assert len(calls) == N  # pass 1's, one per photo
    rows = metrics(tmp_path / "out")
    assert len(rows) == N and all(r["cast_reason"] == "group" for r in rows)
    images = {p.name: p.read_bytes() for p in (tmp_path / "out" / "images").rglob("*.png")}
    monkeypatch.setattr(shard, "kept_readings", lambda *a: {})  # as where pass 1 could not keep them
    calls.clear()
    again = run_job(str(tmp_path / "in"), str(tmp_path / "again"), files_per_shard=4)
    assert len(calls) == 2 * N and again["groups"]["decisions"] == summary["groups"]["decisions"]
    assert {p.name: p.read_bytes() for p in (tmp_path / "again" / "images").rglob("*.png")} == images


def test_a_rerun_with_another_grouping_stops(folder_run):
    src, out, _ = folder_run
    before = {p: p.read_bytes() for p in (out / "metrics").rglob("*.parquet")}
    with pytest.raises(ValueError, match=r"other settings \(.*group_by 'folder' -> 'archive'"):
        run_job(str(src), str(out), files_per_shard=4, group_tasks=ALL, group_by="archive")
    with pytest.raises(ValueError, match=r"min_group 8 -> 20"):
        run_job(str(src), str(out), files_per_shard=4, group_tasks=ALL, min_group=20)
    with pytest.raises(ValueError, match=r"group_tasks \['cast', 'exposure', 'contrast'\] -> \['cast'\]"):
        run_job(str(src), str(out), files_per_shard=4)
    assert {p: p.read_bytes() for p in (out / "metrics").rglob("*.parquet")} == before


def test_a_group_under_min_group_falls_back_to_per_photo_behaviour(tmp_path):
    src, out = tmp_path / "in", tmp_path / "out"
    write(src / "dark", dark_photos())
    summary = run_job(str(src), str(out), min_group=N + 1, group_tasks=ALL)
    g = group_rows(out)["dark"]
    for t in ("cast", "exposure", "contrast"):
        assert not g[f"{t}_corrected"] and g[f"{t}_reason"] == "too small"
    assert summary["groups"]["counts"]["exposure"] == {"too small": 1}
    rows = metrics(out)
    assert {r["group"] for r in rows} == {"dark"} and "group" not in {r["exposure_reason"] for r in rows}
    alone = tmp_path / "alone"  # the same photos read one by one, as before groups
    run_job(str(src), str(alone), group_by="none", group_tasks=ALL)
    per_photo = {r["key"]: r for r in metrics(alone)}
    assert {r["group"] for r in per_photo.values()} == {None} and not (alone / "groups").exists()
    assert sum(r["exposure_applied"] for r in rows) < N  # per photo, most -1 EV photos are not told from dark ones
    for r in rows:
        assert {c: r[c] for c in r if c.endswith(("_applied", "_reason"))} == {
            c: per_photo[r["key"]][c] for c in r if c.endswith(("_applied", "_reason"))}
        assert (out / "images" / r["key"]).read_bytes() == (alone / "images" / r["key"]).read_bytes()


def test_groups_by_exif_camera_model(tmp_path):
    """One folder, two cameras: the one whose photos share -1 EV is corrected; a photo without a model is alone."""
    src, out = tmp_path / "in", tmp_path / "out"
    src.mkdir()
    for i, (d, c) in enumerate(zip(dark_photos(), clean_photos())):
        (src / f"a{i:02d}.jpg").write_bytes(jpeg(d, "DimCam 1"))
        (src / f"b{i:02d}.jpg").write_bytes(jpeg(c, "FineCam 2"))
    (src / "none.jpg").write_bytes(jpeg(clean_photos()[0]))
    run_job(str(src), str(out), group_by="exif:Model", group_tasks=ALL)
    g = group_rows(out)
    assert set(g) == {"DimCam 1", "FineCam 2"}
    assert g["DimCam 1"]["exposure_corrected"] and not g["FineCam 2"]["exposure_corrected"]
    rows = {r["key"]: r for r in metrics(out)}
    assert rows["none.jpg"]["group"] is None and rows["none.jpg"]["exposure_reason"] != "group"
    assert all(rows[f"a{i:02d}.jpg"]["exposure_reason"] == "group" for i in range(N))
    assert not any(rows[f"b{i:02d}.jpg"]["exposure_applied"] for i in range(N))


def test_groups_by_a_parquet_column(tmp_path):
    """Rows of one Parquet shard grouped by their `roll` column; its values name the groups."""
    src, out = tmp_path / "in", tmp_path / "out"
    src.mkdir()
    rows = [{"key": f"d{i}", "jpg": png(a), "roll": "roll-7"} for i, a in enumerate(dark_photos())]
    rows += [{"key": f"c{i}", "jpg": png(a), "roll": "roll-8"} for i, a in enumerate(clean_photos())]
    pq.write_table(pa.Table.from_pylist(rows), src / "part-0.parquet")
    summary = run_job(str(src), str(out), group_by="column:roll", group_tasks=("exposure",))
    g = group_rows(out)
    assert set(g) == {"roll-7", "roll-8"} and g["roll-7"]["group_by"] == "column:roll"
    assert g["roll-7"]["exposure_corrected"] and not g["roll-8"]["exposure_corrected"]
    m = {r["key"]: r for r in metrics(out)}
    assert m["d0"]["group"] == "roll-7" and m["d0"]["exposure_reason"] == "group"
    assert m["c0"]["group"] == "roll-8" and not m["c0"]["exposure_applied"]
    assert summary["tasks"]["exposure"]["group"] == N


# ---------------------------------------------------------------- units: keys, flags, overrides

def _rec(key: str, data: bytes = b"", row: dict | None = None) -> Record:
    return Record("s", 0, key, "uri", data, key, {"row": row} if row is not None else {})


def test_group_keys_of_each_kind():
    files = Shard("a/part-00000", "files", "file:///in", ("a/b/x.png",), (1,))
    tar = Shard("batch/000", "tar", "file:///in", ("batch/000.tar",), (1,))
    assert groups.group_key(_rec("a/b/x.png"), files, "folder") == "a/b"
    assert groups.group_key(_rec("x.png"), files, "folder") == groups.ROOT
    assert groups.group_key(_rec("k1"), tar, "folder") == "batch/000.tar"
    assert groups.group_key(_rec("x.png"), files, "shard") == "a/part-00000"
    assert groups.group_key(_rec("x.png"), files, "archive") == "archive"
    photo = jpeg(clean_photos()[0][:32, :32], "Cam X", "2021:06:30 10:11:12")
    assert groups.group_key(_rec("x.jpg", photo), files, "exif:Model") == "Cam X"
    assert groups.group_key(_rec("x.jpg", photo), files, "exif:date") == "2021-06-30"
    assert groups.group_key(_rec("x.jpg", jpeg(clean_photos()[0][:32, :32])), files, "exif:date") is None
    assert groups.group_key(_rec("k", row={"roll": 3}), tar, "column:roll") == "3"
    assert groups.group_key(_rec("k", row={"roll": None}), tar, "column:roll") is None


def test_group_flags_reach_the_options_and_bad_ones_are_refused():
    import argparse

    from imagemend.pipeline.options import add_arguments, from_args

    parser = argparse.ArgumentParser()
    add_arguments(parser)
    args = parser.parse_args(["--input", "i", "--output", "o", "--group-by", "exif:date", "--min-group", "5",
                              "--group-alpha", "0.05", "--group-tasks", "contrast,cast"])
    opts = from_args(args)
    assert (opts.groups.group_by, opts.groups.min_group, opts.groups.group_alpha) == ("exif:date", 5, 0.05)
    assert opts.groups.group_tasks == ("cast", "contrast") and opts.settings()["group_tasks"] == ["cast", "contrast"]
    default = from_args(parser.parse_args(["--input", "i", "--output", "o"]))
    assert default.groups.group_tasks == ("cast",) == RunOptions.of("i", "o").groups.group_tasks
    assert default.groups.group_tasks == groups.mg.GROUP_TASKS
    every = from_args(parser.parse_args(["--input", "i", "--output", "o", "--group-tasks", "all"]))
    assert every.groups.group_tasks == ALL
    for bad in ("denoise", "", "cast,light"):
        with pytest.raises(SystemExit):
            parser.parse_args(["--input", "i", "--output", "o", "--group-tasks", bad])
    assert RunOptions.of("i", "o").groups.group_by == "folder"
    assert opts.settings()["group_by"] == "exif:date" and opts.settings()["group_alpha"] == 0.05
    for bad in ({"group_by": "camera"}, {"group_by": "column:"}, {"min_group": 0}, {"group_alpha": 1.5},
                {"group_tasks": ("deblur",)}, {"group_tasks": ()}):
        with pytest.raises(ValueError):
            RunOptions.of("i", "o", **bad)


def test_a_large_group_is_decided_on_the_same_uniform_sample_however_its_readings_are_combined():
    """CollectReadings keeps at most `limit` readings of a group (--group-by archive may hold millions of photos):
    the same ones whichever workers combined which parts, in whatever order, and the whole count."""
    items = [(f"shard-{i % 7}", i, (float(i), 0.0, 0.0, 0.0)) for i in range(1000)]
    fn = groups.CollectReadings(limit=50)

    def combined(parts: list[list]) -> tuple[int, list]:
        accs = []
        for part in parts:
            acc = fn.create_accumulator()
            for x in part:
                acc = fn.add_input(acc, x)
            accs.append(acc)
        return fn.extract_output(fn.merge_accumulators(accs))

    whole = combined([items])
    rng = np.random.default_rng(0)
    shuffled = [items[i] for i in rng.permutation(len(items))]
    assert combined([shuffled[:300], shuffled[300:310], shuffled[310:]]) == whole
    assert combined([[x] for x in items[::-1]]) == whole
    n, sample = whole
    assert n == 1000 and len(sample) == 50 and sample == sorted(sample)
    assert 300 < np.mean([x[2][0] for x in sample]) < 700  # spread over the group, not its first photos
    assert combined([items[:20]]) == (20, sorted(items[:20]))  # a group under the limit: every reading


def test_a_group_over_the_readings_limit_is_decided_on_a_sample_and_every_photo_corrected(tmp_path, monkeypatch):
    """Through the job, with the limit lowered to 8: the green folder's decision rests on 8 of its 10 readings, and
    all 10 photos, sampled or not, get the cast correction from their own readings. (Eight of these mixed crops
    fit the mixture less well than ten, +0.6 dB here against +8.8 with every reading, and one photo loses 1.5 dB:
    the mixture wants many photos, which is why the limit is 4,096.)"""
    monkeypatch.setattr(groups, "MAX_READINGS", 8)
    write(tmp_path / "in" / "green", green_photos())
    run_job(str(tmp_path / "in"), str(tmp_path / "out"))
    g = group_rows(tmp_path / "out")["green"]
    assert (g["size"], g["readings"]) == (N, 8) and g["cast_corrected"]
    rows = metrics(tmp_path / "out")
    assert len(rows) == N and all(r["cast_reason"] == "group" for r in rows)
    before = [psnr8(d, c) for d, c in zip(green_photos(), clean_photos())]
    after = [psnr8(decoded(tmp_path / "out" / "images" / "green" / f"{i:02d}.png"), c)
             for i, c in enumerate(clean_photos())]
    assert np.mean(after) > np.mean(before) + 0.3, (before, after)


def test_assume_overrides_the_group_and_tasks_not_asked_for_are_not_corrected():
    rows = [("s", i, tuple(r)) for i, r in enumerate(np.array([groups.mg.photo_reading(a) for a in dark_photos()]))]
    readings = (len(rows), rows)
    prior = groups.mg.GroupPrior.load()
    _, d = groups.decide(("g", readings), prior, RunOptions.of("i", "o"))  # the default: exposure tested, not applied
    assert d["tasks"]["exposure"]["reason"] == NOT_CHOSEN and not d["shares"]
    assert d["tasks"]["exposure"]["statistic"] > d["tasks"]["exposure"]["critical"]
    assert all(groups.photo_tone(d, a) is None for a in dark_photos())
    _, d = groups.decide(("g", readings), prior, RunOptions.of("i", "o", group_tasks=ALL))
    assert d["tasks"]["exposure"]["corrected"] and set(d["shares"]) == {"exposure"}
    assert all(groups.photo_tone(d, a)["exposure"] < -0.5 for a in dark_photos())
    _, d = groups.decide(("g", readings), prior, RunOptions.of("i", "o", assume=("exposure",), group_tasks=ALL))
    assert d["tasks"]["exposure"]["reason"] == "told by --assume" and not d["shares"]
    _, d = groups.decide(("g", readings), prior, RunOptions.of("i", "o", strengths={"denoise": 1.0}, group_tasks=ALL))
    assert d["tasks"]["exposure"]["reason"] == "not requested" and not d["shares"]


def test_the_side_input_holds_one_decision_per_group_and_tells_each_photo_what_the_model_does():
    """Pass 2 tells a photo its damage from its own reading and the group's fitted mixture: the same damage the
    model's decision gives it, while the decision the side input carries does not grow with the group."""
    photos = [*green_photos(), *clean_photos()[:3]]  # three clean photos among the green: each its own share
    readings = np.array([groups.mg.photo_reading(a) for a in photos])
    prior = groups.mg.GroupPrior.load()
    model = groups.mg.decide(readings, prior, 0.2)  # alpha 0.2: these crops scatter widely (test_groups.py, model)
    assert model.tasks["cast"].corrected
    rows = [("s", i, tuple(r)) for i, r in enumerate(readings)]
    _, d = groups.decide(("g", (len(rows), rows)), prior, RunOptions.of("i", "o", group_alpha=0.2))
    for a, want in zip(photos, model.tone()):
        np.testing.assert_allclose(groups.photo_tone(d, a)["cast"], want["cast"], atol=1e-12)
    told = [groups.photo_tone(d, a)["cast"] for a in photos]
    assert np.linalg.norm(told[:N], axis=1).mean() > 0.2 and np.linalg.norm(told[N:], axis=1).max() < 0.05
    rows = [("s", i, tuple(r)) for i, r in enumerate([*readings, *readings])]
    _, twice = groups.decide(("g", (len(rows), rows)), prior, RunOptions.of("i", "o", group_alpha=0.2))
    assert set(d) == set(twice) == {"group", "size", "readings", "reading", "tasks", "shares"}
    assert len(pickle.dumps(twice["shares"])) == len(pickle.dumps(d["shares"]))
