"""Places to put an archive: a local folder, fsspec's memory, or an S3 or GCS bucket on a real loopback server.

S3 is moto's ThreadedMotoServer and GCS is gcp-storage-emulator, each a real HTTP server on 127.0.0.1 (a random
free port); tests/conftest.py starts each once per session and gives every test its own bucket.
"""

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
import socket
import uuid

import fsspec


@dataclass
class Store:
    """A place to put an archive: local folder, S3 bucket or GCS bucket, with its fsspec options."""
    url: str
    storage_options: dict = field(default_factory=dict)

    @property
    def fs(self) -> fsspec.AbstractFileSystem:
        fs = fsspec.core.url_to_fs(self.url, **self.storage_options)[0]
        fs.invalidate_cache()
        return fs

    def path(self, *parts: str) -> str:
        return "/".join([self.fs._strip_protocol(self.url).rstrip("/"), *parts])

    def join(self, *parts: str) -> str:
        return "/".join([self.url.rstrip("/"), *parts])

    def put(self, *parts_and_data) -> None:
        *parts, data = parts_and_data
        fs, path = self.fs, self.path(*parts)
        fs.makedirs(path.rsplit("/", 1)[0], exist_ok=True)
        fs.pipe_file(path, data)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def bucket_name() -> str:
    return f"imagemend-{uuid.uuid4().hex[:12]}"


@contextmanager
def s3_server() -> Iterator[str]:
    """moto's S3 server on loopback while the block runs; yields its endpoint URL."""
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()


@contextmanager
def gcs_server() -> Iterator[str]:
    """gcp-storage-emulator on loopback, in memory, while the block runs; yields its endpoint URL."""
    from gcp_storage_emulator.server import create_server

    port = free_port()
    server = create_server("127.0.0.1", port, in_memory=True)
    server.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stop()


def s3_bucket(endpoint: str) -> Store:
    """A new, empty bucket on the S3 server at `endpoint`."""
    import boto3

    bucket = bucket_name()
    boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1").create_bucket(Bucket=bucket)
    return Store(f"s3://{bucket}", {"key": "testing", "secret": "testing",
                                    "client_kwargs": {"endpoint_url": endpoint, "region_name": "us-east-1"}})


def gcs_bucket(endpoint: str) -> Store:
    """A new, empty bucket on the GCS emulator at `endpoint`."""
    bucket = bucket_name()
    store = Store(f"gs://{bucket}", {"endpoint_url": endpoint, "token": "anon"})
    store.fs.mkdir(bucket)
    return store


def memory_bucket() -> Store:
    """fsspec's in-memory filesystem: one process only, so the in-process runner only."""
    return Store(f"memory://{bucket_name()}")
