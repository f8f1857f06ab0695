"""Generic COCO and Roboflow's COCO export: image folders, the person-class rule, odd records."""
from __future__ import annotations

import numpy as np
import pytest

from sspnet_cli.data import open_dataset
from sspnet_cli.data.coco import read_coco
from sspnet_cli.errors import InputError
from tests.data_helpers import ann, write_image, write_json


def _coco(images, annotations, categories):
    return {"info": {"year": 2024}, "licenses": [], "images": images, "annotations": annotations, "categories": categories}


@pytest.fixture
def instances_root(tmp_path):
    """``annotations/instances_{split}2017.json`` + ``{split}2017/`` with several categories."""
    root = tmp_path / "coco"
    write_image(root / "train2017" / "1.jpg", 64, 48)
    write_image(root / "train2017" / "2.png", 32, 32)
    write_image(root / "val2017" / "3.jpg", 64, 48)
    cats = [{"id": 1, "name": "Person", "supercategory": "person"}, {"id": 3, "name": "car", "supercategory": "vehicle"}]
    write_json(root / "annotations" / "instances_train2017.json", _coco(
        [
            {"id": 11, "file_name": "1.jpg", "width": 64, "height": 48, "license": 1},
            # no width/height: read from the image header
            {"id": 12, "file_name": "2.png"},
        ],
        [
            ann(100, 11, [1, 1, 4, 8], 1, area=32, iscrowd=0, segmentation=[[1, 1, 5, 1, 5, 9]]),
            ann(101, 11, [20, 5, 10, 10], 3, iscrowd=0),  # a car: not a person, not a problem
            ann(102, 12, [2, 2, 20, 20], 1, iscrowd=1, segmentation={"counts": "xyz", "size": [32, 32]}),
        ],
        cats,
    ))
    write_json(root / "annotations" / "instances_val2017.json", _coco(
        [{"id": 3, "file_name": "3.jpg", "width": 64, "height": 48}], [ann(1, 3, [0, 0, 2, 2], 1)], cats
    ))
    return root


def test_instances_layout_finds_split_folders_and_the_person_category(instances_root):
    ds = open_dataset(instances_root, "train")
    assert (ds.layout, ds.split, ds.root, ds.problems) == ("coco", "train2017", instances_root, [])
    a, b = ds.images
    assert a.path == instances_root / "train2017" / "1.jpg"
    np.testing.assert_array_equal(a.boxes, [[1, 1, 5, 9]])
    np.testing.assert_array_equal(a.box_ids, [100])
    assert a.ignore_boxes.shape == (0, 4)
    assert (b.width, b.height) == (32, 32)
    np.testing.assert_array_equal(b.ignore_boxes, [[2, 2, 22, 22]])
    np.testing.assert_array_equal(b.ignore_flags, [[False, False, True]])
    assert open_dataset(instances_root, "valid").split == "val2017"


def test_classes_argument_picks_another_category(instances_root):
    ds = open_dataset(instances_root, "train", classes=["car"])
    np.testing.assert_array_equal(ds.images[0].boxes, [[20, 5, 30, 15]])
    ds = open_dataset(instances_root, "train", classes=[1, 3])
    assert len(ds.images[0].boxes) == 2


def test_several_categories_without_a_person_are_refused_with_the_list(tmp_path):
    write_image(tmp_path / "a.jpg")
    path = write_json(tmp_path / "labels.json", _coco(
        [{"id": 1, "file_name": "a.jpg", "width": 64, "height": 48}],
        [ann(1, 1, [0, 0, 2, 2], 1)],
        [{"id": 1, "name": "sea_person"}, {"id": 2, "name": "earth_person"}],
    ))
    with pytest.raises(InputError) as err:
        read_coco(path)
    message = str(err.value)
    assert str(path) in message and "'sea_person'" in message and "'earth_person'" in message
    assert "classes=" in message
    with pytest.raises(InputError, match="no class 'boat'"):
        read_coco(path, classes=["boat"])
    assert len(read_coco(path, classes=["sea_person", "earth_person"]).images[0].boxes) == 1


def test_single_category_is_the_person_class_whatever_its_name(tmp_path):
    write_image(tmp_path / "a.jpg")
    path = write_json(tmp_path / "labels.json", _coco(
        [{"id": 1, "file_name": "a.jpg", "width": 64, "height": 48}],
        [ann(1, 1, [0, 0, 2, 2], 5)],
        [{"id": 5, "name": "swimmer"}],
    ))
    assert read_coco(path).num_boxes == 1


@pytest.fixture
def roboflow_root(tmp_path):
    """Roboflow's export: ``{split}/_annotations.coco.json`` beside the images, with the
    project-named placeholder category 0 that holds no annotation."""
    root = tmp_path / "rf"
    cats = [
        {"id": 0, "name": "tiny-people", "supercategory": "none"},
        {"id": 1, "name": "people", "supercategory": "tiny-people"},
        {"id": 2, "name": "boat", "supercategory": "tiny-people"},
    ]
    for split, names in (("train", ["t0.jpg", "t1.jpg"]), ("valid", ["v0.jpg"]), ("test", ["s0.jpg"])):
        for name in names:
            write_image(root / split / name, 64, 48)
        images = [{"id": i, "license": 1, "file_name": n, "height": 48, "width": 64, "date_captured": "x"} for i, n in enumerate(names)]
        annotations = [ann(i, i, [i, 1, 3, 6], 1, area=18, segmentation=[], iscrowd=0) for i in range(len(names))]
        annotations.append(ann(99, 0, [30, 30, 10, 5], 2, area=50, segmentation=[], iscrowd=0))
        write_json(root / split / "_annotations.coco.json", _coco(images, annotations, cats))
    return root


def test_roboflow_export_with_placeholder_category(roboflow_root):
    ds = open_dataset(roboflow_root, "train")
    assert (ds.layout, ds.split, len(ds), ds.problems) == ("coco", "train", 2, [])
    assert ds.images[0].path == roboflow_root / "train" / "t0.jpg"
    np.testing.assert_array_equal(ds.images[1].boxes, [[1, 1, 4, 7]])
    assert ds.num_boxes == 2  # the boats are not people
    for name in ("val", "valid", "VALID", "validation"):
        assert open_dataset(roboflow_root, name).split == "valid"


def test_roboflow_split_folder_or_file_given_directly(roboflow_root):
    ds = open_dataset(roboflow_root / "valid")
    assert (ds.split, ds.root, len(ds)) == ("valid", roboflow_root, 1)
    ds = open_dataset(roboflow_root / "test" / "_annotations.coco.json")
    assert (ds.split, len(ds)) == ("test", 1)


def test_bare_json_finds_images_in_an_images_folder(tmp_path):
    write_image(tmp_path / "images" / "sub" / "a.jpg")
    path = write_json(tmp_path / "gt.json", _coco(
        [{"id": "frame-a", "file_name": "sub/a.jpg", "width": 64, "height": 48}],
        [ann(1, "frame-a", [1, 1, 2, 2], 1)],
        [{"id": 1, "name": "person"}],
    ))
    ds = open_dataset(path)
    assert ds.images[0].path == tmp_path / "images" / "sub" / "a.jpg"
    assert isinstance(ds.images[0].image_id, int)  # string ids get integer ones
    assert ds.num_boxes == 1 and ds.problems == []


def test_ground_truth_without_images(tmp_path):
    path = write_json(tmp_path / "gt.json", _coco(
        [{"id": 1, "file_name": "nowhere.jpg", "width": 64, "height": 48}],
        [ann(1, 1, [1, 1, 2, 2], 1, ignore=True)],
        [{"id": 1, "name": "person"}],
    ))
    with pytest.raises(InputError, match="none of its 1 images are"):
        read_coco(path)
    ds = read_coco(path, require_images=False)
    assert ds.problems == [] and ds.num_ignore == 1
    assert ds.to_coco()["annotations"][0]["ignore"] is True


def test_roboflow_placeholder_category_does_not_count_as_a_class(tmp_path):
    write_image(tmp_path / "train" / "a.jpg")
    cats = [{"id": 0, "name": "swimmers-xyz", "supercategory": "none"}, {"id": 1, "name": "swimmer", "supercategory": "swimmers-xyz"}]
    write_json(tmp_path / "train" / "_annotations.coco.json", _coco(
        [{"id": 0, "file_name": "a.jpg", "width": 64, "height": 48}], [ann(0, 0, [1, 1, 2, 2], 1)], cats
    ))
    assert open_dataset(tmp_path).num_boxes == 1
    # once the placeholder holds annotations it is a class, and the choice is the user's
    write_json(tmp_path / "train" / "_annotations.coco.json", _coco(
        [{"id": 0, "file_name": "a.jpg", "width": 64, "height": 48}], [ann(0, 0, [1, 1, 2, 2], 1), ann(1, 0, [5, 5, 2, 2], 0)], cats
    ))
    with pytest.raises(InputError, match="no class named person"):
        open_dataset(tmp_path)
