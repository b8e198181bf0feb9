"""Progress while a job runs: a bar on the terminal when the job runs in this process, else each
worker's log lines (shards, images, failures, images/s) and the Beam counters a cluster's UI shows."""

from collections.abc import Iterator
from contextlib import contextmanager
import logging
import os
import socket
import sys
import time

LOG = logging.getLogger("imagemend")
_BAR = None  # the launcher's bar, where the workers are this process's own threads


@contextmanager
def bar(total: int | None, enabled: bool) -> Iterator[None]:
    """Records done out of `total` (None: unknown until the shards are read), failures, MP/s and ETA."""
    global _BAR
    if not enabled:
        yield
        return
    from tqdm import tqdm

    _BAR = tqdm(total=total, unit="img", desc="restoring", dynamic_ncols=True, mininterval=0.5, file=sys.stderr)
    _BAR.pixels, _BAR.failed = 0, 0
    try:
        yield
    finally:
        _BAR.close()
        _BAR = None


def worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


class Progress:
    """Images and shards done by this DoFn instance, logged as they finish (visible while a job runs)."""

    def __init__(self):
        self.start = self.last = time.time()
        self.shards, self.images, self.failed = 0, 0, 0

    def tick(self, images: int = 0, failed: int = 0, force: bool = False, note: str = "", pixels: int = 0) -> None:
        self.images += images
        self.failed += failed
        now = time.time()
        if _BAR is not None:  # the bar says it all; no log lines under it
            _BAR.pixels += pixels
            _BAR.failed += failed
            _BAR.update(images + failed)
            _BAR.set_postfix(failed=_BAR.failed, MP_s=f"{_BAR.pixels / 1e6 / max(now - self.start, 1e-9):.2f}",
                             refresh=False)
            return
        if force or now - self.last > 30:
            self.last = now
            rate = self.images / max(now - self.start, 1e-9)
            LOG.info("worker %s: %d shards, %d images, %d failures, %.2f images/s %s", worker_id(),
                     self.shards, self.images, self.failed, rate, note)
