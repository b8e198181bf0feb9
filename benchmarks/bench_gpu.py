"""The CUDA path: the U-Net alone by batch and precision, whole restores fp32 against bf16 (and
compiled), batching across photos, and GPU memory for each. Called by bench_model.py --parts gpu.

The U-Net alone is the bound a job can approach on a GPU; a whole restore adds what runs on the
host (reading tiles, the statistics pass, the tone correction, copies), which on a GPU is most
of the time. Figures are megapixels of output per second; memory is torch's peak allocation.
"""

import multiprocessing
import os
import time

from common import best_of, photo, restorer
import torch

from imagemend.model.core.config import RestoreConfig
from imagemend.model.core.deblur import edge_blur
from imagemend.model.core.noise_floor import noise_cap
from imagemend.model.core.restore import row_reader

HALO = RestoreConfig().halo


def _timed(fn, repeats: int) -> float:
    fn()  # warm-up: cuDNN picks its kernels on the first call of each shape
    return best_of(fn, repeats)  # best_of synchronizes the GPU before reading the clock


def net_alone(device: str, tile: int, batches: list[int], repeats: int) -> list[dict]:
    """The local U-Net on batches of tiles already on the GPU (core pixels counted, halo not)."""
    r = restorer(device, None, tile=tile)
    side = tile + 2 * HALO
    rows = []
    for amp in (False, True):
        for b in batches:
            x = torch.rand(b, 3, side, side, device=device).contiguous(memory_format=torch.channels_last)
            sigma, blur = torch.full((b,), 10.0, device=device), torch.full((b,), 1.0, device=device)

            def run(x=x, sigma=sigma, blur=blur, amp=amp):
                with torch.inference_mode(), torch.autocast("cuda", dtype=torch.bfloat16, enabled=amp):
                    r.net.local(x, sigma, blur)

            torch.cuda.reset_peak_memory_stats()
            s = _timed(run, repeats)
            rows.append({"part": "net", "precision": "bf16" if amp else "fp32", "tile": tile, "batch": b,
                         "mp_per_s": b * tile * tile / 1e6 / s,
                         "gpu_peak_mib": torch.cuda.max_memory_allocated() / 2**20})
            print(rows[-1], flush=True)
    return rows


def whole_restore(device: str, megapixels: float, tile: int, batch: int, repeats: int,
                  precisions: tuple[str, ...] = ("fp32", "bf16")) -> list[dict]:
    """One photo through Restorer at each precision: fp32, bf16, bf16+compile."""
    img = photo(megapixels)
    mp = img.shape[0] * img.shape[1] / 1e6
    rows = []
    for precision in precisions:
        r = restorer(device, None, tile=tile, pixel_budget=batch * (tile + 2 * HALO) ** 2)
        r.amp = precision != "fp32"
        if "compile" in precision:
            r.net.local = torch.compile(r.net.local, dynamic=True)
        torch.cuda.reset_peak_memory_stats()
        s = _timed(lambda r=r: r.restore([img]), repeats)
        rows.append({"part": "restore", "precision": precision, "megapixels": mp, "tile": tile, "batch": batch,
                     "seconds": s, "mp_per_s": mp / s, "gpu_peak_mib": torch.cuda.max_memory_allocated() / 2**20})
        print(rows[-1], flush=True)
    return rows


def batching(device: str, megapixels: float, photos: int, tile: int, batches: list[int], repeats: int) -> list[dict]:
    """Many same-sized photos in one call, tiles per forward pass capped at each batch size."""
    imgs = [photo(megapixels, seed) for seed in range(photos)]
    mp = sum(i.shape[0] * i.shape[1] for i in imgs) / 1e6
    rows = []
    for b in batches:
        r = restorer(device, None, tile=tile, pixel_budget=b * (tile + 2 * HALO) ** 2)
        torch.cuda.reset_peak_memory_stats()
        s = _timed(lambda r=r: r.restore(imgs), repeats)
        rows.append({"part": "batching", "precision": "bf16", "photos": photos, "megapixels": mp, "tile": tile,
                     "batch": b, "mp_per_s": mp / s, "gpu_peak_mib": torch.cuda.max_memory_allocated() / 2**20})
        print(rows[-1], flush=True)
    base = rows[0]["mp_per_s"]
    for row in rows:
        row["gain"] = row["mp_per_s"] / base
    return rows


def readings(device: str, megapixels: float, repeats: int) -> list[dict]:
    """The per-photo readings besides the network (the edge blur, the flat-patch noise bound), on
    the restore's device: on the host they bounded a GPU process's restores."""
    img, dev = photo(megapixels), torch.device(device)
    read_rows, height, width = row_reader(img, dev)
    rows = []
    for name, fn in (("edge_blur", lambda: edge_blur(read_rows, height, width)),
                     ("noise_cap", lambda: noise_cap(img, dev))):
        rows.append({"part": "readings", "reading": name, "megapixels": megapixels, "seconds": _timed(fn, repeats)})
        print(rows[-1], flush=True)
    return rows


def _worker(device: str, megapixels: float, photos: int, threads: int, start, times) -> None:
    torch.set_num_threads(threads)
    r = restorer(device, None)
    imgs = [photo(megapixels, seed) for seed in range(photos)]
    r.restore(imgs[:1])  # warm-up: CUDA context, cuDNN's kernel choice
    start.wait()
    t0 = time.perf_counter()
    for img in imgs:
        r.restore([img])  # returns host arrays: the GPU's work is done
    times.put((t0, time.perf_counter()))


def processes(device: str, megapixels: float, photos: int, counts: list[int], cores: int) -> list[dict]:
    """N processes sharing the GPU, each with its own model, restoring `photos` photos one at a time
    after a common start: how far several processes per GPU lift a host-bound restore."""
    ctx = multiprocessing.get_context("spawn")  # CUDA cannot be forked
    rows = []
    for n in counts:
        start, times = ctx.Barrier(n), ctx.Queue()
        procs = [ctx.Process(target=_worker, args=(device, megapixels, photos, max(1, cores // n), start, times))
                 for _ in range(n)]
        for q in procs:
            q.start()
        spans = [times.get(timeout=600) for _ in procs]
        for q in procs:
            q.join()
        seconds = max(t1 for _, t1 in spans) - min(t0 for t0, _ in spans)
        rows.append({"part": "processes", "processes": n, "torch_threads": max(1, cores // n), "megapixels": megapixels,
                     "photos": n * photos, "seconds": seconds, "mp_per_s": n * photos * megapixels / seconds})
        print(rows[-1], flush=True)
    return rows


def bench_gpu(device: str, sizes: list[float], repeats: int, compile: bool) -> list[dict]:
    """compile: only the compiled restore of the largest size (compiling takes a minute or more)."""
    if compile:
        return whole_restore(device, max(sizes), 1024, 8, repeats, ("bf16+compile",))
    rows = net_alone(device, 512, [1, 2, 4, 8, 16, 32], repeats)
    rows += net_alone(device, 1024, [1, 2, 4, 8], repeats)
    for mp in sizes:
        rows += whole_restore(device, mp, 1024, 8, repeats)
    rows += batching(device, 1.0, 8, 1024, [1, 4, 8], repeats)
    rows += readings(device, 1.0, repeats) + readings(device, 12.0, repeats)
    rows += processes(device, 1.0, 16, [1, 4, 8], os.cpu_count() or 1)
    return rows
