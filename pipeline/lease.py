"""One run at a time per output: `<output>/_lease.json` names the run that holds it, with a heartbeat.

A second run started on an output in use would take the first run's temporary files for an interrupted run's
and remove them, and both would write the same shards. The launcher writes the lease before it touches the
output, refreshes its heartbeat from a background thread while the job runs, and removes it at the end, on
failure and on Ctrl-C too. A lease whose heartbeat is older than FRESH_S, or whose owner is a process of this
host that no longer exists, belongs to a dead run and is taken over. Two launches within the same moment: each
writes, waits SETTLE_S and reads the lease back, and only the run whose lease it reads goes on.
"""

from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import asdict, dataclass
import logging
import os
import socket
import threading
import time

from fsspec import AbstractFileSystem

from .sinks import OutputPaths, read_json, write_json

LOG = logging.getLogger("imagemend")
FRESH_S = 120.0  # a heartbeat younger than this is a live run's
BEAT_S = 30.0  # how often the launcher refreshes it
SETTLE_S = 0.5  # between writing the lease and reading it back, to see a launch started at the same moment


class OutputInUse(RuntimeError):
    """Another live run holds the output's lease: this run stops before touching the output."""


@dataclass(frozen=True)
class Owner:
    run_id: str
    host: str
    pid: int
    started: float  # unix time

    @classmethod
    def this(cls, run_id: str) -> "Owner":
        return cls(run_id, socket.gethostname(), os.getpid(), time.time())

    def same(self, lease: dict) -> bool:
        return (lease.get("run_id"), lease.get("host"), lease.get("pid")) == (self.run_id, self.host, self.pid)


def _stamp(t: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t))


def _alive(lease: dict, fresh_s: float) -> bool:
    """A lease's run is alive while its heartbeat is fresh, unless it is a process of this host that has gone."""
    if time.time() - float(lease.get("heartbeat", 0)) >= fresh_s:
        return False
    if lease.get("host") != socket.gethostname():
        return True
    try:
        os.kill(int(lease.get("pid", 0)), 0)
    except ProcessLookupError:
        return False
    except (PermissionError, ValueError, OverflowError):  # another user's process, or a pid that is no number
        return True
    return True


def _refusal(lease: dict, path: str, fresh_s: float) -> str:
    wait = max(0, round(float(lease.get("heartbeat", 0)) + fresh_s - time.time()))
    return (f"output in use by run {lease.get('run_id')} on {lease.get('host')}:{lease.get('pid')} since "
            f"{_stamp(float(lease.get('started', 0)))} (heartbeat {_stamp(float(lease.get('heartbeat', 0)))}); "
            f"if that run is dead, wait {wait} s or remove {path}")


def _write(fs: AbstractFileSystem, path: str, owner: Owner) -> None:
    now = time.time()
    write_json(fs, path, {**asdict(owner), "heartbeat": now, "started_at": _stamp(owner.started),
                          "heartbeat_at": _stamp(now)})


def acquire(fs: AbstractFileSystem, root: str, owner: Owner, fresh_s: float = FRESH_S) -> str:
    """Write the lease, or raise OutputInUse naming the live run that holds it; returns the lease's path."""
    path = OutputPaths(root).lease()
    held = read_json(fs, path)
    if held and not owner.same(held) and _alive(held, fresh_s):
        raise OutputInUse(_refusal(held, path, fresh_s))
    _write(fs, path, owner)
    time.sleep(SETTLE_S)
    fs.invalidate_cache()
    held = read_json(fs, path)
    if held and not owner.same(held):
        raise OutputInUse(_refusal(held, path, fresh_s))
    return path


def release(fs: AbstractFileSystem, path: str, owner: Owner) -> None:
    """Remove the lease if it is still this run's (a run that took over a lease it thought dead keeps it)."""
    with suppress(FileNotFoundError):
        if owner.same(read_json(fs, path) or {}):
            fs.rm_file(path)


def _beat(fs: AbstractFileSystem, path: str, owner: Owner, stop: threading.Event, every_s: float) -> None:
    while not stop.wait(every_s):
        try:
            held = read_json(fs, path)
            if held and not owner.same(held):
                LOG.error("imagemend: run %s on %s:%s took over the lease %s", held.get("run_id"),
                          held.get("host"), held.get("pid"), path)
                return
            _write(fs, path, owner)
        except Exception as e:  # a missed beat is retried; the lease only goes stale after FRESH_S
            LOG.warning("imagemend: could not refresh the lease %s: %s", path, e)


@contextmanager
def kept(fs: AbstractFileSystem, path: str, owner: Owner, every_s: float = BEAT_S) -> Iterator[None]:
    """An acquired lease kept for the length of the block, its heartbeat refreshed in a daemon thread, and
    released at the end, whatever ends the block."""
    stop = threading.Event()
    beat = threading.Thread(target=_beat, args=(fs, path, owner, stop, every_s), daemon=True,
                            name="imagemend-lease")
    beat.start()
    try:
        yield
    finally:
        stop.set()
        beat.join()
        release(fs, path, owner)
