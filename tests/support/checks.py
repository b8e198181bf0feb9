"""Reading a run back and checking it: every input record once, with the right facts; outputs readable; two runs
the same. `check_run` is the whole check, made of the named checks below it."""

import io
import tarfile

import numpy as np
from PIL import Image, ImageOps
import pyarrow.parquet as pq

from tests.support.archives import Archive
from tests.support.stores import Store

# ---------------------------------------------------------------- reading a run back


def read_tables(store: Store, output: str, kind: str) -> list[dict]:
    from imagemend.pipeline.sinks import read_tables as read

    return read(store.fs, store.fs._strip_protocol(output).rstrip("/"), kind)


def open_output(store: Store, uri: str) -> bytes:
    """Bytes of an output image from its output_uri (URI#member inside tar and Parquet shards)."""
    base, _, member = uri.partition("#")
    fs = store.fs
    data = fs.cat_file(fs._strip_protocol(base))
    if not member:
        return data
    if base.endswith(".tar"):
        with tarfile.open(fileobj=io.BytesIO(data)) as t:
            return t.extractfile(member).read()
    table = pq.read_table(io.BytesIO(data)).to_pylist()
    row = next(r for r in table if r["key"] == member)
    return next(v for k, v in row.items() if isinstance(v, bytes))


# ---------------------------------------------------------------- one run against its archive

def check_run(archive: Archive, output: str, summary: dict, image_format: str = "same") -> tuple[list, list]:
    """Every input record exactly once, in metrics or in errors, with the right facts; outputs readable."""
    store = archive.store
    metrics, errors = read_tables(store, output, "metrics"), read_tables(store, output, "errors")
    check_each_record_once(archive, metrics, errors)
    for e in errors:
        check_error_row(archive, e, summary["run_id"])
    for r in metrics:
        want = archive.good[r["key"]]
        check_input_facts(r, want)
        check_status(r)
        check_provenance(r, summary["run_id"])
        check_estimates(r)
        check_measures(r)
        check_output_image(archive, r, want, image_format)
    check_summary(archive, summary)
    return metrics, errors


def check_each_record_once(archive: Archive, metrics: list[dict], errors: list[dict]) -> None:
    """The good records are the metrics rows, the bad ones the error rows, each once."""
    mkeys, ekeys = [r["key"] for r in metrics], [r["key"] for r in errors]
    assert sorted(mkeys) == sorted(archive.good), (mkeys, errors)
    assert sorted(ekeys) == sorted(archive.bad)


def check_error_row(archive: Archive, e: dict, run_id: str) -> None:
    """A failed record's row names the stage and the error it failed with, says why, and which run wrote it."""
    stage, err = archive.bad[e["key"]]
    assert e["stage"] == stage, e
    assert err is None or e["error_type"] == err, e
    assert e["message"] and e["run_id"] == run_id


def check_input_facts(r: dict, want: dict) -> None:
    """Size, mode and format as the input has them."""
    for k in ("width", "height", "mode", "format"):
        assert r[k] == want[k], (r["key"], k, r[k], want[k])


def check_status(r: dict) -> None:
    """Restored exactly where some task was applied, else unchanged."""
    from imagemend.model.core.tasks import TASKS

    assert r["status"] in ("restored", "unchanged")
    assert r["status"] == ("restored" if any(r[f"{t}_applied"] for t in TASKS) else "unchanged")


def check_provenance(r: dict, run_id: str) -> None:
    """Which run, which weights and which device wrote the row."""
    assert r["run_id"] == run_id and len(r["weights_sha256"]) == 64 and r["device"] == "cpu"


def check_estimates(r: dict) -> None:
    """Finite estimates for every task, a strength where a task was applied, the readings the model took."""
    from imagemend.model.core.tasks import TASKS

    for t in TASKS:
        assert np.isfinite(r[f"{t}_estimate_before"]) and np.isfinite(r[f"{t}_estimate_after"])
        assert (r[f"{t}_strength"] > 0) == r[f"{t}_applied"]
    assert set(dict(r["estimates_before"])) >= {"noise_sigma", "blur", "cast", "exposure_ev", "contrast_curve"}
    if r["format"] in ("JPEG", "MPO"):  # the job tells the model: a JPEG's flat patches bound nothing
        assert "noise_sigma_cap" not in dict(r["estimates_before"]), r["key"]
    # an output's edges are re-read only where deblur ran (an unchanged image keeps its input's readings)
    reread = r["status"] == "unchanged" or r["deblur_applied"]
    assert ("edge_blur" in dict(r["estimates_after"])) == reread, r["key"]


def check_measures(r: dict) -> None:
    """The pixel measures exist where the image allows them and lie in range."""
    big = r["width"] >= 3 and r["height"] >= 3
    assert (r["denoise_measure_before"] is not None) == big
    assert (r["cast_measure_before"] is None) == (r["mode"] in ("L", "LA", "I;16"))
    assert 0 <= r["exposure_measure_after"] <= 1 and r["contrast_measure_after"] >= 0


def check_output_image(archive: Archive, r: dict, want: dict, image_format: str = "same") -> None:
    """The output opens, at the input's displayed size, in the format asked for, where the layout puts it."""
    out = Image.open(io.BytesIO(open_output(archive.store, r["output_uri"])))
    # an unchanged image keeps its bytes, EXIF orientation included: compare as displayed
    assert ImageOps.exif_transpose(out).size == (r["width"], r["height"]), r["key"]
    assert out.format == r["output_format"]
    if image_format == "same":
        assert r["output_format"] == ("JPEG" if r["format"] == "MPO" else r["format"])
    if archive.layout == "tar":
        assert r["output_uri"].endswith("#" + want["image_member"]) or image_format != "same"
    if archive.layout == "parquet":
        assert r["output_uri"].endswith("#" + r["key"])


def check_summary(archive: Archive, summary: dict) -> None:
    """The summary counts every record, shard and skipped file."""
    c = summary["counts"]
    assert c["records"] == archive.records and c["failed"] == len(archive.bad)
    assert c["restored"] + c["unchanged"] == len(archive.good)
    assert summary["shards_listed"] == archive.shards
    assert summary["files_skipped_by_extension"] == archive.skipped
    assert summary["files_skipped"] == sum(archive.skipped.values())


# ---------------------------------------------------------------- two runs of one input

VOLATILE = {"run_id", "output_uri", "decode_s", "restore_s", "measure_s", "encode_s", "worker"}


def _settle(v):
    """Floats to 4 decimals: which images share a forward pass can move an estimate by one ulp."""
    if isinstance(v, float):
        return round(v, 4)
    if isinstance(v, list):
        return [_settle(x) for x in v]
    if isinstance(v, tuple):
        return tuple(_settle(x) for x in v)
    return v


def comparable(rows: list[dict]) -> list[dict]:
    """A run's rows without what differs between runs of the same input (ids, timings, workers)."""
    rows = [{k: _settle(v) for k, v in r.items() if k not in VOLATILE} for r in rows]
    return sorted(rows, key=lambda r: (r["shard"], r["index"] if r["index"] is not None else -1))


def same_outputs(store: Store, output: str, reference: str) -> tuple[list, list]:
    """Two runs of one input wrote the same metrics and errors and the same image bytes."""
    got, want = ({kind: read_tables(store, out, kind) for kind in ("metrics", "errors")} for out in (output, reference))
    for kind in got:
        assert comparable(got[kind]) == comparable(want[kind]), kind
    images, expected = ({r["key"]: open_output(store, r["output_uri"]) for r in run["metrics"]} for run in (got, want))
    assert images.keys() == expected.keys() and all(images[k] == expected[k] for k in expected)
    return comparable(got["metrics"]), comparable(got["errors"])
