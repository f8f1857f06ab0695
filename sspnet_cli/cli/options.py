"""Parsing option values shared by several commands; each error is one clear line."""
from __future__ import annotations

from typing import Any, Callable, Optional

import typer

from sspnet_cli.errors import SSPNetError


def parse_tile(text: str) -> tuple[int, int]:
    """``"640x512"`` -> ``(640, 512)``, with a clear error for anything else."""
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise SSPNetError(f"tile must look like WIDTHxHEIGHT (e.g. 640x512), got {text!r}") from None
    if w < 32 or h < 32:
        raise SSPNetError(f"tile must be at least 32x32, got {text!r}")
    return w, h


def parse_frame_size(text: Optional[str], option: str = "--frame-size") -> Optional[tuple[int, int]]:
    """``"1760x990"`` -> ``(1760, 990)``; None or ``"native"`` -> None (frames as stored)."""
    if text is None or text.strip().lower() in ("native", "none"):
        return None
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise SSPNetError(f"{option} must look like WIDTHxHEIGHT (e.g. 1760x990) or native, got {text!r}") from None
    if w < 32 or h < 32 or w > 20000 or h > 20000:
        raise SSPNetError(f"{option} must be between 32x32 and 20000x20000, got {text!r}")
    return w, h


def parse_pair(text: str, option: str) -> tuple[float, float]:
    """``"0.3,3.0"`` -> (0.3, 3.0), with one clear line for anything else."""
    try:
        low, high = (float(v) for v in text.split(","))
    except ValueError:
        raise SSPNetError(f"{option} must be two numbers like 0.3,3.0, got {text!r}") from None
    return low, high


def parse_scales(text: str) -> Optional[tuple[float, ...]]:
    """``"1"`` -> (1.0,); ``"2,3"`` -> (2.0, 3.0); ``"model"`` -> None (the checkpoint's own)."""
    if text.strip().lower() == "model":
        return None
    try:
        values = tuple(float(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise SSPNetError(f"scales must be numbers separated by commas, got {text!r}") from None
    if not values or any(v <= 0 or v > 8 for v in values):
        raise SSPNetError(f"scales must be in (0, 8], got {text!r}")
    return values


def parse_batch_size(text: str, what: str = "batch size") -> Optional[int]:
    """``auto`` -> None (the engine decides), else a positive integer."""
    if text.strip().lower() == "auto":
        return None
    try:
        value = int(text)
    except ValueError:
        raise SSPNetError(f"{what} must be 'auto' or a positive integer, got {text!r}") from None
    if value < 1:
        raise SSPNetError(f"{what} must be at least 1, got {value}")
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


def in_range(low: Optional[float] = None, high: Optional[float] = None, above: bool = False) -> Callable[[Any], Any]:
    """A typer callback refusing a value outside [low, high] (``above``: strictly above low)
    before any work, naming the option, the value and the range; None passes (not given)."""
    def check(ctx: Any, param: Any, value: Any) -> Any:
        if value is None:
            return value
        too_low = low is not None and (value <= low if above else value < low)
        too_high = high is not None and value > high
        if too_low or too_high:
            if low is not None and high is not None:
                wanted = f"from {low:g} to {high:g}"
            elif low is not None:
                wanted = f"above {low:g}" if above else f"at least {low:g}"
            else:
                wanted = f"at most {high:g}"
            raise typer.BadParameter(f"{value:g} is out of range: it must be {wanted}")
        return value

    return check


#: ``--precision`` of detect and eval
PRECISION_HELP = (
    "The dense graph's arithmetic: auto (int8 with the onnxruntime backend on a CPU with int8 dot-product units, "
    "AVX512-VNNI, AVX-VNNI or AMX: about twice as fast end to end, AP50-tiny kept on the valid split; fp32 elsewhere), "
    "fp32 (the checkpoint's own arithmetic) or int8 (onnxruntime only; calibrated on the tiles in weights/calibration/). "
    "An ONNX export runs at the precision it was exported with."
)
#: ``--flip/--no-flip`` of detect and eval
FLIP_HELP = (
    "Also run every tile mirrored left to right (at each scale) and average boxes and scores over the views: "
    "the mirrored test, about twice the time. [default: the checkpoint's choice, made on its validation split; "
    "off where it records none]"
)
