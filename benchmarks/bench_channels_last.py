"""Backbone + neck of an untrained SSPNet-Lite (BatchNorm folded) on one 640x512 input, NCHW
against channels-last (NHWC), interleaved: ``python benchmarks/bench_channels_last.py``.
Prints torch's CPU capability and {0: NCHW, 1: NHWC} as (median, min) seconds over 8 rounds."""
import time, torch, statistics
from sspnet_cli.config import preset_config
from sspnet_cli.model.build import build_from_config
from sspnet_cli.model.fold import fold_batchnorm
torch.manual_seed(0)
m = build_from_config(preset_config("lite")).eval()
try:
    fold_batchnorm(m)
except Exception as e:
    print("no fold", e)
x = torch.randn(1, 3, 512, 640)
def run(cl):
    b = x.contiguous(memory_format=torch.channels_last) if cl else x.contiguous()
    with torch.inference_mode():
        t = time.perf_counter(); m.neck(m.backbone(b)); return time.perf_counter() - t
for cl in (0, 1): run(cl); run(cl)
res = {0: [], 1: []}
for i in range(8):
    for cl in (0, 1): res[cl].append(run(cl))
print(torch.backends.cpu.get_cpu_capability(), {k: (round(statistics.median(v), 3), round(min(v), 3)) for k, v in res.items()})
