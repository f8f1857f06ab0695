"""The reader thread of detect: order, read-ahead bound, errors, early close."""
import threading
import time

import pytest

from sspnet_cli.inference.background import background


def _counted(n, made, fail_at=None):
    for i in range(n):
        if i == fail_at:
            raise ValueError(f"item {i} is broken")
        made.append(i)
        yield i


@pytest.mark.parametrize("depth", [1, 2])
def test_items_come_in_order_and_at_most_depth_ahead(depth):
    made: list[int] = []
    seen = []
    for item in background(_counted(12, made), depth=depth):
        time.sleep(0.02)  # room for the thread to run ahead if it could
        seen.append((item, len(made)))
    assert [i for i, _ in seen] == list(range(12))
    # while the consumer holds item i, at most `depth` items after it exist (each band of a
    # huge raster is tens of MB)
    assert max(n - (i + 1) for i, n in seen) == depth


def test_a_producer_error_reaches_the_consumer_after_the_good_items():
    got = []
    with pytest.raises(ValueError, match="item 3 is broken"):
        for item in background(_counted(6, [], fail_at=3), depth=1):
            got.append(item)
    assert got == [0, 1, 2]


def test_closing_early_stops_the_thread():
    made: list[int] = []
    it = background(_counted(1000, made), depth=1)
    assert next(it) == 0
    it.close()
    time.sleep(0.1)
    assert len(made) <= 2
    assert not [t for t in threading.enumerate() if t.name == "sspnet-reader"]
