"""TinyPerson layout: flags kept as ignore regions, both categories are people, real data counts."""
from __future__ import annotations

import numpy as np
import pytest

from sspnet_cli.data import open_dataset
from sspnet_cli.data.tinyperson import read_tinyperson
from tests.data_helpers import ann, write_image, write_json

CATEGORIES = [
    {"id": 1, "name": "sea_person", "supercategory": "person"},
    {"id": 2, "name": "earth_person", "supercategory": "person"},
]


def _flags(ignore=False, uncertain=False, iscrowd=0, logo=False):
    return {"ignore": ignore, "uncertain": uncertain, "iscrowd": iscrowd, "logo": logo, "in_dense_image": False}


@pytest.fixture
def tiny_root(tmp_path):
    """The benchmark's layout, with its extra keys (segmentation, area, type, logo, dense)."""
    root = tmp_path / "tiny_set"
    write_image(root / "train" / "labeled_images" / "a.jpg", 64, 48)
    write_image(root / "train" / "labeled_images" / "b.jpg", 64, 48)
    write_image(root / "train" / "dense" / "d.jpg", 64, 48)
    write_image(root / "test" / "labeled_images" / "c.jpg", 80, 60)
    seg = [[1, 2, 4, 2, 4, 6, 1, 6]]
    train_images = [
        {"id": 0, "file_name": "labeled_images/a.jpg", "width": 64, "height": 48},
        {"id": 1, "file_name": "labeled_images/b.jpg", "width": 64, "height": 48},
    ]
    write_json(root / "annotations" / "tiny_set_train.json", {
        "type": "instance",
        "images": train_images,
        "annotations": [
            ann(0, 0, [1, 2, 3, 4], 1, segmentation=seg, area=12.0, **_flags()),
            ann(1, 0, [10.5, 10, 5, 8.25], 2, area=41.25, **_flags()),
            ann(2, 0, [20, 20, 10, 10], 1, **_flags(ignore=True, logo=True)),
            ann(3, 1, [5, 5, 2, 3], 2, **_flags(uncertain=True)),
            ann(4, 1, [30, 30, 4, 4], 1, **_flags(iscrowd=1)),
        ],
        "categories": CATEGORIES,
    })
    write_json(root / "annotations" / "tiny_set_train_with_dense.json", {
        "type": "instance",
        "images": train_images + [{"id": 2, "file_name": "dense/d.jpg", "width": 64, "height": 48}],
        "annotations": [ann(0, 2, [3, 3, 4, 4], 1, **_flags())],
        "categories": CATEGORIES,
    })
    write_json(root / "annotations" / "tiny_set_test.json", {
        "type": "instance",
        "images": [{"id": 7, "file_name": "labeled_images/c.jpg", "width": 80, "height": 60}],
        "annotations": [ann(9, 7, [0, 0, 8, 16], 1, **_flags())],
        "categories": CATEGORIES,
    })
    return root


def test_reads_boxes_as_xyxy_and_keeps_every_flagged_box_as_ignore(tiny_root):
    ds = read_tinyperson(tiny_root, "train")
    assert (ds.layout, ds.split, len(ds), ds.problems) == ("tinyperson", "train", 2, [])
    a, b = ds.images
    assert a.path == tiny_root / "train" / "labeled_images" / "a.jpg"
    assert (a.image_id, a.file_name, a.width, a.height) == (0, "labeled_images/a.jpg", 64, 48)
    np.testing.assert_array_equal(a.boxes, [[1, 2, 4, 6], [10.5, 10, 15.5, 18.25]])
    assert a.boxes.dtype == np.float32
    np.testing.assert_array_equal(a.box_ids, [0, 1])
    np.testing.assert_array_equal(a.ignore_boxes, [[20, 20, 30, 30]])
    np.testing.assert_array_equal(a.ignore_flags, [[True, False, False]])
    assert b.boxes.shape == (0, 4)
    np.testing.assert_array_equal(b.ignore_boxes, [[5, 5, 7, 8], [30, 30, 34, 34]])
    np.testing.assert_array_equal(b.ignore_flags, [[False, True, False], [False, False, True]])
    np.testing.assert_array_equal(b.ignore_ids, [3, 4])


def test_to_coco_carries_tinyperson_flags(tiny_root):
    gt = read_tinyperson(tiny_root, "train").to_coco()
    assert gt["categories"] == [{"id": 1, "name": "person", "supercategory": "person"}]
    assert [im["id"] for im in gt["images"]] == [0, 1]
    flags = [(a["image_id"], a["ignore"], a["uncertain"], a["iscrowd"]) for a in gt["annotations"]]
    assert flags == [(0, False, False, 0), (0, False, False, 0), (0, True, False, 0), (1, False, True, 0), (1, False, False, 1)]
    assert gt["annotations"][1]["bbox"] == [10.5, 10.0, 5.0, 8.25]
    assert len({a["id"] for a in gt["annotations"]}) == 5


def test_classes_can_narrow_tinyperson_categories(tiny_root):
    ds = read_tinyperson(tiny_root, "train", classes=["sea_person"])
    np.testing.assert_array_equal(ds.images[0].boxes, [[1, 2, 4, 6]])
    # the flagged boxes of the other category are not this class's ignore regions either
    assert len(ds.images[1].ignore_boxes) == 1


def test_derived_split_reads_images_from_the_split_it_extends(tiny_root):
    ds = open_dataset(tiny_root, "train_with_dense")
    assert ds.split == "train_with_dense" and ds.problems == []
    assert ds.images[2].path == tiny_root / "train" / "dense" / "d.jpg"


def test_annotation_file_given_directly(tiny_root):
    ds = open_dataset(tiny_root / "annotations" / "tiny_set_test.json")
    assert (ds.layout, ds.split, ds.root) == ("tinyperson", "test", tiny_root)
    assert ds.images[0].image_id == 7 and ds.images[0].path.is_file()


@pytest.mark.parametrize(
    "split, frames, persons, ignore, tiny, small",
    [("train", 402, 43084, 257, 40804, 1329), ("valid", 34, 2741, 27, 2658, 62), ("test", 55, 1820, 33, 1707, 79)],
)
def test_tinyperson_rf_matches_its_readme(shared_dir, split, frames, persons, ignore, tiny, small):
    root = shared_dir / "data" / "tinyperson-rf"
    if not root.is_dir():
        pytest.skip(f"{root} not available (SSPNET_SHARED_DIR points at the real-data folder)")
    ds = open_dataset(root, split)
    assert ds.layout == "tinyperson" and ds.problems == []
    assert (len(ds), ds.num_boxes, ds.num_ignore) == (frames, persons, ignore)
    boxes = np.concatenate([im.boxes for im in ds])
    side = np.sqrt((boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1]))
    assert int((side < 20).sum()) == tiny
    assert int(((side >= 20) & (side < 32)).sum()) == small
    assert all(im.path.is_file() and (im.width, im.height) == (640, 640) for im in ds.images[:5])


def test_tinyperson_rf_val_is_an_alias_of_valid(shared_dir):
    root = shared_dir / "data" / "tinyperson-rf"
    if not root.is_dir():
        pytest.skip(f"{root} not available (SSPNET_SHARED_DIR points at the real-data folder)")
    assert open_dataset(root, "val").split == "valid"
