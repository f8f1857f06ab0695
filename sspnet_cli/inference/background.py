"""Run an iterator in a background thread, a few items ahead of the consumer."""
from __future__ import annotations

import queue
import threading
from typing import Iterable, Iterator, TypeVar

T = TypeVar("T")
_DONE = object()


class _Raised:
    def __init__(self, exc: BaseException) -> None:
        self.exc = exc


def background(items: Iterable[T], depth: int = 2) -> Iterator[T]:
    """Yield ``items`` in order while a thread produces up to ``depth`` of the next ones (decoding
    and reading release the GIL, so this overlaps I/O with the model). The thread starts an item
    only once there is room for it, so at most ``depth`` exist beyond the one the consumer holds
    (each may hold a decoded photo or a piece of a raster). An exception raised by the producer is re-raised
    here; closing this iterator early stops the thread."""
    q: "queue.Queue[object]" = queue.Queue()
    room = threading.Semaphore(max(depth, 1))
    stop = threading.Event()

    def wait_for_room() -> bool:
        while not stop.is_set():
            if room.acquire(timeout=0.05):
                return True
        return False

    def work() -> None:
        try:
            it = iter(items)
            while wait_for_room():
                try:
                    item = next(it)
                except StopIteration:
                    break
                q.put(item)
            else:
                return
        except BaseException as exc:  # handed to the consumer, which decides
            q.put(_Raised(exc))
            return
        q.put(_DONE)

    thread = threading.Thread(target=work, name="sspnet-reader", daemon=True)
    thread.start()
    try:
        while True:
            obj = q.get()
            room.release()
            if obj is _DONE:
                return
            if isinstance(obj, _Raised):
                raise obj.exc
            yield obj  # type: ignore[misc]
    finally:
        stop.set()
        thread.join(timeout=5)
        close = getattr(items, "close", None)
        if close is not None and not thread.is_alive():
            close()
