"""Reading detect outputs (.json, .geojson, .csv) back into ImageResults for reports."""
from __future__ import annotations

import json

import numpy as np
import pytest
import rasterio
import torch
from rasterio.transform import Affine

from sspnet_cli.errors import InputError
from sspnet_cli.geo.positions import positions_of
from sspnet_cli.imagery.sources import open_source
from sspnet_cli.outputs import write_results
from sspnet_cli.outputs.results_io import read_results
from sspnet_cli.types import Detections, ImageResult

NAME = "vol 2/DJI 0005, é — ü.JPG"
META = {"weights": "best.pt", "options": {"tile": "640x512", "bands": [3, 2, 1]}}


def dets(boxes, scores, labels=None) -> Detections:
    n = len(scores)
    return Detections(
        torch.tensor(boxes, dtype=torch.float32).reshape(n, 4),
        torch.tensor(scores, dtype=torch.float32),
        torch.tensor(labels or [1] * n, dtype=torch.int64),
    )


@pytest.fixture
def geotiff(tmp_path):
    path = tmp_path / "ortho.tif"
    with rasterio.open(path, "w", driver="GTiff", width=200, height=100, count=3, dtype="uint8",
                       crs="EPSG:32633", transform=Affine(0.5, 0, 500000, 0, -0.5, 5000000)) as ds:
        ds.write(np.full((3, 100, 200), 90, np.uint8))
    return path


def plain_results() -> list[ImageResult]:
    return [
        ImageResult(NAME, 1058, 997, dets([[10, 20, 30.5, 40.25], [100.13, 0, 112, 15]], [0.9123, 0.5], [1, 2])),
        ImageResult("empty.jpg", 640, 512, Detections.empty()),
        ImageResult("b.png", 64, 48, dets([[1, 2, 3, 4]], [0.31])),
    ]


def test_coco_json_round_trip_keeps_everything_it_has(tmp_path):
    path = tmp_path / "r.json"
    write_results(path, plain_results(), META)
    got = read_results(path)
    assert got.warnings == [] and got.meta == META
    assert [(r.image, r.width, r.height, len(r.detections)) for r in got.results] == [
        (NAME, 1058, 997, 2), ("empty.jpg", 640, 512, 0), ("b.png", 64, 48, 1),
    ]
    first = got.results[0].detections
    assert np.allclose(first.boxes.numpy(), [[10, 20, 30.5, 40.25], [100.13, 0, 112, 15]], atol=0.011)
    assert np.allclose(first.scores.numpy(), [0.9123, 0.5]) and first.labels.tolist() == [1, 2]
    assert positions_of(got.results[0]).source == "pixel"


@pytest.mark.parametrize("suffix", [".geojson", ".csv"])
def test_geojson_and_csv_list_images_with_detections_only(tmp_path, suffix):
    path = tmp_path / f"r{suffix}"
    write_results(path, plain_results(), META)
    got = read_results(path)
    assert got.warnings == []
    assert got.meta == (META if suffix == ".geojson" else {})
    assert [(r.image, r.width, r.height, len(r.detections)) for r in got.results] == [(NAME, 0, 0, 2), ("b.png", 0, 0, 1)]
    assert got.results[0].detections.labels.tolist() == [1, 2]
    assert np.allclose(got.results[1].detections.boxes.numpy(), [[1, 2, 3, 4]])


@pytest.mark.parametrize("suffix", [".geojson", ".csv"])
def test_map_positions_come_back_through_positions_of(tmp_path, geotiff, suffix):
    with open_source(geotiff) as src:
        original = ImageResult("ortho.tif", src.width, src.height, dets([[10, 20, 30, 40], [150, 50, 160, 70]], [0.8, 0.6]), src.georef)
    path = tmp_path / f"r{suffix}"
    write_results(path, [original, plain_results()[2]], META)
    got = read_results(path)
    want = positions_of(original)
    pos = positions_of(got.results[0])
    assert pos.source == "raster"
    assert np.allclose(pos.centres, want.centres, atol=1e-7)
    if suffix == ".geojson":
        assert np.allclose(pos.rings, want.rings, atol=1e-7)
    assert positions_of(got.results[1]).source == "pixel"  # the plain image of a "mixed" file


def test_bad_records_are_left_out_with_warnings(tmp_path):
    path = tmp_path / "r.json"
    data = {
        "images": [{"id": 1, "file_name": "a.jpg", "width": 10, "height": 10}, {"file_name": "no-id.jpg"}],
        "annotations": [
            {"image_id": 1, "bbox": [1, 1, 2, 2], "score": 0.7},
            {"image_id": 1, "bbox": [1, 1, -2, 2], "score": 0.7},
            {"image_id": 1, "bbox": [1, 1, 2, 2], "score": "high"},
            {"image_id": 9, "bbox": [1, 1, 2, 2], "score": 0.7},
            "nonsense",
        ],
    }
    path.write_text(json.dumps(data))
    got = read_results(path)
    assert len(got.results) == 1 and len(got.results[0].detections) == 1
    assert len(got.warnings) == 5 and all(w.startswith(f"{path}: ") for w in got.warnings)
    assert any("unknown image_id 9" in w for w in got.warnings)

    csv_path = tmp_path / "r.csv"
    csv_path.write_text("image,x1,y1,x2,y2,score,label\na.jpg,1,2,3,4,0.5,person\n,1,2,3,4,0.5,person\nb.jpg,1,2,x,4,0.5,person\n")
    got = read_results(csv_path)
    assert [r.image for r in got.results] == ["a.jpg"]
    assert [w.split(": ")[1] for w in got.warnings] == ["line 3", "line 4"]


def test_unusable_files_raise_one_line_errors(tmp_path):
    (tmp_path / "a.json").write_text("{not json")
    (tmp_path / "b.geojson").write_text(json.dumps({"type": "Feature"}))
    (tmp_path / "c.csv").write_text("name,score\nx,1\n")
    (tmp_path / "d.csv").write_text("")
    (tmp_path / "e.txt").write_text("")
    for name, message in [("a.json", "not valid JSON"), ("b.geojson", "FeatureCollection"), ("c.csv", "columns"),
                          ("d.csv", "columns"), ("e.txt", "unknown results format"), ("missing.json", "no such file")]:
        with pytest.raises(InputError, match=message):
            read_results(tmp_path / name)
