"""Shared fixtures. Data from ``../shared`` (beside the checkout, or $SSPNET_SHARED_DIR) is
optional: tests that need it skip cleanly when it is absent."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]


def shared_path(*parts: str) -> Path:
    base = Path(os.environ.get("SSPNET_SHARED_DIR", REPO_ROOT.parent / "shared"))
    return base.joinpath(*parts)


@pytest.fixture
def shared_dir():
    """Path of the shared data folder; skips the test when it is not there."""
    path = shared_path()
    if not path.is_dir():
        pytest.skip(f"real-data folder not found at {path}: set SSPNET_SHARED_DIR to the folder holding data/tinyperson-rf, data/geo and weights/")
    return path


@pytest.fixture(autouse=True)
def _torch_backend_unless_asked(request, monkeypatch, tmp_path_factory):
    """In-process tests run ``--backend auto`` on torch (what most of them check); the ONNX
    tests, marked ``auto_onnx``, get the real default backend. ``--precision auto`` means fp32
    whatever the CPU (the same detections on every machine; int8 is tested where asked for, and
    its auto choice with the CPU check replaced), unless marked ``auto_int8``. Exports land in a
    per-session cache."""
    from sspnet_cli.inference import engine, quantize

    monkeypatch.setenv("SSPNET_CACHE", str(tmp_path_factory.getbasetemp() / "sspnet-cache"))
    if request.node.get_closest_marker("auto_onnx") is None:
        monkeypatch.setattr(engine, "AUTO_ONNX_ON_CPU", False)
    if request.node.get_closest_marker("auto_int8") is None:
        monkeypatch.setattr(quantize, "cpu_has_int8_dot", lambda: False)


def pytest_configure(config):
    config.addinivalue_line("markers", "auto_onnx: keep detect's real --backend auto (onnxruntime on the CPU)")
    config.addinivalue_line("markers", "auto_int8: keep detect's real --precision auto (int8 on CPUs with VNNI/AMX)")
