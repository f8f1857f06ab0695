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
    model_name: str | None = None
    flags: set[str] = set()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name") and model_name is None:
                model_name = line.split(":", 1)[1].strip()
            elif line.startswith("flags") and not flags:
                flags = set(line.split(":", 1)[1].split())
    except OSError:
        pass
    cpu = model_name or cpu
    info = {
        "cpu": cpu,
        "logical_cores": os.cpu_count(),
        "usable_cores": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "platform": platform.platform(),
        "python": platform.python_version(),
    }
    # bf16 units decide what --amp does on a CPU (torch's cpu_isa says AVX512 for both kinds)
    if flags:
        info["cpu_bf16"] = "AMX" if "amx_bf16" in flags else "AVX512-BF16" if "avx512_bf16" in flags else "none"
        # int8 dot-product units decide what detect --precision auto picks (inference/quantize.py)
        int8 = [name for flag, name in (("amx_int8", "AMX"), ("avx512_vnni", "AVX512-VNNI"), ("avx_vnni", "AVX-VNNI")) if flag in flags]
        info["cpu_int8_dot"] = ", ".join(int8) or "none"
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
