"""The model in the pipeline: threads and restores at once, options reaching the model, failures (pipeline/infer.py)."""

import argparse
import io
import threading

import numpy as np
from PIL import Image
import pytest
from skimage.data import astronaut

from imagemend.pipeline import decode as dec
from imagemend.pipeline import options, shard, sources
from imagemend.pipeline.options import ModelOptions, RunOptions


def test_the_cores_split_into_single_thread_restores():
    from imagemend.pipeline.infer import concurrency

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

    from imagemend.model import Restorer
    from imagemend.pipeline import infer

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
    from imagemend.model.core.config import RestoreConfig
    from imagemend.pipeline import infer

    told = infer.load_model(ModelOptions(device="cpu", assume=("exposure",))).restorer.cfg
    blind = infer.load_model(ModelOptions(device="cpu")).restorer.cfg
    assert told.min_exposure == RestoreConfig().min_exposure < blind.min_exposure  # the shipped weights' 1.25 EV
    assert told.min_contrast == blind.min_contrast > RestoreConfig().min_contrast
    cast = infer.load_model(ModelOptions(device="cpu", assume=("cast",))).restorer  # read from the photo,
    assert cast.told == ["cast"] and cast.cfg.min_cast == RestoreConfig().min_cast  # not by the disabled head


def test_precision_and_compile_flags_reach_the_model(active_weights):
    import torch

    from imagemend.pipeline import infer

    p = argparse.ArgumentParser()
    options.add_arguments(p)
    base = ["--input", "i", "--output", "o", "--device", "cpu", "--weights", active_weights]
    assert options.from_args(p.parse_args(base)).model.amp is None  # auto: bf16 on CUDA only
    assert options.from_args(p.parse_args([*base, "--precision", "fp32"])).model.amp is False
    model = infer.load_model(options.from_args(p.parse_args([*base, "--precision", "bf16", "--compile"])).model)
    assert model.restorer.amp is True
    assert isinstance(model.restorer.net.local, torch._dynamo.eval_frame.OptimizedModule)  # compiled lazily


def _item(pixels: np.ndarray, index: int) -> shard.Item:
    rec = sources.Record("s", index, f"k{index}", f"file:///k{index}", b"x", f"k{index}.png")
    h, w = pixels.shape[:2]
    return shard.Item(rec, dec.Decoded(pixels, dec.Meta("PNG", "RGB")), {}, w, h)


def test_the_job_bounds_the_noise_of_a_png_and_not_of_a_jpeg_file(active_net):
    """The model is told which inputs are JPEG files by what decode found (their quantisation tables)."""
    from imagemend.model import Restorer
    from imagemend.pipeline.infer import LoadedModel

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
    from imagemend.model import Restorer
    from imagemend.pipeline.infer import LoadedModel

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
