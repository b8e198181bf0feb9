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
import os
import posixpath
import threading
import time

import apache_beam as beam
from apache_beam.metrics import Metrics
from apache_beam.utils import shared
import numpy as np

from imagemend.model import Restorer
from imagemend.model.core.weights import DEFAULT_WEIGHTS

from .options import ModelOptions, RunOptions
from .progress import Progress
from .shard import Hooks, process_shard
from .sources import Shard

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


@dataclass(frozen=True)
class Restoration:
    """What the model made of one image of a batch."""
    image: np.ndarray  # the restored pixels; the input's own (a copy) when nothing applied
    estimates: dict[str, float]  # severities read in the input
    estimates_after: dict[str, float]  # read in the output (edge blur only where deblur ran); unchanged: estimates
    applied: dict[str, bool]
    strengths: dict[str, float]
    reasons: dict[str, str]
    restore_s: float  # the batch's restore time, this image's share by pixels

    @property
    def status(self) -> str:
        return "restored" if any(self.applied.values()) else "unchanged"


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

    @property
    def weights_sha256(self) -> str:
        return self.restorer.weights_sha256

    @property
    def pixel_budget(self) -> int:
        """Padded tile pixels per forward pass: a batch worth sending holds at least this many image pixels."""
        return self.restorer.cfg.pixel_budget

    def submit(self, images: list[np.ndarray], jpeg: list[bool], strengths: dict[str, float],
               tone: list[dict | None] | None = None) -> Future:
        """restore() in one of the process's restore threads; with one slot (CUDA), in the caller's
        thread as before: that is how the GPU path was measured, and a thread hop there is untested."""
        if self.restores > 1:
            return self.pool.submit(self.restore, images, jpeg, strengths, tone)
        done: Future = Future()
        try:
            done.set_result(self.restore(images, jpeg, strengths, tone))
        except Exception as e:  # a device error: raised where the caller reads the result
            done.set_exception(e)
        return done

    def restore(self, images: list[np.ndarray], jpeg: list[bool], strengths: dict[str, float],
                tone: list[dict | None] | None = None) -> list[Restoration | Exception]:
        """Restore a batch (jpeg: which images were decoded from JPEG files; tone: the tone damages each one's
        group read, pipeline/groups.py); if it fails, retry one by one so that only the culprit fails: its
        place in the list holds the exception.

        A device error (CUDA out of memory with the tiles already bounded, a lost GPU) is not the
        image's fault: it is raised, failing the bundle, so Beam retries it and no shard is marked done
        with every record in errors.
        """
        try:
            return self._restore(images, jpeg, strengths, tone)
        except Exception as e:
            if device_error(e):
                raise
            if len(images) == 1:
                return [e]
            tone = tone or [None] * len(images)
            return [out for a, j, g in zip(images, jpeg, tone) for out in self.restore([a], [j], strengths, [g])]

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

    def _restore(self, images: list[np.ndarray], jpeg: list[bool], strengths: dict[str, float],
                 tone: list[dict | None] | None = None) -> list[Restoration]:
        """One call into the model: it restores the batch and reads its outputs' severities (edges only
        where deblur ran, the dearest reading) in the same call."""
        t = time.perf_counter()
        sizes = [a.shape[0] * a.shape[1] for a in images]
        with self._slot(alone=sum(sizes) >= ALONE_PIXELS):
            results = self.restorer.restore(images, strengths, jpeg, tone=tone, after=True)
        seconds, total = time.perf_counter() - t, sum(sizes)
        return [Restoration(r.image, r.estimates, r.estimates_after, r.applied, r.strengths, r.reasons,
                            seconds * n / total) for r, n in zip(results, sizes)]


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


def concurrency(model: ModelOptions, workers: int, cuda: bool, n_cpus: int) -> tuple[int, int | None]:
    """(restores at once, torch threads) for one of `workers` processes on this machine (0: the launcher's
    own): what is not given splits the process's share of the cores into single-thread restores. On
    CUDA one restore, torch's threads."""
    if cuda:
        return model.restores or 1, model.torch_threads
    cores = max(1, n_cpus // max(1, workers))
    restores = model.restores or (1 if model.torch_threads else min(cores, MAX_RESTORES))
    return restores, model.torch_threads or max(1, cores // restores)


def load_model(model: ModelOptions, workers: int = 0) -> LoadedModel:
    import torch

    device = None if model.device == "auto" else model.device
    restorer = Restorer(weights=model.weights or DEFAULT_WEIGHTS, device=device, cfg=model.restore_config,
                        amp=model.amp, compile=model.compile, assume=model.assume)
    restores, threads = concurrency(model, workers, restorer.device.type == "cuda", cpus())
    if threads:
        torch.set_num_threads(threads)
    LOG.info("imagemend: loaded %s (%s) on %s in process %d: %d restore(s) at once x %d torch thread(s)",
             model_name(model.weights), restorer.weights_sha256[:12], restorer.device, os.getpid(), restores,
             torch.get_num_threads())
    return LoadedModel(restorer, model_name(model.weights), restores, threads)


class RestoreShards(beam.DoFn):
    """Restores whole shards: read, decode, restore in batches, encode, write, mark done; emits counts."""

    def __init__(self, opts: RunOptions, hooks: Hooks | None = None):
        self.opts, self.hooks = opts, hooks  # hooks: `imagemend eval`'s (pipeline/evaluate.py), else None
        self._shared = shared.Shared()

    def setup(self) -> None:
        from concurrent.futures import ThreadPoolExecutor

        model, workers = self.opts.model, self.opts.work.workers
        self.model = self._shared.acquire(partial(load_model, model, workers), tag=repr((model, workers)))
        self.pool = ThreadPoolExecutor(max(1, self.opts.work.threads), thread_name_prefix="imagemend")
        self.progress = Progress()
        self._mp_carry = 0.0

    def process(self, shard: Shard, groups=None):
        """groups: the group decisions (pipeline/groups.py decide), a side input."""
        t = time.time()
        counts = process_shard(shard, self.opts, self.model, self.pool, self.progress, self.hooks, groups)
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
