"""``export``: a checkpoint as ONNX graphs and their sidecar, for onnxruntime and other runtimes."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Optional, Union

from sspnet_cli.errors import SSPNetError
from sspnet_cli.inference.onnx import export_onnx, onnx_paths
from sspnet_cli.inference.weights import resolve_weights

PathLike = Union[str, Path]
FORMATS = ("onnx",)


def export(out: PathLike, *, weights: Optional[PathLike] = None, format: str = "onnx", tile: tuple[int, int] = (640, 512)) -> dict[str, Any]:
    """Export ``weights`` (default: the shipped model) to ``out`` (``model.onnx``), writing
    ``model.rcnn.onnx`` and the sidecar ``model.json`` beside it; returns the sidecar, whose
    ``files`` lists the three paths."""
    if format not in FORMATS:
        raise SSPNetError(f"unknown export format {format!r}; choose one of {', '.join(FORMATS)}")
    out = Path(out)
    if out.suffix.lower() != ".onnx":
        raise SSPNetError(f"{out}: an ONNX export is named *.onnx")
    sidecar = export_onnx(resolve_weights(weights), out, tile)
    sidecar["files"] = [str(p) for p in onnx_paths(out)]
    return sidecar
