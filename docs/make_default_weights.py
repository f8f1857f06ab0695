"""Turn a training run's best checkpoint into the shipped default model, ``weights/sspnet_default.pt``.

    python docs/make_default_weights.py runs/lite3/best.pt --data ../shared/data/tinyperson-rf

What it does, each step checked:
1. evaluates the checkpoint on the valid split at ``--test-scales`` (and ``--test-flip``; recorded in the file as the
   model's own: ``detect``/``eval --scales model``, their default) (the split that picked it) and records the recall
   by person size there (``detect --coverage`` reads it from the shipped file);
2. writes the weights as fp16 with no optimiser state (``save_checkpoint(half=True)``), with the
   run's metadata plus ``recall_by_size``, ``valid_metrics`` and ``source_sha256``;
3. reloads the fp16 file and compares its detections on ``samples/`` with the fp32
   checkpoint's: at most 5 % of the detections scoring >= 0.4 without an fp16 box within 0.5 px.
   Features differ by ~0.3 % (fp16 rounding of the weights), but proposal top-k and soft-NMS
   are discrete: a near-duplicate's decayed score can change a lot when two boxes swap order,
   so the score difference is reported, and the metrics decide (next step);
4. evaluates the fp16 file on the same split (AP50/AP25/MR50-tiny within 0.2 points);
5. prints the file's size and sha256 for the model card.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sspnet_cli.model.backbones import sha256_of  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkpoint", type=Path, help="the run's best.pt")
    parser.add_argument("--data", type=Path, required=True, help="the dataset the run trained on")
    parser.add_argument("--split", default="valid", help="split for the recall-by-size table [valid]")
    parser.add_argument("--out", type=Path, default=ROOT / "weights" / "sspnet_default.pt")
    parser.add_argument("--command", default="", help="the training command, recorded in the metadata")
    parser.add_argument("--wall-s", type=float, default=None, help="the run's wall time in seconds")
    parser.add_argument("--test-scales", default="1", help="the test scales chosen on the valid split, e.g. 1,1.5 [1]")
    parser.add_argument("--test-flip", action="store_true", help="the mirrored test was chosen on the valid split [off]")
    args = parser.parse_args()

    import torch

    from sspnet_cli import api
    from sspnet_cli.inference.engine import Detector
    from sspnet_cli.model.checkpoint import load_model, save_checkpoint

    scales = [float(s) for s in args.test_scales.split(",") if s.strip()]
    report = api.evaluate(args.checkpoint, args.data, split=args.split, device="cpu", scales=tuple(scales), flip=args.test_flip)
    model, meta = load_model(args.checkpoint)
    meta = {k: v for k, v in meta.items() if k not in ("val",)}
    meta.update(
        recall_by_size=report.recall_by_size,
        recall_by_size_split=args.split,
        valid_metrics={k: v for k, v in report.result.metrics.items() if v is not None},
        source_sha256=sha256_of(args.checkpoint),
        test_scales=scales,
        test_flip=args.test_flip,
    )
    if args.command:
        meta["training_command"] = args.command
    if args.wall_s is not None:
        meta["training_wall_s"] = args.wall_s
    save_checkpoint(args.out, model, meta=meta, half=True)

    samples = sorted((ROOT / "samples").glob("*.jpg"))
    full = Detector(args.checkpoint, device="cpu", scales=tuple(scales), flip=args.test_flip)
    shipped = Detector(args.out, device="cpu")
    # detections right at the 0.3 threshold or an NMS tie may come and go: compare the confident ones
    worst_box = worst_score = 0.0
    count = unmatched = 0
    for a, b in zip(full.run(samples), shipped.run(samples)):
        da, db = a.detections, b.detections  # type: ignore[union-attr]
        keep = da.scores >= 0.4
        count += int(keep.sum())
        if not keep.any():
            continue
        if len(db) == 0:
            unmatched += int(keep.sum())
            continue
        diff = (da.boxes[keep][:, None, :] - db.boxes[None, :, :]).abs().amax(dim=2)
        close = diff <= 0.5
        # soft-NMS leaves near-duplicates: the closest score among the fp16 boxes that close
        score = torch.where(close, (da.scores[keep][:, None] - db.scores[None, :]).abs(), torch.inf).amin(dim=1)
        matched = close.any(dim=1)
        unmatched += int((~matched).sum())
        if matched.any():
            worst_box = max(worst_box, float(diff[matched].amin(dim=1).max()))
            worst_score = max(worst_score, float(score[matched].max()))
    if unmatched > max(1, count // 20):
        print(f"fp16 weights drift: {unmatched} of {count} confident detections unmatched", file=sys.stderr)
        return 1
    again = api.evaluate(args.out, args.data, split=args.split, device="cpu").result.metrics  # the model's own scales
    drift = {k: abs((again.get(k) or 0.0) - (report.result.metrics.get(k) or 0.0)) for k in ("AP50_tiny", "AP25_tiny", "MR50_tiny")}
    if max(drift.values()) > 0.2:
        print(f"fp16 weights change the {args.split} metrics: {drift}", file=sys.stderr)
        return 1
    print(json.dumps({
        "fp16_metric_drift": drift,
        "out": str(args.out), "bytes": args.out.stat().st_size, "sha256": sha256_of(args.out),
        "confident_sample_detections": count, "unmatched_in_fp16": unmatched, "fp16_max_box_diff_px": worst_box, "fp16_max_score_diff": worst_score,
        "recall_by_size": report.recall_by_size, "torch": torch.__version__,
    }, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
