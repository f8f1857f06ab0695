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
