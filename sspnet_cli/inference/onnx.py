"""ONNX export of a Faster R-CNN SSPNet checkpoint, and an onnxruntime backend for ``detect``.

``export_onnx(checkpoint, "model.onnx")`` writes three files, for onnxruntime (``detect
--backend onnxruntime``) or any other runtime:

* ``model.onnx``, the dense part: input ``image`` (N, 3, H, W) float32 RGB on the 0-255 scale,
  H and W multiples of 32 (pad right/bottom with the normalisation mean, which the torch model's
  zero padding after normalisation amounts to), normalisation inside the graph; outputs
  ``p2``..``p6`` (the pyramid), ``objectness_p2``..``objectness_p6`` (N, A, h, w) and
  ``deltas_p2``..``deltas_p6`` (N, 4A, h, w) of the RPN head, and for SSPNet models ``attention_p2``
  ..``attention_p5`` (N, 1, h, w).
* ``model.rcnn.onnx``, the R-CNN head: input ``rois`` (K, C, 7, 7) (aligned RoIAlign of each
  proposal from its pyramid level) -> ``class_logits`` (K, 1 + classes), ``box_deltas`` (K, 4 x classes).
* ``model.json``, the sidecar: what a runtime needs to glue them: the input, the anchors (scales,
  ratios h/w, strides, order), the RPN's box coding and proposal filtering, the RoI level rule and
  pooling, the box coding, thresholds and soft-NMS of the test, the whole model configuration, and
  the source checkpoint's sha256; for an int8 export (``precision="int8"``: the dense graph
  quantised, quantize.py) its ``precision``: how, and on which calibration tiles.

Between and after the two graphs (anchors, proposal decoding and NMS, RoIAlign, the test's
soft-NMS) :class:`OnnxSSPNet` runs the same torch code as the checkpoint does, so the backends
agree to float precision.
"""
from __future__ import annotations

import json
import tempfile
import threading
from pathlib import Path
from typing import Any, Optional, Union

import numpy as np
import torch
from torch import Tensor, nn

from sspnet_cli.atomic import atomic_write
from sspnet_cli.config import ModelConfig
from sspnet_cli.errors import SSPNetError
from sspnet_cli.model.anchors import base_anchors
from sspnet_cli.model.backbones import sha256_of
from sspnet_cli.model.checkpoint import load_model
from sspnet_cli.model.detector import SSPNetDetector

FORMAT = "sspnet-onnx"
VERSION = 1
OPSET = 17
LEVELS = ("p2", "p3", "p4", "p5", "p6")


def onnx_paths(path: Union[str, Path]) -> tuple[Path, Path, Path]:
    """The dense graph, the R-CNN graph and the sidecar of an export at ``path``."""
    path = Path(path)
    return path, path.with_suffix(".rcnn.onnx"), path.with_suffix(".json")


class _Dense(nn.Module):
    """Normalisation -> backbone -> neck -> RPN head, as one graph."""

    def __init__(self, model: SSPNetDetector) -> None:
        super().__init__()
        self.model = model

    def forward(self, image: Tensor) -> tuple[Tensor, ...]:
        m = self.model
        x = (image - m.pixel_mean) / m.pixel_std
        pyramid, attentions = m.neck(m.backbone(x))
        levels = list(pyramid.values())
        objectness, deltas = m.rpn.head(levels)
        return (*levels, *objectness, *deltas, *attentions)


class _RCNN(nn.Module):
    """The R-CNN head's two FC layers, classifier and box regressor."""

    def __init__(self, model: SSPNetDetector) -> None:
        super().__init__()
        self.heads = model.roi_heads

    def forward(self, rois: Tensor) -> tuple[Tensor, Tensor]:
        x = self.heads.box_head(rois)
        return self.heads.cls_score(x), self.heads.bbox_pred(x)


def _output_names(has_attention: bool) -> list[str]:
    names = list(LEVELS) + [f"objectness_{lv}" for lv in LEVELS] + [f"deltas_{lv}" for lv in LEVELS]
    return names + ([f"attention_{lv}" for lv in LEVELS[:4]] if has_attention else [])


def export_onnx(
    checkpoint: Union[str, Path], out: Union[str, Path], tile: tuple[int, int] = (640, 512), precision: str = "fp32",
    calibration: Union[str, Path, None] = None,
) -> dict[str, Any]:
    """Export ``checkpoint`` (a Faster R-CNN; SSPNet or FPN neck) to ``out`` and its two
    companions (see the module docstring); returns the sidecar. ``tile`` (width, height) is the
    example input the graph is traced on; batch, height and width stay dynamic. ``precision``
    ``int8`` quantises the dense graph, its activation ranges measured on the images in
    ``calibration`` (default: the tiles shipped in weights/calibration/; see quantize.py)."""
    import warnings

    from sspnet_cli.config import model_test_scales
    from sspnet_cli.inference.quantize import METHOD, calibration_digest, calibration_images, calibration_inputs, quantize_dense

    if precision not in ("fp32", "int8"):
        raise SSPNetError(f"an export's precision is fp32 or int8, not {precision!r}")
    images = calibration_images(calibration) if precision == "int8" else []

    model, meta = load_model(checkpoint, "cpu")
    cfg: ModelConfig = model.cfg  # type: ignore[assignment]
    if cfg.detector != "faster_rcnn":
        raise SSPNetError(f"{checkpoint}: only Faster R-CNN checkpoints export to ONNX (this one is {cfg.detector})")
    dense_path, rcnn_path, side_path = onnx_paths(out)
    has_attention = bool(getattr(model.neck, "has_attention", False))
    names = _output_names(has_attention)
    w, h = (-(-v // cfg.size_divisible) * cfg.size_divisible for v in tile)
    image = torch.zeros(1, 3, h, w)
    dynamic = {"image": {0: "batch", 2: "height", 3: "width"}}
    dynamic.update({n: {0: "batch", 2: f"{n}_h", 3: f"{n}_w"} for n in names})
    pool = cfg.roi.pool_size
    rois = torch.zeros(8, cfg.neck_channels, pool, pool)
    with tempfile.TemporaryDirectory(dir=dense_path.parent) as tmp, warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tracer notes on shape arithmetic
        tmp_dense, tmp_rcnn = Path(tmp) / "dense.onnx", Path(tmp) / "rcnn.onnx"
        with torch.no_grad():
            torch.onnx.export(
                _Dense(model).eval(), (image,), str(tmp_dense), opset_version=OPSET, dynamo=False,
                input_names=["image"], output_names=names, dynamic_axes=dynamic,
            )
            torch.onnx.export(
                _RCNN(model).eval(), (rois,), str(tmp_rcnn), opset_version=OPSET, dynamo=False,
                input_names=["rois"], output_names=["class_logits", "box_deltas"],
                dynamic_axes={"rois": {0: "rois"}, "class_logits": {0: "rois"}, "box_deltas": {0: "rois"}},
            )
        calibrated: dict[str, Any] = {}
        if images:
            scales = sorted({1.0, *model_test_scales(meta)})
            tmp_int8 = Path(tmp) / "dense.int8.onnx"
            quantize_dense(tmp_dense, tmp_int8, calibration_inputs(images, scales, (w, h), cfg.size_divisible))
            tmp_dense = tmp_int8
            calibrated = {
                "images": [p.name for p in images], "digest": calibration_digest(images), "scales": scales,
                "tile": [w, h], "onnxruntime": _ort_version(),
            }
        for tmp_file, target in ((tmp_dense, dense_path), (tmp_rcnn, rcnn_path)):
            with atomic_write(target, "wb") as f:
                f.write(tmp_file.read_bytes())
    sidecar = _sidecar(cfg, meta, checkpoint, has_attention, dense_path, rcnn_path)
    if calibrated:
        sidecar["precision"] = {"dense": "int8", "rcnn": "fp32", **METHOD, "calibration": calibrated}
    with atomic_write(side_path) as f:
        json.dump(sidecar, f, indent=2)
        f.write("\n")
    return sidecar


def _ort_version() -> Optional[str]:
    try:
        import onnxruntime

        return str(onnxruntime.__version__)
    except ImportError:
        return None


def export_precision(sidecar: dict[str, Any]) -> str:
    """``int8`` where an export's dense graph is quantised, else ``fp32``."""
    precision = sidecar.get("precision")
    return "int8" if isinstance(precision, dict) and precision.get("dense") == "int8" else "fp32"


def _sidecar(cfg: ModelConfig, meta: dict, checkpoint: Union[str, Path], has_attention: bool, dense: Path, rcnn: Path) -> dict[str, Any]:
    anchors = cfg.anchors
    assert anchors is not None
    return {
        "format": FORMAT,
        "version": VERSION,
        "graphs": {"dense": dense.name, "rcnn": rcnn.name},
        "input": {
            "name": "image", "layout": "NCHW", "dtype": "float32", "channels": "RGB", "scale": "0-255",
            "size_divisible": cfg.size_divisible, "padding": "right/bottom with the mean colour (normalised: 0)",
            "normalisation_in_graph": {"mean": list(cfg.pixel_mean), "std": list(cfg.pixel_std)},
        },
        "outputs": _output_names(has_attention),
        "anchors": {
            "scales_times_stride": list(anchors.scales), "ratios_h_over_w": list(anchors.ratios),
            "strides": list(anchors.strides), "centre": "(j * stride, i * stride)",
            "order": "per level: (row, column, anchor); per location ratio-major (for each ratio, every scale)",
            "base_xyxy": {lv: base_anchors(s, anchors.scales, anchors.ratios).tolist() for lv, s in zip(LEVELS, anchors.strides)},
        },
        "rpn": {
            "box_coding": "torchvision BoxCoder (dx, dy, log dw, log dh)", "box_weights": [1.0 / s for s in cfg.rpn.box_stds],
            "pre_nms_top_n_per_level": cfg.rpn.pre_nms_top_n_test, "nms_iou_per_level": cfg.rpn.nms_iou,
            "post_nms_top_n": cfg.rpn.post_nms_top_n_test, "objectness": "sigmoid",
        },
        "roi": {
            "levels": "P2..P5", "level_rule": f"clamp(floor(log2(sqrt(w*h) / {cfg.roi.finest_scale} + 1e-6)), 0, 3)",
            "roi_align": {"output_size": cfg.roi.pool_size, "sampling_ratio": cfg.roi.sampling_ratio, "aligned": True},
            "class_logits": "softmax; column 0 background", "box_weights": [1.0 / s for s in cfg.roi.box_stds],
            "score_thresh": cfg.roi.score_thresh, "soft_nms": {"kind": "linear", "iou": cfg.roi.soft_nms_iou, "min_score": cfg.roi.soft_nms_min_score},
            "detections_per_image": cfg.roi.detections_per_img,
            "box_voting": {
                "iou": cfg.roi.box_voting_iou,
                "rule": "after soft-NMS, each kept box = mean of the candidate boxes (score > score_thresh) with IoU >= iou, weighted by their scores; 0: off",
            },
        },
        "model_config": cfg.to_dict(),
        "checkpoint": {"file": Path(checkpoint).name, "sha256": sha256_of(checkpoint), "meta": meta},
    }


def read_sidecar(path: Union[str, Path]) -> dict[str, Any]:
    """The sidecar of an export at ``path`` (the ``.onnx`` or the ``.json``), checked."""
    dense, _, side = onnx_paths(Path(path).with_suffix(".onnx"))
    try:
        data = json.loads(side.read_text())
    except (OSError, ValueError):
        raise SSPNetError(f"{dense}: no readable sidecar {side.name} beside it (export with `sspnet export`)") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise SSPNetError(f"{side}: not an sspnet ONNX sidecar")
    if int(data.get("version", 0)) > VERSION:
        raise SSPNetError(f"{side}: sidecar version {data.get('version')} is newer than this sspnet reads ({VERSION})")
    return data


class _CachedHead(nn.Module):
    """Stands in for the RPN head: hands back the objectness and deltas the dense graph gave, to
    the thread that ran it (lanes share one model)."""

    def __init__(self) -> None:
        super().__init__()
        self._local = threading.local()

    @property
    def cache(self) -> Optional[tuple[list[Tensor], list[Tensor]]]:
        return getattr(self._local, "cache", None)

    @cache.setter
    def cache(self, value: Optional[tuple[list[Tensor], list[Tensor]]]) -> None:
        self._local.cache = value

    def forward(self, features: list[Tensor]) -> tuple[list[Tensor], list[Tensor]]:
        out = self.cache
        if out is None:
            raise RuntimeError("the dense graph has not run for these features")
        self.cache = None
        return out


class _InGraph(nn.Module):
    """Stands in for a torch part whose weights the ONNX graphs hold."""

    def __init__(self, has_attention: bool = False) -> None:
        super().__init__()
        self.has_attention = has_attention

    def forward(self, *args: Any) -> Any:
        raise RuntimeError("this part of the model runs in onnxruntime")


class OnnxSSPNet(SSPNetDetector):
    """A Faster R-CNN whose dense part and R-CNN head run in onnxruntime; everything between and
    after them is the torch detector's own code. Loaded from an export's sidecar alone.

    One model may serve several threads at once (:meth:`replica`): onnxruntime's ``run`` is
    thread-safe, and what a tile leaves between the two graphs (the RPN head's outputs) is kept
    per thread."""

    def __init__(self, path: Union[str, Path], threads: Optional[int] = None) -> None:
        import onnxruntime as ort

        sidecar = read_sidecar(path)
        cfg = ModelConfig.from_dict(sidecar["model_config"])
        super().__init__(cfg)
        self.sidecar, self.path, self.threads = sidecar, Path(path), threads
        self.precision = export_precision(sidecar)
        dense, rcnn, _ = onnx_paths(Path(path).with_suffix(".onnx"))
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        # onnxruntime's arena keeps the graphs' tensors between runs: without it every tensor of
        # a megabyte or more is a fresh mapping (heap.py) whose pages fault in on each run, which
        # made detect 1.8x slower (20,000 x 1,500 raster, two lanes: 4:07 -> 2:17) for 160 MB less
        # at peak; --lanes 1 is the lean setting (benchmarks/README.md, "Memory on huge rasters").
        # The memory-pattern planner would keep a second, larger copy of its plan (+110 MB a run).
        options.enable_cpu_mem_arena = True
        options.enable_mem_pattern = False
        if threads:
            options.intra_op_num_threads = threads
        try:
            self.dense = ort.InferenceSession(str(dense), options, providers=["CPUExecutionProvider"])
            self.rcnn = ort.InferenceSession(str(rcnn), options, providers=["CPUExecutionProvider"])
        except Exception as exc:
            raise SSPNetError(f"{dense}: onnxruntime cannot load the export ({type(exc).__name__})") from None
        self.names = list(sidecar["outputs"])
        # the graphs hold these weights: the torch copies the constructor made (15 MB for the
        # lite model, random) would only take memory
        self.backbone = _InGraph()
        self.neck = _InGraph(has_attention=any(n.startswith("attention_") for n in self.names))
        heads = self.roi_heads
        heads.box_head, heads.cls_score, heads.bbox_pred = _InGraph(), _InGraph(), _InGraph()
        self.rpn.head = _CachedHead()
        self.roi_heads.predict = self._rcnn_predict  # type: ignore[method-assign]
        self.eval()

    def replica(self, threads: Optional[int] = None) -> "OnnxSSPNet":
        """Another model on the same export, with sessions of its own of ``threads`` threads each.
        Lanes of one thread share one replica: each run computes on the thread that calls it, so
        two lanes run two tiles at once on one copy of the weights. Lanes of several threads
        each get their own, since concurrent runs of one session share its thread pool."""
        return OnnxSSPNet(self.path, threads)

    def _normalise(self, x: Tensor) -> Tensor:
        # the graph normalises: hand it RGB on the 0-255 scale
        return x.float() if x.dtype == torch.uint8 else x.float() * 255.0

    def _pad(self, batch: Tensor) -> Tensor:
        # the torch model pads normalised images with 0, i.e. raw ones with the mean colour
        return super()._pad(batch - self.pixel_mean) + self.pixel_mean

    def features(self, batch: Tensor) -> tuple[list[Tensor], list[Tensor]]:
        outs = self.dense.run(None, {"image": np.ascontiguousarray(batch.detach().cpu().numpy(), dtype=np.float32)})
        named = {n: torch.from_numpy(o) for n, o in zip(self.names, outs)}
        levels = [named[lv] for lv in LEVELS]
        self.rpn.head.cache = ([named[f"objectness_{lv}"] for lv in LEVELS], [named[f"deltas_{lv}"] for lv in LEVELS])
        attention = [named[f"attention_{lv}"] for lv in LEVELS[:4] if f"attention_{lv}" in named]
        return levels, attention

    def _rcnn_predict(self, features: list[Tensor], rois: list[Tensor]) -> tuple[Tensor, Tensor]:
        pooled = self.roi_heads.pooler(features, rois)
        if pooled.shape[0] == 0:
            k = self.cfg.num_classes
            return pooled.new_zeros((0, k + 1)), pooled.new_zeros((0, 4 * k))
        logits, deltas = self.rcnn.run(None, {"rois": np.ascontiguousarray(pooled.numpy(), dtype=np.float32)})
        return torch.from_numpy(logits), torch.from_numpy(deltas)
