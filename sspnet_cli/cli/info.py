"""``sspnet info``: the model's architecture in words and numbers."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer

from sspnet_cli.cli.console import out as console
from sspnet_cli.errors import SSPNetError


def info(
    weights: Optional[Path] = typer.Option(
        None, "--weights", "-w", help="Describe this checkpoint (with its training metadata). Default: the shipped model in weights/ (without one: the paper architecture, untrained)."
    ),
    model: Optional[str] = typer.Option(None, "--model", help="Describe a preset's architecture, untrained, instead: paper or lite."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object instead of tables. [default: off]"),
) -> None:
    """Describe the detector: parts, parameter counts, pyramid levels, anchors, checkpoint metadata."""
    from sspnet_cli.config import preset_config
    from sspnet_cli.inference.weights import find_default_weights
    from sspnet_cli.model.build import build_from_config
    from sspnet_cli.model.checkpoint import load_model
    from sspnet_cli.model.summary import describe

    if model is not None and weights is not None:
        raise SSPNetError("give --weights or --model, not both")
    if model is not None:
        net, meta = build_from_config(preset_config(model)), None
    else:
        path = weights if weights is not None else find_default_weights()
        net, meta = (load_model(path) if path is not None else (build_from_config(), None))
    desc = describe(net, meta)
    if as_json:
        typer.echo(json.dumps(desc, indent=2))
        return
    _print_tables(desc)


def _print_tables(desc: dict) -> None:
    from rich.table import Table

    bb, neck = desc["backbone"], desc["neck"]
    console.print(f"[bold]{desc['detector']}[/] with a [bold]{neck['name']}[/] neck on [bold]{bb['name']}[/]")
    console.print(f"preset: {desc['preset']}", markup=False)
    console.print(f"backbone norm: {bb['norm']}, frozen stages: {bb['frozen_stages']}, initial weights: {bb['initial_weights']}", soft_wrap=True, markup=False)
    params = Table(title="Parameters")
    params.add_column("part")
    params.add_column("parameters", justify="right")
    for name, n in desc["parameters"].items():
        params.add_row(name, f"{n:,}")
    console.print(params)
    levels = Table(title="Pyramid levels")
    for col in ("level", "stride", "size on 640x512 (h x w)", "used by", "anchor sides sqrt(wh), px"):
        levels.add_column(col)
    scales = desc["anchors"]["scales"]
    for lv in desc["pyramid_levels"]:
        sides = ", ".join(f"{lv['stride'] * s:g}" for s in scales)
        levels.add_row(lv["name"], str(lv["stride"]), "{} x {}".format(*lv["size_on_640x512"]), lv["used_by"], sides)
    console.print(levels)
    a = desc["anchors"]
    console.print(
        f"anchors per location: {a['per_location']} ({len(a['scales'])} sides x {len(a['ratios_h_over_w'])} "
        f"ratios h/w {a['ratios_h_over_w']}; unrounded, centred on the grid points; every size in --json)"
    )
    if desc.get("training_frame_size"):
        w, h = desc["training_frame_size"]
        console.print(
            f"trained on frames resized to {w}x{h} (--frame-size); `sspnet eval` resizes a dataset's frames the same way, "
            "`sspnet detect` takes images at their own size", markup=False, soft_wrap=True,
        )
    if desc.get("test_scales"):
        scales = ",".join(f"{s:g}" for s in desc["test_scales"])
        note = "" if scales == "1" else " (each tile also up-sampled; --scales 1 is the fastest)"
        console.print(f"test scales: {scales}{note}: what detect and eval use unless --scales says otherwise", markup=False, soft_wrap=True)
    if desc.get("test_flip"):
        console.print("mirrored test: on (each scale also runs mirrored; --no-flip halves the time)", markup=False, soft_wrap=True)
    if desc.get("checkpoint"):
        meta = Table(title="Checkpoint")
        meta.add_column("key")
        meta.add_column("value")
        for k, v in desc["checkpoint"].items():
            meta.add_row(str(k), json.dumps(v) if not isinstance(v, str) else v)
        console.print(meta)
