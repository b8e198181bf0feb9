"""Fixtures for the pipeline tests: small generated archives in every layout, real object stores on loopback.

S3 is moto's ThreadedMotoServer and GCS is gcp-storage-emulator, each a real HTTP server on
127.0.0.1 (a random free port), started once per session; every test gets its own bucket. Images
are generated (a few dozen pixels a side), never taken from /work/shared/data.
"""

import os

os.environ["GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT"] = "false"  # else a plain ls against the emulator takes minutes
for _k, _v in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
               "AWS_DEFAULT_REGION": "us-east-1", "AWS_EC2_METADATA_DISABLED": "true"}.items():
    os.environ.setdefault(_k, _v)

from dataclasses import dataclass, field  # noqa: E402
import io  # noqa: E402
import json  # noqa: E402
import socket  # noqa: E402
import tarfile  # noqa: E402
import uuid  # noqa: E402
import zlib  # noqa: E402

import fsspec  # noqa: E402
import numpy as np  # noqa: E402
from PIL import Image, ImageCms, ImageOps  # noqa: E402
import pyarrow as pa  # noqa: E402
import pyarrow.parquet as pq  # noqa: E402
import pytest  # noqa: E402


@pytest.fixture(autouse=True)
def _torch_threads():
    """A job sets the process's torch threads for its restores (pipeline/infer.py); later tests get theirs back."""
    import torch

    n = torch.get_num_threads()
    yield
    torch.set_num_threads(n)


ICC = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
MAKE = "imagemend-test-camera"


@dataclass
class Store:
    """A place to put an archive: local folder, S3 bucket or GCS bucket, with its fsspec options."""
    url: str
    storage_options: dict = field(default_factory=dict)

    @property
    def fs(self) -> fsspec.AbstractFileSystem:
        fs = fsspec.core.url_to_fs(self.url, **self.storage_options)[0]
        fs.invalidate_cache()
        return fs

    def path(self, *parts: str) -> str:
        return "/".join([self.fs._strip_protocol(self.url).rstrip("/"), *parts])

    def join(self, *parts: str) -> str:
        return "/".join([self.url.rstrip("/"), *parts])

    def put(self, *parts_and_data) -> None:
        *parts, data = parts_and_data
        fs, path = self.fs, self.path(*parts)
        fs.makedirs(path.rsplit("/", 1)[0], exist_ok=True)
        fs.pipe_file(path, data)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def s3_endpoint():
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture
def s3_store(s3_endpoint) -> Store:
    import boto3

    bucket = f"imagemend-{uuid.uuid4().hex[:12]}"
    boto3.client("s3", endpoint_url=s3_endpoint, region_name="us-east-1").create_bucket(Bucket=bucket)
    return Store(f"s3://{bucket}", {"key": "testing", "secret": "testing",
                                    "client_kwargs": {"endpoint_url": s3_endpoint, "region_name": "us-east-1"}})


@pytest.fixture(scope="session")
def gcs_endpoint():
    from gcp_storage_emulator.server import create_server

    port = free_port()
    server = create_server("127.0.0.1", port, in_memory=True)
    server.start()
    yield f"http://127.0.0.1:{port}"
    server.stop()


@pytest.fixture
def gcs_store(gcs_endpoint) -> Store:
    bucket = f"imagemend-{uuid.uuid4().hex[:12]}"
    store = Store(f"gs://{bucket}", {"endpoint_url": gcs_endpoint, "token": "anon"})
    store.fs.mkdir(bucket)
    return store


@pytest.fixture
def local_store(tmp_path) -> Store:
    return Store(str(tmp_path))


@pytest.fixture
def memory_store() -> Store:
    """fsspec's in-memory filesystem: one process only, so the in-process runner only."""
    return Store(f"memory://imagemend-{uuid.uuid4().hex[:12]}")


# ---------------------------------------------------------------- images

def pixels(h: int, w: int, c: int, seed: int, dtype=np.uint8) -> np.ndarray:
    """A smooth gradient with some noise: photo-like enough for every codec, a few hundred bytes."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w]
    base = [(xx / max(w, 1)), (yy / max(h, 1)), ((xx + yy) / max(w + h, 1)), np.full((h, w), 0.8)]
    img = np.stack([base[i % 4] for i in range(c)], -1) * 0.8 + 0.1
    img = np.clip(img + rng.normal(0, 0.03, img.shape), 0, 1)
    peak = 65535 if dtype == np.uint16 else 255
    out = np.round(img * peak).astype(dtype)
    return out[:, :, 0] if c == 1 else out


def encode(img: Image.Image, fmt: str, **kw) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format=fmt, **kw)
    return buf.getvalue()


def png16(arr: np.ndarray) -> bytes:
    """A 16-bit RGB(A) PNG written by hand, unfiltered (Pillow cannot write one; the job's writer filters)."""
    h, w, c = arr.shape

    def chunk(kind: bytes, data: bytes) -> bytes:
        return len(data).to_bytes(4, "big") + kind + data + zlib.crc32(kind + data).to_bytes(4, "big")

    rows = b"".join(b"\0" + row.tobytes() for row in arr.astype(">u2"))
    head = w.to_bytes(4, "big") + h.to_bytes(4, "big") + bytes([16, 2 if c == 3 else 6, 0, 0, 0])
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", head) + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b"")


def animated(fmt: str, frames: int = 3) -> bytes:
    """A tiny animation (GIF, PNG or WEBP) of grey frames getting brighter."""
    ims = [Image.fromarray(np.full((8, 10, 3), 40 * i, np.uint8)) for i in range(frames)]
    return encode(ims[0], fmt, save_all=True, append_images=ims[1:], duration=100)


def exif_bytes(orientation: int = 1) -> bytes:
    ex = Image.Exif()
    ex[0x010F] = MAKE
    ex[0x0112] = orientation
    return ex.tobytes()


def sample_images(seed: int = 0) -> dict[str, tuple[bytes, dict]]:
    """name -> (bytes, what the metrics row must say): every mode and format the job promises to take."""
    import tifffile

    def tif16(h, w):
        buf = io.BytesIO()
        tifffile.imwrite(buf, pixels(h, w, 3, seed + 9, np.uint16), photometric="rgb")
        return buf.getvalue()

    cmyk = Image.frombytes("CMYK", (48, 32), pixels(32, 48, 4, seed + 5).tobytes())
    return {
        "rgb.jpg": (encode(Image.fromarray(pixels(48, 64, 3, seed)), "JPEG", quality=90, exif=exif_bytes(6),
                           icc_profile=ICC), dict(width=48, height=64, mode="RGB", format="JPEG")),
        "grey.png": (encode(Image.fromarray(pixels(40, 32, 1, seed + 1)), "PNG"),
                     dict(width=32, height=40, mode="L", format="PNG")),
        "rgba.png": (encode(Image.fromarray(pixels(40, 50, 4, seed + 2)), "PNG", icc_profile=ICC),
                     dict(width=50, height=40, mode="RGBA", format="PNG")),
        "deep.png": (encode(Image.fromarray(pixels(44, 36, 1, seed + 3, np.uint16)), "PNG"),
                     dict(width=36, height=44, mode="I;16", format="PNG")),
        "cmyk.jpg": (encode(cmyk, "JPEG", quality=90), dict(width=48, height=32, mode="CMYK", format="JPEG")),
        "pal.gif": (encode(Image.fromarray(pixels(35, 33, 3, seed + 6)).convert("P"), "GIF"),
                    dict(width=33, height=35, mode="P", format="GIF")),
        "tiny.bmp": (encode(Image.fromarray(pixels(1, 1, 3, seed + 7)), "BMP"),
                     dict(width=1, height=1, mode="RGB", format="BMP")),
        "photo.webp": (encode(Image.fromarray(pixels(40, 56, 3, seed + 8)), "WEBP", quality=90, exif=exif_bytes()),
                       dict(width=56, height=40, mode="RGB", format="WEBP")),
        "deep.tif": (tif16(32, 40), dict(width=40, height=32, mode="RGB;16", format="TIFF")),
        "deep-rgb.png": (png16(pixels(30, 42, 3, seed + 10, np.uint16)),
                         dict(width=42, height=30, mode="RGB;16", format="PNG")),
    }


def corrupt_jpeg(seed: int) -> bytes:
    return encode(Image.fromarray(pixels(48, 64, 3, seed)), "JPEG")[:200]


# ---------------------------------------------------------------- archives

@dataclass
class Archive:
    """An input archive and the outcome every one of its records must have."""
    store: Store
    input: str  # URL given to --input
    layout: str
    good: dict[str, dict]  # key -> expected metrics fields (+ sidecars / carried columns)
    bad: dict[str, tuple[str, str | None]]  # key -> (stage, error_type or None)
    shards: int
    skipped: dict[str, int] = field(default_factory=dict)  # files listed but not inputs: extension -> count

    @property
    def records(self) -> int:
        return len(self.good) + len(self.bad)


def _tar(members: list[tuple[str, bytes]]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.GNU_FORMAT) as t:
        for name, data in members:
            info = tarfile.TarInfo(name)
            info.size, info.mtime, info.mode = len(data), 1_700_000_000, 0o644
            t.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def build_archive(store: Store, layout: str, prefix: str = "in", seed: int = 0) -> Archive:
    images = sample_images(seed)
    good, bad = {}, {}
    if layout == "files":
        names = list(images)
        for i, name in enumerate(names):
            key = f"{'a' if i < 4 else 'b/c'}/{name}"
            store.put(prefix, key, images[name][0])
            good[key] = images[name][1]
        for key, data, stage, err in (("a/corrupt.jpg", corrupt_jpeg(seed), "decode", None),
                                      ("b/c/empty.png", b"", "decode", "EmptyImage"),
                                      ("a/anim.gif", animated("GIF"), "decode", "AnimatedImage")):
            store.put(prefix, key, data)
            bad[key] = (stage, err)
        store.put(prefix, "a/.hidden.jpg", images["rgb.jpg"][0])  # hidden: not an input
        store.put(prefix, "b/notes.txt", b"not an image")  # listed, counted as skipped, never decoded
        store.put(prefix, "_SUCCESS", b"")
        return Archive(store, store.join(prefix), layout, good, bad, shards=2, skipped={"": 1, ".txt": 1})
    if layout == "tar":
        shard0 = []
        for i, name in enumerate(["rgb.jpg", "grey.png", "photo.webp"]):
            key = f"{i:06d}"
            ext = name.split(".")[1]
            side = {"json": json.dumps({"i": i}).encode(), "txt": f"caption {i}".encode(), "cls": str(i).encode()}
            shard0 += [(f"{key}.{ext}", images[name][0])] + [(f"{key}.{e}", d) for e, d in side.items()]
            good[key] = {**images[name][1], "image_member": f"{key}.{ext}",
                         "sidecars": {f"{key}.{e}": d for e, d in side.items()}}
        shard0 += [("../../escape.jpg", images["rgb.jpg"][0]), ("broken.png", b"\x89PNG\r\n\x1a\n garbage"),
                   ("empty.jpg", b""), ("orphan.json", b"{}")]
        bad.update({"../../escape": ("read", "UnsafeKey"), "broken": ("decode", None),
                    "empty": ("decode", "EmptyImage"), "orphan": ("read", "LookupError")})
        shard1 = []
        for i, name in enumerate(["rgba.png", "deep.tif"], start=10):
            key = f"sub/{i:06d}"
            ext = name.split(".")[1]
            shard1 += [(f"{key}.{ext}", images[name][0]), (f"{key}.json", b'{"sub": true}')]
            good[key] = {**images[name][1], "image_member": f"{key}.{ext}",
                         "sidecars": {f"{key}.json": b'{"sub": true}'}}
        store.put(prefix, "shard-000000.tar", _tar(shard0))
        store.put(prefix, "part/shard-000001.tar", _tar(shard1))
        store.put(prefix, "README.md", b"not a shard")
        return Archive(store, store.join(prefix), layout, good, bad, shards=2, skipped={".md": 1})
    if layout == "parquet":
        for s, names in enumerate((["rgb.jpg", "cmyk.jpg", None, "corrupt"], ["grey.png", "photo.webp", "pal.gif"])):
            rows = []
            for i, name in enumerate(names):
                key = f"{s:05d}{i:04d}"
                data = images[name][0] if name in images else (None if name is None else corrupt_jpeg(seed))
                rows.append({"key": key, "jpg": data, "caption": f"caption {key}", "url": f"http://x/{key}",
                             "status": "failed_to_download" if name is None else "success",
                             "error_message": "HTTP 404" if name is None else None})
                if name in images:
                    good[key] = {**images[name][1], "carried": {k: v for k, v in rows[-1].items() if k != "jpg"}}
                else:
                    bad[key] = ("read", "MissingImage") if name is None else ("decode", None)
            buf = io.BytesIO()
            pq.write_table(pa.Table.from_pylist(rows), buf)
            store.put(prefix, f"{s:05d}.parquet", buf.getvalue())
            store.put(prefix, f"{s:05d}_stats.json", b"{}")  # img2dataset writes these beside
        return Archive(store, store.join(prefix, "*.parquet"), layout, good, bad, shards=2)
    raise ValueError(layout)


@pytest.fixture
def make_archive():
    return build_archive


# ---------------------------------------------------------------- reading a run back

def read_tables(store: Store, output: str, kind: str) -> list[dict]:
    from pipeline.sinks import read_tables as read

    return read(store.fs, store.fs._strip_protocol(output).rstrip("/"), kind)


@pytest.fixture
def read_rows():
    return read_tables


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


def _check_run(archive: Archive, output: str, summary: dict, image_format: str = "same") -> tuple[list, list]:
    """Every input record exactly once, in metrics or in errors, with the right facts; outputs readable."""
    from model.tasks import TASKS

    store = archive.store
    metrics, errors = read_tables(store, output, "metrics"), read_tables(store, output, "errors")
    mkeys, ekeys = [r["key"] for r in metrics], [r["key"] for r in errors]
    assert sorted(mkeys) == sorted(archive.good), (mkeys, errors)
    assert sorted(ekeys) == sorted(archive.bad)
    for e in errors:
        stage, err = archive.bad[e["key"]]
        assert e["stage"] == stage, e
        assert err is None or e["error_type"] == err, e
        assert e["message"] and e["run_id"] == summary["run_id"]
    for r in metrics:
        want = archive.good[r["key"]]
        for k in ("width", "height", "mode", "format"):
            assert r[k] == want[k], (r["key"], k, r[k], want[k])
        assert r["status"] in ("restored", "unchanged")
        assert r["status"] == ("restored" if any(r[f"{t}_applied"] for t in TASKS) else "unchanged")
        assert r["run_id"] == summary["run_id"] and len(r["weights_sha256"]) == 64 and r["device"] == "cpu"
        for t in TASKS:
            assert np.isfinite(r[f"{t}_estimate_before"]) and np.isfinite(r[f"{t}_estimate_after"])
            assert (r[f"{t}_strength"] > 0) == r[f"{t}_applied"]
        big = r["width"] >= 3 and r["height"] >= 3
        assert (r["denoise_measure_before"] is not None) == big
        assert (r["cast_measure_before"] is None) == (r["mode"] in ("L", "LA", "I;16"))
        assert 0 <= r["exposure_measure_after"] <= 1 and r["contrast_measure_after"] >= 0
        assert set(dict(r["estimates_before"])) >= {"noise_sigma", "blur", "cast", "exposure_ev", "contrast_curve"}
        if r["format"] in ("JPEG", "MPO"):  # the job tells the model: a JPEG's flat patches bound nothing
            assert "noise_sigma_cap" not in dict(r["estimates_before"]), r["key"]
        # an output's edges are re-read only where deblur ran (an unchanged image keeps its input's readings)
        reread = r["status"] == "unchanged" or r["deblur_applied"]
        assert ("edge_blur" in dict(r["estimates_after"])) == reread, r["key"]
        out = Image.open(io.BytesIO(open_output(store, r["output_uri"])))
        # an unchanged image keeps its bytes, EXIF orientation included: compare as displayed
        assert ImageOps.exif_transpose(out).size == (r["width"], r["height"]), r["key"]
        assert out.format == r["output_format"]
        if image_format == "same":
            assert r["output_format"] == ("JPEG" if r["format"] == "MPO" else r["format"])
        if archive.layout == "tar":
            assert r["output_uri"].endswith("#" + want["image_member"]) or image_format != "same"
        if archive.layout == "parquet":
            assert r["output_uri"].endswith("#" + r["key"])
    c = summary["counts"]
    assert c["records"] == archive.records and c["failed"] == len(archive.bad)
    assert c["restored"] + c["unchanged"] == len(archive.good)
    assert summary["shards_listed"] == archive.shards
    assert summary["files_skipped_by_extension"] == archive.skipped
    assert summary["files_skipped"] == sum(archive.skipped.values())
    return metrics, errors


@pytest.fixture
def check_run():
    return _check_run


@pytest.fixture
def output_bytes():
    return open_output


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


def _same_outputs(store: Store, output: str, reference: str) -> tuple[list, list]:
    """Two runs of one input wrote the same metrics and errors and the same image bytes."""
    got, want = ({kind: read_tables(store, out, kind) for kind in ("metrics", "errors")} for out in (output, reference))
    for kind in got:
        assert comparable(got[kind]) == comparable(want[kind]), kind
    images, expected = ({r["key"]: open_output(store, r["output_uri"]) for r in run["metrics"]} for run in (got, want))
    assert images.keys() == expected.keys() and all(images[k] == expected[k] for k in expected)
    return comparable(got["metrics"]), comparable(got["errors"])


@pytest.fixture
def same_outputs():
    return _same_outputs


def _run_job(input: str, output: str, storage_options: dict | None = None, beam: list[str] | None = None,
            **kw) -> dict:
    """The job exactly as `imagemend run` starts it, in this process, with the in-process FnApiRunner."""
    from pipeline import job, options

    opts = options.RunOptions(input=input, output=output, storage_options=storage_options or {}, **kw)
    return job.run(opts, options.beam_args(beam or []))


@pytest.fixture
def run_job():
    return _run_job


def build_tar_shards(store: Store, prefix: str, shards: int, samples: int, seed: int = 0) -> str:
    """`shards` WebDataset tars of `samples` small JPEG samples with a JSON sidecar each; returns --input."""
    for s in range(shards):
        members = []
        for i in range(samples):
            img = Image.fromarray(pixels(48 + 8 * (i % 3), 64, 3, seed + 100 * s + i))
            members += [(f"{s:03d}{i:04d}.jpg", encode(img, "JPEG", quality=85)),
                        (f"{s:03d}{i:04d}.json", json.dumps({"s": s, "i": i}).encode())]
        store.put(prefix, f"shard-{s:04d}.tar", _tar(members))
    return store.join(prefix)


@pytest.fixture
def make_tar_shards():
    return build_tar_shards


# ---------------------------------------------------------------- weights for structural tests

@pytest.fixture(scope="session")
def active_weights(tmp_path_factory) -> str:
    """A seeded network whose every head is non-zero, saved like shipped weights: tests of evaluation
    machinery need a model that changes pixels, not one that restores well (nor the shipped file,
    whose architecture may be mid-change in a working tree)."""
    from model.weights import save_weights

    path = tmp_path_factory.mktemp("weights") / "active.safetensors"
    save_weights(path, active_network(), {"note": "test network"})
    return str(path)


def active_network():
    """A seeded network whose every head is non-zero, so each code path changes the pixels."""
    import torch

    from model.net import ImagemendNet

    torch.manual_seed(0)
    net = ImagemendNet()
    for head in (net.local.denoise[0], net.local.deblur[0]):
        torch.nn.init.normal_(head.weight, std=0.01)
    for head in net.glob.heads.values():
        torch.nn.init.normal_(head.weight, std=0.05)
    return net.eval()


@pytest.fixture(scope="module")
def active_net():
    return active_network()
