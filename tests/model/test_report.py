"""`imagemend report` and what it stands on: classical methods that work, scores that never drop a failure."""

import argparse
from dataclasses import replace
import functools
import json
import shlex

import numpy as np
from PIL import Image
import pytest
from skimage import data

from imagemend.model.core.config import LossConfig, TrainConfig
from imagemend.model.evaluation import baselines
from imagemend.model.evaluation.scoring import Method, ScoreCache, identity, score_all, summarise
from imagemend.model.evaluation.suites import CASES
from imagemend.model.metrics import capped_psnr
from imagemend.model.reports import quality as report
from imagemend.model.training import train

PHOTO = data.astronaut()[60:188, 150:310]


@pytest.mark.parametrize("b", [b for b in baselines.BASELINES if b.name != "bm3d"], ids=lambda b: f"{b.task}-{b.name}")
def test_each_classical_method_repairs_its_own_damage(b):
    case = {"denoise": "noise25", "deblur": "blur-gauss2", "cast": "cast-warm", "exposure": "exposure-2",
            "contrast": "contrast0.55"}[b.task]
    # colour constancy methods assume a neutral scene (grey on average, white highlights): give them one
    photo = np.repeat(data.camera()[100:228, 150:310, None], 3, 2) if b.task == "cast" else PHOTO
    bad = CASES[case].apply(photo, "photo")
    out = b.run(bad, CASES[case])
    assert out.shape == photo.shape and out.dtype == np.uint8
    assert capped_psnr(photo, out) > capped_psnr(photo, bad) + 0.5, b.name


def test_bm3d_given_the_true_sigma_beats_non_local_means():
    bm3d = next(b for b in baselines.BASELINES if b.name == "bm3d")
    if not bm3d.available:
        pytest.skip("the optional bm3d package is not installed (pip install -e .[report])")
    small = PHOTO[:48, :48]
    case = CASES["noise25"]
    bad = case.apply(small, "small")
    assert capped_psnr(small, bm3d.run(bad, case)) > capped_psnr(small, baselines.nl_means(bad, 25)) + 0.3


def test_a_failing_or_misshapen_method_is_reported_never_averaged():
    photos = {"a.png": PHOTO, "b.png": data.coffee()[:128, :160]}
    crop = Method("crops", "classical", lambda x, c: x[:-1])  # a method with a bug: its output is one row short
    nothing = Method("nothing", "classical", lambda x, c: None)  # returns no image
    raises = Method("raises", "classical", lambda x, c: 1 / 0)
    methods = [identity(), crop, nothing, raises]
    scores = score_all(lambda c: methods, [CASES["noise15"]], photos, "t", log=lambda s: None)
    s = summarise(scores)
    assert s[("t", "noise15", "input")]["psnr_mean"] is not None
    for name, err in (("crops", "SizeMismatch"), ("nothing", "SizeMismatch"), ("raises", "ZeroDivisionError")):
        row = s[("t", "noise15", name)]
        assert row["failed"] == 2 and row["psnr_mean"] is None and row["psnr_worst"] is None
        assert row["first_error"].startswith(err) and row["failed_images"] == ["a.png", "b.png"]
    table = "\n".join(report.table(s, "t", (CASES["noise15"],), {}))
    assert "| `noise15` | crops | FAILED on 2 of 2: SizeMismatch" in table


def _photos(folder):
    folder.mkdir()
    for name in ("astronaut", "coffee"):
        Image.fromarray(getattr(data, name)()[:96, :128]).save(folder / f"{name}.png")
    return str(folder)


def test_report_writes_the_document_charts_and_sheets_and_a_rerun_gives_the_same_numbers(tmp_path, active_weights):
    folder = _photos(tmp_path / "photos")
    argv = ["--data", folder, "--out", str(tmp_path / "docs"), "--suite", "quick", "--cases",
            "noise25,cast-warm,clean", "--baselines", "nl-means,gray-world", "--weights", active_weights,
            "--single-task", f"cast={active_weights}", "--same-budget", active_weights]
    p = argparse.ArgumentParser()
    report.add_arguments(p)
    text = report.run(p.parse_args(argv))
    docs = tmp_path / "docs"
    assert (docs / "QUALITY.md").read_text() == text
    for png in ("psnr-photos.png", "speed.png", "sheet-denoise.png", "sheet-cast.png"):
        with Image.open(docs / "quality" / png) as im:
            assert im.width > 100 and im.height > 50
    assert "### Does the shipped model beat every classical method on its own task?" in text
    assert "`noise25`: imagemend" in text and "nl-means" in text and "given the true noise sigma" in text
    assert "Does it leave clean photos alone?" in text and "the 40 dB bar" in text
    assert "denoise: **not measured yet**" in text and "--tasks denoise" in text  # and the command to measure it
    assert "cast, `cast-warm`: multitask" in text
    assert "Compared: a multitask model trained with the single-task models' recipe and budget" in text
    line = next(x for x in text.splitlines() if x.startswith("- cast, `cast-warm`: multitask"))
    assert "single-task" in line and "shipped model" in line
    assert "| `cast-warm` | single-task |" in text and "| `clean` | imagemend |" in text
    assert "| `cast-warm` | multitask, same budget |" in text
    made = text[text.index("### How the comparison models were made"):]
    assert "- **single-task cast**" in made and "- **multitask, same budget**" in made
    assert made.count("`imagemend train --data") == 2  # how to make each again
    assert "Not a fair comparison: it was trained on denoise, deblur, cast" in made  # this "single-task" is not
    first = json.loads((docs / "quality" / "results.json").read_text())
    assert len(first["summary"]) == 4 + 6 + 1
    again = argv[:3] + [str(tmp_path / "again")] + argv[4:]
    again[again.index("--cases") + 1] = "cast-warm"
    cache = tmp_path / "scores.jsonl"
    text = report.run(p.parse_args(again + ["--no-sheets", "--cache", str(cache)]))
    assert f"- scores: 12 computed by this run, 0 kept from earlier runs in `{cache}`" in text
    second = json.loads((tmp_path / "again" / "quality" / "results.json").read_text())

    def numbers(res):
        return [{k: v for k, v in row.items() if k != "seconds_per_mp"} for row in res["summary"]
                if row["case"] == "cast-warm"]

    assert numbers(first) == numbers(second) and len(numbers(first)) == 6
    text = report.run(p.parse_args(again + ["--no-sheets", "--cache", str(cache)]))
    assert "- scores: 0 computed by this run, 12 kept from earlier runs" in text


def test_the_model_package_never_imports_beam_or_the_pipeline():
    import subprocess
    import sys

    code = ("import sys, imagemend.model.reports.quality, imagemend.model.reports.estimators, "
            "imagemend.model.tools.calibrate, imagemend.model.evaluation.evaluate; "
            "print(sorted(m for m in sys.modules if m.split('.')[0] == 'apache_beam' "
            "or m.startswith('imagemend.pipeline')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == "[]"


def test_a_score_cache_resumes_a_stopped_run_and_recomputes_what_changed(tmp_path):
    calls = []

    def blur(x, case):
        calls.append(case.name)
        return (x // 2 * 2).astype(np.uint8)

    photos = {"a": PHOTO[:32, :32], "b": PHOTO[32:64, :32]}
    cases = (CASES["noise25"], CASES["cast-warm"])
    path = tmp_path / "scores.jsonl"
    first = score_all(lambda c: [Method("m", "classical", blur, version="v1")], cases, photos, "t",
                      cache=ScoreCache(path), log=lambda _: None)
    assert len(calls) == 4
    with path.open("a") as f:
        f.write('{"dataset": "t", "case": "noise2')  # a run killed while writing
    cache = ScoreCache(path)
    again = score_all(lambda c: [Method("m", "classical", blur, version="v1")], cases, photos, "t",
                      cache=cache, log=lambda _: None)
    assert len(calls) == 4 and cache.reused == 4 and again == first
    changed = score_all(lambda c: [Method("m", "classical", blur, version="v2")], cases, photos, "t",
                        cache=ScoreCache(path), log=lambda _: None)
    assert len(calls) == 8 and [s.psnr for s in changed] == [s.psnr for s in first]

    def broken(x, case):
        raise RuntimeError("out of memory")

    cache = ScoreCache(path)
    score_all(lambda c: [Method("x", "classical", broken, version="v1")], cases[:1], photos, "t", cache=cache,
              log=lambda _: None)
    assert cache.added == 0  # a failure is computed again next time, never kept


def test_model_scores_are_keyed_on_every_module_restore_draws_on():
    import inspect

    from imagemend.model.core import restore
    from imagemend.model.evaluation import scoring

    drawn = {v.__name__ if inspect.ismodule(v) else inspect.getmodule(v).__name__ for v in vars(restore).values()
             if inspect.ismodule(v) or inspect.isfunction(v) or inspect.isclass(v)}
    assert {m for m in drawn if m.startswith("model.")} <= {m.__name__ for m in scoring.RESTORE_MODULES}


def test_the_recipe_a_weights_file_records_parses_back_to_the_same_training():
    cfg = replace(TrainConfig(), steps=100_000, batch=32, patch=128, lr=3e-4, seed=7)
    loss = LossConfig(weights={**LossConfig().weights, "deblur": 2.5}, weighting="fixed")
    info = {"data": "photos dir/", "tasks": ["denoise", "cast"], "stage": "joint", "train": cfg.__dict__,
            "loss": loss.__dict__, "device": "cuda", "minutes": 5.0,
            "calibration": {"data": "train/", "quantile": 0.98, "global_quantile": 1.0, "disabled": ["cast"],
                            "reason": "misfires on clean photos"}}
    fit, calibrate = report.recipe(info, "runs/x").split(" && ")
    p = argparse.ArgumentParser()
    train.add_arguments(p)
    a = p.parse_args(shlex.split(fit)[2:])
    assert (a.data, a.out, a.tasks, a.minutes, a.device, a.stage) == ("photos dir/", "runs/x", "denoise,cast", 5.0,
                                                                     "cuda", "joint")
    assert {k: getattr(a, k) for k in ("steps", "batch", "patch", "lr", "seed")} == \
        {k: getattr(cfg, k) for k in ("steps", "batch", "patch", "lr", "seed")}
    assert train.loss_config(a.loss_weights, a.weighting) == loss
    assert shlex.split(calibrate)[-4:] == ["--disable", "cast", "--reason", "misfires on clean photos"]
    single = report.recipe(info, "runs/single-deblur", ["deblur"])
    assert "--tasks deblur " in single and "--disable" not in single  # the same recipe, for one task


def test_a_loss_where_imagemend_left_the_photos_alone_says_so():
    cases = tuple(c for c in CASES.values() if c.name in ("cast-warm", "noise25"))
    row = {"psnr_worst": 20.0, "worst_image": "a.png", "failed": 0, "images": 2, "first_error": ""}
    means = {("cast-warm", "input"): 27.57, ("cast-warm", "imagemend"): 27.58, ("cast-warm", "white-patch"): 30.97,
             ("noise25", "input"): 20.5, ("noise25", "imagemend"): 30.0, ("noise25", "bm3d"): 30.3}
    s = {("d", case, method): {**row, "psnr_mean": v} for (case, method), v in means.items()}
    lines = report.verdict_classical(s, "d", cases, {"white-patch": "", "bm3d": "true noise sigma"})
    cast, noise = (next(x for x in lines if f"`{n}`" in x) for n in ("cast-warm", "noise25"))
    assert "loses by 3.39 dB" in cast and "left these photos as they came" in cast
    assert "loses by 0.30 dB" in noise and "left these photos" not in noise


def test_report_scores_real_pairs_against_their_references_and_sheets_noisy_photos(tmp_path, active_weights):
    """Pairs `<name>_real` / `<name>_mean` (here scikit-image photos through the camera pipeline) get the
    "Real photos" section; noisy photos without references get a sheet under the ignored real/ folder."""
    import torch

    from imagemend.model.damage import camera

    pairs, noisy = tmp_path / "pairs", tmp_path / "noisy"
    pairs.mkdir(), noisy.mkdir()
    g = torch.Generator().manual_seed(0)
    for name in ("astronaut", "coffee"):
        clean = torch.from_numpy(getattr(data, name)()[:96, :128].copy()).permute(2, 0, 1)[None].float() / 255
        shot, ref = camera.shoot(clean, camera.sample_camera(1, g), g)
        for img, path in ((ref, pairs / f"{name}_mean.png"), (shot, pairs / f"{name}_real.png"),
                          (shot, noisy / f"{name}.png")):
            Image.fromarray((img[0].permute(1, 2, 0).numpy() * 255 + 0.5).astype(np.uint8)).save(path)
    argv = ["--data", _photos(tmp_path / "photos"), "--out", str(tmp_path / "docs"), "--suite", "quick",
            "--cases", "clean", "--baselines", "nl-means", "--weights", active_weights, "--no-sheets",
            "--real-pairs", str(pairs), "--real-noisy", str(noisy)]
    p = argparse.ArgumentParser()
    report.add_arguments(p)
    text = report.run(p.parse_args(argv))
    real = text[text.index("## Real photos: pairs (2 noisy captures"):]
    assert "| input |" in real and "| imagemend |" in real and "nl-means-" in real
    assert "the 2 references run as inputs" in real and "imagemend against the input" in real
    sheet = tmp_path / "docs" / "quality" / "real" / "sheet-noisy.png"
    assert f"`{sheet}`" in real and "never committed" in real
    with Image.open(sheet) as im:
        assert im.width > 200
    res = json.loads((tmp_path / "docs" / "quality" / "results.json").read_text())
    assert {r["method"] for r in res["real"] if r["dataset"] == "pairs"} >= {"input", "imagemend"}


def test_restoring_never_imports_the_damage_evaluation_or_fitting_code():
    """The restore path (what `imagemend run` loads on every worker) stands apart from the synthetic damage,
    the evaluation suites and metrics, and the commands that fit the shipped tables (model/tools)."""
    import subprocess
    import sys

    code = ("import sys, imagemend.model.core.restore; "
            "print(sorted(m for m in sys.modules if m.startswith('imagemend.model.') "
            "and not m.startswith('imagemend.model.core')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == "[]"


def test_the_real_photo_section_stands_without_classical_methods():
    """`--baselines` may leave out non-local means and BM3D: the section then compares with the input alone."""
    from imagemend.model.evaluation.scoring import Score
    from imagemend.model.reports.real_photos import REAL, section

    scores = [Score(d, REAL.name, m, k, 0.25, 0.1, p, 0.9, 1.0)
              for k, base in (("a_real.png", 30.0), ("b_real.png", 34.0))
              for d, m, p in (("set", "input", base), ("set", "imagemend", base + 1),
                              ("set-references", "imagemend", 50.0))]
    text = "\n".join(section(scores, summarise(scores), "set", "pairs/", []))
    assert "| imagemend | 33.00 |" in text and "+1.00 dB** mean" in text and "best classical" not in text
    assert "the 2 references run as inputs: mean 50.00 dB" in text


def _collection(folder, n, seed, suffix=".png"):
    """n photos cut from scikit-image's colour samples at seeded places: a stand-in collection."""
    folder.mkdir(parents=True)
    rng = np.random.default_rng(seed)
    sources = [data.astronaut(), data.coffee(), data.chelsea(), data.rocket()]
    for i in range(n):
        src = sources[i % len(sources)]
        y, x = rng.integers(0, src.shape[0] - 96), rng.integers(0, src.shape[1] - 128)
        Image.fromarray(src[y:y + 96, x:x + 128]).save(folder / f"{i:03d}{suffix}", quality=95)


def test_report_measures_tone_and_colour_per_group_on_pseudo_archives(tmp_path, monkeypatch):
    """`--groups ROOT` adds the per-group section (issue #21): clean groups, detection against group size,
    shared, half and own damage, for the default group tasks and all three; a shared green cast over 20 photos
    is corrected. A root without the collections stops before any scoring."""
    root = tmp_path / "data"
    # one collection large enough for the groups of 20 that are restored, the others for the prior and clean groups
    for i, (sub, n, suffix) in enumerate((("train/CBSD432", 24, ".png"), ("val/CBSD68", 24, ".png"),
                                          ("val/Set14", 8, ".png"), ("extra/CSun_Hays80", 12, ".jpg"),
                                          ("val/real/PolyU70", 12, "_mean.JPG"))):
        _collection(root / sub, n, i, suffix)
    from imagemend.model.evaluation import groups

    # fewer seeded groups than the report's defaults: the same tables, in seconds
    monkeypatch.setattr(groups, "evaluate", functools.partial(groups.evaluate, per=1, clean_groups=5, detect_groups=3))
    argv = ["--data", _photos(tmp_path / "photos"), "--out", str(tmp_path / "docs"), "--suite", "quick",
            "--cases", "clean", "--baselines", "white-patch", "--no-sheets", "--limit", "1", "--groups", str(root)]
    p = argparse.ArgumentParser()
    report.add_arguments(p)
    text = report.run(p.parse_args(argv))
    section = text[text.index("## Tone and colour per group of photos"):text.index("## The cases")]
    for title in ("\n### Default group tasks (cast)\n", "\n### All group tasks (cast, exposure, contrast"):
        assert title in section
    for table in ("Clean groups of 8 to 40 photos", "Detection rate against group size",
                  "Every photo of a group of 20 shares the damage", "Half of a group of 20 damaged",
                  "Every photo of a group of 20 its own damage"):
        assert section.count("\n#### ") == 10 and f"#### Default group tasks (cast): {table}" in section
    green = next(line for line in section.splitlines() if line.startswith("| cast-green | 1 |")).split(" | ")
    assert green[2] == "1/1" and float(green[4]) > float(green[3]) + 3  # per group dB against input dB
    with pytest.raises(SystemExit, match="no photos for"):
        report.run(p.parse_args([*argv[:-1], str(tmp_path / "photos")]))
