"""A new user's first mistakes, through the CLI: usage errors in click's own form, impossible
values refused before any work, no part folder left behind by a refused or empty run, help that
shows every default, logs that show progress in files, honest GeoJSON, small things."""
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from cli_helpers import one_tile_frame, run_cli, small_checkpoint
from sspnet_cli.inference import jobs

REPO = Path(__file__).resolve().parents[1]
SAMPLE = REPO / "samples" / "bb_V0004_I0001320.jpg"


def sspnet(*args, cwd=REPO):
    """The real command in a child process (stderr is then a pipe, not a terminal)."""
    return subprocess.run([sys.executable, "-m", "sspnet_cli", *map(str, args)], capture_output=True, text=True, cwd=cwd, timeout=600)


@pytest.fixture
def weights(tmp_path):
    return small_checkpoint(tmp_path)


@pytest.fixture
def tile(tmp_path):
    return one_tile_frame(tmp_path)


def test_usage_errors_look_like_click_and_exit_2():
    typo = sspnet("detect", "x.jpg", "--scroe-thr", "0.3", "--out", "a.csv")
    assert typo.returncode == 2 and "Usage: sspnet detect" in typo.stderr
    assert "Error: No such option: --scroe-thr" in typo.stderr and "--score-thr" in typo.stderr
    assert "NoSuchOption" not in typo.stderr
    missing = sspnet("detect", "x.jpg")
    assert missing.returncode == 2 and "Missing option '--out'" in missing.stderr and "MissingParameter" not in missing.stderr
    word = sspnet("detect", "x.jpg", "--out", "a.csv", "--overlap", "abc")
    assert word.returncode == 2 and "Invalid value for '--overlap'" in word.stderr


@pytest.mark.parametrize("args,option", [
    (["detect", "x.jpg", "--out", "a.csv", "--score-thr", "2"], "--score-thr"),
    (["detect", "x.jpg", "--out", "a.csv", "--score-thr", "30"], "--score-thr"),
    (["detect", "x.jpg", "--out", "a.csv", "--score-thr", "-0.5"], "--score-thr"),
    (["detect", "x.jpg", "--out", "a.csv", "--nms-iou", "7"], "--nms-iou"),
    (["detect", "x.jpg", "--out", "a.csv", "--report", "r", "--report-max", "0"], "--report-max"),
    (["train", "data", "--out", "run", "--max-steps", "0"], "--max-steps"),
    (["train", "data", "--out", "run", "--lr", "0"], "--lr"),
    (["eval", "--overlap", "-1"], "--overlap"),
])
def test_impossible_values_are_refused_before_any_work(tmp_path, args, option):
    done = sspnet(*args, cwd=tmp_path)
    line = [ln for ln in done.stderr.splitlines() if ln.startswith("Error:")]
    assert done.returncode == 2 and len(line) == 1, done.stderr
    assert option in line[0] and "out of range" in line[0]
    value = args[args.index(option) + 1]
    assert str(float(value)).rstrip("0").rstrip(".") in line[0] or value in line[0]  # names the value
    assert not any(tmp_path.iterdir())  # nothing was created


def test_a_refused_or_empty_run_leaves_no_part_folder(tmp_path, weights, tile):
    out = tmp_path / "o.geojson"
    parts = jobs.parts_dir_for(out)
    # refused: an overlap as large as the tile, with --resume (which writes parts)
    assert run_cli("detect", SAMPLE, "--weights", weights, "--out", out, "--overlap", "700", "--resume", "--device", "cpu") == 2
    assert not parts.exists()
    # every input fails: a truncated JPEG alone
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(SAMPLE.read_bytes()[:3000])
    assert run_cli("detect", broken, "--weights", weights, "--out", out, "--resume", "--device", "cpu") == 2
    assert not parts.exists() and not out.exists()
    # the corrected command then runs, with or without --resume
    assert run_cli("detect", tile, "--weights", weights, "--out", out, "--device", "cpu") == 0
    assert out.exists() and not parts.exists()


def test_leftover_parts_with_finished_work_say_how_to_go_on(tmp_path, weights, tile, capsys):
    out = tmp_path / "o.csv"
    assert run_cli("detect", tile, "--weights", weights, "--out", out, "--device", "cpu", "--keep-parts") == 0
    out.unlink()
    assert run_cli("detect", tile, "--weights", weights, "--out", out, "--device", "cpu") == 2
    err = capsys.readouterr().err
    assert "--resume" in err and "--restart" in err
    assert run_cli("detect", tile, "--weights", weights, "--out", out, "--device", "cpu", "--restart") == 0
    assert out.exists() and not jobs.parts_dir_for(out).exists()


def test_ctrl_c_says_what_was_kept_and_how_to_resume(tmp_path, weights, monkeypatch, capsys):
    from sspnet_cli import api

    out = tmp_path / "o.csv"

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(api, "detect", interrupted)
    assert run_cli("detect", SAMPLE, "--weights", weights, "--out", out) == 130
    assert "nothing was kept" in capsys.readouterr().err
    parts = jobs.parts_dir_for(out)
    parts.mkdir()
    (parts / "rank-0.jsonl").write_text(json.dumps({"uid": "0", "path": "x", "parts": []}) + "\n")
    assert run_cli("detect", SAMPLE, "--weights", weights, "--out", out) == 130
    err = capsys.readouterr().err
    assert "1 finished work unit(s) kept" in err and "--resume" in err


def test_help_shows_every_default_and_flags_read_as_flags():
    detect = " ".join(sspnet("detect", "--help").stdout.split())  # as one line: wrapping aside
    assert "[default: the trained model shipped in weights/]" in detect  # hand-written, kept
    assert "[default: 0.3]" in detect and "[default: 640x512]" in detect
    assert "<bool>" not in detect and re.search(r"--half\s", detect)
    train = " ".join(sspnet("train", "--help").stdout.split())
    weights_help = train[train.index("--backbone-weights"):train.index("--neck ")]
    assert "[default: default]" not in weights_help and "person for --model lite" in weights_help
    assert "<bool>" not in train and "[default: paper]" in train


def test_logs_in_files_show_progress_lines(tmp_path, weights, tile):
    frames = tmp_path / "frames"
    frames.mkdir()
    for i in range(2):
        (frames / f"f{i}.jpg").write_bytes(tile.read_bytes())
    done = sspnet("detect", frames, "--weights", weights, "--out", tmp_path / "o.csv", "--device", "cpu")
    assert done.returncode == 0, done.stderr
    assert re.search(r"images 2/2, tiles 2/2, [0-9.]+ tiles/s", done.stderr), done.stderr  # 640x512: one tile each


def test_small_things(tmp_path, weights, tile, capsys):
    # a missing output folder is created, and said
    out = tmp_path / "new" / "deeper" / "o.geojson"
    assert run_cli("detect", tile, "--weights", weights, "--out", out, "--device", "cpu") == 0
    assert "created the folder" in capsys.readouterr().err
    # the output records the weights' sha256, not only their name
    from sspnet_cli.model.backbones import sha256_of

    run = json.loads(out.read_text())["sspnet:run"]
    assert run["weights_sha256"] == sha256_of(weights)
    # a report cut by --report-max says so in the terminal and in the page's title
    rep = tmp_path / "rep"
    assert run_cli("detect", tile, "--weights", weights, "--out", tmp_path / "o.csv", "--device", "cpu",
                   "--score-thr", "0.05", "--report", rep, "--report-max", "5") == 0
    err = capsys.readouterr().err
    assert "left out by --report-max 5" in err
    title = re.search(r"<title>(.*?)</title>", (rep / "index.html").read_text()).group(1)
    assert re.fullmatch(r"sspnet review: 5 of [0-9,]+ detections", title), title
    # typer: the floor is the first release that runs with click 8.2+
    floor = re.search(r'"typer>=([0-9.]+)"', (REPO / "pyproject.toml").read_text()).group(1)
    assert tuple(int(v) for v in floor.split(".")) >= (0, 16)
