"""The CUDA path: the U-Net alone by batch and precision, whole restores fp32 against bf16 (and
compiled), batching across photos, and GPU memory for each. Called by bench_model.py --parts gpu.

The U-Net alone is the bound a job can approach on a GPU; a whole restore adds what runs on the
host (reading tiles, the statistics pass, the tone correction, copies), which on a GPU is most
of the time. Figures are megapixels of output per second; memory is torch's peak allocation.
"""

from bench_model import best_of, photo, restorer
import torch

from model.config import RestoreConfig

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


def bench_gpu(device: str, sizes: list[float], repeats: int, compile: bool) -> list[dict]:
    """compile: only the compiled restore of the largest size (compiling takes a minute or more)."""
    if compile:
        return whole_restore(device, max(sizes), 1024, 8, repeats, ("bf16+compile",))
    rows = net_alone(device, 512, [1, 2, 4, 8, 16, 32], repeats)
    rows += net_alone(device, 1024, [1, 2, 4, 8], repeats)
    for mp in sizes:
        rows += whole_restore(device, mp, 1024, 8, repeats)
    rows += batching(device, 1.0, 8, 1024, [1, 4, 8], repeats)
    return rows
