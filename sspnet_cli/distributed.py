"""Devices and torch.distributed set-up from torchrun's environment (RANK, WORLD_SIZE, LOCAL_RANK),
shared by training and detection."""
from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import timedelta
from typing import Optional

import torch
import torch.distributed as dist

from sspnet_cli.errors import SSPNetError


@dataclass
class DistContext:
    """Where this process stands in a (possibly one-process) job."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")
    initialised: bool = False

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    def barrier(self) -> None:
        if self.initialised:
            dist.barrier()

    def broadcast_object(self, obj: object) -> object:
        """``obj`` from rank 0 on every rank."""
        if not self.initialised:
            return obj
        box = [obj]
        dist.broadcast_object_list(box, src=0)
        return box[0]

    def close(self) -> None:
        if self.initialised and dist.is_initialized():
            dist.destroy_process_group()
            self.initialised = False


def resolve_device(device: str) -> torch.device:
    """``auto`` (CUDA when present, else CPU), ``cpu``, ``cuda`` or ``cuda:N``."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, ValueError):
        raise SSPNetError(f"unknown device {device!r}; use auto, cpu, cuda or cuda:N") from None
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise SSPNetError(f"device {device} asked for, but no CUDA GPU is available here")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise SSPNetError(f"device {device} asked for, but only {torch.cuda.device_count()} GPU(s) exist")
    elif dev.type != "cpu":
        raise SSPNetError(f"unsupported device {device!r}; use auto, cpu, cuda or cuda:N")
    return dev


def launched_by_torchrun() -> bool:
    return "RANK" in os.environ and "WORLD_SIZE" in os.environ and int(os.environ.get("WORLD_SIZE", "1")) > 1


def setup(device: str, timeout_s: float = 1800) -> DistContext:
    """Bind this process to its device and join the process group when torchrun started it.

    ``device``: auto, cpu, cuda or cuda:N. Under torchrun every process uses ``cuda:LOCAL_RANK``
    (NCCL) when CUDA is asked for or available, else the CPU (gloo)."""
    if not launched_by_torchrun():
        return DistContext(device=resolve_device(device))
    rank, world = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
    local = int(os.environ.get("LOCAL_RANK", "0"))
    use_cuda = device.startswith("cuda") or (device == "auto" and torch.cuda.is_available())
    if use_cuda:
        if not torch.cuda.is_available():
            raise SSPNetError("torchrun job asked for CUDA but none is available")
        torch.cuda.set_device(local)
        dev, backend = torch.device("cuda", local), "nccl"
    else:
        dev, backend = torch.device("cpu"), "gloo"
    try:
        dist.init_process_group(backend=backend, timeout=timedelta(seconds=timeout_s))
    except Exception as exc:
        raise SSPNetError(f"could not join the torchrun process group ({backend}): {str(exc).splitlines()[0]}") from None
    return DistContext(rank, world, local, dev, True)


def all_reduce_mean(values: dict[str, float], ctx: Optional[DistContext]) -> dict[str, float]:
    """Average logged numbers over processes (no-op in a one-process job)."""
    if ctx is None or not ctx.initialised or not values:
        return values
    keys = sorted(values)
    t = torch.tensor([values[k] for k in keys], dtype=torch.float64, device=ctx.device)
    dist.all_reduce(t)
    t /= ctx.world_size
    return dict(zip(keys, t.tolist()))
