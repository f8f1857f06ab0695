"""Running the CLI in-process and making small real checkpoints for CLI tests."""
from __future__ import annotations

import functools
import os
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from pathlib import Path
from typing import Callable

import pytest
import torch

from sspnet_cli.cli.app import main
from sspnet_cli.config import ModelConfig, RoIConfig
from sspnet_cli.model.build import build_from_config
from sspnet_cli.model.checkpoint import save_checkpoint


def signal_when(cmd: list[str], cwd: Path, sig: int, ready: Callable[[str], bool], merge_output: bool = False) -> tuple[int, str]:
    """Run ``python -m sspnet_cli ...`` (``cmd``) in a child process, send it ``sig`` once a
    line of its stderr (or of its merged output) passes ``ready`` (a fixed sleep could land in
    the interpreter's start-up on a loaded machine), and return its exit code and that output."""
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[1]))
    # a test run started in the background of a non-interactive shell inherits SIGINT ignored, and
    # a Python child then never raises KeyboardInterrupt: give the child the default disposition
    proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=subprocess.PIPE, text=True,
                            stderr=subprocess.STDOUT if merge_output else subprocess.PIPE,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    stream = proc.stdout if merge_output else proc.stderr
    lines: list[str] = []
    pump = threading.Thread(target=lambda: lines.extend(stream), daemon=True)
    pump.start()
    deadline = time.monotonic() + 300
    while proc.poll() is None and time.monotonic() < deadline and not any(ready(line) for line in list(lines)):
        time.sleep(0.2)
    proc.send_signal(sig)
    proc.wait(timeout=120)
    pump.join(timeout=10)
    return proc.returncode, "".join(lines)


def run_cli(*args: object) -> int:
    """Run ``sspnet ARGS`` in this process; returns the exit code."""
    with pytest.raises(SystemExit) as exc:
        main([str(a) for a in args])
    return int(exc.value.code or 0)


def small_config(neck: str = "sspnet") -> ModelConfig:
    return ModelConfig(backbone="resnet18", backbone_norm="bn", frozen_stages=0, neck=neck, neck_channels=32, roi=RoIConfig(fc_dim=128))


@functools.lru_cache(maxsize=None)
def _cached_checkpoint(neck: str) -> Path:
    torch.manual_seed(0)
    model = build_from_config(small_config(neck))
    with torch.no_grad():  # an untrained head that still reports boxes, so outputs have rows
        model.roi_heads.cls_score.bias.copy_(torch.tensor([-2.0, 2.0]))
    path = Path(tempfile.mkdtemp(prefix="sspnet-test-")) / f"small-{neck}.pt"
    save_checkpoint(path, model, meta={"note": "untrained test model"})
    return path


SAMPLE = Path(__file__).resolve().parents[1] / "samples" / "bb_V0004_I0001320.jpg"


def one_tile_frame(folder: Path) -> Path:
    """A 640x512 crop of a sample frame (one tile) in ``folder``: for CLI tests where the model's
    time is only a cost (a whole 1760x990 sample is 6 tiles)."""
    import cv2

    path = Path(folder) / "tile.jpg"
    if not cv2.imwrite(str(path), cv2.imread(str(SAMPLE))[:512, :640]):
        raise OSError(f"could not write {path}")
    return path


def small_checkpoint(folder: Path, neck: str = "sspnet") -> Path:
    """An untrained ResNet-18 checkpoint (fast on the CPU) for pipeline tests, copied to ``folder``."""
    target = folder / f"small-{neck}.pt"
    shutil.copyfile(_cached_checkpoint(neck), target)
    return target
