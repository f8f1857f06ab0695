"""The consoles the commands print to: ``err`` (stderr: progress, notes, errors) and ``out``
(stdout: tables a user may pipe)."""
from __future__ import annotations

from rich.console import Console

err = Console(stderr=True, highlight=False, soft_wrap=True)
out = Console(highlight=False)


def say(text: str) -> None:
    """One plain line on stderr (no markup: paths may hold brackets)."""
    err.print(text, markup=False)
