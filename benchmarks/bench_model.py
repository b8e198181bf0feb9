"""Speed and memory of the restorer alone, of image decoding/encoding, and of the whole job: one command.

    python benchmarks/bench_model.py --out benchmarks/results/cpu.json                # all parts
    python benchmarks/bench_model.py --parts speed --sizes 1,12 --device cuda
    python benchmarks/bench_model.py --parts pipeline --pipeline-sizes 1 --pipeline-workers 1,2
    python benchmarks/bench_model.py --parts gpu --sizes 1,12 --device cuda [--compile]

Parts: `speed` (MP/s by image size, tile size and batch), `codec` (decode/encode MP/s per core),
`memory` (peak resident memory by image size, each size in a fresh process), `pipeline` (the
`imagemend run` job end to end, in-process and with worker processes, against the model alone on
the same photos, and batching's gain: benchmarks/bench_pipeline.py), `gpu` (the U-Net alone by
batch and precision, whole restores fp32 against bf16, batching across photos, GPU memory:
benchmarks/bench_gpu.py). Prints a markdown table per
part; --out keeps the raw numbers. Not a test: nothing here asserts a speed. docs/PERFORMANCE.md
says what each figure means.
"""

import argparse
import contextlib
import io
import json
import os
from pathlib import Path
import platform
import resource
import subprocess
import sys

from common import best_of, photo, restorer
from PIL import Image
import torch


def bench_speed(sizes, tiles, batches, device, repeats, weights=None) -> list[dict]:
    from imagemend.model.core.config import RestoreConfig

    rows = []
    for mp in sizes:
        img = photo(mp)
        for tile in tiles:
            for batch in batches:
                side = tile + 2 * RestoreConfig().halo
                r = restorer(device, weights, tile=tile, pixel_budget=batch * side * side)
                r.restore([photo(0.05)])  # warm-up
                s = best_of(lambda r=r, img=img: r.restore([img]), repeats)
                rows.append({"megapixels": img.shape[0] * img.shape[1] / 1e6, "tile": tile, "batch": batch,
                             "seconds": s, "mp_per_s": img.shape[0] * img.shape[1] / 1e6 / s})
                print(rows[-1], flush=True)
    return rows


def bench_codec(repeats: int) -> list[dict]:
    img = Image.fromarray(photo(12))
    mp = img.width * img.height / 1e6
    rows = []
    for fmt, kw in (("JPEG", {"quality": 90}), ("PNG", {}), ("WEBP", {"quality": 90})):
        buf = io.BytesIO()
        enc = best_of(lambda fmt=fmt, kw=kw: img.save(io.BytesIO(), format=fmt, **kw), repeats)
        img.save(buf, format=fmt, **kw)
        data = buf.getvalue()
        dec = best_of(lambda data=data: Image.open(io.BytesIO(data)).load(), repeats)
        rows.append({"format": fmt, "encode_mp_per_s": mp / enc, "decode_mp_per_s": mp / dec,
                     "bytes_per_pixel": len(data) / (mp * 1e6)})
        print(rows[-1], flush=True)
    return rows


def _status_mib(key: str) -> float | None:
    """A memory line of /proc/self/status (Linux), in MiB."""
    with contextlib.suppress(OSError):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1]) / 1024
    return None


def peak_rss_mib() -> float:
    """This process's peak resident memory. Linux: VmHWM, since getrusage's ru_maxrss carries the
    parent's peak across fork and exec (a child of a big benchmark process would report the parent)."""
    peak = _status_mib("VmHWM")
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 if peak is None else peak


def rss_mib() -> float | None:
    return _status_mib("VmRSS")


def reset_peak_rss() -> None:
    """Start the high-water mark afresh (Linux >= 4.0), so making the test photo (float64
    temporaries several times its size) does not count as the restorer's memory."""
    with contextlib.suppress(OSError):
        Path("/proc/self/clear_refs").write_text("5")


def _peak_rss_child(mp: float, device: str, weights: str | None) -> None:
    img = photo(mp)
    r = restorer(device, weights)
    reset_peak_rss()
    base = rss_mib()  # the model, the input photo, Python and torch
    r.restore([img])
    peak = peak_rss_mib()
    row = {"megapixels": img.shape[0] * img.shape[1] / 1e6, "peak_rss_mib": peak, "rss_before_restore_mib": base}
    if device.startswith("cuda"):  # host memory above; the GPU's own peak here
        row["gpu_peak_mib"] = torch.cuda.max_memory_allocated() / 2**20
    print(json.dumps(row))


def bench_memory(sizes, device, weights=None, threads=2) -> list[dict]:
    rows = []
    for mp in sizes:
        out = subprocess.run([sys.executable, __file__, "--child-memory", str(mp), "--device", device,
                              "--threads", str(threads)] + (["--weights", weights] if weights else []),
                             capture_output=True, text=True, check=True)
        rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
        print(rows[-1], flush=True)
    return rows


def table(rows: list[dict]) -> str:
    keys = list(dict.fromkeys(k for r in rows for k in r))  # rows of one part may differ in columns
    fmt = lambda v: "-" if v is None else f"{v:.3g}" if isinstance(v, float) else str(v)  # noqa: E731
    return "\n".join(["| " + " | ".join(keys) + " |", "|" + "---|" * len(keys)]
                     + ["| " + " | ".join(fmt(r.get(k)) for k in keys) + " |" for r in rows])


def machine(threads: int, device: str) -> dict:
    cpu = platform.processor() or platform.machine()
    try:
        names = [line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                 if line.startswith("model name")]
        cpu = names[0] if names else cpu
    except OSError:
        pass
    try:
        ram = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    except (ValueError, OSError, AttributeError):
        ram = None
    return {"cpu": cpu, "cores": os.cpu_count(), "ram_gib": ram, "threads": threads, "torch": torch.__version__,
            "device": device, "gpu": torch.cuda.get_device_name() if device.startswith("cuda") else None,
            "load_average_at_start": os.getloadavg()}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--parts", default="speed,codec,memory,pipeline")
    p.add_argument("--sizes", default="0.25,1,12,50", help="megapixels (speed, memory)")
    p.add_argument("--tiles", default="512,1024")
    p.add_argument("--batches", default="1,2")
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--weights", help="weights file (default: the shipped weights)")
    p.add_argument("--pipeline-sizes", default="0.25,1", help="megapixels per photo (pipeline)")
    p.add_argument("--pipeline-images", type=int, default=0, help="photos per size (default: about 16 MP)")
    p.add_argument("--pipeline-workers", default="1,2", help="1: in-process runner; N > 1: --workers N")
    p.add_argument("--decode-threads", type=int, help="the job's --threads (default: the job's default, 2)")
    p.add_argument("--pixel-budget", type=int, help="the job's --pixel-budget (default: the job's default)")
    p.add_argument("--no-batching", action="store_true",
                   help="pipeline: skip the batching table (3 more model runs)")
    p.add_argument("--compile", action="store_true", help="gpu: time only torch.compile's restore of the largest size")
    p.add_argument("--out")
    p.add_argument("--child-memory", type=float, help=argparse.SUPPRESS)
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    if a.child_memory:
        return _peak_rss_child(a.child_memory, a.device, a.weights)
    sizes = [float(s) for s in a.sizes.split(",")]
    res = {"machine": machine(a.threads, a.device)}
    parts = a.parts.split(",")
    if "speed" in parts:
        res["speed"] = bench_speed(sizes, [int(t) for t in a.tiles.split(",")],
                                   [int(b) for b in a.batches.split(",")], a.device, a.repeats, a.weights)
    if "codec" in parts:
        res["codec"] = bench_codec(a.repeats)
    if "memory" in parts:
        res["memory"] = bench_memory(sizes, a.device, a.weights, a.threads)
    if "pipeline" in parts:
        import bench_pipeline

        res.update(bench_pipeline.bench_pipeline(
            [float(s) for s in a.pipeline_sizes.split(",")], a.pipeline_images,
            tuple(int(w) for w in a.pipeline_workers.split(",")), a.threads, a.device, a.weights, a.repeats,
            a.decode_threads, a.pixel_budget, batching=not a.no_batching))
    if "gpu" in parts:
        import bench_gpu

        res["gpu"] = bench_gpu.bench_gpu(a.device, sizes, a.repeats, a.compile)
    for k, rows in res.items():
        if k != "machine" and rows:
            print(f"\n### {k}\n\n{table(rows)}")
    if a.out:
        Path(a.out).parent.mkdir(parents=True, exist_ok=True)
        Path(a.out).write_text(json.dumps(res, indent=1))


if __name__ == "__main__":
    main()
