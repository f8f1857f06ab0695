"""CPU inference variants of one checkpoint against torch eager, on the same tiles: time and agreement.

    pip install openvino            # optional, bench environment only (not a dependency)
    python benchmarks/bench_cpu_backends.py --weights runs/x/best.pt --out benchmarks/results/cpu_backends.json

Variants of the dense part (backbone + neck + RPN head, which is most of a tile's time):

- ``torch``: the detector as ``detect`` runs it (BatchNorm folded, channels-last, inference mode);
- ``torch_compile``: the same dense part through ``torch.compile`` (inductor, CPU);
- ``onnxruntime``: the dense part exported to ONNX (as ``sspnet export`` does) in onnxruntime;
- ``openvino_f32`` / ``openvino_bf16``: the same ONNX graph compiled by OpenVINO for the CPU with
  the inference precision hint f32, or bf16 (OpenVINO's own default on CPUs with AMX/AVX512-BF16);
- ``int8_fc``: torch eager with the R-CNN head's two FC layers dynamically quantised to int8
  (``torch.ao.quantization.quantize_dynamic``), the cheap int8 step: the head's FCs are about a
  third of a lite tile's FLOPs.

Everything after the dense graph (proposals, RoIAlign, the head unless quantised, soft-NMS, box
voting) is the torch detector's own code in every variant, so differences come from the variant.
Each tile runs once per variant per round, rounds interleaved; medians and minimums are kept. The
detections of each variant are compared with torch's: the largest box-coordinate and score
differences over boxes matched one to one (IoU >= 0.5), and how many boxes have no match.
The variants are speed options only if they agree within 0.5 px and 1e-3 (issue 20's bar).
"""
from __future__ import annotations

import argparse
import copy
import json
import statistics
import sys
import tempfile
import time
import warnings
from pathlib import Path

import cv2
import numpy as np
import torch
from torch import Tensor, nn

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

from machine import machine  # noqa: E402

from sspnet_cli.inference.onnx import LEVELS, _CachedHead  # noqa: E402
from sspnet_cli.model.checkpoint import load_model  # noqa: E402
from sspnet_cli.model.fold import fold_batchnorm  # noqa: E402


class DenseNormalised(nn.Module):
    """Backbone -> neck -> RPN head on a normalised, padded batch: (levels, objectness, deltas, attention)."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: Tensor) -> tuple[Tensor, ...]:
        m = self.model
        pyramid, attentions = m.neck(m.backbone(x))
        levels = list(pyramid.values())
        objectness, deltas = m.rpn.head(levels)
        return (*levels, *objectness, *deltas, *attentions)


def plugged(model: nn.Module, dense_fn) -> nn.Module:
    """A copy of ``model`` whose dense part is ``dense_fn(normalised padded batch) -> outputs``."""
    m = copy.deepcopy(model)
    head = _CachedHead()
    m.rpn.head = head
    n = len(LEVELS)

    def features(batch: Tensor):
        outs = [torch.as_tensor(o) for o in dense_fn(batch)]
        head.cache = (outs[n : 2 * n], outs[2 * n : 3 * n])
        return outs[:n], outs[3 * n :]

    m.features = features  # type: ignore[method-assign]
    return m


def tiles_of(frame: Path, frame_size, count: int) -> list[Tensor]:
    """``count`` 640x512 tiles (uint8, 1x3xHxW) of ``frame`` resized to ``frame_size`` (as detect does)."""
    img = cv2.cvtColor(cv2.imread(str(frame)), cv2.COLOR_BGR2RGB)
    if frame_size:
        img = cv2.resize(img, tuple(frame_size), interpolation=cv2.INTER_LINEAR)
    out = []
    h, w = img.shape[:2]
    for y0 in range(0, max(h - 512, 0) + 1, 482):
        for x0 in range(0, max(w - 640, 0) + 1, 610):
            t = img[y0 : y0 + 512, x0 : x0 + 640]
            if t.shape[:2] == (512, 640):
                out.append(torch.from_numpy(np.ascontiguousarray(t)).permute(2, 0, 1)[None].contiguous())
    return out[:count]


def agreement(ref: dict, other: dict) -> dict:
    """Largest box / score differences over a one-to-one matching of the two sets of detections
    (greedy on box distance plus score difference, among pairs with IoU >= 0.5: box voting can
    leave neighbours with identical boxes, so IoU alone does not pair them), and unmatched boxes."""
    from torchvision.ops import box_iou

    a, b = ref["boxes"].float(), other["boxes"].float()
    sa, sb = ref["scores"].float(), other["scores"].float()
    if len(a) == 0 or len(b) == 0:
        return {"boxes": len(b), "unmatched": len(a) + len(b), "max_box_px": 0.0, "max_score": 0.0}
    dist = (a[:, None] - b[None]).abs().amax(-1)
    cost = dist + 100.0 * (sa[:, None] - sb[None]).abs()
    cost[box_iou(a, b) < 0.5] = float("inf")
    used_a, used_b, pairs = set(), set(), []
    for flat in torch.argsort(cost.flatten()).tolist():
        i, j = divmod(flat, len(b))
        if not torch.isfinite(cost[i, j]):
            break
        if i in used_a or j in used_b:
            continue
        used_a.add(i), used_b.add(j), pairs.append((i, j))
    dbox = max((dist[i, j].item() for i, j in pairs), default=0.0)
    dscore = max(((sa[i] - sb[j]).abs().item() for i, j in pairs), default=0.0)
    return {"boxes": len(b), "unmatched": len(a) + len(b) - 2 * len(pairs), "max_box_px": round(dbox, 4), "max_score": round(dscore, 6)}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--weights", type=Path, required=True)
    ap.add_argument("--frame", type=Path, default=REPO / "samples" / "bb_V0004_I0001320.jpg")
    ap.add_argument("--tiles", type=int, default=3)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--variants", default="torch,torch_compile,onnxruntime,openvino_f32,openvino_bf16,int8_fc")
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args()
    warnings.simplefilter("ignore")

    model, meta = load_model(args.weights, "cpu")
    fold_batchnorm(model)
    frame_size = (meta.get("train_config") or {}).get("frame_size")
    tiles = tiles_of(args.frame, frame_size, args.tiles)
    dense = DenseNormalised(model).eval()
    tmp = Path(tempfile.mkdtemp())
    onnx_path = tmp / "dense.onnx"
    example = model._pad(model._normalise(tiles[0]))
    n_out = len(dense(example))
    names = [f"o{i}" for i in range(n_out)]
    with torch.no_grad():
        torch.onnx.export(dense, (example,), str(onnx_path), opset_version=17, dynamo=False,
                          input_names=["x"], output_names=names,
                          dynamic_axes={"x": {0: "b", 2: "h", 3: "w"}, **{n: {0: "b", 2: f"{n}h", 3: f"{n}w"} for n in names}})

    variants: dict[str, nn.Module] = {}
    skipped: dict[str, str] = {}
    wanted = [v.strip() for v in args.variants.split(",") if v.strip()]

    def channels_last(x: Tensor) -> Tensor:
        return x.contiguous(memory_format=torch.channels_last)

    for name in wanted:
        try:
            if name == "torch":
                variants[name] = model
            elif name == "torch_compile":
                compiled = torch.compile(dense, dynamic=False)
                variants[name] = plugged(model, lambda x, c=compiled: c(channels_last(x)))
            elif name == "onnxruntime":
                import onnxruntime as ort

                opts = ort.SessionOptions()
                opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
                sess = ort.InferenceSession(str(onnx_path), opts, providers=["CPUExecutionProvider"])
                variants[name] = plugged(model, lambda x, s=sess: s.run(None, {"x": x.numpy()}))
            elif name.startswith("openvino"):
                import openvino as ov

                core = ov.Core()
                precision = "f32" if name.endswith("f32") else "bf16"
                compiled_ov = core.compile_model(str(onnx_path), "CPU", {"INFERENCE_PRECISION_HINT": precision})
                variants[name] = plugged(model, lambda x, c=compiled_ov: [torch.from_numpy(np.array(o)) for o in c(x.numpy()).values()])
            elif name == "int8_fc":
                m8 = copy.deepcopy(model)
                m8.roi_heads.box_head = torch.ao.quantization.quantize_dynamic(m8.roi_heads.box_head, {nn.Linear}, dtype=torch.qint8)
                variants[name] = m8
            else:
                skipped[name] = "unknown variant"
        except Exception as exc:  # a runtime that is not installed or does not take this graph
            skipped[name] = f"{type(exc).__name__}: {str(exc).splitlines()[0][:200] if str(exc) else ''}"

    times: dict[str, list[float]] = {k: [] for k in variants}
    dets: dict[str, list[dict]] = {}
    with torch.inference_mode():
        for name, m in variants.items():  # warm-up (compiles) and the detections compared
            start = time.perf_counter()
            dets[name] = [m.predict(t)[0][0] for t in tiles]
            times.setdefault(f"{name}_first", []).append(time.perf_counter() - start)
        for _ in range(args.rounds):
            for name, m in variants.items():
                for t in tiles:
                    start = time.perf_counter()
                    m.predict(t)
                    times[name].append(time.perf_counter() - start)
    results = {}
    for name in variants:
        agree = [agreement(r, o) for r, o in zip(dets["torch"], dets[name])] if "torch" in dets else []
        results[name] = {
            "tile_s_median": round(statistics.median(times[name]), 4),
            "tile_s_min": round(min(times[name]), 4),
            "first_pass_s": round(times[f"{name}_first"][0], 2),
            "speedup_vs_torch_median": round(statistics.median(times["torch"]) / statistics.median(times[name]), 3) if "torch" in times else None,
            "max_box_px": max((a["max_box_px"] for a in agree), default=None),
            "max_score": max((a["max_score"] for a in agree), default=None),
            "unmatched_boxes": sum(a["unmatched"] for a in agree),
            "boxes": sum(a["boxes"] for a in agree),
        }
    out = {
        "benchmark": "bench_cpu_backends",
        "weights": str(args.weights),
        "frame": str(args.frame.name),
        "frame_size": frame_size,
        "tiles": len(tiles),
        "rounds": args.rounds,
        "machine": machine(),
        "results": results,
        "skipped": skipped,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=2) + "\n")
    print(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
