"""The machine a benchmark ran on, for its JSON result."""
from __future__ import annotations

import os
import platform
import sys
from pathlib import Path


def machine() -> dict:
    """CPU model, cores (all and usable by this process), platform, Python and numpy versions,
    and torch's version, threads and GPU when the benchmark has imported torch."""
    cpu = platform.processor() or ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    info = {
        "cpu": cpu,
        "logical_cores": os.cpu_count(),
        "usable_cores": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "platform": platform.platform(),
        "python": platform.python_version(),
    }
    numpy = sys.modules.get("numpy")
    if numpy is not None:
        info["numpy"] = numpy.__version__
    torch = sys.modules.get("torch")
    if torch is not None:
        info["torch"] = torch.__version__
        info["torch_threads"] = torch.get_num_threads()
        info["cpu_isa"] = torch.backends.cpu.get_cpu_capability()  # AVX2, AVX512...: what oneDNN can use
        if torch.cuda.is_available():
            info["gpu"] = torch.cuda.get_device_name(0)
    return info
