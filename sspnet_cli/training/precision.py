"""Which mixed precision ``train --amp`` can use on a device."""
from __future__ import annotations

from typing import Optional

import torch


def cpu_has_bf16() -> bool:
    """Whether this CPU computes bf16 natively (AVX512-BF16 or AMX). Elsewhere torch emulates
    bf16 convolutions and matrix products, slower than fp32."""
    checks = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
    return any(bool(getattr(torch.cpu, name, lambda: False)()) for name in checks)


def amp_dtype(device: torch.device) -> Optional[torch.dtype]:
    """The autocast dtype of ``--amp`` on ``device``: fp16 on CUDA (with gradient scaling),
    bf16 on a CPU with bf16 units, None (fp32) elsewhere."""
    if device.type == "cuda":
        return torch.float16
    if device.type == "cpu" and cpu_has_bf16():
        return torch.bfloat16
    return None
