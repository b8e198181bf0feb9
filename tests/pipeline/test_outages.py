"""Outages of the store and a full disk (issue #19, item 3): retried with backoff, else left for a rerun.

A small TCP proxy on 127.0.0.1 stands in front of moto's S3 server; a request for a chosen key starts an outage
during which connections in flight are cut and new ones refused or dropped, for a bounded window. The run either
rides it out, or exits 75 leaving the records for the rerun, which finishes them: in the end every record is in
metrics or in errors exactly once, and no retryable row is left. A full disk is a tiny tmpfs, where the test may
mount one.
"""

from contextlib import suppress
import errno
import json
from pathlib import Path
import socket
import struct
import subprocess
import threading
import time

from PIL import Image
import pytest

from imagemend.pipeline import cli
from imagemend.pipeline.retry import Backoff, StoreDown, retryable, transient
from imagemend.pipeline.sources import Failure, Record
from tests.support.checks import read_tables
from tests.support.images import encode, pixels
from tests.support.jobs import run_job
from tests.support.stores import Store, free_port

FAST = {"retries": 4, "retry_wait_s": 0.25}  # waits 0.25 + 0.5 + 1 + 2 s: longer than the short outages below


class Proxy:
    """Forwards 127.0.0.1:port to a server on loopback. An outage cuts every connection in flight and, until it
    ends (by itself, `seconds` later), refuses new ones (`refuse`: the port is closed) or drops them once
    accepted (`drop`). `arm` starts one when a client sends a request holding the given bytes."""

    def __init__(self, target_port: int):
        self.target, self.port = ("127.0.0.1", target_port), free_port()
        self.until, self.mode, self.outages = 0.0, "refuse", 0
        self.trigger: tuple[bytes, float] | None = None
        self.conns: set[socket.socket] = set()
        self.lock, self.stopped = threading.Lock(), threading.Event()
        self.listener: socket.socket | None = None
        threading.Thread(target=self._accept, daemon=True, name="test-proxy").start()

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def down(self) -> bool:
        return time.monotonic() < self.until

    def arm(self, pattern: bytes, seconds: float, mode: str = "refuse") -> None:
        self.trigger, self.mode = (pattern, seconds), mode

    def outage(self, seconds: float) -> None:
        self.until, self.outages = time.monotonic() + seconds, self.outages + 1
        with self.lock:
            conns, self.conns = list(self.conns), set()
        for c in conns:
            _reset(c)

    def heal(self) -> None:
        self.until = 0.0

    def close(self) -> None:
        self.stopped.set()
        self.outage(0)

    def _listen(self) -> socket.socket:
        s = socket.socket()
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("127.0.0.1", self.port))
        s.listen(64)
        s.settimeout(0.05)
        return s

    def _accept(self) -> None:
        while not self.stopped.is_set():
            if self.down() and self.mode == "refuse":
                if self.listener is not None:
                    self.listener.close()
                    self.listener = None
                time.sleep(0.02)
                continue
            if self.listener is None:
                self.listener = self._listen()
            try:
                client, _ = self.listener.accept()
            except TimeoutError:
                continue
            if self.down():
                _reset(client)
                continue
            self._serve(client)
        if self.listener is not None:
            self.listener.close()

    def _serve(self, client: socket.socket) -> None:
        try:
            server = socket.create_connection(self.target)
        except OSError:
            _reset(client)
            return
        with self.lock:
            self.conns |= {client, server}
        threading.Thread(target=self._pipe, args=(client, server, True), daemon=True).start()
        threading.Thread(target=self._pipe, args=(server, client, False), daemon=True).start()

    def _pipe(self, src: socket.socket, dst: socket.socket, requests: bool) -> None:
        try:
            while data := src.recv(65536):
                if requests and self.trigger and self.trigger[0] in data:
                    seconds, self.trigger = self.trigger[1], None
                    self.outage(seconds)
                if self.down():
                    break
                dst.sendall(data)
        except OSError:
            pass
        for s in (src, dst):
            _reset(s)


def _reset(s: socket.socket) -> None:
    """Close with a reset, as a crashed server or a dropped network path would."""
    with suppress(OSError):
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    s.close()


@pytest.fixture
def proxy(s3_endpoint):
    p = Proxy(int(s3_endpoint.rsplit(":", 1)[1]))
    yield p
    p.close()


def through(store: Store, proxy: Proxy, client_retries: bool = True) -> dict:
    """The store's options with its endpoint replaced by the proxy's; without client_retries botocore gives up
    at the first refused connection, so that only imagemend's own backoff can ride an outage out."""
    extra = {} if client_retries else {"config_kwargs": {"retries": {"max_attempts": 1}}}
    return {**store.storage_options, **extra,
            "client_kwargs": {**store.storage_options["client_kwargs"], "endpoint_url": proxy.endpoint}}


def photos(store: Store, prefix: str, n: int, side: int = 24) -> list[str]:
    names = [f"{i:02d}.bmp" for i in range(n)]
    for i, name in enumerate(names):
        store.put(prefix, name, encode(Image.fromarray(pixels(side, side + 8, 3, i)), "BMP"))
    return names


def every_record_once(out: Store, output: str, names: list[str]) -> None:
    """Each photo restored exactly once, no error row left (retryable or not), every shard finished."""
    metrics, errors = read_tables(out, output, "metrics"), read_tables(out, output, "errors")
    assert sorted(r["key"] for r in metrics) == names and errors == [], errors


# ---------------------------------------------------------------- classification and backoff


def test_store_network_and_disk_errors_are_retryable_and_a_records_own_are_final():
    from botocore.exceptions import ConnectionClosedError, EndpointConnectionError, ReadTimeoutError
    from PIL import UnidentifiedImageError

    for e in (EndpointConnectionError(endpoint_url="http://x"), ConnectionClosedError(endpoint_url="http://x"),
              ReadTimeoutError(endpoint_url="http://x"), ConnectionResetError(), TimeoutError(),
              OSError(errno.ENOSPC, "No space left on device"), OSError(errno.EBUSY, "SlowDown")):
        assert transient(e) and retryable(e), e
    for e in (PermissionError(errno.EACCES, "denied"), OSError(errno.EROFS, "read-only")):
        assert retryable(e) and not transient(e), e  # left for the rerun, never waited for
    for e in (FileNotFoundError(errno.ENOENT, "gone"), UnidentifiedImageError("x"), ValueError("too large")):
        assert not retryable(e), e
    rec = Record("s", 0, "k", "u", b"x", "k")
    truncated = OSError("image file is truncated")  # Pillow's: a decode failure stays final whatever its type
    assert not Failure.of(rec, "decode", OSError(errno.EIO, "x")).retryable and not retryable(truncated)
    assert Failure.of(rec, "write", OSError(errno.ENOSPC, "full")).retryable


def test_backoff_doubles_its_waits_then_fails_the_rest_of_the_shard_at_once():
    waits, calls = [], []

    def flaky(n_failures: int):
        calls.append(1)
        if len(calls) <= n_failures:
            raise ConnectionResetError("reset")
        return "ok"

    b = Backoff(3, 0.5, sleep=waits.append)
    assert b(flaky, 2) == "ok" and waits == [0.5, 1.0]
    with pytest.raises(ValueError):
        b(int, "not a number")  # a record's own failure: not retried
    calls.clear()
    with pytest.raises(ConnectionResetError):
        b(flaky, 99)
    assert len(calls) == 4 and waits[2:] == [0.5, 1.0, 2.0]
    with pytest.raises(StoreDown) as e:
        b(flaky, 0)
    assert retryable(e.value) and len(calls) == 4  # not tried: the store was down


# ---------------------------------------------------------------- outages through the proxy


def test_a_short_input_outage_is_ridden_out(s3_store, proxy, tmp_path, caplog):
    names = photos(s3_store, "in", 6)
    proxy.arm(b"/in/03.bmp", 1.5)
    out = tmp_path / "out"
    summary = run_job(s3_store.join("in"), str(out), input_storage_options=through(s3_store, proxy, False),
                      files_per_shard=3, **FAST)
    assert proxy.outages == 1 and "retry 1 of 4 in 0.2 s" in caplog.text  # imagemend's backoff, not the client's
    assert summary["counts"]["left"] == 0 and summary["counts"]["failed"] == 0
    every_record_once(Store(str(out)), str(out), names)


def test_a_short_output_outage_is_ridden_out(s3_store, proxy, tmp_path):
    src = Store(str(tmp_path))
    names = photos(src, "in", 4)
    proxy.arm(b"/restored/images/02.bmp", 1.5, mode="drop")
    output = s3_store.join("restored")
    summary = run_job(src.join("in"), output, output_storage_options=through(s3_store, proxy), files_per_shard=2,
                      **FAST)
    assert proxy.outages == 1
    assert summary["counts"]["left"] == 0 and summary["counts"]["failed"] == 0
    every_record_once(s3_store, output, names)


def test_a_lasting_outage_exits_75_and_the_rerun_finishes(s3_store, proxy, tmp_path, capsys):
    names = photos(s3_store, "in", 6)
    out = tmp_path / "out"
    argv = ["run", "--input", s3_store.join("in"), "--output", str(out), "--files-per-shard", "3",
            "--input-storage-options", json.dumps(through(s3_store, proxy)),
            "--retries", "1", "--retry-wait", "0.1", "--no-progress"]
    proxy.arm(b"/in/04.bmp", 120, mode="drop")  # bounded, but longer than the run: healed below
    with pytest.raises(SystemExit) as e:
        cli.main(argv)
    assert e.value.code == 75
    err = capsys.readouterr().err.rstrip().splitlines()[-1]
    left = [r for r in read_tables(Store(str(out)), str(out), "errors") if r["retryable"]]
    assert left and all(r["stage"] == "read" for r in left)
    assert err == (f"imagemend: {len(left)} records could not be read or written (store, network or disk): "
                   "rerun the same command to finish them")

    proxy.heal()
    cli.main(argv)  # returns: exit status 0
    every_record_once(Store(str(out)), str(out), names)
    assert sorted(p.name for p in (out / "_done").glob("*.json")) == ["part-00000.json", "part-00001.json"]


# ---------------------------------------------------------------- a full disk


@pytest.fixture
def tiny_disk(tmp_path):
    """A 256 KiB tmpfs, where this process may mount one; unmounted at the end."""
    where = tmp_path / "disk"
    where.mkdir()
    try:
        subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(where)], check=True,
                       capture_output=True, timeout=30)
    except (OSError, subprocess.SubprocessError) as e:
        pytest.skip(f"cannot mount a tmpfs here (needs root or CAP_SYS_ADMIN): {e}")
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], check=False, capture_output=True, timeout=30)


def test_a_full_disk_leaves_its_records_for_the_rerun(tmp_path, tiny_disk, capsys):
    src = Store(str(tmp_path))
    names = photos(src, "in", 4, side=320)  # 300 KiB each: none fits on the disk, the run's small files do
    out = tiny_disk / "out"
    argv = ["run", "--input", src.join("in"), "--output", str(out), "--files-per-shard", "2", "--retries", "1",
            "--retry-wait", "0.05", "--no-progress"]
    with pytest.raises(SystemExit) as e:
        cli.main(argv)
    assert e.value.code == 75
    assert capsys.readouterr().err.rstrip().splitlines()[-1] == (
        "imagemend: 4 records could not be read or written (store, network or disk): rerun the same command to "
        "finish them")
    errors = read_tables(Store(str(out)), str(out), "errors")
    assert sorted(r["key"] for r in errors) == names
    assert all(r["stage"] == "write" and r["retryable"] for r in errors)
    assert "No space left" in errors[0]["message"] or errors[0]["error_type"] == "StoreDown", errors[0]
    assert not list(Path(out, "images").rglob("*")) or all(p.is_dir() for p in Path(out, "images").rglob("*"))

    subprocess.run(["mount", "-o", "remount,size=8m", str(tiny_disk)], check=True, capture_output=True)
    cli.main(argv)  # space freed: the same command finishes them
    every_record_once(Store(str(out)), str(out), names)
