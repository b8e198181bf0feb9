"""Speed and memory of the restorer alone, and of image decoding/encoding (the CPU side of a GPU job).

    python benchmarks/bench_model.py --out benchmarks/results/model-cpu.json          # all parts
    python benchmarks/bench_model.py --parts speed --sizes 1,12 --device cuda

Parts: `speed` (MP/s by image size, tile size and batch), `codec` (decode/encode MP/s per core),
`memory` (peak resident memory by image size, each size in a fresh process). Prints a markdown
table per part; --out keeps the raw numbers. Not a test: nothing here asserts a speed.
"""

import argparse
import io
import json
import platform
import resource
import subprocess
import sys
import time

import numpy as np
from PIL import Image
import torch


def photo(megapixels: float, seed: int = 0) -> np.ndarray:
    """A sample photo resized to the given size (4:3), with mild noise so every task has work."""
    from skimage import data

    w = int((megapixels * 1e6 * 4 / 3) ** 0.5)
    h = max(1, int(w * 3 / 4))
    img = np.asarray(Image.fromarray(data.astronaut()).resize((w, h), Image.BILINEAR))
    noise = np.random.default_rng(seed).normal(0, 8, img.shape)
    return np.clip(img + noise, 0, 255).astype(np.uint8)


def best_of(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        times.append(time.perf_counter() - t0)
    return min(times)


def bench_speed(sizes, tiles, batches, device, repeats) -> list[dict]:
    from model import Restorer
    from model.config import RestoreConfig

    rows = []
    for mp in sizes:
        img = photo(mp)
        for tile in tiles:
            for batch in batches:
                side = tile + 2 * RestoreConfig().halo
                r = Restorer(device=device, cfg=RestoreConfig(tile=tile, pixel_budget=batch * side * side))
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


def _peak_rss_child(mp: float, device: str) -> None:
    from model import Restorer

    img = photo(mp)
    r = Restorer(device=device)
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    r.restore([img])
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps({"megapixels": img.shape[0] * img.shape[1] / 1e6, "peak_rss_mib": peak / 1024,
                      "rss_before_restore_mib": base / 1024}))


def bench_memory(sizes, device) -> list[dict]:
    rows = []
    for mp in sizes:
        out = subprocess.run([sys.executable, __file__, "--child-memory", str(mp), "--device", device],
                             capture_output=True, text=True, check=True)
        rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
        print(rows[-1], flush=True)
    return rows


def table(rows: list[dict]) -> str:
    keys = list(rows[0])
    fmt = lambda v: f"{v:.3g}" if isinstance(v, float) else str(v)  # noqa: E731
    return "\n".join(["| " + " | ".join(keys) + " |", "|" + "---|" * len(keys)]
                     + ["| " + " | ".join(fmt(r[k]) for k in keys) + " |" for r in rows])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--parts", default="speed,codec,memory")
    p.add_argument("--sizes", default="0.25,1,12,50", help="megapixels")
    p.add_argument("--tiles", default="512,1024")
    p.add_argument("--batches", default="1,2")
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--out")
    p.add_argument("--child-memory", type=float, help=argparse.SUPPRESS)
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    if a.child_memory:
        return _peak_rss_child(a.child_memory, a.device)
    sizes = [float(s) for s in a.sizes.split(",")]
    res = {"machine": {"cpu": platform.processor() or platform.machine(), "threads": a.threads,
                       "torch": torch.__version__, "device": a.device,
                       "gpu": torch.cuda.get_device_name() if a.device.startswith("cuda") else None}}
    parts = a.parts.split(",")
    if "speed" in parts:
        res["speed"] = bench_speed(sizes, [int(t) for t in a.tiles.split(",")],
                                   [int(b) for b in a.batches.split(",")], a.device, a.repeats)
    if "codec" in parts:
        res["codec"] = bench_codec(a.repeats)
    if "memory" in parts:
        res["memory"] = bench_memory(sizes, a.device)
    for k, rows in res.items():
        if k != "machine":
            print(f"\n### {k}\n\n{table(rows)}")
    if a.out:
        from pathlib import Path

        Path(a.out).parent.mkdir(parents=True, exist_ok=True)
        Path(a.out).write_text(json.dumps(res, indent=1))


if __name__ == "__main__":
    main()
