"""Reading ground truth and detection files."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from sspnet_cli.errors import InputError
from sspnet_cli.evaluation import evaluate_files, load_detections, load_ground_truth

GT = {
    "images": [
        {"id": 1, "file_name": "labeled_images/a.jpg"},
        {"id": 2, "file_name": "labeled_images/b.jpg"},
        {"id": 3, "file_name": "other/b.jpg"},  # same base name as image 2
        {"id": 4, "file_name": "labeled_images/c.jpg"},
    ],
    "annotations": [
        {"id": 1, "image_id": 1, "category_id": 1, "bbox": [10, 10, 10, 10], "ignore": False},
        {"id": 2, "image_id": 4, "category_id": 1, "bbox": [10, 10, 10, 10], "ignore": False},
    ],
    "categories": [{"id": 1, "name": "person"}],
}


def _write(tmp_path: Path, name: str, data) -> Path:
    path = tmp_path / name
    path.write_text(data if isinstance(data, str) else json.dumps(data))
    return path


def _sspnet_file(names: list[str]) -> dict:
    images = [{"id": i + 100, "file_name": n, "width": 640, "height": 512} for i, n in enumerate(names)]
    anns = [
        {"id": i + 1, "image_id": im["id"], "category_id": 1, "bbox": [10, 10, 10, 10], "score": 0.9}
        for i, im in enumerate(images)
    ]
    return {"images": images, "annotations": anns}


def test_ground_truth_loads_and_malformed_json_raises(tmp_path):
    assert load_ground_truth(_write(tmp_path, "gt.json", GT))["images"][0]["id"] == 1
    with pytest.raises(InputError, match="not valid JSON") as err:
        load_ground_truth(_write(tmp_path, "bad.json", '{"images": ['))
    assert err.value.path.endswith("bad.json")
    with pytest.raises(InputError, match="file not found"):
        load_ground_truth(tmp_path / "missing.json")
    with pytest.raises(InputError, match="not COCO ground truth"):
        load_ground_truth(_write(tmp_path, "list.json", []))
    bad_box = {**GT, "annotations": [{"id": 1, "image_id": 1, "bbox": [1, 2]}]}
    with pytest.raises(InputError, match=r"gt2\.json: ground-truth annotation #0: 'bbox'"):
        load_ground_truth(_write(tmp_path, "gt2.json", bad_box))


def test_coco_results_list(tmp_path):
    dets = [
        {"image_id": 1, "category_id": 1, "bbox": [10, 10, 10, 10], "score": 0.9},
        {"image_id": 4, "bbox": [10, 10, 10, 10], "score": 0.8},  # category_id optional
        {"image_id": 99, "category_id": 1, "bbox": [0, 0, 5, 5], "score": 0.5},  # unknown image
        {"image_id": 1, "category_id": 1, "bbox": [0, 0, 5], "score": 0.5},  # bad box
        {"image_id": 1, "category_id": 1, "bbox": [0, 0, 5, 5]},  # no score
        {"image_id": 1, "category_id": 2, "bbox": [0, 0, 5, 5], "score": 0.5},  # other class
    ]
    path = _write(tmp_path, "dets.json", dets)
    loaded = load_detections(path, GT)
    assert [d["image_id"] for d in loaded.detections] == [1, 4]
    assert len(loaded.warnings) == 3
    assert all(w.startswith(str(path) + ": ") for w in loaded.warnings)
    assert any("detection #3" in w and "'bbox'" in w for w in loaded.warnings)
    assert any("detection #4" in w and "'score'" in w for w in loaded.warnings)
    assert any("1 detection(s) on 1 image(s) with no matching ground-truth image" in w and "99" in w
               for w in loaded.warnings)


def test_many_bad_records_are_summarised(tmp_path):
    dets = [{"image_id": 1, "bbox": [0, 0, 5], "score": 0.5}] * 12
    loaded = load_detections(_write(tmp_path, "d.json", dets), GT)
    assert loaded.detections == []
    assert len(loaded.warnings) == 6 and "7 more malformed detection(s)" in loaded.warnings[-1]


def test_sspnet_file_matches_images_by_file_name(tmp_path):
    data = _sspnet_file([
        "labeled_images/a.jpg",  # exact relative path -> 1
        "/data/tiny_set/test/labeled_images/c.jpg",  # GT name is a path suffix -> 4
        "b.jpg",  # base name shared by images 2 and 3 -> ambiguous, unmatched
        "elsewhere/zzz.jpg",  # no match
    ])
    path = _write(tmp_path, "sspnet.json", data)
    loaded = load_detections(path, GT)
    assert sorted(d["image_id"] for d in loaded.detections) == [1, 4]
    assert len(loaded.warnings) == 1
    assert "2 image(s) match no ground-truth image by file name" in loaded.warnings[0]
    assert "'b.jpg'" in loaded.warnings[0] and "zzz.jpg" in loaded.warnings[0]


def test_sspnet_file_unique_basename_and_windows_separators(tmp_path):
    data = _sspnet_file(["C:\\runs\\a.jpg", "frames/c.jpg"])  # unique base names -> 1 and 4
    loaded = load_detections(_write(tmp_path, "s.json", data), GT)
    assert sorted(d["image_id"] for d in loaded.detections) == [1, 4]
    assert loaded.warnings == []


def test_sspnet_file_two_images_on_one_gt_image(tmp_path):
    data = _sspnet_file(["labeled_images/a.jpg", "x/labeled_images/a.jpg"])
    loaded = load_detections(_write(tmp_path, "s.json", data), GT)
    assert [d["image_id"] for d in loaded.detections] == [1]
    assert "both match ground-truth image 1" in loaded.warnings[0]


def test_sspnet_file_with_no_matching_image_raises(tmp_path):
    path = _write(tmp_path, "s.json", _sspnet_file(["nope/x.jpg"]))
    with pytest.raises(InputError, match="none of its 1 images matches"):
        load_detections(path, GT)


def test_unknown_layout_and_bad_json(tmp_path):
    with pytest.raises(InputError, match="neither a COCO results list nor an sspnet"):
        load_detections(_write(tmp_path, "x.json", {"detections": []}), GT)
    with pytest.raises(InputError, match="not valid JSON"):
        load_detections(_write(tmp_path, "y.json", "[{]"), GT)


def test_evaluate_files_end_to_end(tmp_path):
    gt_path = _write(tmp_path, "gt.json", GT)
    det_path = _write(tmp_path, "s.json", _sspnet_file(["labeled_images/a.jpg", "labeled_images/c.jpg", "q.jpg"]))
    result = evaluate_files(gt_path, det_path)
    # both GTs found exactly, nothing else: AP 100, MR 0
    assert result.metrics["AP50_tiny"] == pytest.approx(100.0)
    assert result.metrics["MR50_tiny"] == 0.0
    assert len(result.warnings) == 1 and "q.jpg" in result.warnings[0]
