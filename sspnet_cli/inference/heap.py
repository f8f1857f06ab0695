"""Give the memory of freed large buffers back to the system while detect streams a raster.

glibc's malloc serves an allocation of at least ``M_MMAP_THRESHOLD`` bytes with its own ``mmap``
and unmaps it when freed, but it raises that threshold to the size of each such buffer freed
(up to 32 MB): after the first band of a wide raster (31 MB at 20,000 px) is freed, later bands
come from the heap, whose freed pages stay with the process. Fixing the threshold keeps every band
and tile buffer in its own mapping, returned on free. Measured on a 20,000 x 2,500 GeoTIFF (the
same threshold set by glibc's MALLOC_MMAP_THRESHOLD_ variable): peak resident memory 1,229 MiB ->
1,065 MiB (benchmarks/results/rss_cpu.json).

glibc also gives each new thread that allocates its own heap ("arena", up to 8 per core), whose
freed small blocks stay with it: the reader thread and detect's two lanes each kept one. One
arena for the process (as MALLOC_ARENA_MAX=1 does, which a user's own setting overrides): a
20,000 x 2,500 GeoTIFF with two lanes peaks 421 MB above the import floor instead of 482, and
runs no slower (benchmarks/README.md, "Memory on huge rasters"). Elsewhere than glibc this does
nothing.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import os
import sys

#: mallopt parameter numbers in glibc's malloc.h
_M_MMAP_THRESHOLD = -3
_M_ARENA_MAX = -8
#: allocations of at least this many bytes get their own mapping (glibc's starting value is 128 KiB)
MMAP_THRESHOLD = 1 << 20
#: malloc arenas for the whole process
ARENAS = 1

_done = False


def return_large_buffers() -> bool:
    """Fix glibc's mmap threshold at :data:`MMAP_THRESHOLD` and its arenas at :data:`ARENAS`
    (once per process, before detect starts its threads); True if the threshold was set."""
    global _done
    if _done:
        return True
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    if "MALLOC_ARENA_MAX" not in os.environ:
        mallopt(_M_ARENA_MAX, ARENAS)
    _done = bool(mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD))
    return _done
