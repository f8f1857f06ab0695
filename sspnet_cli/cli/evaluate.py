"""``sspnet eval`` (also ``sspnet evaluate``): TinyPerson AP / miss-rate tables."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table as RichTable

from sspnet_cli.api import EVAL_SCORE_FLOOR, evaluate_detector
from sspnet_cli.cli.app import app, err
from sspnet_cli.cli.options import in_range, parse_batch_size, parse_scales
from sspnet_cli.data import detect_layout, open_dataset
from sspnet_cli.errors import SSPNetError
from sspnet_cli.evaluation import EvalResult, ap_table, evaluate_files, format_value, mr_table
from sspnet_cli.evaluation.tables import Table
from sspnet_cli.inference.engine import Detector
from sspnet_cli.imagery.tiling import parse_tile
from sspnet_cli.atomic import atomic_write, check_writable

out_console = Console(highlight=False)


def evaluate(
    data: Optional[Path] = typer.Option(None, "--data", help="Dataset folder (TinyPerson, COCO or YOLO layout). [default: ./data when it is a dataset]"),
    split: str = typer.Option("test", help="Split to evaluate (train/valid/test or the data's own names)."),
    weights: Optional[Path] = typer.Option(None, "--weights", "-w", help="Checkpoint to evaluate. [default: the trained model shipped in weights/]"),
    gt: Optional[Path] = typer.Option(None, "--gt", help="Ground-truth JSON (COCO / TinyPerson); with --detections, evaluate that file instead of running a model."),
    detections: Optional[Path] = typer.Option(None, "--detections", help="Detections to evaluate: a COCO results list, or the .json `sspnet detect` writes (matched to --gt images by file name)."),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="Write the metrics (percent, null where undefined) to this JSON file."),
    plot: Optional[Path] = typer.Option(None, "--plot", help="Write precision-recall and miss-rate-FPPI curves (PNG) into this folder."),
    device: str = typer.Option("auto", help="auto, cpu, cuda or cuda:N."),
    tile: str = typer.Option("640x512", help="Tile size WIDTHxHEIGHT for the detect pipeline."),
    overlap: int = typer.Option(30, callback=in_range(0, None), help="Tile overlap in pixels."),
    batch_size: str = typer.Option("auto", "--batch-size", help="Tiles per forward: auto (1 on CPU, 8 on CUDA) or a number."),
    half: bool = typer.Option(False, "--half", help="fp16 autocast on CUDA. [default: off]"),
    scales: str = typer.Option("1", help="Test scales, e.g. '2,3' for the reference's up-sampled test."),
) -> int:
    """Evaluate with the exact TinyPerson metrics (AP and log-average miss rate at IoU 0.25/0.5/0.75).

    Either runs a model on a dataset split (tiles + merge on full frames, scores down to 0.05)
    or evaluates a given detections file against a ground-truth file.
    """
    if out is not None:
        check_writable(out, suffixes=(".json",))
    if (gt is None) != (detections is None):
        raise SSPNetError("--gt and --detections go together")
    failed = 0
    if gt is not None and detections is not None:
        result = evaluate_files(gt, detections)
        name = detections.name
    else:
        data_dir = _dataset_dir(data)
        dataset = open_dataset(data_dir, split=split)
        for problem in dataset.problems[:10]:
            err.print(f"skipped: {problem}", markup=False)
        detector = Detector(
            weights, device=device, score_thr=EVAL_SCORE_FLOOR, tile=parse_tile(tile), overlap=overlap,
            batch_size=parse_batch_size(batch_size), half=half, scales=parse_scales(scales),
        )
        cols = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
        with Progress(*cols, console=err, redirect_stdout=False, redirect_stderr=False) as progress:
            task = progress.add_task(f"detect {dataset.split}", total=0)
            report = evaluate_detector(
                detector, dataset,
                on_tiles=lambda n: progress.advance(task, n),
                on_frame=lambda _name, n: progress.update(task, total=(progress.tasks[task].total or 0) + n),
            )
        for f in report.failures:
            err.print(f"failed {f.image}: {f.problem}", markup=False)
        failed = len(report.failures)
        result = report.result
        name = detector.weights.name if detector.weights else "model"
        err.print(f"{report.stats.images} frames, {report.stats.tiles} tiles, {report.stats.seconds:.1f} s", markup=False)
    for warning in result.warnings[:10]:
        err.print(f"warning: {warning}", markup=False)
    _print_tables(result, name)
    if out is not None:
        with atomic_write(out) as f:
            json.dump(result.metrics, f, indent=2, sort_keys=True)
            f.write("\n")
    if plot is not None:
        from sspnet_cli.evaluation import plots

        plot.mkdir(parents=True, exist_ok=True)
        plots.plot_precision_recall(result, plot / "precision_recall.png")
        plots.plot_miss_rate(result, plot / "miss_rate.png")
    return 1 if failed else 0


app.command("eval")(evaluate)
app.command("evaluate", help="The same as `sspnet eval`.")(evaluate)


def _dataset_dir(data: Optional[Path]) -> Path:
    if data is not None:
        return data
    default = Path("data")
    try:
        detect_layout(default)
    except SSPNetError:
        raise SSPNetError(
            "no dataset given and ./data is not one: pass --data DIR (TinyPerson, COCO or YOLO layout) "
            "or --gt GT.json --detections DETS.json"
        ) from None
    return default


def _print_tables(result: EvalResult, name: str) -> None:
    for table in (ap_table({name: result}), mr_table({name: result})):
        out_console.print(_rich(table))
    out_console.print(
        f"{result.num_images} images, {result.num_gt} ground-truth boxes, {result.num_detections} detections; "
        f"AP50 all {format_value(result.metrics.get('AP50_all'))}, MR50 all {format_value(result.metrics.get('MR50_all'))}"
    )


def _rich(table: Table) -> RichTable:
    arrow = "higher is better" if table.higher_is_better else "lower is better"
    out = RichTable(title=f"{table.title} ({arrow})")
    for i, header in enumerate(table.headers):
        out.add_column(header, justify="left" if i == 0 else "right", no_wrap=i == 0, min_width=12 if i == 0 else None)
    for row in table.rows:
        out.add_row(str(row[0]), *(format_value(v) for v in row[1:]))  # type: ignore[arg-type]
    return out
