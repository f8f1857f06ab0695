"""Parsing option values shared by several commands; each error is one clear line."""
from __future__ import annotations

from typing import Optional

from sspnet_cli.errors import SSPNetError


def parse_scales(text: str) -> tuple[float, ...]:
    """``"1"`` -> (1.0,); ``"2,3"`` -> (2.0, 3.0)."""
    try:
        values = tuple(float(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise SSPNetError(f"scales must be numbers separated by commas, got {text!r}") from None
    if not values or any(v <= 0 or v > 8 for v in values):
        raise SSPNetError(f"scales must be in (0, 8], got {text!r}")
    return values


def parse_batch_size(text: str) -> Optional[int]:
    """``auto`` -> None (the engine decides), else a positive integer."""
    if text.strip().lower() == "auto":
        return None
    try:
        value = int(text)
    except ValueError:
        raise SSPNetError(f"batch size must be 'auto' or a positive integer, got {text!r}") from None
    if value < 1:
        raise SSPNetError(f"batch size must be at least 1, got {value}")
    return value


def parse_bands(text: Optional[str]) -> Optional[tuple[int, ...]]:
    """``"4,3,2"`` -> (4, 3, 2) (1-based band numbers); one number means a grey image."""
    if text is None:
        return None
    try:
        values = tuple(int(v) for v in text.split(","))
    except ValueError:
        raise SSPNetError(f"bands must be 1-based band numbers like 4,3,2, got {text!r}") from None
    if len(values) not in (1, 3) or any(v < 1 for v in values):
        raise SSPNetError(f"give one band or three (1-based), got {text!r}")
    return values
