"""One record never stops an archive, and none is lost quietly (issue #19, items 2 and 5).

Each case is a real input the test makes (files with latin-1 names, tars with garbage headers or
repeated members, an int64 Parquet column, names at the 255-byte limit, camera `_` names) run
through the real job with the in-process FnApiRunner, then read back: every record is a metrics
row or an error row that names it.
"""

import io
import os
from pathlib import Path
import tarfile

from PIL import Image
import pyarrow as pa
import pyarrow.parquet as pq

from imagemend.pipeline import job, sources, storage
from imagemend.pipeline.options import InputOptions, OutputOptions
from imagemend.pipeline.retry import Backoff
from tests.support.checks import read_tables
from tests.support.images import encode, pixels
from tests.support.jobs import run_job
from tests.support.stores import Store


def jpeg(seed: int) -> bytes:
    return encode(Image.fromarray(pixels(24, 32, 3, seed)), "JPEG", quality=90)


def put(root: Path, name: bytes, data: bytes) -> None:
    """A file whose name is raw bytes, as an old archive holds them (latin-1, not UTF-8)."""
    path = os.path.join(os.fsencode(root), name)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(data)


def tar_bytes(members: list[tuple[str, bytes]], encoding: str = "utf-8") -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.GNU_FORMAT, encoding=encoding) as t:
        for name, data in members:
            info = tarfile.TarInfo(name)
            info.size, info.mtime, info.mode = len(data), 1_700_000_000, 0o644
            t.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def rows(out: Path) -> tuple[dict, list[dict]]:
    """Metrics rows by key, and the error rows."""
    store = Store(str(out))
    return {r["key"]: r for r in read_tables(store, str(out), "metrics")}, read_tables(store, str(out), "errors")


def tar_names(path: Path) -> list[str]:
    with tarfile.open(path) as t:
        return [m.name for m in t]


# ---------------------------------------------------------------- names that are not UTF-8

def test_latin1_file_names_are_restored_under_escaped_keys(tmp_path):
    src, out = tmp_path / "in", tmp_path / "out"
    put(src, b"caf\xe9.jpg", jpeg(0))
    put(src, b"\xe9t\xe9/plage.jpg", jpeg(1))
    put(src, b"ok.jpg", jpeg(2))
    summary = run_job(str(src), str(out))
    metrics, errors = rows(out)
    assert not errors and sorted(metrics) == ["%E9t%E9/plage.jpg", "caf%E9.jpg", "ok.jpg"]
    assert metrics["caf%E9.jpg"]["key_bytes"] == b"caf\xe9.jpg"
    assert metrics["%E9t%E9/plage.jpg"]["key_bytes"] == b"\xe9t\xe9/plage.jpg"
    assert metrics["ok.jpg"]["key_bytes"] is None
    assert metrics["caf%E9.jpg"]["source_uri"].endswith("/in/caf%E9.jpg")
    assert metrics["caf%E9.jpg"]["output_uri"].endswith("/out/images/caf%E9.jpg")
    assert (out / "images" / "caf%E9.jpg").is_file() and (out / "images" / "%E9t%E9" / "plage.jpg").is_file()
    assert (out / "metrics" / "%E9t%E9" / "part-00000.parquet").is_file()  # the shard id is escaped too
    assert summary["counts"]["records"] == 3


def test_latin1_tar_and_member_names_are_restored_under_escaped_keys(tmp_path):
    src, out = tmp_path / "in", tmp_path / "out"
    members = [("caf\xe9.jpg", jpeg(0)), ("caf\xe9.json", b"{}"), ("ok.jpg", jpeg(1))]
    put(src, b"archiv\xe9.tar", tar_bytes(members, encoding="latin-1"))
    run_job(str(src), str(out))
    metrics, errors = rows(out)
    assert not errors and sorted(metrics) == ["caf%E9", "ok"]
    row = metrics["caf%E9"]
    assert row["key_bytes"] == b"caf\xe9" and row["shard"] == "archiv%E9"
    assert row["output_uri"].endswith("/images/archiv%E9.tar#caf%E9.jpg")
    # the output tar holds the escaped names, sidecar included, so the sample still groups
    assert tar_names(out / "images" / "archiv%E9.tar") == ["caf%E9.jpg", "caf%E9.json", "ok.jpg"]


# ---------------------------------------------------------------- column types and long names

def test_int64_image_column_is_an_error_row_per_record(tmp_path):
    src, out = tmp_path / "in", tmp_path / "out"
    src.mkdir()
    pq.write_table(pa.table({"key": ["a", "b"], "jpg": pa.array([7, 8], pa.int64())}), src / "00000.parquet")
    pq.write_table(pa.table({"key": ["c"], "jpg": [jpeg(0)]}), src / "00001.parquet")
    summary = run_job(str(src), str(out))
    metrics, errors = rows(out)
    assert list(metrics) == ["c"]
    assert [(e["key"], e["stage"], e["error_type"]) for e in errors] == [("a", "read", "TypeError"),
                                                                         ("b", "read", "TypeError")]
    assert "int64" in errors[0]["message"]
    assert summary["counts"]["records"] == 3 and summary["counts"]["failed"] == 2


def test_atomic_write_of_a_255_byte_name(tmp_path, local_store):
    target = tmp_path / ("n" * 251 + ".jpg")
    storage.atomic_write(local_store.fs, str(target), b"whole")
    assert target.read_bytes() == b"whole" and [p.name for p in tmp_path.iterdir()] == [target.name]


def test_names_at_the_length_limit_are_restored(tmp_path):
    src, out = tmp_path / "in", tmp_path / "out"
    long_names = ["a" * 230 + ".jpg", "b" * 251 + ".jpg"]  # 234 and 255 bytes: legal, at the limit
    for i, name in enumerate(long_names):
        put(src / "files", name.encode(), jpeg(i))
    member = "m" * 245 + ".jpg"  # 249 characters
    put(src / "tars", ("t" * 251 + ".tar").encode(), tar_bytes([(member, jpeg(3)), ("m" * 245 + ".json", b"{}")]))
    run_job(str(src / "files"), str(out / "files"))
    run_job(str(src / "tars"), str(out / "tars"))
    files, errors = rows(out / "files")
    assert not errors and sorted(files) == sorted(long_names)
    for name in long_names:
        assert (out / "files" / "images" / name).is_file()
    tars, errors = rows(out / "tars")
    assert not errors and list(tars) == ["m" * 245]
    assert tar_names(out / "tars" / "images" / ("t" * 251 + ".tar")) == [member, "m" * 245 + ".json"]
    shard = tars["m" * 245]["shard"]  # bounded, so that metrics/<id>.parquet fits in 255 bytes
    assert len(shard.encode()) <= sources.MAX_ID_NAME and (out / "tars" / "metrics" / (shard + ".parquet")).is_file()


# ---------------------------------------------------------------- tars that lose records quietly

def _garbage_at_member(data: bytes, member: int) -> bytes:
    """The tar with member `member`'s header overwritten: Python's tarfile stops there without a word."""
    with tarfile.open(fileobj=io.BytesIO(data)) as t:
        offset = t.getmembers()[member].offset
    return data[:offset] + b"\x7fgarbage!" * 64 + data[offset + 512:]


def test_garbage_tar_header_is_an_error_row_for_the_rest_of_the_shard(tmp_path):
    src, out = tmp_path / "in", tmp_path / "out"
    src.mkdir()
    members = [(f"{i:06d}.jpg", jpeg(i)) for i in range(6)]
    (src / "shard.tar").write_bytes(_garbage_at_member(tar_bytes(members), 3))
    summary = run_job(str(src), str(out))
    metrics, errors = rows(out)
    assert sorted(metrics) == ["000000", "000001", "000002"]
    assert len(errors) == 1
    e = errors[0]
    assert (e["index"], e["key"], e["stage"], e["error_type"]) == (None, None, "read", "TarStopped")
    assert "from record 3 on" in e["message"] and "byte" in e["message"]
    assert summary["counts"]["failed"] == 1


def test_a_whole_tar_reads_to_its_end_without_a_failure(tmp_path):
    """The zero blocks and padding after the last member are the end, not a stop."""
    path = tmp_path / "s.tar"
    path.write_bytes(tar_bytes([("a.jpg", jpeg(0)), ("b.jpg", jpeg(1))]))
    shard = sources.Shard("s", "tar", str(tmp_path), ("s.tar",), (path.stat().st_size,))
    got = list(sources.read_records(shard, Store(str(tmp_path)).fs, InputOptions("i"), Backoff(7, 0.5)))
    assert [type(x).__name__ for x in got] == ["Record", "Record"]


def test_repeated_member_name_is_an_error_row(tmp_path):
    src, out = tmp_path / "in", tmp_path / "out"
    src.mkdir()
    members = [("000.jpg", jpeg(0)), ("000.jpg", jpeg(1)), ("001.jpg", jpeg(2)), ("002.jpg", jpeg(3)),
               ("001.jpg", jpeg(4))]
    (src / "shard.tar").write_bytes(tar_bytes(members))
    run_job(str(src), str(out))
    metrics, errors = rows(out)
    assert sorted((r["key"], r["index"]) for r in metrics.values()) == [("000", 0), ("001", 2), ("002", 3)]
    assert [(e["key"], e["index"], e["error_type"]) for e in errors] == [("000", 1, "DuplicateMember"),
                                                                         ("001", 4, "DuplicateMember")]
    assert tar_names(out / "images" / "shard.tar") == ["000.jpg", "001.jpg", "002.jpg"]


# ---------------------------------------------------------------- what the listing takes

def test_underscore_names_are_photos_and_non_images_are_skipped(tmp_path):
    src, out = tmp_path / "in", tmp_path / "out"
    for i, name in enumerate(("_MG_1234.JPG", "_DSC0002.JPG", "_selects/pick.jpg")):
        put(src, name.encode(), jpeg(i))
    for name in ("Thumbs.db", "notes.txt", ".DS_Store", "_selects/.hidden.jpg"):
        put(src, name.encode(), b"not a photo")
    summary = run_job(str(src), str(out))
    metrics, errors = rows(out)
    assert not errors and sorted(metrics) == ["_DSC0002.JPG", "_MG_1234.JPG", "_selects/pick.jpg"]
    assert summary["files_skipped"] == 2 and summary["files_skipped_by_extension"] == {".db": 1, ".txt": 1}
    assert "skipped:         2 files that are not images (.db 1, .txt 1)" in job.report(summary)


def test_exclude_globs_and_hidden_files(tmp_path, local_store):
    for key in ("_MG_1.JPG", "_selects/a.jpg", "raw/b.jpg", "raw/c.xmp", "d.jpg", ".e.jpg", "f/.g.jpg"):
        local_store.put("in", key, b"x")

    def listed(**kw) -> tuple[list[str], dict]:
        layout, shards, skipped = sources.list_shards(InputOptions(local_store.join("in"), **kw),
                                                      OutputOptions(local_store.join("out")))
        return sorted(k for s in shards for k in s.items), skipped

    assert listed() == (["_MG_1.JPG", "_selects/a.jpg", "d.jpg", "raw/b.jpg"], {".xmp": 1})
    assert listed(exclude=("_selects", "raw/*")) == (["_MG_1.JPG", "d.jpg"], {})
    assert listed(include_hidden=True)[0] == [".e.jpg", "_MG_1.JPG", "_selects/a.jpg", "d.jpg", "f/.g.jpg",
                                              "raw/b.jpg"]


def test_shard_ids_escape_and_bound_names():
    assert sources.shard_id("caf\udce9/part-00000") == "caf%E9/part-00000"
    long = sources.shard_id("x" * 300)
    assert len(long.encode()) == sources.MAX_ID_NAME and long != sources.shard_id("x" * 301)
    assert storage.escape_name("a%b\udcff") == "a%b%FF" and storage.name_bytes("a\udcff") == b"a\xff"
    assert storage.name_bytes("plain é") is None
