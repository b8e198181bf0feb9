"""`imagemend eval`: the run job on suite-damaged photos, full-reference columns, failures counted, never skipped."""

import io
from pathlib import Path
import shutil

import numpy as np
from PIL import Image
import pyarrow as pa
import pytest

from imagemend.model import metrics
from imagemend.model.evaluation.suites import CASES
from imagemend.pipeline import cli, evaluate, schema, shard
from imagemend.pipeline.decode import decode
from imagemend.pipeline.infer import Restoration
from imagemend.pipeline.options import OutputOptions
from imagemend.pipeline.sources import Record
from tests.support.checks import open_output, read_tables
from tests.support.images import encode, pixels
from tests.support.stores import Store

REPO = Path(__file__).resolve().parents[2]
CASE_NAMES = ("noise25", "cast-warm", "clean")
PHOTOS = {  # key -> encoded clean photo
    "a.png": encode(Image.fromarray(pixels(40, 56, 3, 1)), "PNG"),
    "b.jpg": encode(Image.fromarray(pixels(48, 40, 3, 2)), "JPEG", quality=95),
    "sub/grey.png": encode(Image.fromarray(pixels(36, 44, 1, 3)), "PNG"),
}
BROKEN = "sub/broken.jpg"


def clean_rgb(key: str) -> np.ndarray:
    return evaluate.rgb8(decode(PHOTOS[key], 10**8).pixels)


@pytest.fixture(scope="module")
def evaluation(tmp_path_factory, active_weights):
    """One evaluation of three photos and a corrupt file; the command exits 3: the evaluation is incomplete."""
    root = tmp_path_factory.mktemp("eval")
    store = Store(str(root))
    for key, data in PHOTOS.items():
        store.put("clean", key, data)
    store.put("clean", BROKEN, b"\xff\xd8 not a jpeg")
    out = str(root / "out")
    argv = ["eval", "--clean", str(root / "clean"), "--suite", "quick", "--cases", ",".join(CASE_NAMES),
            "--output", out, "--weights", active_weights, "--files-per-shard", "2"]
    with pytest.raises(SystemExit) as e:
        cli.main(argv)
    assert e.value.code == 3
    return store, out, argv


def test_eval_scores_every_case_of_every_photo_against_its_clean_original(evaluation):
    store, out, _ = evaluation
    rows, errors = read_tables(store, out, "metrics"), read_tables(store, out, "errors")
    assert sorted(r["key"] for r in rows) == sorted(f"{c}/{k}" for c in CASE_NAMES for k in PHOTOS)
    assert sorted((e["key"], e["stage"]) for e in errors) == sorted((f"{c}/{BROKEN}", "decode") for c in CASE_NAMES)
    for r in rows:
        case, key = r["key"].split("/", 1)
        clean = clean_rgb(key)
        damaged = CASES[case].apply(clean, key)  # the worker made exactly this damage
        assert (r["case"], r["task"]) == (case, CASES[case].task)
        assert r["reference_uri"].endswith("/clean/" + key) and r["source_uri"] == r["reference_uri"] + "#" + case
        assert r["psnr_before"] == pytest.approx(metrics.capped_psnr(clean, damaged))
        assert r["ssim_before"] == pytest.approx(metrics.ssim(clean, damaged))
        written = np.asarray(Image.open(io.BytesIO(open_output(store, r["output_uri"]))))
        assert written.shape == clean.shape and r["output_uri"].split("/images/")[1].startswith(case + "/")
        assert r["psnr_after"] == pytest.approx(metrics.capped_psnr(clean, written))  # the pixels written
        assert r["ciede2000_after"] == pytest.approx(metrics.ciede2000(clean, written))
        if case == "clean":  # the clean case's input is the clean photo itself
            assert (r["psnr_before"], r["ssim_before"], r["ciede2000_before"]) == (100.0, pytest.approx(1.0), 0.0)
    assert any(r["psnr_after"] != r["psnr_before"] for r in rows)  # the model did change pixels


def test_the_eval_summary_counts_failures_and_refuses_another_suite_in_the_same_output(evaluation, capsys):
    store, out, argv = evaluation
    s = evaluate.summarise(out)
    assert s["photos"] == 4 and s["failed"] == 3
    for c in CASE_NAMES:
        assert (s["cases"][c]["scored"], s["cases"][c]["failed"]) == (3, 1)
        assert s["cases"][c]["failures"][0].startswith(f"{c}/{BROKEN}: decode")
    assert s["cases"]["clean"]["psnr_before"] == 100.0
    assert "| noise25 | 3 | 1 |" in evaluate.markdown(s)
    other = list(argv)
    other[other.index("--cases") + 1] = "noise25"
    with pytest.raises(SystemExit) as e:
        cli.main(other)
    assert e.value.code == 2 and "holds results of suite" in capsys.readouterr().err


def test_a_lost_output_and_an_unfinished_shard_are_failures_never_gaps(evaluation, tmp_path):
    store, out, _ = evaluation
    copy = tmp_path / "copy"
    shutil.copytree(out, copy)
    (copy / "metrics" / "part-00000.parquet").unlink()  # a and b.jpg: written, then lost
    (copy / "_done" / "part-00000.json").unlink()
    s = evaluate.summarise(str(copy))
    assert s["unfinished_shards"] == ["part-00000"]
    for c in CASE_NAMES:
        assert (s["cases"][c]["scored"], s["cases"][c]["failed"]) == (1, 3)
        assert f"{c}/a.png: no metrics row and no error row" in s["cases"][c]["failures"]
    assert s["failed"] == 3 * 3 + 1


def test_a_wrongly_sized_output_is_a_reference_failure():
    hooks = evaluate.Evaluation("quick", ("clean",))
    clean = Record("s", 0, "a.png", "file:///in/a.png", PHOTOS["a.png"], "a.png")
    [rec] = list(hooks.expand([clean]))
    dec = decode(rec.data, 10**8)
    it = shard.Item(rec, dec, {}, dec.width, dec.height, {"measure_s": 0.0})
    short = Restoration(dec.pixels[:-1].copy(), {}, {}, {"denoise": True}, {}, {}, 0.0)  # one row short
    failure = shard._finish(shard._restored(it, short), OutputOptions(), hooks)
    assert (failure.stage, failure.error_type, failure.key) == ("reference", "SizeMismatch", "clean/a.png")


def test_the_reference_columns_are_documented():
    text = (REPO / "docs" / "ARCHITECTURE.md").read_text()
    assert schema.markdown(pa.schema(evaluate.FIELDS)) in text
    assert [f.name for f in evaluate.METRICS_SCHEMA][: len(schema.METRICS_SCHEMA)] == schema.METRICS_SCHEMA.names


def test_an_unknown_suite_or_case_fails_on_the_launcher():
    with pytest.raises(ValueError, match="unknown suite"):
        evaluate.Evaluation("no-such-suite")
    with pytest.raises(ValueError, match="not in suite"):
        evaluate.Evaluation("quick", ("no-such-case",))
