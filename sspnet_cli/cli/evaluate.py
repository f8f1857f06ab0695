"""``sspnet eval`` (also ``sspnet evaluate``): TinyPerson AP / miss-rate tables."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Optional

import typer

from sspnet_cli.cli.console import out as out_console
from sspnet_cli.cli.console import say
from sspnet_cli.cli.options import FLIP_HELP, PRECISION_HELP, in_range, parse_batch_size, parse_frame_size, parse_scales, parse_tile
from sspnet_cli.errors import SSPNetError


def evaluate(
    data: Optional[Path] = typer.Option(None, "--data", help="Dataset folder (TinyPerson, COCO or YOLO layout). [default: ./data when it is a dataset]"),
    split: str = typer.Option("test", help="Split to evaluate (train/valid/test or the data's own names)."),
    weights: Optional[Path] = typer.Option(None, "--weights", "-w", help="Checkpoint to evaluate. [default: the trained model shipped in weights/]"),
    gt: Optional[Path] = typer.Option(None, "--gt", help="Ground-truth JSON (COCO / TinyPerson); with --detections, evaluate that file instead of running a model."),
    detections: Optional[Path] = typer.Option(None, "--detections", help="Detections to evaluate: a COCO results list, or the .json `sspnet detect` writes (matched to --gt images by file name)."),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="Write the metrics (percent, null where undefined) to this JSON file."),
    save_detections: Optional[Path] = typer.Option(None, "--save-detections", help="Also write the model's detections (every one down to the 0.05 floor) as a COCO results list (.json) with the ground truth's image ids, for --gt/--detections, pycocotools or TinyBenchmark."),
    plot: Optional[Path] = typer.Option(None, "--plot", help="Write precision-recall and miss-rate-FPPI curves (PNG) into this folder."),
    device: str = typer.Option("auto", help="auto, cpu, cuda or cuda:N."),
    tile: str = typer.Option("640x512", help="Tile size WIDTHxHEIGHT for the detect pipeline."),
    overlap: int = typer.Option(30, callback=in_range(0, None), help="Tile overlap in pixels."),
    batch_size: str = typer.Option("auto", "--batch-size", help="Tiles per forward: auto (1 on CPU, 8 on CUDA) or a number."),
    half: bool = typer.Option(False, "--half", help="fp16 autocast on CUDA. [default: off]"),
    scales: str = typer.Option("model", help="Test scales: 'model' (the ones the checkpoint records; 1 where it records none) or numbers, e.g. '1', '1,1.5', or '2,3' for the reference's up-sampled test."),
    flip: Optional[bool] = typer.Option(None, "--flip/--no-flip", help=FLIP_HELP),
    precision: str = typer.Option("auto", "--precision", help=PRECISION_HELP),
    frame_size: str = typer.Option("training", "--frame-size", help="Resize every frame before detection: training (as the checkpoint's training did with its --frame-size, e.g. TinyPerson-RF's squeezed 640x640 frames back to 1760x990; as stored if it recorded none), native (as stored) or WIDTHxHEIGHT. Metrics stay in the stored frames' pixels."),
) -> int:
    """Evaluate with the exact TinyPerson metrics (AP and log-average miss rate at IoU 0.25/0.5/0.75).

    Either runs a model on a dataset split (tiles + merge on full frames, scores down to 0.05)
    or evaluates a given detections file against a ground-truth file.
    """
    from sspnet_cli import api
    from sspnet_cli.atomic import atomic_write, check_writable
    from sspnet_cli.cli.progress import TileProgress

    for path in (out, save_detections):
        if path is not None:
            check_writable(path, suffixes=(".json",))
    if (gt is None) != (detections is None):
        raise SSPNetError("--gt and --detections go together")
    if save_detections is not None and gt is not None:
        raise SSPNetError("--save-detections writes what the model finds; with --gt/--detections no model runs")
    failed = 0
    if gt is not None and detections is not None:
        result = api.evaluate_detections(gt, detections)
        name = detections.name
    else:
        data_dir = _dataset_dir(data)
        options = dict(tile=parse_tile(tile), overlap=overlap, batch_size=parse_batch_size(batch_size), half=half, scales=parse_scales(scales), flip=flip, precision=precision)
        with TileProgress(f"detect {split}", show_units=False) as bars:
            size: Any = "training" if frame_size.strip().lower() == "training" else parse_frame_size(frame_size)
            report = api.evaluate(weights, data_dir, split=split, device=device, frame_size=size, on_tiles=bars.tiles, on_frame=bars.frame, **options)
        for problem in report.dataset.problems[:10] if report.dataset else []:
            say(f"skipped: {problem}")
        for f in report.failures:
            say(f"failed {f.image}: {f.problem}")
        failed = len(report.failures)
        result = report.result
        name = report.weights.name if report.weights else "model"
        resized = f", resized to {report.frame_size[0]}x{report.frame_size[1]}" if report.frame_size else ""
        scales = ",".join(f"{s:g}" for s in report.scales)
        mirrored = ", and mirrored" if report.flip else ""
        say(f"{report.stats.images} frames{resized}, {report.stats.tiles} tiles at scales {scales}{mirrored}, {report.precision}, {report.stats.seconds:.1f} s")
    for warning in result.warnings[:10]:
        say(f"warning: {warning}")
    _print_tables(result, name)
    if gt is None and report.recall_by_size:
        _print_recall(report.recall_by_size)
    if out is not None:
        with atomic_write(out) as f:
            json.dump(result.metrics, f, indent=2, sort_keys=True)
            f.write("\n")
    if save_detections is not None:
        from sspnet_cli.evaluation.run import detection_records

        ids = {str(im.path): im.image_id for im in report.dataset.images} if report.dataset else {}
        with atomic_write(save_detections) as f:
            json.dump(detection_records(report.results, ids), f)
            f.write("\n")
    if plot is not None:
        from sspnet_cli.evaluation import plots

        plot.mkdir(parents=True, exist_ok=True)
        plots.plot_precision_recall(result, plot / "precision_recall.png")
        plots.plot_miss_rate(result, plot / "miss_rate.png")
    return 1 if failed else 0


def _dataset_dir(data: Optional[Path]) -> Path:
    if data is not None:
        return data
    from sspnet_cli.data import detect_layout

    default = Path("data")
    try:
        detect_layout(default)
    except SSPNetError:
        raise SSPNetError(
            "no dataset given and ./data is not one: pass --data DIR (TinyPerson, COCO or YOLO layout) "
            "or --gt GT.json --detections DETS.json"
        ) from None
    return default


def _print_tables(result: Any, name: str) -> None:
    from sspnet_cli.evaluation import ap_table, format_value, mr_table

    for table in (ap_table({name: result}), mr_table({name: result})):
        out_console.print(_rich(table))
    out_console.print(
        f"{result.num_images} images, {result.num_gt} ground-truth boxes, {result.num_detections} detections; "
        f"AP50 all {format_value(result.metrics.get('AP50_all'))}, MR50 all {format_value(result.metrics.get('MR50_all'))}"
    )


def _print_recall(rows: list[dict[str, float]]) -> None:
    from rich.table import Table as RichTable

    table = RichTable(title="Recall by person size (score >= 0.3, IoU 0.25; what detect --coverage uses)")
    for header in ("size, px", "people", "found", "recall %"):
        table.add_column(header, justify="left" if header.startswith("size") else "right")
    for row in rows:
        high = "" if row["max_px"] >= 1e8 else f"{row['max_px']:g}"
        table.add_row(f"{row['min_px']:g}-{high}" if high else f">= {row['min_px']:g}", str(int(row["people"])), str(int(row["found"])),
                      f"{100 * row['recall']:.1f}" if row["people"] else "-")
    out_console.print(table)


def _rich(table: Any) -> Any:
    from rich.table import Table as RichTable
    from sspnet_cli.evaluation import format_value

    arrow = "higher is better" if table.higher_is_better else "lower is better"
    out = RichTable(title=f"{table.title} ({arrow})")
    for i, header in enumerate(table.headers):
        out.add_column(header, justify="left" if i == 0 else "right", no_wrap=i == 0, min_width=12 if i == 0 else None)
    for row in table.rows:
        out.add_row(str(row[0]), *(format_value(v) for v in row[1:]))  # type: ignore[arg-type]
    return out
