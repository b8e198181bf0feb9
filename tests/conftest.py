"""Fixtures with lifetimes: object-store servers and their buckets, folders, weights, torch's threads.

The object stores are real HTTP servers on loopback (tests/support/stores.py), started once per session; every
test gets its own bucket. What tests call (image and archive builders, running the job, output checks) is plain
functions in tests/support/.
"""

import os

os.environ["GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT"] = "false"  # else a plain ls against the emulator takes minutes
for _k, _v in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
               "AWS_DEFAULT_REGION": "us-east-1", "AWS_EC2_METADATA_DISABLED": "true"}.items():
    os.environ.setdefault(_k, _v)

import pytest  # noqa: E402

from tests.support import stores  # noqa: E402
from tests.support.networks import active_network  # noqa: E402
from tests.support.stores import Store  # noqa: E402


@pytest.fixture(autouse=True)
def _torch_threads():
    """A job sets the process's torch threads for its restores (pipeline/infer.py); later tests get theirs back."""
    import torch

    n = torch.get_num_threads()
    yield
    torch.set_num_threads(n)


# ---------------------------------------------------------------- object stores

@pytest.fixture(scope="session")
def s3_endpoint():
    with stores.s3_server() as endpoint:
        yield endpoint


@pytest.fixture
def s3_store(s3_endpoint) -> Store:
    return stores.s3_bucket(s3_endpoint)


@pytest.fixture(scope="session")
def gcs_endpoint():
    with stores.gcs_server() as endpoint:
        yield endpoint


@pytest.fixture
def gcs_store(gcs_endpoint) -> Store:
    return stores.gcs_bucket(gcs_endpoint)


@pytest.fixture
def local_store(tmp_path) -> Store:
    return Store(str(tmp_path))


@pytest.fixture
def memory_store() -> Store:
    """fsspec's in-memory filesystem: one process only, so the in-process runner only."""
    return stores.memory_bucket()


# ---------------------------------------------------------------- weights for structural tests

@pytest.fixture(scope="session")
def active_weights(tmp_path_factory) -> str:
    """A seeded network whose every head is non-zero, saved like shipped weights: tests of evaluation
    machinery need a model that changes pixels, not one that restores well (nor the shipped file,
    whose architecture may be mid-change in a working tree)."""
    from imagemend.model.core.weights import save_weights

    path = tmp_path_factory.mktemp("weights") / "active.safetensors"
    save_weights(path, active_network(), {"note": "test network"})
    return str(path)


@pytest.fixture(scope="module")
def active_net():
    return active_network()
