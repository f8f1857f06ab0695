"""The training loop: SSPNet recipe, stop/resume exactly, DDP, validation every epoch.

A run directory holds ``last.pt`` (resumable: model, optimizer, scaler, step, epoch, RNG states,
best metric), ``best.pt`` (best validation AP50-tiny), ``metrics.jsonl`` (losses by component,
lr, patches/s every ``log_every`` steps; AP/MR after each validation) and ``config.json`` (the
resolved model and training configuration).

Reproducibility: the patch order of epoch ``e`` is a permutation seeded by (seed, e) and each
patch's augmentation is seeded by (seed, e, index), so a resumed run sees exactly the patches and
augmentations an uninterrupted one would; the model's own randomness (the samplers) comes from
the global torch RNG, whose state is saved at the start of every step.
"""
from __future__ import annotations

import contextlib
import json
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional

import cv2
import numpy as np
import torch
from torch import nn

from sspnet_cli import __version__
from sspnet_cli.config import ModelConfig, TrainConfig
from sspnet_cli.data import open_dataset, training_patches
from sspnet_cli.data.augment import ShiftScaleRotate, TrainAugment
from sspnet_cli.data.training_set import PatchDataset, collate
from sspnet_cli.errors import SSPNetError
from sspnet_cli.model.anchors import kmeans_anchors
from sspnet_cli.model.backbones import KNOWN_WEIGHTS, known_weights
from sspnet_cli.model.build import build_from_config
from sspnet_cli.model.checkpoint import load_state_strict, read_checkpoint, save_checkpoint
from sspnet_cli.atomic import atomic_write
from sspnet_cli.distributed import DistContext, all_reduce_mean, setup
from sspnet_cli.training.ema import WeightEMA
from sspnet_cli.training.precision import amp_dtype
from sspnet_cli.training.schedule import lr_factor

SHIPPED_WEIGHTS = Path(__file__).resolve().parents[2] / "weights"
BEST_KEY = "AP50_tiny"


@dataclass
class LogInfo:
    """What the progress display shows every ``log_every`` steps."""

    step: int
    total_steps: int
    epoch: int
    lr: float
    losses: dict[str, float]
    patches_per_s: float


@dataclass
class TrainResult:
    run_dir: Path
    steps: int
    seconds: float
    best_metric: Optional[float]
    last_val: dict[str, Any] = field(default_factory=dict)
    interrupted: bool = False


@dataclass
class Callbacks:
    on_start: Optional[Callable[[int, int], None]] = None  # (first step, total steps)
    on_step: Optional[Callable[[int], None]] = None
    on_log: Optional[Callable[[LogInfo], None]] = None
    on_val: Optional[Callable[[int, dict[str, Any]], None]] = None
    on_message: Optional[Callable[[str], None]] = None


def resolve_backbone_init(cfg: ModelConfig, backbone_weights: Optional[str]) -> tuple[ModelConfig, Optional[Path], str]:
    """Where the backbone starts from: ``"default"`` or ``"imagenet"`` (the shipped MobileNetV2
    ImageNet file for mobilenet_v2; nothing for ResNets, whose ImageNet weights are not
    shipped), ``"person"`` (the SSDLite person detector's MobileNetV2, when in ``weights/``),
    ``"none"`` (from scratch), or a file. A file whose sha256 is a known start sets the input
    normalisation it was trained with (the SSDLite file's x*2/255-1), carried in the checkpoint.
    From scratch, BatchNorm trains and no stage is frozen: frozen random weights and
    ImageNet-free running statistics would make no sense."""
    named = {k.name: k for k in KNOWN_WEIGHTS}
    if backbone_weights in (None, "default"):
        backbone_weights = "imagenet" if cfg.backbone == "mobilenet_v2" else "none"
    if backbone_weights in named:
        if cfg.backbone != "mobilenet_v2":
            raise SSPNetError(f"--backbone-weights {backbone_weights} is a MobileNetV2 start; {cfg.backbone} has none shipped")
        path: Optional[Path] = SHIPPED_WEIGHTS / named[backbone_weights].file
        if not path.is_file():
            raise SSPNetError(f"{path} is not in weights/; pass the file's path to --backbone-weights")
    elif backbone_weights == "none":
        path = None
    else:
        path = Path(backbone_weights)
        if not path.is_file():
            raise SSPNetError(f"backbone weights not found: {path}")
    if path is None:
        cfg.backbone_norm, cfg.frozen_stages = "bn", 0
        return cfg, None, f"{cfg.backbone} from scratch (no ImageNet weights; BatchNorm trains, nothing frozen)"
    known = known_weights(path)
    if known is not None:
        cfg.pixel_mean, cfg.pixel_std = known.norm
        return cfg, path, f"{cfg.backbone} from {path.name} ({known.description})"
    return cfg, path, f"{cfg.backbone} from {path.name}"


class Trainer:
    """One training run. ``Trainer(...).run()`` trains, validates and checkpoints."""

    def __init__(
        self,
        data: str | Path,
        run_dir: str | Path,
        train_cfg: TrainConfig,
        model_cfg: ModelConfig,
        *,
        device: str = "auto",
        backbone_weights: Optional[str] = "default",
        anchors: str = "default",
        resume: Optional[str | Path] = None,
        init: Optional[str | Path] = None,
        exist_ok: bool = False,
        deterministic: bool = False,
        callbacks: Optional[Callbacks] = None,
    ) -> None:
        self.data = Path(data)
        self.run_dir = Path(run_dir)
        self.cfg = train_cfg
        self.model_cfg = model_cfg
        self.device_arg = device
        self.backbone_weights = backbone_weights
        self.anchors = anchors
        self.resume = Path(resume) if resume else None
        self.init = Path(init) if init else None
        self.exist_ok = exist_ok or self.resume is not None
        self.deterministic = deterministic
        self.cb = callbacks or Callbacks()

    # -- helpers ---------------------------------------------------------------------------
    def _say(self, text: str) -> None:
        if self.ctx.is_main and self.cb.on_message:
            self.cb.on_message(text)

    def _prepare_run_dir(self) -> None:
        if self.run_dir.exists() and not self.run_dir.is_dir():
            raise SSPNetError(f"{self.run_dir} exists and is not a folder")
        if self.run_dir.exists() and any(self.run_dir.iterdir()) and not self.exist_ok:
            raise SSPNetError(f"run folder {self.run_dir} already exists; pass --resume {self.run_dir / 'last.pt'} or --exist-ok")
        try:
            self.run_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise SSPNetError(f"cannot create run folder {self.run_dir}: {exc.strerror}") from None

    # -- set-up ----------------------------------------------------------------------------
    def _setup(self) -> None:
        self.ctx: DistContext = setup(self.device_arg)
        if self.deterministic:
            torch.use_deterministic_algorithms(True, warn_only=True)
        self.state: dict[str, Any] = {}
        if self.resume is not None:
            ckpt = read_checkpoint(self.resume)
            if "train_state" not in ckpt:
                raise SSPNetError(f"{self.resume}: holds no training state to resume (use --init to start from its weights)")
            self.model_cfg = ModelConfig.from_dict(ckpt["config"])
            self.state = ckpt["train_state"]
            saved_train = TrainConfig.from_dict(self.state["train_config"])
            # what a resumed run may change: how long it runs and how it loads data
            saved_train.max_steps, saved_train.epochs = self.cfg.max_steps, self.cfg.epochs
            saved_train.workers = self.cfg.workers
            saved_train.amp = self.cfg.amp  # and the arithmetic: mixed precision on or off
            if self.cfg.ema_decay is not None:  # --ema switches a weight average on (or re-sets it); without, the run's own
                saved_train.ema_decay = self.cfg.ema_decay
            self.cfg = saved_train
            self.backbone_note = ckpt.get("meta", {}).get("backbone_init", "resumed")
            backbone_path = None
        else:
            self.model_cfg, backbone_path, self.backbone_note = resolve_backbone_init(self.model_cfg, self.backbone_weights)
        if self.ctx.is_main:
            self._prepare_run_dir()
        self.ctx.barrier()

        self.train_set = open_dataset(self.data, split="train")
        if len(self.train_set) == 0:
            raise SSPNetError(f"{self.data}: the train split has no usable images")
        self.val_set = None
        if self.cfg.val_split:
            try:
                self.val_set = open_dataset(self.data, split=self.cfg.val_split)
            except SSPNetError as exc:
                self._say(f"no validation ({exc}); best.pt will follow the last epoch")
        for problem in self.train_set.problems[:5]:
            self._say(f"skipped in train data: {problem}")

        if self.anchors == "kmeans" and self.resume is None:
            boxes = np.concatenate([im.boxes for im in self.train_set.images if len(im.boxes)] or [np.zeros((0, 4))])
            scales, ratios = kmeans_anchors(boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1])
            self.model_cfg.anchors.scales, self.model_cfg.anchors.ratios = scales, ratios
            self._say(f"k-means anchors: scales {list(scales)} x stride, ratios h/w {list(ratios)}")

        torch.manual_seed(self.cfg.seed)
        model = build_from_config(self.model_cfg, str(backbone_path) if backbone_path else None)
        if self.init is not None:
            ckpt = read_checkpoint(self.init)
            load_state_strict(model, ckpt["state_dict"], self.init)
            self._say(f"initialised from {self.init}")
        if self.resume is not None:
            load_state_strict(model, read_checkpoint(self.resume)["state_dict"], self.resume)
        self.model = model.to(self.ctx.device)
        self.ema = WeightEMA(self.model, self.cfg.ema_decay) if self.cfg.ema_decay else None
        self.ddp_model: nn.Module = self.model
        if self.ctx.distributed:
            ids = [self.ctx.device.index] if self.ctx.device.type == "cuda" else None
            self.ddp_model = nn.parallel.DistributedDataParallel(self.model, device_ids=ids)

        train_images = self.train_set.images
        if self.cfg.frame_size is not None:
            train_images = [im.resized(*self.cfg.frame_size) for im in train_images]
        self.patches = training_patches(train_images, self.cfg.tile, self.cfg.overlap, skip_empty=self.cfg.skip_empty_patches)
        if not self.patches:
            raise SSPNetError(f"{self.data}: no training patch holds a person")
        augment: Any = self.cfg.augment
        if augment:
            augment = TrainAugment(shift_scale_rotate=ShiftScaleRotate(rotate_limit=self.cfg.rotate_limit))
        self.dataset = PatchDataset(train_images, self.patches, augment=augment, seed=self.cfg.seed, frame_size=self.cfg.frame_size)
        per_step = self.cfg.batch_size * self.ctx.world_size
        self.iters_per_epoch = max(len(self.patches) // per_step, 1)
        self.total_steps = self.iters_per_epoch * self.cfg.epochs
        if self.cfg.max_steps is not None:
            self.total_steps = min(self.total_steps, self.cfg.max_steps) if self.cfg.max_steps > 0 else self.total_steps

        params = [p for p in self.model.parameters() if p.requires_grad]
        self.base_lr = self.cfg.total_lr(self.ctx.world_size)
        self.optimizer = torch.optim.SGD(params, lr=self.base_lr, momentum=self.cfg.momentum, weight_decay=self.cfg.weight_decay)
        self.autocast_dtype = amp_dtype(self.ctx.device) if self.cfg.amp else None
        if self.cfg.amp and self.autocast_dtype is None:
            self._say("--amp needs CUDA or a CPU with bf16 units (AVX512-BF16 or AMX); training in fp32")
        elif self.autocast_dtype is torch.bfloat16:
            self._say("--amp: bf16 autocast on this CPU")
        # bf16 keeps fp32's exponent range: only fp16 needs its gradients scaled
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.autocast_dtype is torch.float16)
        self.step = 0
        self.best: Optional[float] = None
        if self.state:
            self.optimizer.load_state_dict(self.state["optimizer"])
            self.scaler.load_state_dict(self.state["scaler"])
            self.step = int(self.state["step"])
            self.best = self.state.get("best_metric")
            _set_rng_state(self.state["rng"], self.ctx.device)
            if self.ema is not None and "ema" in self.state:
                self.ema.load_state_dict(self.state["ema"])
            elif self.ema is not None:
                self._say(f"weight average (EMA, decay {self.cfg.ema_decay:g}) starts at step {self.step}")
            if self.ctx.is_main:
                self._drop_metrics_after(self.step)
        self._write_config()

    def _drop_metrics_after(self, step: int) -> None:
        """Forget the metrics logged after the checkpoint a run resumes from: that stretch is
        trained again, and its records would otherwise appear twice in the curves."""
        path = self.run_dir / "metrics.jsonl"
        if not path.exists():
            return
        lines = path.read_text(encoding="utf-8").splitlines()
        kept = [line for line in lines if line.strip() and json.loads(line).get("step", 0) <= step]
        if len(kept) != len(lines):
            with atomic_write(path) as f:
                f.write("".join(line + "\n" for line in kept))

    def _write_config(self) -> None:
        if not self.ctx.is_main:
            return
        resolved = {
            "data": str(self.data),
            "model": self.model_cfg.to_dict(),
            "train": self.cfg.to_dict(),
            "backbone_init": self.backbone_note,
            "init": str(self.init) if self.init is not None else None,
            "world_size": self.ctx.world_size,
            "device": str(self.ctx.device),
            "patches": len(self.patches),
            "iters_per_epoch": self.iters_per_epoch,
            "total_steps": self.total_steps,
            "base_lr": self.base_lr,
            "sspnet_version": __version__,
        }
        with atomic_write(self.run_dir / "config.json") as f:
            json.dump(resolved, f, indent=2, sort_keys=True)

    # -- data ------------------------------------------------------------------------------
    def _loader(self, epoch: int, skip_batches: int) -> torch.utils.data.DataLoader:
        g = torch.Generator().manual_seed(self.cfg.seed * 100_003 + epoch)
        order = torch.randperm(len(self.patches), generator=g).tolist()
        per_step = self.cfg.batch_size * self.ctx.world_size
        batches = []
        for b in range(skip_batches, self.iters_per_epoch):
            chunk = order[b * per_step : (b + 1) * per_step] or order[: self.cfg.batch_size]
            batches.append(chunk[self.ctx.rank :: self.ctx.world_size][: self.cfg.batch_size])
        self.dataset.set_epoch(epoch)
        if self.cfg.workers > 0:
            # Workers are forked: a child inheriting OpenCV's running thread pool deadlocks on
            # its first threaded call (a lock held by a thread that does not exist in the
            # child). With the pool off before the fork, workers decode single-threaded, which
            # suits several workers sharing the cores (torch's own threads: DataLoader sets 1).
            cv2.setNumThreads(0)
        return torch.utils.data.DataLoader(
            self.dataset,
            batch_sampler=batches,
            num_workers=self.cfg.workers,
            collate_fn=collate,
            # a private generator: creating the loader must not consume the global torch RNG,
            # or a resumed run would diverge from an uninterrupted one
            generator=torch.Generator().manual_seed(epoch),
            persistent_workers=False,
        )

    # -- the loop --------------------------------------------------------------------------
    def run(self) -> TrainResult:
        start = time.perf_counter()
        self._setup()
        try:
            return self._train(start)
        finally:
            self.ctx.close()

    def _train(self, start: float) -> TrainResult:
        if self.cb.on_start and self.ctx.is_main:
            self.cb.on_start(self.step, self.total_steps)
        self._say(
            f"training {self.model_cfg.backbone}-{self.model_cfg.neck} on {len(self.patches)} patches "
            f"({self.iters_per_epoch} steps/epoch, {self.total_steps} steps, batch {self.cfg.batch_size} x {self.ctx.world_size}, lr {self.base_lr:g}); "
            f"backbone: {self.backbone_note}"
        )
        self.ddp_model.train()
        last_val: dict[str, Any] = {}
        log_sums: dict[str, float] = {}
        log_count, log_patches, log_t0 = 0, 0, time.perf_counter()
        rng_at_step = _rng_state(self.ctx.device)
        interrupted = False
        estimated = False
        try:
            while self.step < self.total_steps:
                epoch, in_epoch = divmod(self.step, self.iters_per_epoch)
                for images, targets in self._loader(epoch, in_epoch):
                    rng_at_step = _rng_state(self.ctx.device)
                    step_t0 = time.perf_counter()
                    losses = self._one_step(images, targets)
                    if not estimated:
                        estimated = True
                        self._say_estimate(time.perf_counter() - step_t0)
                    for k, v in losses.items():
                        log_sums[k] = log_sums.get(k, 0.0) + v
                    log_count += 1
                    log_patches += len(images) * self.ctx.world_size
                    self.step += 1
                    if self.cb.on_step and self.ctx.is_main:
                        self.cb.on_step(self.step)
                    if self.step % self.cfg.log_every == 0 or self.step == self.total_steps:
                        self._log(epoch, log_sums, log_count, log_patches, time.perf_counter() - log_t0)
                        log_sums, log_count, log_patches, log_t0 = {}, 0, 0, time.perf_counter()
                    if self.step >= self.total_steps or self.step % self.iters_per_epoch == 0:
                        break
                epoch_done = self.step % self.iters_per_epoch == 0 or self.step >= self.total_steps
                if epoch_done:
                    last_val = self._validate_and_save(epoch)
        except KeyboardInterrupt:
            interrupted = True
            if self.ctx.is_main:
                self._save_last(rng_at_step)
                self._say(f"interrupted at step {self.step}; resume with --resume {self.run_dir / 'last.pt'}")
        return TrainResult(self.run_dir, self.step, time.perf_counter() - start, self.best, last_val, interrupted)

    def _say_estimate(self, first_step_s: float) -> None:
        """After the first step: how long the rest will take here, and on a CPU with a heavy
        model, that the lite preset exists."""
        remaining = self.total_steps - self.step - 1  # called before the step counter moves
        hours = first_step_s * remaining / 3600
        text = f"first step {first_step_s:.1f} s: the {remaining} steps left take about {_duration(hours)} on this {self.ctx.device.type.upper()}"
        heavy = self.model_cfg.backbone != "mobilenet_v2" or self.model_cfg.neck_channels > 128
        if self.ctx.device.type == "cpu" and heavy:
            text += " (without a GPU, --model lite trains SSPNet-Lite about 10x faster)"
        self._say(text)

    def _one_step(self, images: list[torch.Tensor], targets: list[dict[str, torch.Tensor]]) -> dict[str, float]:
        factor = lr_factor(self.step, self.iters_per_epoch, self.cfg.warmup_iters, self.cfg.warmup_ratio, self.cfg.resolved_lr_steps())
        for group in self.optimizer.param_groups:
            group["lr"] = self.base_lr * factor
        images = [im.to(self.ctx.device, non_blocking=True) for im in images]
        targets = [{k: v.to(self.ctx.device) for k, v in t.items()} for t in targets]
        autocast = (
            torch.autocast(self.ctx.device.type, dtype=self.autocast_dtype) if self.autocast_dtype else contextlib.nullcontext()
        )
        with autocast:
            losses = self.ddp_model(images, targets)
        total = sum(losses.values())
        if not torch.isfinite(total):
            raise SSPNetError(
                f"loss became {float(total)} at step {self.step} ({', '.join(f'{k}={float(v):.3g}' for k, v in losses.items())}); "
                "lower --lr or check the data"
            )
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(total).backward()
        self.scaler.step(self.optimizer)
        self.scaler.update()
        if self.ema is not None:
            self.ema.update(self.model)
        out = {k: float(v.detach()) for k, v in losses.items()}
        out["loss"] = float(total.detach())
        return out

    def _log(self, epoch: int, sums: dict[str, float], count: int, patches: int, seconds: float) -> None:
        means = all_reduce_mean({k: v / max(count, 1) for k, v in sums.items()}, self.ctx)
        if not self.ctx.is_main:
            return
        lr = self.optimizer.param_groups[0]["lr"]
        info = LogInfo(self.step, self.total_steps, epoch, lr, means, patches / seconds if seconds > 0 else 0.0)
        self._append_metrics({"step": self.step, "epoch": epoch, "lr": lr, "patches_per_s": round(info.patches_per_s, 3), **{k: round(v, 6) for k, v in means.items()}})
        if self.cb.on_log:
            self.cb.on_log(info)

    def _append_metrics(self, record: dict[str, Any]) -> None:
        with open(self.run_dir / "metrics.jsonl", "a", encoding="utf-8") as f:
            f.write(json.dumps(record, sort_keys=True) + "\n")

    # -- validation and checkpoints ------------------------------------------------------------
    def _validate_and_save(self, epoch: int) -> dict[str, Any]:
        metrics: dict[str, Any] = {}
        recall: list[dict[str, float]] = []
        kept = self.ema.model if self.ema is not None else self.model  # the weights best.pt keeps
        if self.ctx.is_main:
            if self.val_set is not None and len(self.val_set):
                from sspnet_cli.evaluation.run import evaluate_model  # local: only validation needs the engine

                self.model.eval()
                raw: dict[str, Any] = {}
                if self.ema is not None:
                    # the raw weights too, so that the log shows what the average gives
                    raw = evaluate_model(self.model, self.val_set, self.ctx.device, frame_size=self.cfg.frame_size).result.metrics
                report = evaluate_model(kept, self.val_set, self.ctx.device, frame_size=self.cfg.frame_size)
                metrics, recall = report.result.metrics, report.recall_by_size
                self.model.train()
                self._append_metrics({"step": self.step, "epoch": epoch, "val": metrics, **({"val_raw": raw} if raw else {})})
                if self.cb.on_val:
                    self.cb.on_val(epoch, metrics)
            value = metrics.get(BEST_KEY)
            score = -math.inf if value is None else float(value)
            improved = self.best is None or score > self.best
            if improved:
                self.best = score
            self._save_last(_rng_state(self.ctx.device), metrics)
            if improved:
                # the recall by person size: what `detect --coverage` turns into a probability of detection
                meta = dict(self._meta(metrics), recall_by_size=recall, recall_by_size_split=self.cfg.val_split) if recall else self._meta(metrics)
                if self.ema is not None:
                    meta["weights"] = f"EMA (decay {self.ema.decay:g}) after {self.ema.updates} steps"
                save_checkpoint(self.run_dir / "best.pt", kept, meta=meta)
        self.ctx.barrier()
        return metrics

    def _meta(self, metrics: Optional[dict[str, Any]] = None) -> dict[str, Any]:
        return {
            "data": str(self.data),
            "step": self.step,
            "epochs_done": round(self.step / self.iters_per_epoch, 3),
            "val_split": self.cfg.val_split,
            "val": metrics or {},
            "backbone_init": self.backbone_note,
            "init": str(self.init) if self.init is not None else None,
            "train_config": self.cfg.to_dict(),
            "world_size": self.ctx.world_size,
            "device": str(self.ctx.device),
            "sspnet_version": __version__,
        }

    def _save_last(self, rng: dict[str, Any], metrics: Optional[dict[str, Any]] = None) -> None:
        train_state = {
            "optimizer": self.optimizer.state_dict(),
            "scaler": self.scaler.state_dict(),
            "step": self.step,
            "best_metric": self.best,
            "rng": rng,
            "train_config": self.cfg.to_dict(),
        }
        if self.ema is not None:
            train_state["ema"] = self.ema.state_dict()
        save_checkpoint(self.run_dir / "last.pt", self.model, meta=self._meta(metrics), train_state=train_state)


def _duration(hours: float) -> str:
    if hours < 1:
        return f"{max(1, round(hours * 60))} min"
    if hours < 48:
        return f"{hours:.1f} h"
    return f"{hours / 24:.1f} days"


def _rng_state(device: torch.device) -> dict[str, Any]:
    state: dict[str, Any] = {"torch": torch.get_rng_state()}
    if device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(device)
    return state


def _set_rng_state(state: dict[str, Any], device: torch.device) -> None:
    torch.set_rng_state(state["torch"])
    if device.type == "cuda" and "cuda" in state:
        torch.cuda.set_rng_state(state["cuda"], device)
