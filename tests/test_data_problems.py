"""Broken annotations: refused files name the error's place; skipped records are reported
with the file and where in it."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from sspnet_cli.data import open_dataset
from sspnet_cli.data.coco import read_coco
from sspnet_cli.data.yolo import read_yolo
from sspnet_cli.errors import InputError
from tests.data_helpers import ann, write_image, write_json


def _where(ds):
    return {(Path(p.file).name, p.where): p.message for p in ds.problems}


def test_invalid_json_is_refused_with_line_and_column(tmp_path):
    path = tmp_path / "annotations" / "instances_train.json"
    path.parent.mkdir()
    path.write_text('{"images": [\n  {"id": 1,,}\n]}', encoding="utf-8")
    with pytest.raises(InputError) as err:
        open_dataset(tmp_path)
    assert err.value.path == str(path)
    assert "invalid JSON at line 2, column 12" in err.value.problem
    assert "\n" not in str(err.value)


@pytest.mark.parametrize(
    "content, problem",
    [("[1, 2]", "top level is a JSON list"), ('{"annotations": []}', 'no "images" list')],
)
def test_json_that_is_not_coco_is_refused(tmp_path, content, problem):
    path = tmp_path / "x.json"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(InputError, match=problem):
        read_coco(path)


def test_every_bad_coco_record_is_reported_and_skipped(tmp_path):
    for name in ("a.jpg", "b.jpg", "dup.jpg"):
        write_image(tmp_path / name, 64, 48)
    path = write_json(tmp_path / "gt.json", {
        "images": [
            {"id": 1, "file_name": "a.jpg", "width": 64, "height": 48},
            {"id": 2, "file_name": "missing.jpg", "width": 64, "height": 48},
            {"id": 1, "file_name": "dup.jpg", "width": 64, "height": 48},
            {"id": 3, "width": 64, "height": 48},
            {"id": 4, "file_name": "b.jpg", "width": 64, "height": 48},
        ],
        "annotations": [
            ann(10, 1, [1, 1, 5, 5]),  # fine
            ann(11, 99, [1, 1, 5, 5]),  # unknown image id
            ann(12, 1, [1, 1, 0, 5]),  # zero width
            ann(13, 1, [1, 1, 5, -2]),  # negative height
            ann(14, 1, [float("nan"), 1, 5, 5]),  # NaN (json.dumps writes NaN)
            ann(15, 1, [1, 1, 5]),  # three numbers
            ann(16, 1, [1, "2", 5, 5]),  # a string
            ann(17, 1, [100, 100, 5, 5]),  # outside the 64x48 frame
            ann(18, 2, [1, 1, 5, 5]),  # image skipped (file missing): not reported again
            ann(19, 4, [2, 2, 3, 3], category_id=7),  # unknown category
            "not an object",
            ann(20, 4, [2, 2, 3, 3]),  # fine
        ],
        "categories": [{"id": 1, "name": "person"}],
    })
    ds = read_coco(path)
    assert [im.file_name for im in ds.images] == ["a.jpg", "b.jpg"]
    np.testing.assert_array_equal(ds.images[0].boxes, [[1, 1, 6, 6]])
    np.testing.assert_array_equal(ds.images[1].boxes, [[2, 2, 5, 5]])
    where = _where(ds)
    assert "image file not found" in where[("gt.json", "images[1] (id 2)")]
    assert str(tmp_path / "missing.jpg") in where[("gt.json", "images[1] (id 2)")]
    assert "duplicate image id" in where[("gt.json", "images[2] (id 1)")]
    assert "no file_name" in where[("gt.json", "images[3] (id 3)")]
    assert "unknown image id 99" in where[("gt.json", "annotations[1] (id 11)")]
    assert "non-positive size" in where[("gt.json", "annotations[2] (id 12)")]
    assert "non-positive size" in where[("gt.json", "annotations[3] (id 13)")]
    assert "not finite" in where[("gt.json", "annotations[4] (id 14)")]
    assert "not [x, y, w, h]" in where[("gt.json", "annotations[5] (id 15)")]
    assert "non-numbers" in where[("gt.json", "annotations[6] (id 16)")]
    assert "outside the 64x48 image" in where[("gt.json", "annotations[7] (id 17)")]
    assert "unknown category id 7" in where[("gt.json", "annotations[9] (id 19)")]
    assert "not a JSON object" in where[("gt.json", "annotations[10]")]
    assert len(ds.problems) == 12
    assert all(p.file == str(path) for p in ds.problems)
    assert str(ds.problems[0]).startswith(f"{path}: images[1] (id 2): ")


def test_malformed_yolo_lines_are_reported_with_their_line_numbers(tmp_path):
    (tmp_path / "data.yaml").write_text("train: images\nnames: [person]\n", encoding="utf-8")
    write_image(tmp_path / "images" / "a.jpg", 100, 100)
    label = tmp_path / "labels" / "a.txt"
    label.parent.mkdir()
    label.write_text(
        "0 0.5 0.5 0.1 0.1\n"  # 1 fine
        "0 0.5 0.5 0.1\n"  # 2 too few values
        "0 0.5 0.5 0.1 0.1 0.3\n"  # 3 six values
        "x 0.5 0.5 0.1 0.1\n"  # 4 not a number
        "0 nan 0.5 0.1 0.1\n"  # 5 NaN
        "0 0.5 0.5 0 0.1\n"  # 6 zero width
        "1.5 0.5 0.5 0.1 0.1\n"  # 7 fractional class
        "0 50 50 10 10\n"  # 8 pixels instead of normalised
        "3 0.5 0.5 0.1 0.1\n"  # 9 class not in names
        "0 0.1 0.1 0.2 0.1 0.3 0.1\n"  # 10 flat polygon
        "\n"
        "0 0.2 0.2 0.3 0.2 0.3 0.4\n",  # 12 fine polygon
        encoding="utf-8",
    )
    ds = read_yolo(tmp_path / "data.yaml")
    np.testing.assert_allclose(ds.images[0].boxes, [[45, 45, 55, 55], [20, 20, 30, 40]], atol=1e-4)
    found = {p.where: p.message for p in ds.problems}
    assert set(found) == {f"line {n}" for n in (2, 3, 4, 5, 6, 7, 8, 9, 10)}
    assert all(p.file == str(label) for p in ds.problems)
    assert "expected 5 values" in found["line 2"] and "got 4" in found["line 2"]
    assert "not numbers" in found["line 4"]
    assert "not finite" in found["line 5"]
    assert "non-positive" in found["line 6"]
    assert "not a non-negative integer" in found["line 7"]
    assert "not normalised" in found["line 8"]
    assert "class 3 is not in data.yaml names" in found["line 9"]
    assert "no area" in found["line 10"]


def test_invalid_yaml_is_refused_with_line_and_column(tmp_path):
    (tmp_path / "data.yaml").write_text("train: images\nnames: [person\nval: x\n", encoding="utf-8")
    with pytest.raises(InputError) as err:
        open_dataset(tmp_path / "data.yaml")
    assert "invalid YAML at line 3" in err.value.problem and err.value.path == str(tmp_path / "data.yaml")


def test_yolo_split_folder_missing_and_unreadable_image(tmp_path):
    (tmp_path / "data.yaml").write_text("train: images\nval: nowhere/images\nnames: [person]\n", encoding="utf-8")
    write_image(tmp_path / "images" / "ok.jpg")
    (tmp_path / "images" / "broken.jpg").write_bytes(b"not a jpeg")
    with pytest.raises(InputError, match="val: nowhere/images not found"):
        read_yolo(tmp_path / "data.yaml", "val")
    ds = read_yolo(tmp_path / "data.yaml")
    assert [im.file_name for im in ds.images] == ["images/ok.jpg"]
    messages = [str(p) for p in ds.problems]
    assert any("broken.jpg" in m and "not a readable image" in m for m in messages)
    assert any("no label files found" in m for m in messages)


def test_tinyperson_corner_files_are_refused_not_misread(tmp_path):
    write_image(tmp_path / "train" / "labeled_images" / "a.jpg", 64, 48)
    path = write_json(tmp_path / "annotations" / "corner" / "tiny_set_train_sw640_sh512.json", {
        "images": [{"id": 0, "file_name": "labeled_images/a.jpg", "width": 32, "height": 24, "corner": [32, 24, 64, 48]}],
        "annotations": [ann(0, 0, [1, 1, 2, 2])],
        "categories": [{"id": 1, "name": "person"}],
    })
    with pytest.raises(InputError, match="'corner' annotations are not supported"):
        open_dataset(path)
