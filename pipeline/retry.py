"""Failures of the store, the network or the disk told apart from a record's own, and retried with backoff.

A record's own failure (a corrupt or truncated image, a budget, an unsafe name, a file that vanished) is final:
redoing it gives the same row. A failure of what lies around it is not the record's: an object store that is
down or slow (connection refused or dropped, timeouts, 5xx and throttling), a full disk, an I/O error. Those are
retried with exponential backoff (RunOptions.retries, retry_wait_s) and, if they last, the record is left for a
rerun: its error row says `retryable`, its shard is not finished, and the command exits 75.

Permission errors (EACCES, EPERM, EROFS, an object store's 403) are left for the rerun too, but not waited for:
an unwritable folder or a missing grant is not the record's fault, yet seconds of waiting do not fix it; once
someone fixes it, the same command finishes the work. Only the read and write stages are classified: Pillow
raises OSError for a truncated image, and a decode failure stays final whatever its type.
"""

from collections.abc import Callable
import errno
import logging
import time
from typing import TypeVar

LOG = logging.getLogger("imagemend")
T = TypeVar("T")

# OSError numbers that time can cure: the store, the network or the disk, not the record
TRANSIENT_ERRNOS = frozenset({
    errno.ENOSPC, errno.EDQUOT, errno.EIO, errno.EREMOTEIO, errno.EAGAIN, errno.EBUSY, errno.ETIMEDOUT,
    errno.ECONNRESET, errno.ECONNREFUSED, errno.ECONNABORTED, errno.EPIPE, errno.EHOSTUNREACH,
    errno.ENETUNREACH, errno.ENETDOWN, errno.ENETRESET,
})
ACCESS_ERRNOS = frozenset({errno.EACCES, errno.EPERM, errno.EROFS})  # left for the rerun, never waited for


def _client_errors() -> tuple[type[BaseException], ...]:
    """What object-store clients raise for a connection that failed or stalled, outside OSError: botocore's
    connection and HTTP client errors (refused, closed, timed out, cut while streaming) and aiohttp's."""
    found: list[type[BaseException]] = [ConnectionError, TimeoutError]
    try:
        from botocore.exceptions import ConnectionError as BotoConnectionError
        from botocore.exceptions import HTTPClientError, IncompleteReadError

        found += [BotoConnectionError, HTTPClientError, IncompleteReadError]
    except ImportError:
        pass
    try:
        from aiohttp import ClientConnectionError, ClientPayloadError

        found += [ClientConnectionError, ClientPayloadError]
    except ImportError:
        pass
    return tuple(found)


CLIENT_ERRORS = _client_errors()


def _chain(e: BaseException) -> list[BaseException]:
    """The error and those it was raised from (s3fs raises an OSError from botocore's error)."""
    out = []
    while e is not None and e not in out:
        out.append(e)
        e = e.__cause__
    return out


def transient(e: BaseException) -> bool:
    """Worth waiting for: the store, the network or the disk may be back in seconds."""
    return any(isinstance(x, CLIENT_ERRORS) or (isinstance(x, OSError) and x.errno in TRANSIENT_ERRNOS)
               for x in _chain(e))


def retryable(e: BaseException) -> bool:
    """Not the record's fault: left for a rerun (transient, or a permission someone can grant)."""
    return transient(e) or any(isinstance(x, PermissionError) or (isinstance(x, OSError) and x.errno in ACCESS_ERRNOS)
                               for x in _chain(e))


class StoreDown(OSError):
    """Not tried: an earlier call of the same shard and side ran out of retries on a transient error."""

    def __init__(self, first: BaseException):
        super().__init__(errno.EAGAIN, f"not tried, the store was down: {type(first).__name__}: {first}")


class Backoff:
    """Retries calls on transient errors, waiting wait_s, 2 * wait_s, ... between tries. One per shard and side
    (input, output): once a call has run out of retries the store is taken to be down, and the shard's later
    calls fail at once (StoreDown, retryable) instead of each waiting the whole backoff; they are left for the
    rerun."""

    def __init__(self, retries: int, wait_s: float, sleep: Callable[[float], None] = time.sleep):
        self.retries, self.wait_s, self.sleep = retries, wait_s, sleep
        self.down: BaseException | None = None

    @classmethod
    def of(cls, work) -> "Backoff":
        """As the run's work options (WorkOptions: retries, retry_wait_s) set it."""
        return cls(work.retries, work.retry_wait_s)

    def __call__(self, fn: Callable[..., T], *args, **kwargs) -> T:
        if self.down is not None:
            raise StoreDown(self.down)
        attempt = 0
        while True:
            try:
                return fn(*args, **kwargs)
            except Exception as e:
                if not transient(e):
                    raise
                if attempt == self.retries:
                    self.down = e
                    raise
                wait = self.wait_s * 2 ** attempt
                attempt += 1
                LOG.warning("imagemend: %s: %s; retry %d of %d in %.1f s", type(e).__name__, e, attempt,
                            self.retries, wait)
                self.sleep(wait)
