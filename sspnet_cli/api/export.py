"""``export``: a checkpoint as ONNX graphs and their sidecar, for onnxruntime and other runtimes."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Optional, Union

from sspnet_cli.atomic import check_writable
from sspnet_cli.errors import SSPNetError
from sspnet_cli.inference.onnx import export_onnx, onnx_paths
from sspnet_cli.inference.weights import resolve_weights

PathLike = Union[str, Path]
FORMATS = ("onnx",)


def export(
    out: PathLike, *, weights: Optional[PathLike] = None, format: str = "onnx", tile: tuple[int, int] = (640, 512),
    int8: bool = False, calibration: Optional[PathLike] = None,
) -> dict[str, Any]:
    """Export ``weights`` (default: the shipped model) to ``out`` (``model.onnx``), writing
    ``model.rcnn.onnx`` and the sidecar ``model.json`` beside it; returns the sidecar, whose
    ``files`` lists the three paths. ``int8`` quantises the dense graph, its activation ranges
    measured on the images in ``calibration`` (default: the tiles in weights/calibration/)."""
    if calibration is not None and not int8:
        raise SSPNetError("--calibration is for --int8 exports")
    if format not in FORMATS:
        raise SSPNetError(f"unknown export format {format!r}; choose one of {', '.join(FORMATS)}")
    out = Path(out)
    if out.suffix.lower() != ".onnx":
        raise SSPNetError(f"{out}: an ONNX export is named *.onnx")
    check_writable(out, suffixes=(".onnx",))
    weights_path = resolve_weights(weights)
    out.parent.mkdir(parents=True, exist_ok=True)  # as detect does for --out
    sidecar = export_onnx(weights_path, out, tile, precision="int8" if int8 else "fp32", calibration=calibration)
    sidecar["files"] = [str(p) for p in onnx_paths(out)]
    return sidecar
