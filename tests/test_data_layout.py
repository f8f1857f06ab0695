"""Recognising layouts from a folder or a file, and split names."""
from __future__ import annotations

import pytest

from sspnet_cli.data import detect_layout, list_splits, open_dataset
from sspnet_cli.data.splits import resolve_split
from sspnet_cli.errors import InputError, SSPNetError
from tests.data_helpers import write_image, write_json

EMPTY_COCO = {"images": [], "annotations": [], "categories": [{"id": 1, "name": "person"}]}


def test_tinyperson_folder(tmp_path):
    for split in ("train", "test"):
        write_json(tmp_path / "annotations" / f"tiny_set_{split}.json", EMPTY_COCO)
    # a TinyPerson folder also has COCO-looking JSON around; TinyPerson wins
    write_json(tmp_path / "train" / "_annotations.coco.json", EMPTY_COCO)
    layout = detect_layout(tmp_path)
    assert (layout.name, layout.root, sorted(layout.splits), layout.single) == ("tinyperson", tmp_path, ["test", "train"], False)


def test_yolo_folder_with_data_yaml_or_another_yaml(tmp_path):
    (tmp_path / "data.yaml").write_text("train: a\nval: b\nnames: [person]\n", encoding="utf-8")
    assert detect_layout(tmp_path).name == "yolo"
    assert list_splits(tmp_path) == ["train", "val"]
    (tmp_path / "data.yaml").rename(tmp_path / "visdrone.yaml")
    (tmp_path / "hyp.yaml").write_text("lr0: 0.01\n", encoding="utf-8")  # not a dataset yaml
    layout = detect_layout(tmp_path)
    assert layout.name == "yolo" and layout.splits["train"] == tmp_path / "visdrone.yaml"


def test_roboflow_coco_folder_and_split_folder(tmp_path):
    for split in ("train", "valid"):
        write_json(tmp_path / split / "_annotations.coco.json", EMPTY_COCO)
    layout = detect_layout(tmp_path)
    assert (layout.name, sorted(layout.splits), layout.single) == ("coco", ["train", "valid"], False)
    layout = detect_layout(tmp_path / "valid")
    assert (layout.name, list(layout.splits), layout.root, layout.single) == ("coco", ["valid"], tmp_path, True)


def test_coco_annotations_folder_and_loose_json(tmp_path):
    write_json(tmp_path / "a" / "annotations" / "instances_train2017.json", EMPTY_COCO)
    write_json(tmp_path / "a" / "annotations" / "instances_val2017.json", EMPTY_COCO)
    assert list_splits(tmp_path / "a") == ["train2017", "val2017"]
    write_json(tmp_path / "b" / "train.json", EMPTY_COCO)
    write_json(tmp_path / "b" / "test.json", EMPTY_COCO)
    layout = detect_layout(tmp_path / "b")
    assert (layout.name, sorted(layout.splits)) == ("coco", ["test", "train"])


def test_files_given_directly(tmp_path):
    tiny = write_json(tmp_path / "annotations" / "tiny_set_test.json", EMPTY_COCO)
    assert detect_layout(tiny).name == "tinyperson" and detect_layout(tiny).root == tmp_path
    other = write_json(tmp_path / "mine.json", EMPTY_COCO)
    assert (detect_layout(other).name, list(detect_layout(other).splits)) == ("coco", ["mine"])
    (tmp_path / "d.yml").write_text("train: x\nnames: [person]\n", encoding="utf-8")
    assert detect_layout(tmp_path / "d.yml").name == "yolo"
    write_image(tmp_path / "img.jpg")
    with pytest.raises(InputError, match="not an annotation file"):
        detect_layout(tmp_path / "img.jpg")


def test_unknown_folder_and_missing_path(tmp_path):
    write_image(tmp_path / "just_images" / "a.jpg")
    with pytest.raises(InputError) as err:
        open_dataset(tmp_path / "just_images")
    assert "no dataset found" in str(err.value) and "data.yaml" in str(err.value)
    with pytest.raises(InputError, match="no such file or folder"):
        open_dataset(tmp_path / "nope")


def test_unknown_split_lists_the_splits_found(tmp_path):
    for split in ("train", "valid", "test"):
        write_json(tmp_path / split / "_annotations.coco.json", EMPTY_COCO)
    with pytest.raises(InputError) as err:
        open_dataset(tmp_path, "dev")
    assert str(err.value) == f"{tmp_path}: no split 'dev'; splits found: test, train, valid"


@pytest.mark.parametrize(
    "requested, available, expected",
    [
        ("val", ["train", "valid"], "valid"),
        ("valid", ["train", "val"], "val"),
        ("Validation", ["val"], "val"),
        ("test", ["test", "test_all"], "test"),
        ("train", ["train2017", "val2017"], "train2017"),
        ("valid", ["train2017", "val2017"], "val2017"),
        ("holdout", ["holdout", "train"], "holdout"),
    ],
)
def test_split_resolution(requested, available, expected):
    assert resolve_split(requested, available, "ds") == expected


def test_ambiguous_split_prefix_is_refused():
    with pytest.raises(InputError, match="ambiguous: train2014, train2017"):
        resolve_split("train", ["train2014", "train2017"], "ds")


def test_image_dir_overrides_where_coco_images_are_looked_for(tmp_path):
    write_image(tmp_path / "pictures" / "a.jpg")
    path = write_json(tmp_path / "gt.json", {
        "images": [{"id": 1, "file_name": "a.jpg", "width": 64, "height": 48}],
        "annotations": [],
        "categories": [{"id": 1, "name": "person"}],
    })
    ds = open_dataset(path, image_dir=tmp_path / "pictures")
    assert ds.images[0].path == tmp_path / "pictures" / "a.jpg"
    (tmp_path / "data.yaml").write_text("train: pictures\nnames: [person]\n", encoding="utf-8")
    with pytest.raises(SSPNetError, match="image_dir applies to COCO"):
        open_dataset(tmp_path / "data.yaml", image_dir=tmp_path)
