"""A detection job over many inputs: split across processes, streamed to part files, resumable.

``sspnet detect`` always runs as a job, in one process or under torchrun in many:

1. every input's size is read from its header (rank 0, broadcast);
2. the work is cut into units — an image, or for a large one, bands of ``BAND_ROWS`` tile rows —
   and dealt to the processes, balanced by pixels (largest unit first to the least-loaded
   process, deterministic);
3. each process runs its units through the engine and appends each unit's per-tile detections
   (those at or above the output threshold) to its own part file ``FILE.parts/rank-R.jsonl``,
   flushed unit by unit;
4. rank 0 gathers all part files and merges every image with the same cross-tile merge a single
   process uses, in input order, and writes the output once, atomically; the part folder is
   removed unless ``keep_parts``.

``FILE.parts/manifest.json`` records what makes results differ (the weights' sha256 and the
options that change detections). With ``resume``, units already in the part files are skipped —
a unit counts as done when its input's path, size and modification time match — and a manifest
that differs is refused with one line saying what differs. Ctrl-C leaves the parts in place.
"""
from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator, Optional, Union

import numpy as np
import torch

from sspnet_cli.atomic import atomic_write
from sspnet_cli.errors import InputError, SSPNetError
from sspnet_cli.imagery.imagesize import read_image_size
from sspnet_cli.inference.engine import Detector, Failure, RunStats, UnitResult, WorkUnit, merge_pieces, unit_rows
from sspnet_cli.imagery.tiling import window_grid
from sspnet_cli.types import Detections, GeoRef, ImageResult

BAND_ROWS = 4  # tile rows per band when an image is split
SPLIT_ABOVE_ROWS = 8  # images with more tile rows than this are split into bands
MANIFEST = "manifest.json"
FORMAT = "sspnet-detect-parts"


@dataclass(frozen=True)
class InputInfo:
    """What identifies an input for resuming, and its size in pixels (0 x 0 when unreadable)."""

    path: str
    width: int
    height: int
    bytes: int
    mtime_ns: int


@dataclass(frozen=True)
class PlannedUnit:
    uid: str  # "7" for a whole image, "7:b2" for its third band
    input_index: int
    rows: Optional[tuple[int, int]]
    pixels: int


def probe(path: Union[str, Path]) -> InputInfo:
    """Size from the file header (no decoding), plus size on disk and modification time."""
    p = Path(path)
    try:
        st = p.stat()
    except OSError:
        return InputInfo(str(path), 0, 0, -1, -1)
    try:
        width, height = read_image_size(p)
    except InputError:
        width = height = 0  # unreadable: the unit fails when it runs, with its own message
    return InputInfo(str(path), int(width), int(height), int(st.st_size), int(st.st_mtime_ns))


def plan_units(infos: list[InputInfo], tile: tuple[int, int], overlap: int) -> list[PlannedUnit]:
    """Units in job order: whole images, or bands of ``BAND_ROWS`` tile rows for images with more
    than ``SPLIT_ABOVE_ROWS`` rows."""
    units = []
    for i, info in enumerate(infos):
        if info.width <= 0 or info.height <= 0:
            units.append(PlannedUnit(str(i), i, None, 0))
            continue
        rows = len(unit_rows(window_grid(info.width, info.height, tile, overlap)))
        if rows <= SPLIT_ABOVE_ROWS:
            units.append(PlannedUnit(str(i), i, None, info.width * info.height))
            continue
        for b, start in enumerate(range(0, rows, BAND_ROWS)):
            stop = min(start + BAND_ROWS, rows)
            units.append(PlannedUnit(f"{i}:b{b}", i, (start, stop), info.width * tile[1] * (stop - start)))
    return units


def planned_tiles(infos: list[InputInfo], units: list[PlannedUnit], tile: tuple[int, int], overlap: int) -> int:
    """How many tiles ``units`` cover (readable inputs only), for an ETA by tiles."""
    total = 0
    for u in units:
        info = infos[u.input_index]
        if info.width <= 0 or info.height <= 0:
            continue
        windows = window_grid(info.width, info.height, tile, overlap)
        if u.rows is None:
            total += len(windows)
        else:
            mine = set(unit_rows(windows)[u.rows[0] : u.rows[1]])
            total += sum(1 for w in windows if w.y in mine)
    return total


def assign(units: list[PlannedUnit], world_size: int) -> list[list[int]]:
    """Unit indices per process, balanced by pixels: largest unit first to the least-loaded
    process (ties: lower rank, earlier unit); each process's list in job order."""
    loads = [0] * world_size
    shares: list[list[int]] = [[] for _ in range(world_size)]
    for k in sorted(range(len(units)), key=lambda k: (-units[k].pixels, k)):
        r = min(range(world_size), key=lambda r: (loads[r], r))
        loads[r] += units[k].pixels
        shares[r].append(k)
    return [sorted(s) for s in shares]


# -- part files ---------------------------------------------------------------------------------

def parts_dir_for(out: Union[str, Path]) -> Path:
    out = Path(out)
    return out.with_name(out.name + ".parts")


def manifest_for(detector: Detector) -> dict[str, Any]:
    """What a part file's results depend on."""
    from sspnet_cli.model.backbones import sha256_of

    opts = detector.options
    return {
        "format": FORMAT,
        "weights_sha256": sha256_of(detector.weights) if detector.weights else "in-memory model",
        "tile": list(opts.tile),
        "overlap": opts.overlap,
        "score_thr": opts.score_thr,
        "scales": list(opts.scales),
        "bands": list(opts.bands) if opts.bands else None,
        "half": opts.half,
        "heatmaps": opts.heatmaps,
        "nms_iou": opts.nms_iou,  # for merging the parts later (sspnet report); may change on resume
        **({"flip": True} if opts.flip else {}),  # absent when off: part folders from before it still resume
        **({"precision": opts.precision} if opts.precision != "fp32" else {}),  # likewise
    }


#: manifest entries a resumed run may change (they act only when the parts are merged and
#: placed on the ground); resuming records the new values
MERGE_ONLY = ("nms_iou", "camera_model", "ground_elevation", "dem", "max_off_nadir")
#: what an entry left out of a manifest means (it is written only when it is not this)
ABSENT_MEANS = {"flip": False, "precision": "fp32"}


def check_or_write_manifest(parts: Path, manifest: dict[str, Any], resume: bool) -> None:
    """Create the part folder and its manifest, or (resuming) check that they match."""
    path = parts / MANIFEST
    if path.exists():
        if not resume:
            raise SSPNetError(f"{parts} holds parts of an unfinished run: pass --resume to continue it, or --restart to discard it")
        try:
            old = json.loads(path.read_text())
        except (OSError, ValueError):
            raise SSPNetError(f"{path}: unreadable; delete {parts} to start over") from None
        then, now = {**ABSENT_MEANS, **old}, {**ABSENT_MEANS, **manifest}
        differs = [k for k in sorted(set(then) | set(now)) if k not in MERGE_ONLY and then.get(k) != now.get(k)]
        if differs:
            what = ", ".join(f"{k} ({then.get(k)!r} then, {now.get(k)!r} now)" for k in differs)
            raise SSPNetError(f"cannot resume: the earlier run differs in {what}; use the same weights and options, or pass --restart to discard {parts}")
        if any(old.get(k) != manifest.get(k) for k in MERGE_ONLY):
            _write_manifest(path, manifest)
        return
    try:
        parts.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise SSPNetError(f"cannot write {parts}: {exc.strerror}") from None
    _write_manifest(path, manifest)


def _write_manifest(path: Path, manifest: dict[str, Any]) -> None:
    try:
        with atomic_write(path) as f:
            f.write(json.dumps(manifest, indent=2, sort_keys=True))
    except OSError as exc:
        raise SSPNetError(f"cannot write {path.parent}: {exc.strerror}") from None


def _record(unit: PlannedUnit, info: InputInfo, result: Union[UnitResult, Failure], score_thr: float) -> dict[str, Any]:
    base = {"uid": unit.uid, "path": info.path, "bytes": info.bytes, "mtime_ns": info.mtime_ns}
    if isinstance(result, Failure):
        return {**base, "failed": result.problem}
    parts = []
    for det, cut, win in result.parts:
        keep = det.scores >= score_thr
        if bool(keep.any()):
            parts.append([win, det.boxes[keep].tolist(), det.scores[keep].tolist(), det.labels[keep].tolist(), cut[keep].tolist()])
    georef = None if result.georef is None else {"crs_wkt": result.georef.crs_wkt, "transform": list(result.georef.transform)}
    return {
        **base, "name": result.name, "width": result.width, "height": result.height, "tiles": result.tiles,
        "georef": georef, "camera": result.camera, "warnings": result.warnings, "parts": parts,
        **({"original_size": list(result.original_size)} if result.original_size else {}),
    }


class PartWriter:
    """Appends one JSON line per finished unit to this process's part file, flushed and synced."""

    def __init__(self, parts: Path, rank: int) -> None:
        self.path = parts / f"rank-{rank}.jsonl"
        self._f = open(self.path, "a", encoding="utf-8")

    def write(self, record: dict[str, Any], attention: Optional[dict[str, np.ndarray]] = None) -> None:
        if attention:
            name = f"attention-{record['uid'].replace(':', '_')}.npz"
            tmp = self.path.parent / (name + ".tmp")
            with open(tmp, "wb") as f:
                np.savez_compressed(f, **{k: v.astype(np.float16) for k, v in attention.items()})
            os.replace(tmp, self.path.parent / name)
            record = {**record, "attention": name}
        self._f.write(json.dumps(record, sort_keys=True) + "\n")
        self._f.flush()
        os.fsync(self._f.fileno())

    def close(self) -> None:
        self._f.close()


def read_records(parts: Path) -> dict[str, dict[str, Any]]:
    """Every complete record in the part folder, by unit id (a line cut short by a crash is ignored)."""
    records: dict[str, dict[str, Any]] = {}
    for path in sorted(parts.glob("rank-*.jsonl")):
        with open(path, encoding="utf-8") as f:
            for line in f:
                try:
                    rec = json.loads(line)
                except ValueError:
                    continue
                records[rec["uid"]] = rec
    return records


def finished_records(parts: Path) -> dict[str, dict[str, Any]]:
    """The records of units that produced results (failed units are not finished work)."""
    return {uid: rec for uid, rec in read_records(parts).items() if not rec.get("failed")}


def is_current(record: dict[str, Any], info: InputInfo) -> bool:
    """A record is reused on resume only if its input is unchanged (path, size, modification time)."""
    return record.get("path") == info.path and record.get("bytes") == info.bytes and record.get("mtime_ns") == info.mtime_ns


def unit_from_record(rec: dict[str, Any], tile: tuple[int, int], overlap: int) -> UnitResult:
    """Rebuild a unit's per-tile detections from its record."""
    parts = []
    for win, boxes, scores, labels, cut in rec["parts"]:
        det = Detections(
            torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4),
            torch.tensor(scores, dtype=torch.float32),
            torch.tensor(labels, dtype=torch.int64),
        )
        parts.append((det, torch.tensor(cut, dtype=torch.bool), int(win)))
    georef = None
    if rec.get("georef"):
        georef = GeoRef(rec["georef"]["crs_wkt"], tuple(rec["georef"]["transform"]))  # type: ignore[arg-type]
    return UnitResult(
        unit=WorkUnit(-1, rec["path"]), name=rec["name"], width=rec["width"], height=rec["height"],
        windows=window_grid(rec["width"], rec["height"], tile, overlap), parts=parts, georef=georef,
        camera=rec.get("camera"), warnings=list(rec.get("warnings") or []), tiles=int(rec.get("tiles", 0)),
        original_size=tuple(rec["original_size"]) if rec.get("original_size") else None,  # type: ignore[arg-type]
    )


def load_attention(parts: Path, rec: dict[str, Any]) -> Optional[dict[str, np.ndarray]]:
    if not rec.get("attention"):
        return None
    with np.load(parts / rec["attention"]) as data:
        return {k: data[k].astype(np.float32) for k in data.files}


# -- running and gathering ----------------------------------------------------------------------

def work_unit(index: int, infos: list[InputInfo], unit: PlannedUnit) -> WorkUnit:
    """The engine's work unit for planned ``unit`` (its input's path and tile rows)."""
    return WorkUnit(index, infos[unit.input_index].path, unit.rows)


def run_share(
    detector: Detector,
    infos: list[InputInfo],
    units: list[PlannedUnit],
    share: list[int],
    writer: PartWriter,
    done: set[str],
    stats: RunStats,
    on_tiles: Optional[Callable[[int], None]] = None,
    on_unit: Optional[Callable[[], None]] = None,
    on_frame: Optional[Callable[[str, int], None]] = None,
) -> None:
    """Run this process's units (those not already ``done``) and append their records."""
    todo = [units[k] for k in share if units[k].uid not in done]
    work = (work_unit(k, infos, u) for k, u in enumerate(todo))
    for unit, result in zip(todo, detector.run_units(work, on_tiles=on_tiles, on_frame=on_frame, stats=stats)):
        attention = None if isinstance(result, Failure) else result.attention
        writer.write(_record(unit, infos[unit.input_index], result, detector.options.score_thr), attention)
        if on_unit is not None:
            on_unit()


def gather(
    detector: Detector, infos: list[InputInfo], units: list[PlannedUnit], parts: Path
) -> Iterator[Union[ImageResult, Failure]]:
    """Merged results in input order from the part files (rank 0, after every process finished)."""
    records = read_records(parts)
    by_input: dict[int, list[PlannedUnit]] = {}
    for u in units:
        by_input.setdefault(u.input_index, []).append(u)
    opts = detector.options
    for i, info in enumerate(infos):
        recs = [records.get(u.uid) for u in by_input.get(i, [])]
        if any(r is None or not is_current(r, info) for r in recs):
            raise SSPNetError(f"the part files lack results for {info.path}; a process stopped early (rerun with --resume)")
        failed = next((r["failed"] for r in recs if r and r.get("failed")), None)  # type: ignore[union-attr]
        if failed:
            yield Failure(info.path, failed)
            continue
        pieces = []
        for rec in recs:
            piece = unit_from_record(rec, opts.tile, opts.overlap)  # type: ignore[arg-type]
            piece.attention = load_attention(parts, rec)  # type: ignore[arg-type]
            pieces.append(piece)
        yield detector.merge(pieces)


@dataclass
class PartialResults:
    """What a part folder holds: the images whose every unit is done, merged, in input order."""

    results: list[ImageResult]
    failures: list[Failure]
    unfinished: int  # images with some units done and others not
    meta: dict[str, Any]


def partial_results(parts: Path) -> PartialResults:
    """Merge what ``parts`` (the ``OUT.parts/`` of a running, interrupted or ``--keep-parts`` run)
    holds, without the model: images whose units are all recorded are merged with the run's
    own options, as :func:`gather` would; the others are counted in ``unfinished``. ``meta``
    holds the run's options and its camera settings (``camera_model``, ``ground_elevation``,
    ``dem``), which a report applies to place the photos as the run's output would."""
    path = parts / MANIFEST
    try:
        manifest = json.loads(path.read_text())
        tile = (int(manifest["tile"][0]), int(manifest["tile"][1]))
        overlap, score_thr = int(manifest["overlap"]), float(manifest["score_thr"])
        nms_iou = float(manifest.get("nms_iou", 0.5))
    except (OSError, ValueError, KeyError, TypeError, IndexError):
        raise SSPNetError(f"{parts}: not the part folder of an sspnet detect run (no readable {MANIFEST})") from None
    by_input: dict[int, list[dict[str, Any]]] = {}
    for uid, rec in read_records(parts).items():
        by_input.setdefault(int(uid.split(":")[0]), []).append(rec)
    options = {k: manifest.get(k) for k in ("tile", "overlap", "score_thr", "scales", "bands", "half", "heatmaps", "nms_iou")}
    camera = {k: manifest.get(k) for k in ("camera_model", "ground_elevation", "dem", "max_off_nadir") if k in manifest}
    out = PartialResults([], [], 0, {"options": options, "camera": camera})
    for index in sorted(by_input):
        recs = sorted(by_input[index], key=lambda r: r["uid"])
        failed = next((r["failed"] for r in recs if r.get("failed")), None)
        if failed:
            out.failures.append(Failure(recs[0]["path"], failed))
            continue
        first = recs[0]
        if ":" in first["uid"]:
            rows = len(unit_rows(window_grid(first["width"], first["height"], tile, overlap)))
            if len(recs) < -(-rows // BAND_ROWS):
                out.unfinished += 1
                continue
        pieces = []
        for rec in recs:
            piece = unit_from_record(rec, tile, overlap)
            piece.attention = load_attention(parts, rec)
            pieces.append(piece)
        out.results.append(merge_pieces(pieces, nms_iou, score_thr))
    return out


def remove_parts(parts: Path) -> None:
    shutil.rmtree(parts, ignore_errors=True)
