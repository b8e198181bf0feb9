"""Progress a worker reports while a job runs: shards, images, failures and images/s, in its log."""

import logging
import os
import socket
import time

LOG = logging.getLogger("imagemend")


def worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


class Progress:
    """Images and shards done by this DoFn instance, logged as they finish (visible while a job runs)."""

    def __init__(self):
        self.start = self.last = time.time()
        self.shards, self.images, self.failed = 0, 0, 0

    def tick(self, images: int = 0, failed: int = 0, force: bool = False, note: str = "") -> None:
        self.images += images
        self.failed += failed
        now = time.time()
        if force or now - self.last > 30:
            self.last = now
            rate = self.images / max(now - self.start, 1e-9)
            LOG.info("worker %s: %d shards, %d images, %d failures, %.2f images/s %s", worker_id(),
                     self.shards, self.images, self.failed, rate, note)
