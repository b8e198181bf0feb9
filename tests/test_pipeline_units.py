"""The pieces of the pipeline on their own: keys, listing, codecs, measures, schema docs, options, threads."""

import argparse
import io
from pathlib import Path
import threading
import time

from conftest import animated, png16
import numpy as np
from PIL import Image, ImageCms, ImageOps
import pytest
from skimage.data import astronaut

from model import measures
from pipeline import decode as dec
from pipeline import encode as enc
from pipeline import options, schema, shard, sources, storage
from pipeline.options import InputOptions, ModelOptions, OutputOptions, RunOptions

REPO = Path(__file__).resolve().parents[1]


# ---------------------------------------------------------------- keys and atomic writes

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


# ---------------------------------------------------------------- listing

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


# ---------------------------------------------------------------- decode and encode

def _png(arr, **kw) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, "PNG", **kw)
    return buf.getvalue()


def test_decode_modes_to_model_arrays():
    import tifffile

    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 255, (5, 7, 3), dtype=np.uint8)
    cases = {
        "L": (_png(rgb[..., 0]), (5, 7), np.uint8),
        "LA": (_png(np.dstack([rgb[..., 0], rgb[..., 1]])), (5, 7, 2), np.uint8),
        "RGBA": (_png(np.dstack([rgb, rgb[..., :1]])), (5, 7, 4), np.uint8),
        "I;16": (_png(rng.integers(0, 65535, (5, 7), dtype=np.uint16)), (5, 7), np.uint16),
        "1": (_save(Image.fromarray(rgb[..., 0] > 128), "PNG"), (5, 7), np.uint8),
        "P": (_save(Image.fromarray(rgb).convert("P"), "GIF"), (5, 7, 3), np.uint8),
        "CMYK": (_save(Image.frombytes("CMYK", (7, 5), rng.integers(0, 255, 140, np.uint8).tobytes()), "JPEG"),
                 (5, 7, 3), np.uint8),
        "F": (_save(Image.fromarray(rng.random((5, 7), dtype=np.float32)), "TIFF"), (5, 7), np.float32),
    }
    buf = io.BytesIO()
    deep = rng.integers(0, 65535, (5, 7, 3), dtype=np.uint16)
    tifffile.imwrite(buf, deep, photometric="rgb")
    cases["RGB;16"] = (buf.getvalue(), (5, 7, 3), np.uint16)
    cases["PNG RGB;16"] = (png16(deep), (5, 7, 3), np.uint16)
    cases["PNG RGBA;16"] = (png16(np.dstack([deep, deep[..., :1]])), (5, 7, 4), np.uint16)
    for mode, (data, shape, dtype) in cases.items():
        d = dec.decode(data)
        assert (d.pixels.shape, d.pixels.dtype, d.meta.mode) == (shape, dtype, mode.split()[-1]), mode
        assert d.pixels.dtype.isnative
    for mode in ("RGB;16", "PNG RGB;16"):
        assert np.array_equal(dec.decode(cases[mode][0]).pixels, deep), mode  # 16 bits kept, not cut to 8


@pytest.mark.parametrize("fmt", ["GIF", "PNG", "WEBP", "TIFF"])
def test_animated_images_are_refused_not_cut_to_one_frame(fmt):
    with pytest.raises(dec.AnimatedImage, match="with 3 (frames|full-size pages): not supported"):
        dec.decode(animated(fmt))
    one = dec.decode(animated(fmt, frames=1))  # a single frame saved as an animation is an ordinary image
    assert one.pixels.shape[:2] == (8, 10)


def _save(im: Image.Image, fmt: str, **kw) -> bytes:
    buf = io.BytesIO()
    im.save(buf, fmt, **kw)
    return buf.getvalue()


@pytest.mark.parametrize("orientation", range(1, 9))
def test_exif_orientation_applied_and_reset(orientation):
    rgb = np.random.default_rng(orientation).integers(0, 255, (6, 10, 3), dtype=np.uint8)
    ex = Image.Exif()
    ex[0x0112], ex[0x010F] = orientation, "cam"
    data = _save(Image.fromarray(rgb), "PNG", exif=ex.tobytes())
    d = dec.decode(data)
    assert np.array_equal(d.pixels, np.asarray(ImageOps.exif_transpose(Image.open(io.BytesIO(data)))))
    out = Image.open(io.BytesIO(enc.encode(d.pixels, d.meta, "JPEG")))
    assert out.getexif().get(0x0112) == 1 and out.getexif()[0x010F] == "cam"


def test_encode_keeps_pixels_exif_and_icc_in_lossless_formats():
    icc = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    rng = np.random.default_rng(1)
    arrays = [rng.integers(0, 255, (4, 6), dtype=np.uint8), rng.integers(0, 255, (4, 6, 2), dtype=np.uint8),
              rng.integers(0, 255, (4, 6, 3), dtype=np.uint8), rng.integers(0, 255, (4, 6, 4), dtype=np.uint8),
              rng.integers(0, 65535, (4, 6), dtype=np.uint16), rng.integers(0, 65535, (4, 6, 3), dtype=np.uint16)]
    ex = Image.Exif()
    ex[0x010F] = "cam"
    for fmt in ("PNG", "TIFF"):
        for arr in arrays:
            colour = arr.ndim == 3 and arr.shape[2] >= 3
            meta = dec.Meta(format=fmt, mode="?", exif=ex.tobytes(), icc=icc if colour else None)
            back = dec.decode(enc.encode(arr, meta, fmt))
            assert np.array_equal(back.pixels, arr), (fmt, arr.shape, arr.dtype)
            if colour:
                assert back.meta.icc == icc
            if arr.dtype == np.uint8 or fmt == "PNG":
                assert Image.open(io.BytesIO(enc.encode(arr, meta, fmt))).getexif()[0x010F] == "cam"
    deep = enc.encode(arrays[5], dec.Meta("PNG", "?"), "PNG")  # 16-bit colour PNG: Pillow reads its high bytes
    assert np.array_equal(np.asarray(Image.open(io.BytesIO(deep))), (arrays[5] >> 8).astype(np.uint8))
    float_rgb = enc.encode(arrays[5].astype(np.float32) / 65535, dec.Meta("PNG", "?"), "PNG")
    assert np.array_equal(dec.decode(float_rgb).pixels, arrays[5])


@pytest.mark.parametrize("fmt,shape,dtype,mode", [
    ("JPEG", (4, 6, 4), np.uint8, "RGB"), ("JPEG", (4, 6, 2), np.uint8, "L"), ("JPEG", (4, 6), np.uint16, "L"),
    ("WEBP", (4, 6), np.uint8, "RGB"), ("WEBP", (4, 6, 2), np.uint8, "RGBA"), ("GIF", (4, 6, 3), np.uint8, "P"),
    ("BMP", (4, 6, 3), np.float32, "RGB"),
])
def test_encode_reduces_to_what_the_format_holds(fmt, shape, dtype, mode):
    arr = np.zeros(shape, dtype=dtype)
    assert Image.open(io.BytesIO(enc.encode(arr, dec.Meta(fmt, "?"), fmt))).mode == mode


def test_jpeg_reencoded_with_its_own_tables():
    rgb = np.random.default_rng(2).integers(0, 255, (32, 32, 3), dtype=np.uint8)
    low = dec.decode(_save(Image.fromarray(rgb), "JPEG", quality=30))
    high = dec.decode(_save(Image.fromarray(rgb), "JPEG", quality=95))
    a, b = enc.encode(low.pixels, low.meta, "JPEG"), enc.encode(high.pixels, high.meta, "JPEG")
    assert Image.open(io.BytesIO(a)).quantization == Image.open(io.BytesIO(_save(Image.fromarray(rgb), "JPEG",
                                                                                   quality=30))).quantization
    assert len(a) < len(b)
    assert len(enc.encode(high.pixels, high.meta, "JPEG", quality=30)) < len(b)


def test_output_names_follow_the_format():
    assert enc.output_name("a/b.jpg", "JPEG", "JPEG") == "a/b.jpg"
    assert enc.output_name("a/b.JPG", "MPO", "JPEG") == "a/b.JPG"
    assert enc.output_name("s/0001.left.jpg", "JPEG", "PNG") == "s/0001.left.png"
    assert enc.output_format("same", "MPO") == "JPEG" and enc.output_format("webp", "PNG") == "WEBP"


@pytest.mark.parametrize("data,error", [(b"", dec.EmptyImage), (b"hello", Exception), (None, Exception)])
def test_decode_rejects_non_images(data, error):
    if data is None:
        data = _save(Image.fromarray(np.zeros((64, 64, 3), np.uint8) + 90), "JPEG")[:150]
    with pytest.raises(error):
        dec.decode(data)


def test_decode_refuses_images_over_the_pixel_limit():
    data = _save(Image.new("L", (300, 200)), "PNG")
    with pytest.raises(dec.ImageTooLarge):
        dec.decode(data, max_pixels=300 * 200 - 1)
    assert dec.decode(data, max_pixels=300 * 200).pixels.shape == (200, 300)


# ---------------------------------------------------------------- measures

def test_measures_respond_to_what_they_measure():
    rng = np.random.default_rng(3)
    flat = np.full((120, 160, 3), 128.0)
    noisy = np.clip(flat + rng.normal(0, 10, flat.shape), 0, 255).round().astype(np.uint8)
    assert abs(measures.measure(noisy)["noise_sigma"] - 10) < 1.0
    assert measures.measure(flat.astype(np.uint8))["noise_sigma"] == 0

    from skimage import data, filters
    photo = data.camera()[::2, ::2]
    blurred = (filters.gaussian(photo, 2) * 255).round().astype(np.uint8)
    assert measures.measure(blurred)["laplacian_var"] < 0.2 * measures.measure(photo)["laplacian_var"]

    neutral = np.full((8, 8, 3), 100, np.uint8)
    tinted = neutral * np.array([1.3, 1.0, 0.7])
    assert measures.measure(neutral)["cast"] < 1e-3 and measures.measure(tinted.astype(np.uint8))["cast"] > 0.2
    half = np.zeros((10, 10), np.uint8)
    half[:5] = 255
    m = measures.measure(half)
    assert (m["clipped_high"], m["clipped_low"], m["luminance"]) == (0.5, 0.5, 0.5)
    assert m["rms_contrast"] == pytest.approx(0.5) and m["cast"] is None
    assert measures.measure(np.zeros((1, 1, 3), np.uint16))["noise_sigma"] is None


def test_measures_do_not_depend_on_strips_or_dtype(monkeypatch):
    rng = np.random.default_rng(4)
    img = rng.integers(0, 255, (50, 40, 3), dtype=np.uint8)
    whole = measures.measure(img)
    as16 = measures.measure(img.astype(np.uint16) * 257)
    asf = measures.measure(img.astype(np.float32) / 255)
    monkeypatch.setattr(measures, "STRIP", 7)
    strips = measures.measure(img)
    for k, v in whole.items():
        assert strips[k] == pytest.approx(v) and as16[k] == pytest.approx(v, rel=1e-4, abs=1e-6)
        assert asf[k] == pytest.approx(v, rel=1e-4, abs=1e-6)
    monkeypatch.setattr(measures, "SAMPLE", 500)  # beyond SAMPLE pixels only some strips are measured
    sampled = measures.measure(img)
    assert sampled["noise_sigma"] == pytest.approx(whole["noise_sigma"], rel=0.1)


# ---------------------------------------------------------------- schema, options, threads

def test_schemas_are_documented_in_architecture_md():
    text = (REPO / "docs" / "ARCHITECTURE.md").read_text()
    assert schema.markdown(schema.METRICS_SCHEMA) in text
    assert schema.markdown(schema.ERRORS_SCHEMA) in text


def test_options_parse_tasks_strengths_and_beam_flags():
    p = argparse.ArgumentParser()
    options.add_arguments(p)
    args = p.parse_args(["--input", "i", "--output", "o", "--tasks", "denoise,cast", "--strength", "cast=0.5"])
    opts = options.from_args(args)
    assert opts.model.strengths == {"denoise": 1.0, "cast": 0.5} and opts.run_id
    assert options.parse_strength("0.3") == {t: 0.3 for t in ("denoise", "deblur", "cast", "exposure", "contrast")}
    for bad in ("sharpen", "denoise,zoom"):
        with pytest.raises(argparse.ArgumentTypeError):
            options.parse_tasks(bad)
    with pytest.raises(ValueError):
        RunOptions.of("i", "o", strengths={"zoom": 1.0})
    told = options.from_args(p.parse_args(["--input", "i", "--output", "o", "--assume", "exposure,contrast"]))
    assert opts.model.assume == () and told.model.assume == ("exposure", "contrast")
    with pytest.raises(ValueError):
        RunOptions.of("i", "o", assume=("zoom",))
    with pytest.raises(TypeError, match="no option 'zoom'"):
        RunOptions.of("i", "o", zoom=1)
    assert options.beam_args([]) == ["--runner=FnApiRunner"]  # never the Prism-downloading default
    assert options.beam_args(["--runner", "PortableRunner"]) == ["--runner", "PortableRunner"]
    assert "--direct_num_workers=3" in options.beam_args([], workers=3)


def test_the_cores_split_into_single_thread_restores():
    from pipeline.infer import concurrency

    def plan(cuda=False, cpus=2, workers=0, **kw):
        return concurrency(ModelOptions(**kw), workers, cuda, cpus)

    assert plan() == (2, 1)  # this machine: two restores of one thread each
    assert plan(cpus=16) == (4, 4) and plan(cpus=1) == (1, 1)
    assert plan(workers=2) == (1, 1)  # --workers 2 on 2 cores: one core per process
    assert plan(cpus=16, workers=4) == (4, 1)
    assert plan(torch_threads=2) == (1, 2)  # --torch-threads alone: one restore, as many threads as asked
    assert plan(restores=3) == (3, 1) and plan(restores=2, torch_threads=3) == (2, 3)
    assert plan(cuda=True, cpus=16) == (1, None)  # one batch on the GPU at a time, torch's own threads
    with pytest.raises(ValueError, match="restores"):
        RunOptions.of("i", "o", restores=-1)
    with pytest.raises(ValueError, match="workers"):
        RunOptions.of("i", "o", workers=-1)


def test_restores_overlap_and_a_large_call_restores_alone(monkeypatch):
    """Two calls must be inside the model at once to pass the barrier; a large call never shares it."""
    import torch

    from model import Restorer
    from pipeline import infer

    inside, most, threads = [], [], []

    class Watched(Restorer):
        def restore(self, images, *a, **k):
            inside.append(1)
            most.append(len(inside))
            threads.append(torch.get_num_threads())
            try:
                if sum(x.size for x in images) < 1000:
                    meet.wait()
                return super().restore(images, *a, **k)
            finally:
                inside.pop()

    meet = threading.Barrier(2, timeout=60)
    torch.set_num_threads(1)
    model = infer.LoadedModel(Watched(device="cpu"), "imagemend-base", restores=2, threads=1)
    small = np.full((8, 8, 3), 120, np.uint8)
    futures = [model.submit([small], [False], {"denoise": 1.0}) for i in range(2)]
    assert all(type(x).__name__ == "Restoration" for f in futures for x in f.result())
    assert max(most) == 2 and threads == [1, 1]

    monkeypatch.setattr(infer, "ALONE_PIXELS", 1000)
    big = np.full((40, 40, 3), 120, np.uint8)
    most.clear()
    futures = [model.submit([big], [False], {"denoise": 1.0}) for i in range(3)]
    assert all(f.result() for f in futures) and max(most) == 1
    assert threads[-3:] == [2, 2, 2] and torch.get_num_threads() == 1  # alone, with both calls' threads

    meet, most[:] = threading.Barrier(2, timeout=2), []  # one slot: the second call cannot join the first
    model = infer.LoadedModel(Watched(device="cpu"), "imagemend-base", restores=1)
    futures = [model.submit([small], [False], {"denoise": 1.0}) for i in range(2)]
    assert [type(x).__name__ for f in futures for x in f.result()] == ["BrokenBarrierError"] * 2 and max(most) == 1


def test_assumed_damage_reaches_the_model():
    from model.config import RestoreConfig
    from pipeline import infer

    told = infer.load_model(ModelOptions(device="cpu", assume=("exposure",))).restorer.cfg
    blind = infer.load_model(ModelOptions(device="cpu")).restorer.cfg
    assert told.min_exposure == RestoreConfig().min_exposure < blind.min_exposure  # the shipped weights' 1.25 EV
    assert told.min_contrast == blind.min_contrast > RestoreConfig().min_contrast
    cast = infer.load_model(ModelOptions(device="cpu", assume=("cast",))).restorer  # read from the photo,
    assert cast.told == ["cast"] and cast.cfg.min_cast == RestoreConfig().min_cast  # not by the disabled head


def test_precision_and_compile_flags_reach_the_model(active_weights):
    import torch

    from pipeline import infer

    p = argparse.ArgumentParser()
    options.add_arguments(p)
    base = ["--input", "i", "--output", "o", "--device", "cpu", "--weights", active_weights]
    assert options.from_args(p.parse_args(base)).model.amp is None  # auto: bf16 on CUDA only
    assert options.from_args(p.parse_args([*base, "--precision", "fp32"])).model.amp is False
    model = infer.load_model(options.from_args(p.parse_args([*base, "--precision", "bf16", "--compile"])).model)
    assert model.restorer.amp is True
    assert isinstance(model.restorer.net.local, torch._dynamo.eval_frame.OptimizedModule)  # compiled lazily


def test_background_and_ordered_map_keep_order_and_surface_errors():
    from concurrent.futures import ThreadPoolExecutor

    def slow(x):
        time.sleep(0.001 * (x % 3))
        return x * x

    with ThreadPoolExecutor(3) as pool:
        assert list(shard.ordered_map(pool, slow, shard.background(range(50), 4), 5)) == [x * x for x in range(50)]

    def broken():
        yield 1
        raise OSError("disk gone")

    with pytest.raises(OSError, match="disk gone"):
        list(shard.background(broken(), 2))
    before = threading.active_count()
    gen = shard.background(iter(range(10_000)), 2)
    next(gen)
    gen.close()  # a consumer that stops early does not leave its reader thread blocked
    time.sleep(0.5)
    assert threading.active_count() <= before


# ---------------------------------------------------------------- the model in the pipeline

def _item(pixels: np.ndarray, index: int) -> shard.Item:
    rec = sources.Record("s", index, f"k{index}", f"file:///k{index}", b"x", f"k{index}.png")
    h, w = pixels.shape[:2]
    return shard.Item(rec, dec.Decoded(pixels, dec.Meta("PNG", "RGB")), {}, w, h)


def test_the_job_bounds_the_noise_of_a_png_and_not_of_a_jpeg_file(active_net):
    """The model is told which inputs are JPEG files by what decode found (their quantisation tables)."""
    from model import Restorer
    from pipeline.infer import LoadedModel

    photo = astronaut()
    decoded = []
    for fmt in ("PNG", "JPEG"):
        buf = io.BytesIO()
        Image.fromarray(photo).save(buf, format=fmt, **({"quality": 95} if fmt == "JPEG" else {}))
        decoded.append(dec.decode(buf.getvalue()))
    png, jpg = LoadedModel(Restorer(active_net, device="cpu"), "active").restore(
        [d.pixels for d in decoded], [bool(d.meta.jpeg) for d in decoded], {"denoise": 1.0})
    assert np.isfinite(png.estimates["noise_sigma_cap"])  # the untrained head reads 10: flat patches bound it
    assert "noise_sigma_cap" not in jpg.estimates  # not read in a JPEG: left out, never infinite


def test_a_failing_image_fails_alone_and_a_device_error_fails_the_bundle():
    from model import Restorer
    from pipeline.infer import LoadedModel

    model = LoadedModel(Restorer(device="cpu"), "imagemend-base")
    good = np.full((16, 24, 3), 120, np.uint8)
    out = model.restore([good, good.astype(np.int32), good], [False] * 3, {"denoise": 1.0})
    assert [type(x).__name__ for x in out] == ["Restoration", "ValueError", "Restoration"]
    failure = shard._restored(_item(good, 1), out[1])  # the shard makes it the record's failure
    assert (failure.stage, failure.error_type, failure.key) == ("restore", "ValueError", "k1")
    it = shard._restored(_item(good, 0), out[0])
    assert it.out.shape == good.shape and it.status in ("restored", "unchanged") and it.result.image is None

    class LostGPU:  # what a Restorer raises when its device fails mid-run (no GPU here to lose)
        def restore(self, *a, **k):
            raise RuntimeError("CUDA error: an illegal memory access was encountered")

    with pytest.raises(RuntimeError, match="CUDA error"):
        LoadedModel(LostGPU(), "x").restore([good, good], [False, False], {"denoise": 1.0})


def test_cuda_is_checked_on_the_launcher_only_where_the_job_runs():
    from pipeline import job

    assert job.runs_here(options.beam_args([]))
    assert job.runs_here(["--runner", "PortableRunner", "--job_endpoint=embed", "--environment_type=LOOPBACK"])
    assert not job.runs_here(["--runner=DataflowRunner", "--project=p"])
    assert not job.runs_here(["--runner=FlinkRunner", "--environment_type=EXTERNAL"])
    job.check_device("cuda", ["--runner=DataflowRunner"])  # the workers have the GPUs, not the launcher
    job.check_device("cpu", options.beam_args([]))
    import torch
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="CUDA is not available on this machine"):
            job.check_device("cuda:0", options.beam_args([]))
