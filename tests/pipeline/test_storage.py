"""Object keys made safe, and writes that are whole or absent (pipeline/storage.py)."""

from pathlib import Path

import pytest

from imagemend.pipeline import storage


@pytest.mark.parametrize("name,want", [("a/b.jpg", "a/b.jpg"), ("./a//b.jpg", "a/b.jpg"), ("x", "x")])
def test_safe_key_normalises(name, want):
    assert storage.safe_key(name) == want


@pytest.mark.parametrize("name", ["../../escape.jpg", "a/../../b", "/etc/passwd", "C:/x.jpg", "a\\..\\b",
                                  "", ".", "a/\x00b", ".."])
def test_safe_key_rejects_escapes(name):
    with pytest.raises(storage.UnsafeKey):
        storage.safe_key(name)


def test_atomic_open_leaves_nothing_when_the_block_fails(tmp_path, local_store):
    fs = local_store.fs
    target = str(tmp_path / "d" / "x.bin")
    with pytest.raises(RuntimeError), storage.atomic_open(fs, target) as f:
        f.write(b"half")
        assert not Path(target).exists()  # not visible while it is written
        raise RuntimeError
    assert not list((tmp_path / "d").iterdir())
    storage.atomic_write(fs, target, b"whole")
    assert Path(target).read_bytes() == b"whole" and [p.name for p in (tmp_path / "d").iterdir()] == ["x.bin"]


def test_atomic_open_on_object_store_never_shows_an_aborted_upload(s3_store):
    import s3fs

    fs = s3fs.S3FileSystem(**s3_store.storage_options, default_block_size=5 << 20, skip_instance_cache=True)
    path = s3_store.path("big.bin")
    with pytest.raises(RuntimeError), storage.atomic_open(fs, path) as f:
        f.write(b"x" * (11 << 20))
        f.flush()
        assert f.mpu is not None  # a multipart upload is under way: parts are on the server
        raise RuntimeError
    fs.invalidate_cache()
    assert not fs.exists(path)
    storage.atomic_write(fs, path, b"whole")
    assert fs.cat_file(path) == b"whole"
