"""The whole `imagemend run` job against the model alone, and what batching gains: the `pipeline` part.

    python benchmarks/bench_model.py --parts pipeline                          # 0.25 and 1 MP, 1 and 2 workers
    python benchmarks/bench_model.py --parts pipeline --pipeline-sizes 1,12 --pipeline-images 8

For each size, N photos (bench_model.photo, JPEG quality 90) go to a temporary input folder, then:

- model alone: `Restorer.restore` on the same photos decoded as the job decodes them, grouped into
  restore calls exactly as the job groups a shard's images (pipeline/shard.py: a call closes when
  its images reach --pixel-budget pixels or --batch-images images; calls never cross shards), with
  the same torch threads. A second row adds the job's other model work: the severity estimate of
  every changed output (pipeline/infer.py does it in the same restore slot). Where the job's
  default splits the cores into several single-thread restores (on a CPU), a third row runs the
  model alone that way too: the job's overhead is the gap to that row.
- the job: `imagemend.pipeline.job.run`, exactly what `imagemend run` starts, timed from the call to its
  return (listing, manifest, Beam, model load, reading, decoding, measuring, restoring, encoding,
  image and Parquet writes, summary); the interpreter's start and imports are not in it. Workers 1
  is the in-process FnApiRunner (the default), N > 1 is `--workers N`. Each job splits `threads`
  cores as `imagemend run` splits a machine's by default (pipeline/infer.py: `concurrency`), so
  every row uses the same cores; the in-process job also runs once with the earlier default, one
  restore at a time on all the threads.
  `fixed_s` is the same job on one 64x48 photo per worker: start-up (worker processes, model
  loads, Beam), paid once per job however large; `net_mp_per_s` leaves it out.
- batching: the same photos restored one per call, and one per call with one tile per forward pass
  (pixel budget 1); the gain is against the last.

Stage columns (decode_s, measure_s, restore_s, encode_s) add up the job's per-image timings from its
metrics files: thread-seconds, which overlap, so they can exceed the wall time. `unet_share` is the
share of images the U-Net ran on (denoise or deblur applied): the other images cost only the global
branch, so a figure with a low share does not measure the U-Net. Nothing here asserts a speed.
"""

from collections.abc import Callable
import math
import os
from pathlib import Path
import tempfile
import time

from common import photo
import numpy as np
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
TINY_MP = 0.003  # 64x48: the job on this measures its fixed cost


def write_photos(folder: Path, megapixels: float, n: int, seed: int = 0) -> list[Path]:
    """n photos of about `megapixels` each as JPEG files (quality 90), in name order."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(n):
        path = folder / f"photo-{i:05d}.jpg"
        Image.fromarray(photo(megapixels, seed + i)).save(path, format="JPEG", quality=90)
        paths.append(path)
    return paths


def job_calls(images: list[np.ndarray], files_per_shard: int, pixel_budget: int, batch_images: int) -> list[list]:
    """The images of each restore call, grouped as pipeline/shard.py groups a shard's decoded images."""
    calls = []
    for s in range(0, len(images), files_per_shard):
        batch: list[np.ndarray] = []
        for img in images[s:s + files_per_shard]:
            batch.append(img)
            if sum(a.shape[0] * a.shape[1] for a in batch) >= pixel_budget or len(batch) >= batch_images:
                calls.append(batch)
                batch = []
        if batch:
            calls.append(batch)
    return calls


def time_model(restorer, calls: list[list], strengths: dict, repeats: int) -> dict:
    """Best of `repeats` passes over the calls: restore seconds, output-estimate seconds, passes and tiles."""
    seen = {"passes": 0, "tiles": 0}
    forward = restorer._forward

    def counting(jobs, batch, *a):
        seen["passes"] += 1
        seen["tiles"] += len(batch)
        return forward(jobs, batch, *a)

    restorer._forward = counting  # counts the forward passes of _run_tiles; the work is unchanged
    best = None
    for _ in range(repeats):
        seen.update(passes=0, tiles=0)
        restore_s = estimate_s = 0.0
        unet = 0
        for call in calls:
            t0 = time.perf_counter()
            results = restorer.restore(call, strengths, [True] * len(call))  # JPEG files, as the job tells it
            t1 = time.perf_counter()
            changed = [r for r in results if any(r.applied.values())]  # the job's restore(after=True) reads
            if changed:  # the outputs that changed, in the same call: timed apart here
                restorer.estimate([r.image for r in changed], [r.applied["deblur"] for r in changed])
            estimate_s += time.perf_counter() - t1
            restore_s += t1 - t0
            unet += sum(r.applied["denoise"] or r.applied["deblur"] for r in results)
        run = {"restore_s": restore_s, "estimate_s": estimate_s, "unet": unet, **seen}
        if best is None or run["restore_s"] < best["restore_s"]:
            best = run
    restorer._forward = forward
    return best


def time_at_once(restorer, calls: list[list], strengths: dict, restores: int, repeats: int) -> float:
    """Best wall time of the calls spread over `restores` threads, as the job's restore slots run them."""
    from concurrent.futures import ThreadPoolExecutor

    best = math.inf
    with ThreadPoolExecutor(restores) as pool:
        for _ in range(repeats):
            t0 = time.perf_counter()
            list(pool.map(lambda c: restorer.restore(c, strengths, [True] * len(c)), calls))
            best = min(best, time.perf_counter() - t0)
    return best


def run_job(inputs: Path, output: Path, workers: int, **opts) -> tuple[float, dict]:
    """`imagemend run` in this process, as the CLI starts it; workers 1: in-process, N > 1: --workers N."""
    from imagemend.pipeline import job, options

    workers = 0 if workers <= 1 else workers
    run_opts = options.RunOptions.of(str(inputs), str(output), overwrite=True, workers=workers, **opts)
    argv = options.beam_args([], run_opts.work.workers)
    t0 = time.perf_counter()
    summary = job.run(run_opts, argv)
    seconds = time.perf_counter() - t0
    if summary["counts"]["failed"]:
        raise RuntimeError(f"{summary['counts']['failed']} images failed in the benchmark job: see {output}/errors")
    return seconds, summary


def job_metrics(output: Path) -> dict:
    """Per-image timings summed, processes seen and the U-Net's share, from the job's metrics files."""
    import pyarrow.parquet as pq

    rows = [r for p in sorted((output / "metrics").rglob("*.parquet")) for r in pq.read_table(p).to_pylist()]
    out = {k: sum(r[k] or 0.0 for r in rows) for k in ("decode_s", "measure_s", "restore_s", "encode_s")}
    out["processes"] = len({r["worker"] for r in rows})
    out["unet_share"] = sum(bool(r["denoise_applied"] or r["deblur_applied"]) for r in rows) / max(len(rows), 1)
    out["images"] = len(rows)
    return out


def _row(mp_each: float, n: int, run: str, processes: int, plan: tuple[int, int], seconds: float, model_mp_s: float,
         fixed_s: float | None = None, unet_share: float | None = None, stages: dict | None = None,
         at_once_mp_s: float | None = None) -> dict:
    total = mp_each * n
    stages = stages or {}
    return {
        "megapixels": mp_each, "images": n, "run": run, "processes": processes, "restores": plan[0],
        "torch_threads": plan[1], "seconds": seconds, "mp_per_s": total / seconds,
        "vs_model": total / seconds / model_mp_s if model_mp_s else 1.0,
        "vs_model_at_once": total / seconds / at_once_mp_s if at_once_mp_s else None,
        "fixed_s": fixed_s,
        "net_mp_per_s": total / (seconds - fixed_s) if fixed_s is not None and seconds > fixed_s else None,
        "unet_share": unet_share,
        **{k: stages.get(k) for k in ("decode_s", "measure_s", "restore_s", "encode_s")},
    }


def bench_pipeline(sizes: list[float], images: int = 0, workers: tuple[int, ...] = (1, 2), threads: int = 2,
                   device: str = "cpu", weights: str | None = None, repeats: int = 2, decode_threads: int | None = None,
                   pixel_budget: int | None = None, tile: int | None = None, fixed: bool = True,
                   batching: bool = True, tmp: str | None = None,
                   log: Callable[[dict], None] = lambda row: print(row, flush=True)) -> dict[str, list[dict]]:
    """Rows of the `pipeline` table (model alone, then the job per worker count) and the `batching` table.

    images 0: enough photos for about 16 MP per size (at least 2 per shard of the largest worker count).
    """
    import torch

    from imagemend.model import Restorer
    from imagemend.model.core.tasks import TASKS
    from imagemend.model.core.weights import DEFAULT_WEIGHTS
    from imagemend.pipeline.decode import decode
    from imagemend.pipeline.infer import concurrency
    from imagemend.pipeline.options import InputOptions, ModelOptions, WorkOptions

    work = WorkOptions()
    base = {"device": device, "weights": weights, "threads": work.threads if decode_threads is None
            else decode_threads, "tile": tile or ModelOptions().tile, "pixel_budget": pixel_budget}
    shards = 2 * max(workers)  # the same shards for every worker count, enough for each process to get some
    strengths = {t: 1.0 for t in TASKS}
    # each job splits the `threads` cores as `imagemend run` splits a machine's: (restores, torch threads)
    plans = {w: concurrency(ModelOptions(), 0 if w <= 1 else w, device == "cuda", threads)
             for w in workers}
    plans = {w: (r, t or threads) for w, (r, t) in plans.items()}
    if max(workers) > 1:  # worker processes must import imagemend, as in tests/pipeline/test_runners.py
        os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH")) if p)
    torch.set_num_threads(threads)
    pipeline_rows: list[dict] = []
    batching_rows: list[dict] = []
    with tempfile.TemporaryDirectory(prefix="imagemend-bench-", dir=tmp) as root:
        root = Path(root)
        fixed_s: dict[int, float] = {}
        if fixed:
            for w in workers:
                tiny = root / f"in-tiny-{w}"
                write_photos(tiny, TINY_MP, w)  # one shard per worker
                fixed_s[w] = run_job(tiny, root / f"out-tiny-{w}", w, **base, files_per_shard=1,
                                     restores=plans[w][0], torch_threads=plans[w][1])[0]
        for mp in sizes:
            n = images or max(2 * shards, round(16 / mp))
            folder = root / f"in-{mp:g}"
            paths = write_photos(folder, mp, n)
            decoded = [decode(p.read_bytes(), InputOptions().max_pixels).pixels for p in paths]
            mp_each = sum(a.shape[0] * a.shape[1] for a in decoded) / n / 1e6
            per_shard = math.ceil(n / shards)
            torch.set_num_threads(threads)
            cfg = ModelOptions(tile=base["tile"], pixel_budget=base["pixel_budget"]).restore_config
            restorer = Restorer(weights=weights or DEFAULT_WEIGHTS, device=device, cfg=cfg)
            calls = job_calls(decoded, per_shard, restorer.cfg.pixel_budget, work.batch_images)
            restorer.restore(calls[0], strengths, [True] * len(calls[0]))  # warm-up on the real tile shapes
            m = time_model(restorer, calls, strengths, repeats)
            model_mp_s = mp_each * n / m["restore_s"]
            unet = m["unet"] / n
            for row in (_row(mp_each, n, "model alone (restore)", 1, (1, threads), m["restore_s"], model_mp_s,
                             unet_share=unet, stages={"restore_s": m["restore_s"]}),
                        _row(mp_each, n, "model + output estimates", 1, (1, threads), m["restore_s"] + m["estimate_s"],
                             model_mp_s, unet_share=unet, stages={"restore_s": m["restore_s"] + m["estimate_s"]})):
                pipeline_rows.append(row)
                log(row)
            at_once_mp_s = None
            restores, per = plans[min(workers)]
            if restores > 1:
                torch.set_num_threads(per)
                seconds = time_at_once(restorer, calls, strengths, restores, repeats)
                at_once_mp_s = mp_each * n / seconds
                pipeline_rows.append(_row(mp_each, n, f"model alone, {restores} restores at once", 1, (restores, per),
                                          seconds, model_mp_s, unet_share=unet, at_once_mp_s=at_once_mp_s))
                log(pipeline_rows[-1])
            runs = [(w, plans[w], "job, in-process" if w <= 1 else f"job, {w} worker processes") for w in workers]
            if 1 in workers and plans[1] != (1, threads):
                runs.insert(1, (1, (1, threads), "job, in-process, 1 restore at a time"))
            for i, (w, plan, run) in enumerate(runs):
                best, stages = None, {}
                for rep in range(repeats):
                    out = root / f"out-{mp:g}-{i}-{rep}"
                    seconds, _ = run_job(folder, out, w, **base, files_per_shard=per_shard,
                                         restores=plan[0], torch_threads=plan[1])
                    if best is None or seconds < best:
                        best, stages = seconds, job_metrics(out)
                pipeline_rows.append(_row(mp_each, n, run, stages.pop("processes"), plan, best, model_mp_s,
                                          fixed_s.get(w) if plan == plans[w] else None, stages.pop("unet_share"),
                                          stages, at_once_mp_s))
                log(pipeline_rows[-1])
            torch.set_num_threads(threads)
            if not batching:
                continue
            variants = [("as the job", restorer, calls, m),
                        ("1 image per call", restorer, [[a] for a in decoded], None)]
            one_tile = Restorer(weights=weights or DEFAULT_WEIGHTS, device=device,
                                cfg=ModelOptions(tile=base["tile"], pixel_budget=1).restore_config)
            one_tile.restore(decoded[:1], strengths)
            variants.append(("1 image per call, 1 tile per pass", one_tile, [[a] for a in decoded], None))
            rows = []
            for name, r, cs, done in variants:
                res = done or time_model(r, cs, strengths, repeats)
                rows.append({"megapixels": mp_each, "images": n, "batching": name, "images_per_call": n / len(cs),
                             "forward_passes": res["passes"], "tiles_per_pass": res["tiles"] / max(res["passes"], 1),
                             "seconds": res["restore_s"], "mp_per_s": mp_each * n / res["restore_s"]})
            for row in rows:
                row["gain"] = row["mp_per_s"] / rows[-1]["mp_per_s"]
                batching_rows.append(row)
                log(row)
    return {"pipeline": pipeline_rows, "batching": batching_rows}
