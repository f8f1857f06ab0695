"""The tiled detection engine with a deterministic stand-in model: tiles, batches, merge,
padding, nodata, georeferencing, failures and order."""
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import rasterio
from rasterio.transform import from_origin

from fakes import GridModel, RedBlobModel, scene_with_blobs
from sspnet_cli.errors import InputError, SSPNetError
from sspnet_cli.inference.engine import Detector, Failure, RunStats


def write_jpeg(path: Path, rgb: np.ndarray) -> Path:
    ok, buf = cv2.imencode(path.suffix, cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 100])
    assert ok
    path.write_bytes(buf.tobytes())
    return path


def blob_detector(**options) -> tuple[Detector, RedBlobModel]:
    model = RedBlobModel()
    return Detector.from_model(model, device="cpu", **options), model


def test_every_blob_found_once_across_tiles_including_border_cuts():
    # 1920x1080: windows at x 0, 610, 1220, 1280 and y 0, 482, 568; blobs across borders
    blobs = [(100, 100, 112, 118), (632, 300, 648, 318), (1225, 470, 1240, 490), (1900, 1060, 1915, 1075), (600, 505, 615, 520)]
    rgb = scene_with_blobs(1920, 1080, blobs)
    detector, model = blob_detector(score_thr=0.5)
    result = detector.detect(rgb)
    found = sorted(tuple(round(v) for v in b) for b in result.detections.boxes.tolist())
    assert found == sorted(blobs)
    assert sum(model.batches) == 12  # every tile ran exactly once
    assert set(model.batches) == {1}  # CPU default: one tile per forward


def test_batches_span_rows_and_frames():
    rgb = scene_with_blobs(700, 300, [(10, 10, 20, 20)])
    detector, model = blob_detector(batch_size=3)
    results = list(detector.run([rgb, rgb, rgb]))  # 2 tiles each
    assert [len(r.detections) for r in results] == [1, 1, 1]
    assert model.batches == [3, 3]


def test_small_frames_are_padded_not_stretched():
    rgb = scene_with_blobs(300, 200, [(280, 180, 300, 200), (10, 20, 30, 40)])
    detector, _ = blob_detector()
    result = detector.detect(rgb)
    assert (result.width, result.height) == (300, 200)
    assert sorted(result.detections.boxes.tolist()) == [[10, 20, 30, 40], [280, 180, 300, 200]]


def test_nodata_areas_give_no_detections_and_empty_tiles_are_skipped(tmp_path):
    # 1300 x 600 uint8 raster, nodata value 0: the right part (x >= 700) is all nodata
    data = np.full((3, 600, 1300), 120, dtype=np.uint8)
    data[:, :, 700:] = 0
    path = tmp_path / "ortho.tif"
    with rasterio.open(path, "w", driver="GTiff", width=1300, height=600, count=3, dtype="uint8", nodata=0) as ds:
        ds.write(data)
    model = GridModel()
    detector = Detector.from_model(model, device="cpu")
    result = detector.detect(path)
    centres_x = (result.detections.boxes[:, 0] + result.detections.boxes[:, 2]) / 2
    assert len(result.detections) > 0 and float(centres_x.max()) < 700
    # windows at x 0, 610, 660 and y 0, 88: the ones starting at 660 hold valid pixels too,
    # so nothing is skipped here; a NaN float raster that is nodata on a whole tile is skipped:
    assert model.tiles == 6
    nan = np.full((3, 512, 1300), np.nan, dtype=np.float32)
    nan[:, :, :640] = 100.0
    path2 = tmp_path / "nan.tif"
    with rasterio.open(path2, "w", driver="GTiff", width=1300, height=512, count=3, dtype="float32") as ds:
        ds.write(nan)
    model2 = GridModel()
    result2 = Detector.from_model(model2, device="cpu").detect(path2)
    assert model2.tiles == 2  # x = 0 and 610; the tile at 660 is all NaN and never runs
    assert float(result2.detections.boxes[:, 2].max()) <= 640


def test_georeferenced_raster_keeps_its_georef(tmp_path):
    rgb = scene_with_blobs(640, 512, [(300, 200, 310, 215)])
    path = tmp_path / "utm.tif"
    with rasterio.open(path, "w", driver="GTiff", width=640, height=512, count=3, dtype="uint8",
                       crs="EPSG:32633", transform=from_origin(500000, 4600000, 0.1, 0.1)) as ds:
        ds.write(np.moveaxis(rgb, 2, 0))
    detector, _ = blob_detector()
    result = detector.detect(path)
    assert result.georef is not None and "UTM zone 33N" in result.georef.crs_wkt
    assert result.detections.boxes.tolist() == [[300, 200, 310, 215]]


def test_bad_inputs_fail_alone_and_order_is_kept(tmp_path):
    good = write_jpeg(tmp_path / "good one.jpg", scene_with_blobs(400, 300, [(50, 50, 60, 60)]))
    text = tmp_path / "notes.jpg"
    text.write_text("not an image")
    empty = tmp_path / "empty.png"
    empty.write_bytes(b"")
    second = write_jpeg(tmp_path / "ünïcode.jpg", scene_with_blobs(400, 300, [(70, 70, 80, 80), (200, 100, 210, 110)]))
    detector, _ = blob_detector()
    stats = RunStats()
    results = list(detector.run([good, text, empty, tmp_path / "missing.jpg", second], stats=stats))
    kinds = [type(r).__name__ for r in results]
    assert kinds == ["ImageResult", "Failure", "Failure", "Failure", "ImageResult"]
    assert [len(results[0].detections), len(results[4].detections)] == [1, 2]
    assert all("\n" not in r.problem for r in results if isinstance(r, Failure))
    assert (stats.images, stats.failed, stats.detections) == (2, 3, 3)
    with pytest.raises(InputError):
        detector.detect(text)


def test_option_errors_are_one_line():
    with pytest.raises(SSPNetError, match="needs a CUDA device"):
        blob_detector(half=True)
    with pytest.raises(SSPNetError, match="at least 1"):
        blob_detector(batch_size=0)


def test_missing_default_weights_give_a_clear_error(monkeypatch, tmp_path):
    from sspnet_cli.inference import weights

    monkeypatch.setattr(weights, "REPO_WEIGHTS", tmp_path)
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SSPNetError, match="default model weights/sspnet_default.pt is missing"):
        Detector(None, device="cpu")


def test_large_buffers_go_back_to_the_system_on_glibc():
    import platform

    from sspnet_cli.inference import heap

    if not sys.platform.startswith("linux") or platform.libc_ver()[0] != "glibc":
        pytest.skip("glibc only")
    assert heap.return_large_buffers() and heap.return_large_buffers()  # set once, idempotent


def _write_raster(path: Path, rgb: np.ndarray, **layout) -> Path:
    h, w = rgb.shape[:2]
    with rasterio.open(path, "w", driver="GTiff", width=w, height=h, count=3, dtype="uint8", **layout) as ds:
        ds.write(rgb.transpose(2, 0, 1))
    return path


def test_wide_rows_are_read_in_pieces_with_the_same_detections(tmp_path, monkeypatch):
    import sspnet_cli.inference.engine as engine
    from sspnet_cli.imagery.sources import ImageSource

    # 9000 px wide: windows every 610 px; blobs on piece seams, tile seams and the right edge
    blobs = [(50, 40, 62, 58), (3690, 300, 3705, 318), (4280, 470, 4296, 500), (6700, 100, 6712, 120), (8985, 580, 8999, 598)]
    rgb = scene_with_blobs(9000, 600, blobs)
    tiled = _write_raster(tmp_path / "tiled.tif", rgb, tiled=True, blockxsize=256, blockysize=256)
    widths: list[int] = []
    real_read = ImageSource.read
    monkeypatch.setattr(ImageSource, "read", lambda self, window: widths.append(window.width) or real_read(self, window))

    def found(path: Path) -> list[tuple[int, ...]]:
        widths.clear()
        model = RedBlobModel()
        result = Detector.from_model(model, device="cpu", score_thr=0.5).detect(path)
        assert sum(model.batches) == 30  # 15 windows a row, 2 rows, each run once
        return sorted(tuple(round(v) for v in b) for b in result.detections.boxes.tolist())

    assert found(tiled) == sorted(blobs)
    assert len(widths) == 6 and max(widths) <= engine.READ_PIECE_PX  # three pieces a row
    monkeypatch.setattr(engine, "READ_PIECE_PX", 10**6)
    assert found(tiled) == sorted(blobs) and widths == [9000, 9000]  # whole rows: the same boxes
    monkeypatch.setattr(engine, "READ_PIECE_PX", 4096)
    striped = _write_raster(tmp_path / "striped.tif", rgb)  # GDAL decodes whole stripes: rows at once
    assert found(striped) == sorted(blobs) and widths == [9000, 9000]


def test_row_pieces_hold_whole_tiles_within_the_limit():
    from sspnet_cli.imagery.tiling import window_grid
    from sspnet_cli.inference.engine import READ_PIECE_PX, row_pieces

    windows = window_grid(20000, 512)
    pieces = row_pieces(list(range(len(windows))), windows, 640)
    assert [i for p in pieces for i in p] == list(range(len(windows)))
    assert all(windows[p[-1]].x + 640 - windows[p[0]].x <= READ_PIECE_PX for p in pieces)
    assert len(pieces) == 6
    assert row_pieces([0], window_grid(300, 200), 640) == [[0]]  # narrower than a tile: one piece
    assert len(row_pieces(list(range(len(windows))), windows, 640, read_width=20000)) == 1
