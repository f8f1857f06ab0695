"""``sspnet train``: the SSPNet training recipe on a TinyPerson / COCO / YOLO dataset."""
from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Optional

import typer

from sspnet_cli.cli.console import err, say
from sspnet_cli.cli.options import in_range, parse_frame_size, parse_tile
from sspnet_cli.cli.progress import clock
from sspnet_cli.errors import SSPNetError


def train(
    data: Path = typer.Argument(..., help="Dataset folder (TinyPerson, COCO or YOLO layout, detected automatically), a COCO JSON or a data.yaml."),
    out: Path = typer.Option(..., "--out", "-o", help="Run folder for last.pt, best.pt, metrics.jsonl and config.json. Refused if it exists, unless --resume or --exist-ok."),
    val_split: str = typer.Option("valid", "--val-split", help="Split validated after every epoch (AP50-tiny picks best.pt); 'none' to skip."),
    epochs: int = typer.Option(12, callback=in_range(1, None), help="Epochs; the lr drops x0.1 after epochs 8 and 11 (scaled when fewer/more epochs: see --lr-steps)."),
    lr_steps: Optional[str] = typer.Option(None, "--lr-steps", help="Epochs after which the lr drops x0.1, e.g. '8,11'. [default: 8,11 for 12 epochs, else 2/3 and 11/12 of the epochs]"),
    max_steps: Optional[int] = typer.Option(None, "--max-steps", callback=in_range(1, None), help="Stop after this many iterations (a validation and checkpoint follow). [default: all epochs]"),
    batch_size: int = typer.Option(2, "--batch-size", callback=in_range(1, None), help="Patches per iteration per process."),
    lr: Optional[float] = typer.Option(None, callback=in_range(0, None, above=True), help="Learning rate. [default: 0.002 x total batch / 2]"),
    device: str = typer.Option("auto", help="auto, cpu, cuda or cuda:N (under torchrun: each process its cuda:LOCAL_RANK)."),
    amp: bool = typer.Option(False, "--amp", help="Mixed precision: fp16 autocast with gradient scaling on CUDA; bf16 autocast on a CPU with bf16 units (AVX512-BF16 or AMX), a training step about 1.4x faster on this project's 2-core Xeon (benchmarks/README.md); fp32 elsewhere, with a note. [default: off]"),
    workers: int = typer.Option(2, callback=in_range(0, None), help="Data-loading worker processes."),
    resume: Optional[Path] = typer.Option(None, "--resume", help="Continue a run exactly from its last.pt (model, optimizer, step, RNG)."),
    init: Optional[Path] = typer.Option(None, "--init", help="Start from another checkpoint's weights (fine-tuning); same architecture."),
    exist_ok: bool = typer.Option(False, "--exist-ok", help="Write into an existing run folder. [default: off]"),
    model: str = typer.Option("paper", "--model", help="Model preset: paper (ResNet-50, 256-channel neck, FC-1024 head: the paper's; slow without a GPU) or lite (MobileNetV2, 64-channel SSPNet neck, FC-256 head: every SSPNet part, trains on a laptop CPU). --backbone, --neck-channels and --fc-dim override it."),
    detector: str = typer.Option("faster_rcnn", help="faster_rcnn, cascade_rcnn (three R-CNN stages at IoU 0.5/0.6/0.7) or retinanet (one stage, focal loss, its own 9 anchors per location)."),
    backbone: Optional[str] = typer.Option(None, help="resnet18, resnet34, resnet50, resnet101 or mobilenet_v2. [default: the preset's: resnet50 (paper), mobilenet_v2 (lite)]"),
    backbone_weights: str = typer.Option("default", "--backbone-weights", show_default=False, help="Backbone start: imagenet or person (MobileNetV2 files in weights/: ImageNet, or the backbone of an SSDLite person detector, trained on its own input normalisation, which the checkpoint then carries), a state-dict file, or none (from scratch). [default: person for --model lite; otherwise imagenet for mobilenet_v2, none for ResNets, as no ImageNet ResNet ships]"),
    neck: str = typer.Option("sspnet", help="sspnet (CAM + SEM + SSM) or fpn (the baseline)."),
    neck_channels: Optional[int] = typer.Option(None, "--neck-channels", callback=in_range(8, None), help="Channels of the pyramid. [default: the preset's: 256 (paper), 64 (lite)]"),
    fc_dim: Optional[int] = typer.Option(None, "--fc-dim", callback=in_range(8, None), help="Width of the R-CNN head's two FC layers. [default: the preset's: 1024 (paper), 256 (lite)]"),
    neck_norm: str = typer.Option("bn", "--neck-norm", help="Normalisation in the SSPNet neck's context attention: bn (BatchNorm, as the official code) or gn (GroupNorm, independent of the batch size)."),
    tile: str = typer.Option("640x512", help="Training patch size WIDTHxHEIGHT (patches overlap by 30 px)."),
    frame_size: Optional[str] = typer.Option(None, "--frame-size", help="Resize every frame (train and validation) to WIDTHxHEIGHT before cutting patches, e.g. 1760x990 to give TinyPerson-RF's frames, stored squeezed to 640x640, back their 16:9 shape near the original scale; the checkpoint records it and `sspnet eval` applies it. [default: frames as stored]"),
    rotate_limit: float = typer.Option(45.0, "--rotate-limit", callback=in_range(0.0, 180.0), help="Degrees of the shift-scale-rotate augmentation (the official 45). A rotated box becomes the box around its rotated corners, much wider than a person 3 px wide: 0 keeps boxes tight."),
    empty_patches: bool = typer.Option(False, "--empty-patches", help="Also train on patches with no person in them (pure background: sea, sand, waves), which the reference skips. [default: off, as the reference]"),
    ema: Optional[float] = typer.Option(None, "--ema", help="Keep an exponential moving average of the weights with this decay (e.g. 0.999: about the last 1,000 steps), validated and kept in best.pt instead of the raw weights (last.pt holds both); may be switched on when resuming, and a resumed run keeps its own without it. [default: off]"),
    no_wns: bool = typer.Option(False, "--no-wns", help="Sample negatives uniformly instead of by Weighted Negative Sampling (the R-CNN detectors; RetinaNet samples nothing). [default: WNS on]"),
    attention_loss: str = typer.Option("dice+bce", "--attention-loss", help="dice+bce (the paper's) or bce (plain BCE, the ablation)."),
    anchors: str = typer.Option("default", show_default=False, help="default (the reference's anchors for the detector: TinyPerson k-means for the R-CNNs, RetinaNet's own) or kmeans (fitted by k-means to this training set's boxes, stored in the checkpoint). [default: default]"),
    warmup_iters: int = typer.Option(500, "--warmup-iters", callback=in_range(0, None), help="Iterations of linear lr warm-up from 0.001x."),
    seed: int = typer.Option(0, callback=in_range(0, None), help="Seed of patch order, augmentation and initialisation."),
    deterministic: bool = typer.Option(False, "--deterministic", help="Deterministic kernels (slower; bit-exact repeats on the same machine). [default: off]"),
) -> int:
    """Train an SSPNet detector; stop with Ctrl-C and continue with --resume."""
    from sspnet_cli import api

    if anchors not in ("default", "kmeans"):
        raise SSPNetError("--anchors must be default or kmeans")
    with _progress() as callbacks:
        result = api.train(
            data, out, model=model, epochs=epochs, lr_steps=_lr_steps(lr_steps), max_steps=max_steps,
            batch_size=batch_size, lr=lr, warmup_iters=warmup_iters, device=device, amp=amp, workers=workers,
            resume=resume, init=init, exist_ok=exist_ok, detector=detector, backbone=backbone,
            backbone_weights=backbone_weights, neck=neck, neck_channels=neck_channels, fc_dim=fc_dim,
            neck_norm=neck_norm, tile=parse_tile(tile), rotate_limit=rotate_limit, empty_patches=empty_patches, ema=ema, frame_size=parse_frame_size(frame_size), wns=not no_wns, attention_loss=attention_loss,
            anchors=anchors, seed=seed, val_split=None if val_split.lower() == "none" else val_split,
            deterministic=deterministic, callbacks=callbacks,
        )
    if result.interrupted:
        return 130
    best = "n/a" if result.best_metric in (None, float("-inf")) else f"{result.best_metric:.2f}"
    say(f"done: {result.steps} steps in {result.seconds:.0f} s; best AP50-tiny {best}; checkpoints in {result.run_dir}")
    return 0


def _lr_steps(text: Optional[str]) -> Optional[tuple[int, ...]]:
    if text is None:
        return None  # TrainConfig's rule, which follows --epochs
    try:
        return tuple(int(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise SSPNetError(f"--lr-steps must be epoch numbers like 8,11, got {text!r}") from None


class _progress:
    """A rich progress bar fed by the trainer's callbacks."""

    def __enter__(self) -> Any:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

        from sspnet_cli.training.loop import Callbacks, LogInfo

        cols = (TextColumn("{task.description}"), BarColumn(bar_width=20), MofNCompleteColumn(), TimeElapsedColumn(), TimeRemainingColumn())
        self.progress = Progress(*cols, TextColumn("{task.fields[info]}"), console=err, expand=False, redirect_stdout=False, redirect_stderr=False, disable=not err.is_terminal)
        self.progress.__enter__()
        self.task = self.progress.add_task("train", total=None, info="")

        # a log file or a scheduler's output gets one plain line per log_every steps instead
        plain = not err.is_terminal
        started = time.monotonic()
        first_step = [0]

        def on_start(first: int, total: int) -> None:
            first_step[0] = first
            self.progress.update(self.task, completed=first, total=total)

        def on_log(info: "LogInfo") -> None:
            parts = [f"loss {info.losses.get('loss', 0):.3f}"]
            keys = (("loss_rpn_cls", "rpn"), ("loss_rcnn_cls", "roi"), ("loss_rcnn1_cls", "roi"), ("loss_retina_cls", "cls"), ("loss_att_dice", "att"))
            for key, short in keys:
                if key in info.losses:
                    parts.append(f"{short} {info.losses[key]:.3f}")
            parts += [f"lr {info.lr:.2e}", f"{info.patches_per_s:.1f} patch/s", f"ep {info.epoch}"]
            self.progress.update(self.task, info=" ".join(parts))
            if not plain:
                return
            elapsed = time.monotonic() - started
            done = info.step - first_step[0]
            eta = elapsed / done * (info.total_steps - info.step) if done else 0.0
            self.progress.console.print(
                f"step {info.step}/{info.total_steps} {' '.join(parts)} elapsed {clock(elapsed)} eta {clock(eta)}", markup=False
            )

        def on_val(epoch: int, metrics: dict) -> None:
            ap, mr = metrics.get("AP50_tiny"), metrics.get("MR50_tiny")
            fmt = lambda v: "n/a" if v is None else f"{v:.2f}"  # noqa: E731
            self.progress.console.print(f"epoch {epoch}: AP50-tiny {fmt(ap)}, MR50-tiny {fmt(mr)}", markup=False)

        callbacks = Callbacks(
            on_start=on_start,
            on_step=lambda step: self.progress.update(self.task, completed=step),
            on_log=on_log,
            on_val=on_val,
            on_message=lambda text: self.progress.console.print(text, markup=False),
        )
        return callbacks

    def __exit__(self, *exc: object) -> None:
        self.progress.__exit__(*exc)
