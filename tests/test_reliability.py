"""What field users feed the tool: every bad input gets one line, the run goes on, exit codes are
honest, nothing half-written is left behind. Plus invariants that hold for any input."""
import errno
import json
import signal
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
import rasterio
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cli_helpers import one_tile_frame, run_cli, signal_when, small_checkpoint
from fakes import GridModel
from sspnet_cli.errors import InputError, SSPNetError
from sspnet_cli.inference.engine import Detector
from sspnet_cli.inference.merge import merge_frame, tile_to_frame
from sspnet_cli.imagery.sources import open_source
from sspnet_cli.imagery.tiling import window_grid
from sspnet_cli.types import Window

REPO = Path(__file__).resolve().parents[1]
SAMPLE = REPO / "samples" / "bb_V0004_I0001320.jpg"


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    return small_checkpoint(tmp_path_factory.mktemp("w"))


def write_png(path, array):
    ok, buf = cv2.imencode(".png", array)
    assert ok
    path.write_bytes(buf.tobytes())
    return path


def write_tif(path, data, **kw):
    count = 1 if data.ndim == 2 else data.shape[0]
    with rasterio.open(path, "w", driver="GTiff", width=data.shape[-1], height=data.shape[-2], count=count, dtype=data.dtype, **kw) as ds:
        ds.write(data if data.ndim == 3 else data[None])
    return path


def make_inputs(folder: Path) -> dict[str, Path]:
    """One file per case of the issue, good and bad."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    cases = {
        "zero_byte": folder / "zero.jpg",
        "text_as_jpg": folder / "text.jpg",
        "truncated_jpeg": folder / "truncated.jpg",
    }
    cases["zero_byte"].write_bytes(b"")
    cases["text_as_jpg"].write_text("hello, I am not a picture")
    cases["truncated_jpeg"].write_bytes(SAMPLE.read_bytes()[:20_000])
    cases["one_pixel"] = write_png(folder / "one.png", np.full((1, 1, 3), 100, np.uint8))
    cases["smaller_than_tile"] = write_png(folder / "small.png", rng.integers(0, 255, (100, 150, 3), dtype=np.uint8))
    cases["grayscale"] = write_png(folder / "grey.png", rng.integers(0, 255, (300, 400), dtype=np.uint8))
    cases["rgba"] = write_png(folder / "rgba.png", rng.integers(0, 255, (300, 400, 4), dtype=np.uint8))
    cases["uint16_single_band"] = write_tif(folder / "u16.tif", rng.integers(0, 4000, (300, 400), dtype=np.uint16))
    nan = rng.random((3, 300, 400), dtype=np.float32)
    nan[:, 100:200, :] = np.nan
    cases["float_nan_nodata"] = write_tif(folder / "nan.tif", nan, nodata=float("nan"))
    cases["non_ascii_spaces"] = one_tile_frame(folder).rename(folder / "Überflug Nr 2 ñ.jpg")
    return cases


BAD = {"zero_byte", "text_as_jpg", "truncated_jpeg"}


def test_every_case_from_the_cli_in_one_folder(tmp_path, weights, capsys):
    cases = make_inputs(tmp_path / "mixed flight")
    out = tmp_path / "out.json"
    code = run_cli("detect", tmp_path / "mixed flight", tmp_path / "missing.jpg", "--weights", weights, "--out", out, "--device", "cpu")
    assert code == 1  # some inputs failed, the rest were written
    err = capsys.readouterr().err
    assert "Traceback" not in err
    for name in ("zero.jpg", "text.jpg", "truncated.jpg", "missing.jpg"):
        lines = [line for line in err.splitlines() if name in line and ("failed" in line or "skipped" in line)]
        assert lines, f"no one-line report for {name}"
    written = {Path(im["file_name"]).name: im for im in json.loads(out.read_text())["images"]}
    for key, path in cases.items():
        assert (path.name in written) == (key not in BAD), key
    assert written["one.png"]["width"] == 1 and written["grey.png"]["height"] == 300


def test_case_by_case_through_the_api(tmp_path):
    cases = make_inputs(tmp_path / "in")
    detector = Detector.from_model(GridModel(), device="cpu")
    for key, path in cases.items():
        if key in BAD:
            with pytest.raises(InputError) as exc:
                detector.detect(path)
            assert "\n" not in str(exc.value) and path.name in str(exc.value)
        else:
            result = detector.detect(path)
            assert result.width > 0 and result.height > 0
    nan_result = detector.detect(cases["float_nan_nodata"])
    centres_y = (nan_result.detections.boxes[:, 1] + nan_result.detections.boxes[:, 3]) / 2
    assert not bool(((centres_y >= 100) & (centres_y < 200)).any())  # nothing in the NaN band


def test_bad_checkpoints_exit_2_with_one_line(tmp_path, capsys):
    rnd = tmp_path / "random.pt"
    rnd.write_bytes(np.random.default_rng(1).bytes(10_000))
    other = tmp_path / "resnet.pt"
    torch.save({"conv1.weight": torch.zeros(2)}, other)
    for bad in (rnd, other, tmp_path / "absent.pt"):
        assert run_cli("detect", SAMPLE, "--weights", bad, "--out", tmp_path / "o.csv") == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith("error:") and "Traceback" not in err[0]
    assert not (tmp_path / "o.csv").exists()


def test_bad_annotations_exit_2_or_are_skipped_with_where(tmp_path, capsys):
    (tmp_path / "gt.json").write_text('{"images": [}')
    assert run_cli("eval", "--gt", tmp_path / "gt.json", "--detections", tmp_path / "gt.json") == 2
    assert "gt.json" in capsys.readouterr().err
    gt = {"images": [{"id": 1, "file_name": "a.jpg", "width": 100, "height": 100}],
          "annotations": [{"id": 1, "image_id": 1, "bbox": [10, 10, 0, 5], "category_id": 1},
                          {"id": 2, "image_id": 99, "bbox": [10, 10, 5, 5], "category_id": 1},
                          {"id": 3, "image_id": 1, "bbox": [20, 20, 5, 5], "category_id": 1}],
          "categories": [{"id": 1, "name": "person"}]}
    (tmp_path / "gt2.json").write_text(json.dumps(gt))
    (tmp_path / "dets.json").write_text(json.dumps([{"image_id": 1, "bbox": [20, 20, 5, 5], "score": 0.9}]))
    assert run_cli("eval", "--gt", tmp_path / "gt2.json", "--detections", tmp_path / "dets.json") == 0
    err = capsys.readouterr().err
    assert "warning" in err and "99" in err  # the unknown image id is reported with where it is


def test_unwritable_output_is_refused_before_any_work(tmp_path, weights, capsys):
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    t = time.perf_counter()
    assert run_cli("detect", SAMPLE, "--weights", weights, "--out", blocker / "sub" / "out.geojson") == 2
    assert time.perf_counter() - t < 5  # refused up front, before the model runs
    assert "error:" in capsys.readouterr().err


def test_full_disk_leaves_no_partial_file(tmp_path, weights, monkeypatch, capsys):
    import sspnet_cli.outputs.geojson as geojson

    out = tmp_path / "out.geojson"
    out.write_text("previous results")

    real_dumps = geojson._dumps

    def failing_dumps(obj):
        real_dumps(obj)  # the document is built, then the disk fills while writing it
        raise OSError(errno.ENOSPC, "No space left on device", str(out))

    monkeypatch.setattr(geojson, "_dumps", failing_dumps)
    assert run_cli("detect", one_tile_frame(tmp_path), "--weights", weights, "--out", out, "--device", "cpu") == 2
    err = capsys.readouterr().err
    assert "No space left on device" in err and "Traceback" not in err
    assert out.read_text() == "previous results"  # the old output is untouched
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".out.geojson")] == []  # no temp file left


def test_ctrl_c_stops_cleanly_and_writes_nothing(tmp_path, weights):
    frames = tmp_path / "frames"
    frames.mkdir()
    for i in range(30):
        (frames / f"f{i:02d}.jpg").write_bytes(SAMPLE.read_bytes())
    out = tmp_path / "out.geojson"
    code, err = signal_when([sys.executable, "-m", "sspnet_cli", "detect", str(frames), "--weights", str(weights), "--out", str(out), "--device", "cpu"],
                            tmp_path, signal.SIGINT, lambda line: "tiles" in line)  # once the first progress line says tiles are done
    assert code == 130, err[-1000:]
    assert "interrupted" in err and "Traceback" not in err
    assert not out.exists() and not any(p.name.endswith(".tmp") for p in tmp_path.iterdir())


# -- properties that hold for any input ----------------------------------------------------------

@settings(max_examples=60, deadline=None)
@given(st.integers(1, 3000), st.integers(1, 3000), st.integers(32, 700), st.integers(32, 600), st.integers(0, 31))
def test_tiling_covers_every_pixel(width, height, tw, th, overlap):
    covered_x = np.zeros(width, bool)
    covered_y = np.zeros(height, bool)
    for w in window_grid(width, height, (tw, th), overlap):
        assert (w.width, w.height) == (tw, th) and w.x >= 0 and w.y >= 0
        assert w.x + tw <= max(width, tw) and w.y + th <= max(height, th)
        covered_x[w.x : w.x + tw] = True
        covered_y[w.y : w.y + th] = True
    assert covered_x.all() and covered_y.all()


boxes_strategy = st.lists(
    st.tuples(st.floats(-50, 700), st.floats(-50, 560), st.floats(0.5, 80), st.floats(0.5, 80), st.floats(0.05, 1)),
    min_size=0, max_size=40,
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(boxes_strategy, boxes_strategy, st.floats(0.1, 0.9))
def test_merged_boxes_lie_inside_the_frame_and_never_overlap_above_the_threshold(a, b, iou):
    frame = (1000, 700)
    windows = window_grid(*frame)
    parts = []
    for k, raw in enumerate((a, b)):
        det = {
            "boxes": torch.tensor([[x, y, x + w, y + h] for x, y, w, h, _ in raw], dtype=torch.float32).reshape(-1, 4),
            "scores": torch.tensor([s for *_, s in raw], dtype=torch.float32),
            "labels": torch.ones(len(raw), dtype=torch.long),
        }
        d, cut = tile_to_frame(det, windows[k], frame)
        parts.append((d, cut, k))
    merged = merge_frame(parts, windows, iou)
    bx = merged.boxes
    assert bool((bx[:, 0] >= 0).all() and (bx[:, 1] >= 0).all() and (bx[:, 2] <= frame[0]).all() and (bx[:, 3] <= frame[1]).all())
    if len(bx) > 1:
        from torchvision.ops import box_iou

        m = box_iou(bx, bx)
        m.fill_diagonal_(0)
        assert float(m.max()) <= iou + 1e-6
    assert torch.equal(merged.scores, merged.scores.sort(descending=True).values)


@settings(max_examples=40, deadline=None)
@given(st.lists(st.tuples(st.floats(0, 500), st.floats(0, 500), st.floats(0.01, 100), st.floats(0.01, 100)), max_size=20))
def test_box_formats_round_trip_through_the_coco_writer_and_reader(tmp_path_factory, raw):
    from sspnet_cli.evaluation.run import detection_records
    from sspnet_cli.evaluation import load_detections
    from sspnet_cli.outputs import write_results
    from sspnet_cli.types import Detections, ImageResult

    folder = tmp_path_factory.mktemp("rt")
    xyxy = torch.tensor([[x, y, x + w, y + h] for x, y, w, h in raw], dtype=torch.float32).reshape(-1, 4)
    det = Detections(xyxy, torch.full((len(raw),), 0.5), torch.ones(len(raw), dtype=torch.long))
    result = ImageResult("a.jpg", 640, 640, det)
    path = folder / "d.json"
    write_results(path, [result], {})
    gt = {"images": [{"id": 7, "file_name": "a.jpg", "width": 640, "height": 640}], "annotations": [], "categories": [{"id": 1, "name": "person"}]}
    loaded = load_detections(path, gt)
    back = torch.tensor([[x, y, x + w, y + h] for x, y, w, h in (d["bbox"] for d in loaded.detections)]).reshape(-1, 4)
    assert torch.allclose(back, xyxy, atol=0.011)  # the writer rounds to 0.01 px
    recs = detection_records([result], {"a.jpg": 7})
    assert all(r["image_id"] == 7 for r in recs)
    assert torch.allclose(torch.tensor([[r["bbox"][0], r["bbox"][1], r["bbox"][0] + r["bbox"][2], r["bbox"][1] + r["bbox"][3]] for r in recs]).reshape(-1, 4), xyxy, atol=1e-4)


def test_bounded_fuzz_of_the_image_readers(tmp_path):
    """Truncated and random bytes: a reader either reads a frame or raises InputError, nothing else."""
    rng = np.random.default_rng(1234)
    seeds = [SAMPLE.read_bytes(), write_png(tmp_path / "s.png", rng.integers(0, 255, (64, 80, 3), dtype=np.uint8)).read_bytes(),
             write_tif(tmp_path / "s.tif", rng.integers(0, 255, (3, 64, 80), dtype=np.uint8)).read_bytes()]
    outcomes = {"read": 0, "refused": 0}
    for i in range(150):
        data = bytearray(seeds[i % 3])
        kind = i % 3
        if kind == 0:
            data = data[: int(rng.integers(0, len(data)))]  # truncated
        elif kind == 1:
            for _ in range(int(rng.integers(1, 30))):  # bytes flipped
                data[int(rng.integers(0, len(data)))] = int(rng.integers(0, 256))
        else:
            data = bytearray(rng.bytes(int(rng.integers(0, 4000))))  # random
        path = tmp_path / f"fuzz{i}{('.jpg', '.png', '.tif')[i % 3]}"
        path.write_bytes(bytes(data))
        try:
            with open_source(path) as src:
                rgb, _ = src.read(Window(0, 0, min(src.width, 64), min(src.height, 64)))
                assert rgb.dtype == np.uint8
            outcomes["read"] += 1
        except InputError as exc:
            assert "\n" not in str(exc)
            outcomes["refused"] += 1
        except SSPNetError:
            outcomes["refused"] += 1
    assert outcomes["refused"] > 50 and sum(outcomes.values()) == 150
