"""Where things live: fsspec filesystems, keys that cannot escape a prefix, and writes that appear whole.

Beam has no fsspec filesystem, so every read and write of imagemend goes through these helpers,
inside its own DoFns. An object store's put is atomic (a multipart upload that never completes
leaves nothing behind); elsewhere a file is written under a hidden temporary name beside its
final name and renamed, so a killed worker never leaves a half-written output.
"""

from collections.abc import Iterator
from contextlib import contextmanager, suppress
import logging
import os
import posixpath
import re
import uuid

import fsspec
from fsspec import AbstractFileSystem
from fsspec.implementations.local import LocalFileSystem

LOG = logging.getLogger("imagemend")
OBJECT_STORES = {"s3", "s3a", "gs", "gcs", "abfs", "abfss", "az", "adl", "oci", "oss", "r2", "memory"}
PARTIAL = ".partial"
_SURROGATE = re.compile("[\udc80-\udcff]")


class UnsafeKey(ValueError):
    """A key that would leave the output prefix (absolute, '..', drive letter, backslash, NUL)."""


def filesystem(url: str, storage_options: dict | None = None) -> tuple[AbstractFileSystem, str]:
    fs, path = fsspec.core.url_to_fs(url, **(storage_options or {}))
    return fs, path.rstrip("/") or path


def to_uri(fs: AbstractFileSystem, path: str) -> str:
    return fs.unstrip_protocol(path)


def join(root: str, *parts: str) -> str:
    return "/".join([root.rstrip("/"), *(p.strip("/") for p in parts if p)])


def escape_name(name: str) -> str:
    """Undecodable bytes (as os.fsdecode and tarfile leave them: surrogates) shown as %XX, so that the
    name can be a key, an output path on any filesystem and a Parquet string; name_bytes keeps the original."""
    return _SURROGATE.sub(lambda m: f"%{ord(m.group()) - 0xDC00:02X}", name)


def name_bytes(name: str) -> bytes | None:
    """The raw bytes of a name that holds undecodable bytes; None for a valid UTF-8 name."""
    return name.encode("utf-8", "surrogateescape") if _SURROGATE.search(name) else None


def safe_key(name: str) -> str:
    """A normalised relative key, or UnsafeKey: tar members like '../../x.jpg' must not escape."""
    if not name or "\x00" in name or "\\" in name:
        raise UnsafeKey(f"unsafe name {name!r}")
    if name.startswith("/") or re.match(r"^[A-Za-z]:", name):
        raise UnsafeKey(f"absolute path {name!r}")
    parts = [p for p in name.split("/") if p not in ("", ".")]
    if not parts or ".." in parts:
        raise UnsafeKey(f"path escapes its prefix: {name!r}")
    return "/".join(parts)


def inside(root: str, path: str) -> bool:
    root = root.rstrip("/") + "/"
    return posixpath.normpath(path).startswith(root) and ".." not in path.split("/")


def real_path(fs: AbstractFileSystem, path: str) -> str:
    """A local path with its symlinks resolved (other filesystems have none), so that whether the output lies
    inside the input, or the input inside the output, is decided on the real folders."""
    return os.path.realpath(path) if isinstance(fs, LocalFileSystem) else path


def is_object_store(fs: AbstractFileSystem) -> bool:
    protocols = {fs.protocol} if isinstance(fs.protocol, str) else set(fs.protocol)
    return bool(protocols & OBJECT_STORES)


def _discard(f) -> None:
    """Abandon an unfinished upload so that nothing becomes visible (and close() will not commit it)."""
    discard = getattr(f, "discard", None)
    if discard is not None:
        try:
            discard()
        except Exception as e:  # an upload never completed stays invisible even if it cannot be cancelled
            LOG.warning("could not cancel the upload of %s: %s", getattr(f, "path", f), e)
    with suppress(AttributeError):
        f.closed = True


def clean_partials(fs: AbstractFileSystem, root: str) -> int:
    """Remove the temporaries that killed writers left under `root`; run once, before any worker starts."""
    if is_object_store(fs) or not fs.exists(root):
        return 0
    stale = [p for p in fs.find(root) if posixpath.basename(p).startswith(".") and p.endswith(PARTIAL)]
    for p in stale:
        fs.rm(p)
    return len(stale)


@contextmanager
def atomic_open(fs: AbstractFileSystem, path: str) -> Iterator:
    """A binary file that appears at `path` complete, on leaving the block without an exception."""
    direct = is_object_store(fs)
    parent = posixpath.dirname(path)
    if not direct:
        fs.makedirs(parent, exist_ok=True)
    # a short hidden name: appending to the final name would make a legal 234-255 byte name too long
    tmp = path if direct else f"{parent}/.imagemend-{uuid.uuid4().hex[:12]}{PARTIAL}"
    f = fs.open(tmp, "wb")
    try:
        yield f
        f.close()  # inside: a close that fails (a full disk flushing the last bytes) removes the temporary too
    except BaseException:
        if direct:
            _discard(f)
        else:
            with suppress(OSError):  # the file is closed even when its last flush fails
                f.close()
            with suppress(FileNotFoundError):
                fs.rm(tmp)
        raise
    if not direct:
        fs.mv(tmp, path)


def atomic_write(fs: AbstractFileSystem, path: str, data: bytes) -> None:
    with atomic_open(fs, path) as f:
        f.write(data)
