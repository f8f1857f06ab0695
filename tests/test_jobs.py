"""Detection jobs: the pixel-balanced split, part files, resume, and torchrun with 2 processes."""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cli_helpers import run_cli, small_checkpoint
from sspnet_cli.inference import jobs
from sspnet_cli.inference.engine import Detector, RunStats
from sspnet_cli.imagery.inputs import expand_inputs

REPO = Path(__file__).resolve().parents[1]


def frames_folder(folder: Path, tall: bool = True) -> Path:
    """Mixed-size frames; with ``tall`` one image tall enough to be split into bands."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    sizes = [(640, 640), (300, 200), (1300, 700)] + ([(640, 3900)] if tall else [])  # 3900: 9 tile rows, split
    for k, (w, h) in enumerate(sizes):
        img = rng.integers(60, 200, (h, w, 3), dtype=np.uint8)
        cv2.imwrite(str(folder / f"frame_{k}.png"), img)
    return folder


@settings(max_examples=80, deadline=None)
@given(st.lists(st.tuples(st.integers(1, 9000), st.integers(1, 9000)), min_size=1, max_size=25), st.integers(1, 6))
def test_split_balances_pixels_within_one_unit_of_the_mean(sizes, world):
    infos = [jobs.InputInfo(f"f{i}", w, h, 1, 1) for i, (w, h) in enumerate(sizes)]
    units = jobs.plan_units(infos, (640, 512), 30)
    shares = jobs.assign(units, world)
    assert sorted(k for s in shares for k in s) == list(range(len(units)))  # every unit exactly once
    loads = [sum(units[k].pixels for k in s) for s in shares]
    mean = sum(loads) / world
    biggest = max(u.pixels for u in units)
    assert all(abs(load - mean) <= biggest for load in loads)
    assert shares == jobs.assign(units, world)  # deterministic


def test_tall_images_are_split_into_bands_covering_every_row():
    info = jobs.InputInfo("tall", 700, 4600, 1, 1)
    units = jobs.plan_units([info], (640, 512), 30)
    assert len(units) == 3 and all(u.rows is not None for u in units)
    covered = [r for u in units for r in range(*u.rows)]
    assert covered == list(range(10))  # 10 tile rows, each in exactly one band
    assert len(jobs.plan_units([jobs.InputInfo("t", 640, 3900, 1, 1)], (640, 512), 30)) == 3  # 9 rows
    assert len(jobs.plan_units([jobs.InputInfo("s", 640, 3800, 1, 1)], (640, 512), 30)) == 1  # 8 rows: whole


def run_detect(*args) -> int:
    return run_cli("detect", *args, "--device", "cpu", "--score-thr", "0.1")


def test_resume_after_a_stop_gives_the_uninterrupted_output(tmp_path):
    weights = small_checkpoint(tmp_path)
    folder = frames_folder(tmp_path / "in", tall=False)
    full = tmp_path / "full.geojson"
    assert run_detect(folder, "--weights", weights, "--out", full) == 0
    # a run that stopped after the first unit: its part folder, as the job leaves it
    out = tmp_path / "resumed.geojson"
    detector = Detector(weights, device="cpu", score_thr=0.1)
    parts = jobs.parts_dir_for(out)
    jobs.check_or_write_manifest(parts, jobs.manifest_for(detector), resume=False)
    paths = expand_inputs([str(folder)]).paths
    infos = [jobs.probe(p) for p in paths]
    units = jobs.plan_units(infos, (640, 512), 30)
    writer = jobs.PartWriter(parts, 0)
    jobs.run_share(detector, infos, units, [0], writer, set(), RunStats())
    writer.close()
    assert run_detect(folder, "--weights", weights, "--out", out) == 2  # refused without --resume
    assert run_detect(folder, "--weights", weights, "--out", out, "--resume") == 0
    assert out.read_bytes() == full.read_bytes()
    assert not parts.exists()  # removed after success


def test_resume_with_other_weights_or_options_is_refused(tmp_path, capsys):
    weights = small_checkpoint(tmp_path)
    other = small_checkpoint(tmp_path, neck="fpn")
    folder = frames_folder(tmp_path / "in", tall=False)
    out = tmp_path / "o.csv"
    assert run_detect(folder, "--weights", weights, "--out", out, "--keep-parts") == 0
    assert jobs.parts_dir_for(out).exists()
    assert run_detect(folder, "--weights", other, "--out", out, "--resume") == 2
    assert "weights_sha256" in capsys.readouterr().err
    assert run_cli("detect", folder, "--weights", weights, "--out", out, "--resume", "--device", "cpu", "--overlap", "40") == 2
    err = capsys.readouterr().err
    assert "overlap" in err and err.count("\n") == 1


def torchrun(nproc: int, args: list, cwd: Path, **kw) -> subprocess.Popen:
    env = dict(os.environ, PYTHONPATH=str(REPO), OMP_NUM_THREADS="1")
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", str(nproc), "--master-port", str(29600 + nproc),
           "-m", "sspnet_cli", "detect", *[str(a) for a in args]]
    return subprocess.Popen(cmd, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kw)


def features(path: Path) -> list:
    return json.loads(path.read_text())["features"]


def test_two_processes_give_the_one_process_output(tmp_path):
    weights = small_checkpoint(tmp_path)
    folder = frames_folder(tmp_path / "in", tall=True)
    args = [folder, "--weights", weights, "--device", "cpu", "--score-thr", "0.5"]
    # the reference runs single-threaded too (torchrun with one process is a plain run), so both
    # sides do the same float arithmetic
    one = tmp_path / "one.geojson"
    proc = torchrun(1, [*args, "--out", one], tmp_path)
    _, err = proc.communicate(timeout=900)
    assert proc.returncode == 0, err[-2000:]
    two = tmp_path / "two.geojson"
    proc = torchrun(2, [*args, "--out", two], tmp_path)
    _, err = proc.communicate(timeout=900)
    assert proc.returncode == 0, err[-2000:]
    a, b = features(one), features(two)
    assert len(a) == len(b) > 0
    for fa, fb in zip(a, b):
        assert fa["properties"]["image"] == fb["properties"]["image"]
        assert fa["properties"]["pixel_bbox"] == pytest.approx(fb["properties"]["pixel_bbox"], abs=0.02)
        assert fa["properties"]["score"] == pytest.approx(fb["properties"]["score"], abs=2e-4)
    assert not jobs.parts_dir_for(two).exists()
    assert "all" in err and "megapixels/s" in err


def test_a_process_that_dies_stops_the_job_without_output(tmp_path):
    weights = small_checkpoint(tmp_path)
    folder = frames_folder(tmp_path / "in", tall=True)
    for k in range(8):
        (folder / f"copy_{k}.png").write_bytes((folder / "frame_2.png").read_bytes())
    out = tmp_path / "out.geojson"
    proc = torchrun(2, [folder, "--weights", weights, "--out", out, "--device", "cpu"], tmp_path, start_new_session=True)
    time.sleep(12)
    children = subprocess.run(["pgrep", "-P", str(proc.pid)], capture_output=True, text=True).stdout.split()
    assert children, "torchrun started no workers"
    os.kill(int(children[-1]), signal.SIGKILL)
    _, err = proc.communicate(timeout=300)
    assert proc.returncode != 0
    assert not out.exists()
    assert "error: stopped: another process of this torchrun job failed" in err  # the survivor's one line
