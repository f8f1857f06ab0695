"""Progress for long commands: rich bars on a terminal; when stderr is a file or a pipe (SLURM,
nohup, a CI log) a plain line at a steady interval instead, since bars would show only at the end.
"""
from __future__ import annotations

import time
from typing import Optional

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from sspnet_cli.cli.console import err, say

#: seconds between plain progress lines
PLAIN_EVERY_S = 10.0


def clock(seconds: float) -> str:
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}"


class TileProgress:
    """Counts of frames (or work units) and tiles, shown as two bars or as plain lines
    ``images 3/10, tiles 41/120, 2.1 tiles/s, elapsed 0:00:19, eta 0:00:37`` (ETA by tiles)."""

    def __init__(self, label: str = "images", show_units: bool = True) -> None:
        self.label = label
        self.show_units = show_units
        self.plain = not err.is_terminal
        self.units_total: Optional[int] = None
        self.units_done = 0
        self.tiles_total = 0
        self.tiles_done = 0
        self.started = time.monotonic()
        self._last_line = self.started
        self._bars: Optional[Progress] = None

    def __enter__(self) -> "TileProgress":
        if not self.plain:
            cols = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), TimeRemainingColumn())
            self._bars = Progress(*cols, console=err, redirect_stdout=False, redirect_stderr=False)
            self._bars.__enter__()
            self._unit_task = self._bars.add_task(self.label, total=None, visible=self.show_units)
            self._tile_task = self._bars.add_task("tiles", total=0)
        return self

    def __exit__(self, *exc: object) -> None:
        if self._bars is not None:
            self._bars.__exit__(*exc)
        elif self.tiles_done:
            self._line()

    # callbacks ------------------------------------------------------------------------------
    def units(self, total: int, done: int) -> None:
        self.units_total, self.units_done = total, done
        if self._bars is not None:
            self._bars.update(self._unit_task, total=total, completed=done)

    def units_done_now(self, done: int) -> None:
        self.units_done = done
        if self._bars is not None:
            self._bars.update(self._unit_task, completed=done)

    def unit(self) -> None:
        self.units_done_now(self.units_done + 1)

    def planned(self, tiles: int) -> None:
        """The tiles the run will cover, known up front (frames opening no longer add any)."""
        self._planned = True
        self.tiles_total = tiles
        if self._bars is not None:
            self._bars.update(self._tile_task, total=tiles)

    def frame(self, _name: str, tiles: int) -> None:
        if getattr(self, "_planned", False):
            return
        self.tiles_total += tiles
        if self._bars is not None:
            self._bars.update(self._tile_task, total=self.tiles_total)

    def tiles(self, n: int) -> None:
        self.tiles_done += n
        if self._bars is not None:
            self._bars.advance(self._tile_task, n)
        elif time.monotonic() - self._last_line >= PLAIN_EVERY_S:
            self._line()

    def _line(self) -> None:
        now = time.monotonic()
        self._last_line = now
        elapsed = now - self.started
        rate = self.tiles_done / elapsed if elapsed > 0 else 0.0
        left = max(self.tiles_total - self.tiles_done, 0)
        eta = f", eta {clock(left / rate)}" if rate > 0 and left else ""
        units = f"{self.label} {self.units_done}/{self.units_total}, " if self.show_units and self.units_total else ""
        say(f"{units}tiles {self.tiles_done}/{self.tiles_total}, {rate:.2f} tiles/s, elapsed {clock(elapsed)}{eta}")
