"""``sspnet export``: the model as ONNX graphs plus a JSON sidecar (as users know from ``yolo export``)."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from sspnet_cli.cli.console import say
from sspnet_cli.cli.options import parse_tile


def export(
    out: Path = typer.Option(..., "--out", "-o", help="The dense graph's file, e.g. model.onnx; model.rcnn.onnx (the R-CNN head) and model.json (the sidecar: input, anchors, thresholds, configuration) are written beside it."),
    weights: Optional[Path] = typer.Option(None, "--weights", "-w", help="Checkpoint to export (a Faster R-CNN). [default: the trained model shipped in weights/]"),
    format: str = typer.Option("onnx", "--format", help="Export format (onnx)."),
    tile: str = typer.Option("640x512", help="Example input WIDTHxHEIGHT the graphs are traced on; batch, height and width stay dynamic."),
    int8: bool = typer.Option(False, "--int8", help="Quantise the dense graph to int8 (weights per channel, activations from calibration): about 2.8x faster a dense pass on CPUs with VNNI/AMX; the sidecar records how. [default: off, fp32]"),
    calibration: Optional[Path] = typer.Option(None, "--calibration", help="With --int8: a folder of images (tiles of your own footage) to measure the activation ranges on. [default: the tiles in weights/calibration/, crops of TinyPerson train frames]"),
) -> int:
    """Export the model for onnxruntime or any ONNX runtime: `detect --weights model.onnx` runs it.

    The dense part (normalisation, backbone, neck, RPN head) and the R-CNN head become two ONNX
    graphs; the sidecar says how to glue them (anchors, proposal filtering, RoIAlign, soft-NMS).
    """
    from sspnet_cli import api

    sidecar = api.export(out, weights=weights, format=format, tile=parse_tile(tile), int8=int8, calibration=calibration)
    precision = " (dense graph int8)" if int8 else ""
    say(f"wrote {', '.join(sidecar['files'])} (from {sidecar['checkpoint']['file']}, sha256 {sidecar['checkpoint']['sha256'][:12]}...){precision}")
    return 0
