"""sspnet: find tiny people in large drone images with a faithful SSPNet detector.

The public names load on first use, so ``import sspnet_cli`` (and ``sspnet --help``) never
imports torch::

    from sspnet_cli import detect, Detector
    summary = detect(["samples/"], out="detections.geojson")
"""
from __future__ import annotations

from typing import Any

__version__ = "0.1.0"

_PUBLIC = {
    "detect": "sspnet_cli.api",
    "evaluate": "sspnet_cli.api",
    "evaluate_detections": "sspnet_cli.api",
    "export": "sspnet_cli.api",
    "report": "sspnet_cli.api",
    "train": "sspnet_cli.api",
    "write_results": "sspnet_cli.api",
    "Detector": "sspnet_cli.api",
    "DetectJob": "sspnet_cli.api",
    "DetectOptions": "sspnet_cli.api",
    "DetectProgress": "sspnet_cli.api",
    "DetectSummary": "sspnet_cli.api",
    "CameraSettings": "sspnet_cli.api",
    "Callbacks": "sspnet_cli.api",
    "EvalReport": "sspnet_cli.api",
    "Failure": "sspnet_cli.api",
    "ReportOutcome": "sspnet_cli.api",
    "RunStats": "sspnet_cli.api",
    "TrainResult": "sspnet_cli.api",
    "Detections": "sspnet_cli.types",
    "ImageResult": "sspnet_cli.types",
    "GeoRef": "sspnet_cli.types",
    "Positions": "sspnet_cli.types",
    "Window": "sspnet_cli.types",
    "ModelConfig": "sspnet_cli.config",
    "TrainConfig": "sspnet_cli.config",
    "SSPNetError": "sspnet_cli.errors",
    "InputError": "sspnet_cli.errors",
}

__all__ = sorted(_PUBLIC) + ["__version__"]


def __getattr__(name: str) -> Any:
    if name not in _PUBLIC:
        raise AttributeError(f"module 'sspnet_cli' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(_PUBLIC[name]), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__
