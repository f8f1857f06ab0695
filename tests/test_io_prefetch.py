"""The background prefetcher: order, failures, back-pressure and early exit."""
from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from sspnet_cli.errors import InputError
from sspnet_cli.inference.sources import ImageSource, open_source, prefetch
from sspnet_cli.types import Window


class Fake:
    def __init__(self, name: str, log: list) -> None:
        self.name = name
        self.closed = False
        log.append(name)

    def close(self) -> None:
        self.closed = True


def no_prefetch_thread_left(timeout: float = 2.0) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if not any(t.name == "sspnet-prefetch" for t in threading.enumerate()):
            return True
        time.sleep(0.01)
    return False


def test_yields_in_order_and_survives_a_failure():
    opened: list = []

    def open_fn(name):
        time.sleep(0.01 if name == "a" else 0)  # the first is slowest: order must still hold
        if name == "bad":
            raise InputError(name, "not an image")
        return Fake(name, opened)

    out = list(prefetch(["a", "b", "bad", "c", "d"], open_fn, depth=2))
    assert [p for p, _ in out] == ["a", "b", "bad", "c", "d"]
    assert isinstance(out[2][1], InputError)
    assert [r.name for p, r in out if p != "bad"] == ["a", "b", "c", "d"]
    assert no_prefetch_thread_left()


def test_runs_ahead_at_most_depth():
    opened: list = []
    it = prefetch([str(i) for i in range(20)], lambda n: Fake(n, opened), depth=3)
    next(it)
    time.sleep(0.2)
    assert len(opened) == 1 + 3  # the one handed out, and three ready
    it.close()


def test_early_exit_closes_what_was_not_handed_out():
    opened: list = []
    fakes: dict = {}

    def open_fn(name):
        fakes[name] = Fake(name, opened)
        return fakes[name]

    for path, src in prefetch([str(i) for i in range(50)], open_fn, depth=2):
        if path == "3":
            time.sleep(0.1)  # let the thread fill its slots
            break
    assert no_prefetch_thread_left()
    assert len(opened) < 10
    assert all(not fakes[str(i)].closed for i in range(4))  # the caller's to close
    assert all(fakes[name].closed for name in opened[4:]) and len(opened) > 4


def test_source_finished_after_the_caller_left_is_closed():
    opened: list = []
    fakes: dict = {}

    def open_fn(name):
        if name == "slow":
            time.sleep(0.3)
        fakes[name] = Fake(name, opened)
        return fakes[name]

    it = prefetch(["first", "slow", "never"], open_fn, depth=2)
    next(it)
    it.close()  # while "slow" is still being opened
    assert no_prefetch_thread_left()
    assert fakes["slow"].closed and "never" not in fakes


def test_keyboard_interrupt_in_the_caller_does_not_hang():
    opened: list = []
    with pytest.raises(KeyboardInterrupt):
        for path, _ in prefetch(range(100), lambda n: Fake(str(n), opened), depth=2):
            if path == 5:
                raise KeyboardInterrupt
    assert no_prefetch_thread_left()


def test_failing_path_iterable_is_raised_in_the_caller():
    def paths():
        yield "a"
        raise RuntimeError("listing the folder failed")

    it = prefetch(paths(), lambda n: Fake(n, []), depth=2)
    assert next(it)[0] == "a"
    with pytest.raises(RuntimeError, match="listing"):
        next(it)
    assert no_prefetch_thread_left()


def test_depth_zero_is_sequential():
    out = list(prefetch(["x", "y"], lambda n: n.upper(), depth=0))
    assert out == [("x", "X"), ("y", "Y")]


@pytest.mark.filterwarnings("ignore::rasterio.errors.NotGeoreferencedWarning")
def test_with_real_sources(tmp_path):
    import cv2

    paths = []
    for i in range(4):
        path = tmp_path / f"f{i}.png"
        ok, buf = cv2.imencode(".png", np.full((8, 8 + i, 3), i + 1, np.uint8))
        path.write_bytes(buf.tobytes())
        paths.append(path)
    (tmp_path / "bad.png").write_bytes(b"")
    paths.insert(2, tmp_path / "bad.png")
    import rasterio  # a raster opened in the prefetch thread and read in this one

    with rasterio.open(tmp_path / "r.tif", "w", driver="GTiff", width=12, height=5, count=1, dtype="uint16") as ds:
        ds.write(np.arange(60, dtype=np.uint16).reshape(1, 5, 12))
    paths.append(tmp_path / "r.tif")
    widths = []
    for path, src in prefetch(paths, open_source):
        if isinstance(src, ImageSource):
            with src:
                widths.append(src.width)
                rgb, _ = src.read(Window(0, 0, 16, 16))
                assert rgb.shape == (16, 16, 3) and rgb[:5].any()
        else:
            assert isinstance(src, InputError) and "empty file" in str(src)
    assert widths == [8, 9, 10, 11, 12]
