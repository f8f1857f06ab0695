"""The library's front door: every ``sspnet`` command is one call here, which returns values and
never prints (progress comes back through callbacks).

    from sspnet_cli.api import detect, evaluate, report, train
    summary = detect(["samples/"], out="detections.geojson")      # as `sspnet detect`
    scores = evaluate(data="data/tinyperson", split="test")         # as `sspnet eval`
    report("detections.geojson", "review/")                          # as `sspnet report`
    export("model.onnx")                                             # as `sspnet export`
    train("data/tinyperson", "runs/lite", model="lite")             # as `sspnet train`

For frames in memory or finer control, :class:`Detector` detects on one frame or a stream of
them (``Detector().detect("frame.jpg")``) and :func:`write_results` writes any results.
"""
from sspnet_cli.api.detect import CameraSettings, DetectJob, DetectProgress, DetectSummary, detect
from sspnet_cli.api.evaluate import evaluate, evaluate_detections
from sspnet_cli.api.export import export
from sspnet_cli.api.report import ReportOutcome, report
from sspnet_cli.api.train import train
from sspnet_cli.evaluation.run import EvalReport
from sspnet_cli.inference.engine import DetectOptions, Detector, Failure, RunStats
from sspnet_cli.outputs import write_results
from sspnet_cli.training.loop import Callbacks, TrainResult

__all__ = [
    "CameraSettings",
    "Callbacks",
    "DetectJob",
    "DetectOptions",
    "DetectProgress",
    "DetectSummary",
    "Detector",
    "EvalReport",
    "Failure",
    "ReportOutcome",
    "RunStats",
    "TrainResult",
    "detect",
    "evaluate",
    "evaluate_detections",
    "export",
    "report",
    "train",
    "write_results",
]
