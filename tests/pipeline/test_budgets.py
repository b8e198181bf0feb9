"""Budgets before work (issue #19, item 4): tiny inputs never cost huge memory or hours.

Sizes are checked before bytes are read (`--max-bytes`: loose files, tar members, Parquet cells) and
declared pixels before they are decoded (`--max-pixels`, and a JPEG header that claims more blocks
than its data can code); data that ends before the last row is an error, never a grey image. The
inputs are made here: a gzip tar holding a large member of zeros, a JPEG whose header claims
12000x9000, a JPEG cut in half.
"""

import bz2
import gzip
import io
import json
import lzma
from pathlib import Path
import struct
import subprocess
import sys
import tarfile
import textwrap

from PIL import Image
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from imagemend.pipeline import decode as dec
from imagemend.pipeline import sources
from imagemend.pipeline.options import InputOptions, RunOptions
from imagemend.pipeline.retry import Backoff
from tests.support.checks import read_tables
from tests.support.images import encode, pixels
from tests.support.jobs import run_job
from tests.support.stores import Store

REPO = Path(__file__).resolve().parents[2]


def jpeg(seed: int, h: int = 24, w: int = 32) -> bytes:
    return encode(Image.fromarray(pixels(h, w, 3, seed)), "JPEG", quality=90)


class Zeros(io.RawIOBase):
    """`size` zero bytes, made as they are read: a large member without holding it in the test's memory."""

    def __init__(self, size: int):
        self.left = size

    def readinto(self, b) -> int:
        n = min(len(b), self.left)
        b[:n] = bytes(n)
        self.left -= n
        return n


def write_tar(f, members: list[tuple[str, int | bytes]]) -> None:
    """A tar streamed into `f`; a member given as an int is that many zero bytes."""
    with tarfile.open(fileobj=f, mode="w|", format=tarfile.GNU_FORMAT) as t:
        for name, data in members:
            info = tarfile.TarInfo(name)
            info.size = data if isinstance(data, int) else len(data)
            t.addfile(info, Zeros(data) if isinstance(data, int) else io.BytesIO(data))


def read_shard(path: Path, layout: str, **kw) -> list:
    shard = sources.Shard("s", layout, str(path.parent), (path.name,), (path.stat().st_size,))
    return list(sources.read_records(shard, Store(str(path.parent)).fs, InputOptions("i", **kw), Backoff(7, 0.5)))


# ---------------------------------------------------------------- --max-bytes

@pytest.mark.parametrize("compress", [None, gzip.compress, bz2.compress, lzma.compress])
def test_a_tar_member_over_the_budget_is_its_sample_error_and_the_shard_goes_on(tmp_path, compress):
    buf = io.BytesIO()
    write_tar(buf, [("000.jpg", jpeg(0)), ("000.json", b"{}"), ("001.jpg", 300_000), ("002.jpg", jpeg(2))])
    path = tmp_path / "s.tar"
    path.write_bytes(compress(buf.getvalue()) if compress else buf.getvalue())
    got = read_shard(path, "tar", max_bytes=100_000)
    assert [(type(x).__name__, x.key) for x in got] == [("Record", "000"), ("Failure", "001"), ("Record", "002")]
    f = got[1]
    assert (f.index, f.stage, f.error_type, f.bytes_in) == (1, "read", "RecordTooLarge", None)
    assert f.message == "sample is 300,000 bytes, over --max-bytes 100,000 (member '001.jpg' not read)"
    assert got[0].data == jpeg(0) and got[0].extra["members"][1][1] == b"{}"


def test_a_sample_whose_members_add_up_over_the_budget_is_refused(tmp_path):
    path = tmp_path / "s.tar"
    with open(path, "wb") as f:
        write_tar(f, [("000.jpg", jpeg(0)), ("000.raw", 60_000), ("000.xmp", 60_000)])
    (got,) = read_shard(path, "tar", max_bytes=100_000)
    assert got.error_type == "RecordTooLarge" and "member '000.xmp' not read" in got.message


def test_a_huge_pax_header_stops_the_shard_instead_of_being_read(tmp_path):
    data, member = jpeg(0), tarfile.TarInfo("000.jpg")
    member.size = len(data)
    pax = tarfile.TarInfo("././@PaxHeader")
    pax.type, pax.size = tarfile.XHDTYPE, 2 * sources.MAX_TAR_HEADER
    path = tmp_path / "s.tar"
    path.write_bytes(member.tobuf(tarfile.GNU_FORMAT) + data + bytes(-len(data) % 512)
                     + pax.tobuf(tarfile.USTAR_FORMAT) + bytes(pax.size))
    got = read_shard(path, "tar")
    assert [type(x).__name__ for x in got] == ["Record", "Failure"]
    assert got[1].error_type == "TarStopped" and "extended header" in got[1].message


def test_a_parquet_cell_over_the_budget_is_its_row_error(tmp_path):
    path = tmp_path / "00000.parquet"
    pq.write_table(pa.table({"key": ["a", "b"], "jpg": [jpeg(0), bytes(200_000)]}), path)
    got = read_shard(path, "parquet", max_bytes=100_000)
    assert [(type(x).__name__, x.key) for x in got] == [("Record", "a"), ("Failure", "b")]
    assert got[1].error_type == "RecordTooLarge"
    assert got[1].message == "image cell 'jpg' is 200,000 bytes, over --max-bytes 100,000"


def test_the_budget_flag_and_its_default():
    import argparse

    from imagemend.pipeline import options

    p = argparse.ArgumentParser()
    options.add_arguments(p)
    assert options.from_args(p.parse_args(["--input", "i", "--output", "o"])).input.max_bytes == 512 * 2**20
    told = options.from_args(p.parse_args(["--input", "i", "--output", "o", "--max-bytes", "1000"]))
    assert told.input.max_bytes == 1000
    with pytest.raises(ValueError):
        RunOptions.of("i", "o", max_bytes=0)


BOMB = 512 * 2**20  # zeros in one member: gzip at level 1 makes about 2 MB of them

MEASURE = textwrap.dedent("""
    import json, resource, sys
    from imagemend.pipeline import job
    from imagemend.pipeline import options
    def run(src, out):
        opts = options.RunOptions.of(src, out, max_bytes=2**20)
        return job.run(opts, options.beam_args([]))["counts"]
    warm = run(sys.argv[1], sys.argv[2])  # model, Beam and torch in memory: what any run costs
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    counts = run(sys.argv[3], sys.argv[4])
    after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps({"warm": warm, "counts": counts, "grew": (after - before) * 1024}))
""")


def test_compressed_member_bomb_is_an_error_row_in_bounded_memory(tmp_path):
    """A 2 MB gzip named .tar holding a 512 MiB member: the member is streamed past, never held, and the
    process's peak memory grows by far less than the member (before: it was read whole, at least 512 MiB)."""
    (tmp_path / "warm").mkdir()
    (tmp_path / "bomb").mkdir()
    with open(tmp_path / "warm" / "s.tar", "wb") as f:
        write_tar(f, [("000.jpg", jpeg(0)), ("002.jpg", jpeg(2))])
    with gzip.GzipFile(tmp_path / "bomb" / "s.tar", "wb", compresslevel=1) as f:
        write_tar(f, [("000.jpg", jpeg(0)), ("001.jpg", BOMB), ("002.jpg", jpeg(2))])
    assert (tmp_path / "bomb" / "s.tar").stat().st_size < 4 * 2**20
    args = [str(tmp_path / d) for d in ("warm", "out-warm", "bomb", "out-bomb")]
    done = subprocess.run([sys.executable, "-c", MEASURE, *args], cwd=REPO, capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    got = json.loads(done.stdout.strip().splitlines()[-1])
    assert got["counts"]["records"] == 3 and got["counts"]["failed"] == 1
    out = tmp_path / "out-bomb"
    (e,) = read_tables(Store(str(out)), str(out), "errors")
    assert (e["key"], e["index"], e["stage"], e["error_type"]) == ("001", 1, "read", "RecordTooLarge")
    assert e["message"] == f"sample is {BOMB:,} bytes, over --max-bytes {2**20:,} (member '001.jpg' not read)"
    assert sorted(r["key"] for r in read_tables(Store(str(out)), str(out), "metrics")) == ["000", "002"]
    assert got["grew"] < BOMB // 4, got


# ---------------------------------------------------------------- decoded pixels

def forged_jpeg(width: int, height: int) -> bytes:
    """A real 64x64 JPEG (a few KB) whose frame header claims width x height: libjpeg would pad it grey."""
    data = bytearray(jpeg(5, 64, 64))
    sof = data.index(b"\xff\xc0")
    struct.pack_into(">HH", data, sof + 5, height, width)
    return bytes(data)


def test_a_header_that_claims_more_than_its_data_is_refused_before_decoding():
    with pytest.raises(dec.ImageTruncated, match=r"claims 12000x9000 .* cut short or forged"):
        dec.decode(forged_jpeg(12000, 9000))
    flat = encode(Image.new("RGB", (4000, 3000), (128, 128, 128)), "JPEG", progressive=True, optimize=True)
    assert dec.decode(flat).pixels.shape == (3000, 4000, 3)  # flat, but every block coded: a real photo


def test_header_size_bomb_and_truncated_jpeg_are_error_rows(tmp_path):
    src, out = tmp_path / "in", tmp_path / "out"
    src.mkdir()
    photo = jpeg(7, 96, 128)
    (src / "bomb.jpg").write_bytes(forged_jpeg(12000, 9000))
    (src / "half.jpg").write_bytes(photo[: len(photo) // 2])
    (src / "big.png").write_bytes(encode(Image.fromarray(pixels(64, 64, 3, 8)), "PNG"))
    (src / "ok.jpg").write_bytes(photo)
    assert (src / "bomb.jpg").stat().st_size < 8000
    summary = run_job(str(src), str(out), max_bytes=(src / "big.png").stat().st_size - 1)
    store = Store(str(out))
    errors = {e["key"]: e for e in read_tables(store, str(out), "errors")}
    assert [r["key"] for r in read_tables(store, str(out), "metrics")] == ["ok.jpg"]
    assert {k: (e["stage"], e["error_type"]) for k, e in errors.items()} == {
        "bomb.jpg": ("decode", "ImageTruncated"), "half.jpg": ("decode", "ImageTruncated"),
        "big.png": ("read", "RecordTooLarge")}
    assert "claims 12000x9000" in errors["bomb.jpg"]["message"]
    assert "ends before the last row" in errors["half.jpg"]["message"]
    assert "(size from the listing): not read" in errors["big.png"]["message"]
    assert summary["counts"]["records"] == 4 and summary["counts"]["failed"] == 3
