"""A shard's reader thread and ordered map (pipeline/shard.py)."""

import threading
import time

import pytest

from imagemend.pipeline import shard


def test_background_and_ordered_map_keep_order_and_surface_errors():
    from concurrent.futures import ThreadPoolExecutor

    def slow(x):
        time.sleep(0.001 * (x % 3))
        return x * x

    with ThreadPoolExecutor(3) as pool:
        assert list(shard.ordered_map(pool, slow, shard.background(range(50), 4), 5)) == [x * x for x in range(50)]

    def broken():
        yield 1
        raise OSError("disk gone")

    with pytest.raises(OSError, match="disk gone"):
        list(shard.background(broken(), 2))
    before = threading.active_count()
    gen = shard.background(iter(range(10_000)), 2)
    next(gen)
    gen.close()  # a consumer that stops early does not leave its reader thread blocked
    time.sleep(0.5)
    assert threading.active_count() <= before
