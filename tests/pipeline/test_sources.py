"""Listing the input, telling its layout, grouping files into shards (pipeline/sources.py)."""


import pytest

from imagemend.pipeline import sources
from imagemend.pipeline.options import InputOptions, OutputOptions


def test_listing_prefix_glob_and_single_file(local_store):
    for key in ("a/1.jpg", "a/2.png", "a/b/3.jpg", "a/.DS_Store", "a/_SUCCESS", "a/out/9.jpg", "z.txt"):
        local_store.put("in", key, b"x" * 3)
    base, files = sources.list_files(local_store.join("in"), {}, exclude=local_store.fs.unstrip_protocol(
        local_store.path("in", "a", "out")))
    assert base.endswith("/in") and {k: f.size for k, f in files.items()} == {
        "a/1.jpg": 3, "a/2.png": 3, "a/b/3.jpg": 3, "a/_SUCCESS": 3, "z.txt": 3}
    assert all(f.version.startswith("mtime=") and ";ino=" in f.version for f in files.values())
    base, files = sources.list_files(local_store.join("in", "a", "**", "*.jpg"), {})
    assert base.endswith("/in/a") and set(files) == {"1.jpg", "b/3.jpg", "out/9.jpg"}
    base, files = sources.list_files(local_store.join("in", "z.txt"), {})
    assert base.endswith("/in") and list(files) == ["z.txt"] and files["z.txt"].size == 3
    with pytest.raises(sources.NoInput):
        sources.list_files(local_store.join("missing"), {})


def test_layout_detection():
    assert sources.detect_layout(["a.tar", "b.tar", "README.md"]) == "tar"
    assert sources.detect_layout(["00000.parquet", "00000_stats.json"]) == "parquet"
    assert sources.detect_layout(["a.jpg", "b.tar"]) == "files"
    assert sources.detect_layout(["a.jpg", "notes.txt"]) == "files"


def test_virtual_shards_are_stable_and_keep_stems_together():
    listed = sources.Listed(1, "mtime=1")
    files = {f"d/{i:03d}.jpg": listed for i in range(7)} | {"d/002.json": listed, "d/002.txt": listed,
                                                            "e/x.png": listed, "y.jpg": listed}
    shards = sources.group_files(files, "file:///in", per_shard=3)
    assert [s.id for s in shards] == ["part-00000", "d/part-00000", "d/part-00001", "d/part-00002", "e/part-00000"]
    assert shards[1].items == ("d/000.jpg", "d/001.jpg", "d/002.jpg", "d/002.json", "d/002.txt")
    assert sum(len(s.items) for s in shards) == len(files)
    again = sources.group_files(dict(reversed(list(files.items()))), "file:///in", per_shard=3)
    assert again == shards and [s.fingerprint for s in again] == [s.fingerprint for s in shards]
    changed = sources.group_files({**files, "d/006.jpg": sources.Listed(2, "mtime=1")}, "file:///in", per_shard=3)
    assert [s.fingerprint for s in changed][:3] == [s.fingerprint for s in shards][:3]
    assert changed[3].fingerprint != shards[3].fingerprint  # a resized file invalidates its shard's marker
    replaced = sources.group_files({**files, "d/006.jpg": sources.Listed(1, "mtime=2")}, "file:///in", per_shard=3)
    assert replaced[3].fingerprint != shards[3].fingerprint  # so does one of the same size, replaced
    moved = sources.group_files(files, "file:///elsewhere", per_shard=3)
    assert moved[3].fingerprint != shards[3].fingerprint  # and the input prefix
    assert sources.Shard.from_json(shards[1].to_json()) == shards[1]


def test_file_versions_from_each_store_listing():
    assert sources.file_version({"ETag": '"abc"', "LastModified": "x", "size": 3}) == 'ETag="abc"'  # s3fs
    assert sources.file_version({"etag": "CJ", "updated": "2026-01-01", "generation": "1"}) == "etag=CJ"  # gcsfs
    assert sources.file_version({"mtime": 1.5, "ino": 7, "created": 1.0}) == "mtime=1.5;ino=7"  # local
    assert sources.file_version({"created": 2.0}) == "created=2.0"  # memory
    assert sources.file_version({"size": 3}) == ""


def test_input_inside_output_is_refused(local_store):
    local_store.put("out", "in", "a.jpg", b"x")
    with pytest.raises(ValueError, match="inside output"):
        sources.list_shards(InputOptions(local_store.join("out", "in")), OutputOptions(local_store.join("out")))
