"""The model inside Beam: loaded once per worker process in setup(), fed batches of decoded images.

Several DoFn instances (one per harness thread) share one Restorer through Beam's `Shared`, and
its restore slots bound the batches in flight: one on CUDA, so a GPU holds one model copy and one
batch per process; on a CPU one single-thread restore per core, because torch's intra-op threads
wait for each other at every operation of a tile (on 2 cores, 2 restores x 1 thread did 7 to 15 %
more than 1 x 2). On CUDA the Restorer runs in mixed precision; asking for CUDA where there is
none fails in setup() instead of quietly running on the CPU.
"""

from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import partial
import logging
import math
import os
import posixpath
import threading
import time

import apache_beam as beam
from apache_beam.metrics import Metrics
from apache_beam.utils import shared

from model import Restorer
from model.restore import Restored
from model.weights import DEFAULT_WEIGHTS

from .options import RunOptions
from .progress import Progress
from .shard import Item, process_shard
from .sources import Failure, Shard

LOG = logging.getLogger("imagemend")
NAMESPACE = "imagemend"
MAX_RESTORES = 4  # by default; each restore holds its own tiles and output, so memory grows with them
ALONE_PIXELS = 16_000_000  # a call this large restores alone: two 50 MP photos at once would pass 3 GiB


class Slots:
    """A counting semaphore whose large requests wait their turn instead of starving."""

    def __init__(self, n: int):
        self.n = n
        self._free = threading.Semaphore(n)
        self._gate = threading.Lock()  # taken while a request collects its slots, so they queue in order

    @contextmanager
    def hold(self, k: int) -> Iterator[None]:
        k = min(k, self.n)
        with self._gate:
            for _ in range(k):
                self._free.acquire()
        try:
            yield
        finally:
            for _ in range(k):
                self._free.release()


@dataclass(eq=False)
class LoadedModel:
    restorer: Restorer
    name: str
    restores: int = 1  # calls at once: they share the weights, each with its own tiles
    threads: int | None = None  # torch threads per call (CPU); a call alone gets every call's
    slots: Slots = field(init=False)
    pool: ThreadPoolExecutor = field(init=False)

    def __post_init__(self):
        self.slots = Slots(self.restores)
        self.pool = ThreadPoolExecutor(self.restores, thread_name_prefix="imagemend-restore")

    @property
    def device(self) -> str:
        return str(self.restorer.device)

    def submit(self, items: list[Item], strengths: dict[str, float]) -> Future:
        """restore() in one of the process's restore threads; with one slot (CUDA), in the caller's
        thread as before: that is how the GPU path was measured, and a thread hop there is untested."""
        if self.restores > 1:
            return self.pool.submit(self.restore, items, strengths)
        done: Future = Future()
        try:
            done.set_result(self.restore(items, strengths))
        except Exception as e:  # a device error: raised where the caller reads the result
            done.set_exception(e)
        return done

    def restore(self, items: list[Item], strengths: dict[str, float]) -> list[Item | Failure]:
        """Restore a batch; if it fails, retry one by one so that only the culprit is reported.

        A device error (CUDA out of memory with the tiles already bounded, a lost GPU) is not the
        image's fault: it fails the bundle, so Beam retries it and no shard is marked done with
        every record in errors.
        """
        try:
            return self._restore(items, strengths)
        except Exception as e:
            if device_error(e):
                raise
            if len(items) == 1:
                return [Failure.of(items[0].rec, "restore", e)]
            return [out for it in items for out in self.restore([it], strengths)]

    @contextmanager
    def _slot(self, alone: bool) -> Iterator[None]:
        """One slot, or for a large call every slot and, on a CPU, every slot's threads (no other
        call runs meanwhile, so the process-wide thread count is its own)."""
        import torch

        with self.slots.hold(self.restores if alone else 1):
            if not (alone and self.threads and self.restores > 1):
                yield
                return
            torch.set_num_threads(self.restores * self.threads)
            try:
                yield
            finally:
                torch.set_num_threads(self.threads)

    def _restore(self, items: list[Item], strengths: dict[str, float]) -> list[Item]:
        t = time.perf_counter()
        with self._slot(alone=sum(it.pixels for it in items) >= ALONE_PIXELS):
            results = self.restorer.restore([it.dec.pixels for it in items], strengths,
                                            [bool(it.dec.meta.jpeg) for it in items],  # qtables: a JPEG file
                                            tone=[it.tone for it in items])  # the group's (pipeline/groups.py)
            after_of = estimates_after(self.restorer, results)
        seconds, total = time.perf_counter() - t, sum(it.pixels for it in items)
        for i, (it, r) in enumerate(zip(items, results)):
            it.out, it.estimates, it.applied, it.strengths, it.reasons = (r.image, r.estimates, r.applied,
                                                                          r.strengths, r.reasons)
            it.status = "restored" if i in after_of else "unchanged"
            it.estimates_after = after_of.get(i, r.estimates)
            it.timings["restore_s"] = seconds * it.pixels / total
        return items


def estimates_after(restorer: Restorer, results: list[Restored]) -> dict[int, dict[str, float]]:
    """The severities of the outputs that changed, by their position in results. The edges (the
    dearest reading) are re-read only where deblur ran; elsewhere the reading is left out."""
    changed = [i for i, r in enumerate(results) if any(r.applied.values())]
    if not changed:
        return {}
    after = restorer.estimate([results[i].image for i in changed], [results[i].applied["deblur"] for i in changed])
    return {i: {k: v for k, v in a.items() if not math.isnan(v)} for i, a in zip(changed, after)}


def device_error(e: BaseException) -> bool:
    import torch

    text = str(e)
    return isinstance(e, torch.cuda.OutOfMemoryError) or (
        isinstance(e, RuntimeError) and any(w in text for w in ("CUDA", "cuDNN", "cuBLAS", "NCCL")))


def model_name(weights: str | None) -> str:
    return posixpath.basename(str(weights or DEFAULT_WEIGHTS)).split(".")[0]


def cpus() -> int:
    """The CPUs this process may run on (a container's or taskset's share, not the host's)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def concurrency(opts: RunOptions, cuda: bool, n_cpus: int) -> tuple[int, int | None]:
    """(restores at once, torch threads) for one process: what is not given splits the process's
    share of the cores into single-thread restores. On CUDA one restore, torch's threads."""
    if cuda:
        return opts.restores or 1, opts.torch_threads
    cores = max(1, n_cpus // max(1, opts.workers))
    restores = opts.restores or (1 if opts.torch_threads else min(cores, MAX_RESTORES))
    return restores, opts.torch_threads or max(1, cores // restores)


def load_model(opts: RunOptions) -> LoadedModel:
    import torch

    device = None if opts.device == "auto" else opts.device
    restorer = Restorer(weights=opts.weights or DEFAULT_WEIGHTS, device=device, cfg=opts.restore_config,
                        amp=opts.amp, compile=opts.compile, assume=opts.assume)
    restores, threads = concurrency(opts, restorer.device.type == "cuda", cpus())
    if threads:
        torch.set_num_threads(threads)
    LOG.info("imagemend: loaded %s (%s) on %s in process %d: %d restore(s) at once x %d torch thread(s)",
             model_name(opts.weights), restorer.weights_sha256[:12], restorer.device, os.getpid(), restores,
             torch.get_num_threads())
    return LoadedModel(restorer, model_name(opts.weights), restores, threads)


class RestoreShards(beam.DoFn):
    """Restores whole shards: read, decode, restore in batches, encode, write, mark done; emits counts."""

    def __init__(self, opts: RunOptions):
        self.opts = opts
        self._shared = shared.Shared()

    def setup(self) -> None:
        from concurrent.futures import ThreadPoolExecutor

        o = self.opts
        tag = (f"{o.weights}|{o.device}|{o.amp}|{o.compile}|{o.tile}|{o.pixel_budget}|{o.torch_threads}|"
               f"{o.restores}|{o.workers}")
        self.model = self._shared.acquire(partial(load_model, self.opts), tag=tag)
        self.pool = ThreadPoolExecutor(max(1, self.opts.threads), thread_name_prefix="imagemend")
        self.progress = Progress()
        self._mp_carry = 0.0

    def process(self, shard: Shard, groups=None):
        t = time.time()
        counts = process_shard(shard, self.opts, self.model, self.pool, self.progress, groups)
        if counts.get("shards_skipped"):
            Metrics.counter(NAMESPACE, "shards_skipped").inc()
            LOG.info("imagemend: shard %s finished earlier, skipped", shard.id)
            yield counts
            return
        Metrics.counter(NAMESPACE, "shards_processed").inc()
        Metrics.counter(NAMESPACE, "images").inc(counts["images_processed"])
        Metrics.counter(NAMESPACE, "failures").inc(counts["failed"])
        Metrics.counter(NAMESPACE, "bytes_read").inc(counts["bytes_in"])
        Metrics.counter(NAMESPACE, "bytes_written").inc(counts["bytes_out"])
        self._mp_carry += counts["pixels"] / 1e6
        whole = int(self._mp_carry)
        Metrics.counter(NAMESPACE, "megapixels").inc(whole)
        Metrics.counter(NAMESPACE, "pixels").inc(counts["pixels"])
        self._mp_carry -= whole
        self.progress.shards += 1
        self.progress.tick(force=True, note=f"(shard {shard.id}: {counts['records']} records, "
                           f"{counts['failed']} failed, {time.time() - t:.1f}s)")
        yield counts

    def teardown(self) -> None:
        pool = getattr(self, "pool", None)
        if pool is not None:
            pool.shutdown(wait=False)
