"""YOLO / Roboflow YOLO exports: data.yaml paths, label paths, bbox and polygon lines."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from sspnet_cli.data import open_dataset
from sspnet_cli.data.yolo import label_path, read_yolo
from sspnet_cli.errors import InputError
from tests.data_helpers import write_image


def _write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


@pytest.fixture
def roboflow_yolo(tmp_path):
    """Roboflow's YOLO export: ``../train/images`` in data.yaml, one folder per split."""
    root = tmp_path / "rf"
    _write(root / "data.yaml", (
        "train: ../train/images\nval: ../valid/images\ntest: ../test/images\n\n"
        "nc: 2\nnames: ['boat', 'people']\n\n"
        "roboflow:\n  workspace: w\n  project: p\n  version: 1\n  url: https://example.invalid/p\n"
    ))
    write_image(root / "train" / "images" / "a.jpg", 100, 50)
    write_image(root / "train" / "images" / "b.jpg", 100, 50)
    write_image(root / "train" / "images" / "c.png", 40, 40)  # no label file: no people
    _write(root / "train" / "labels" / "a.txt", "1 0.5 0.5 0.2 0.4\n0 0.1 0.1 0.1 0.1\n\n1 0.05 0.1 0.1 0.2\n")
    # a polygon line: its enclosing box
    _write(root / "train" / "labels" / "b.txt", "1 0.1 0.2 0.3 0.2 0.3 0.6 0.2 0.7 0.1 0.6\n")
    write_image(root / "valid" / "images" / "v.jpg", 100, 50)
    _write(root / "valid" / "labels" / "v.txt", "1 0.5 0.5 0.1 0.1\n")
    write_image(root / "test" / "images" / "t.jpg", 100, 50)
    return root


def test_bbox_and_polygon_lines_become_pixel_boxes(roboflow_yolo):
    ds = open_dataset(roboflow_yolo, "train")
    assert (ds.layout, ds.split, len(ds), ds.problems) == ("yolo", "train", 3, [])
    a, b, c = ds.images
    assert (a.file_name, a.width, a.height, a.image_id) == ("train/images/a.jpg", 100, 50, 0)
    np.testing.assert_allclose(a.boxes, [[40, 15, 60, 35], [0, 0, 10, 10]], atol=1e-4)
    np.testing.assert_array_equal(a.box_ids, [1, 4])  # line numbers
    np.testing.assert_allclose(b.boxes, [[10, 10, 30, 35]], atol=1e-4)
    assert c.boxes.shape == (0, 4) and (c.width, c.height) == (40, 40)


def test_split_aliases_and_unknown_split(roboflow_yolo):
    assert open_dataset(roboflow_yolo, "valid").split == "val"
    assert open_dataset(roboflow_yolo / "data.yaml", "val").num_boxes == 1
    with pytest.raises(InputError) as err:
        open_dataset(roboflow_yolo, "holdout")
    assert "no split 'holdout'" in str(err.value) and "splits found: test, train, val" in str(err.value)


def test_ultralytics_yaml_with_path_key_names_dict_and_nested_folders(tmp_path):
    root = tmp_path / "datasets" / "drone"
    _write(tmp_path / "cfg" / "drone.yaml", (
        "path: ../datasets/drone\ntrain: images/train\nval: images/val\n"
        "names:\n  0: car\n  1: pedestrian\n  2: bicycle\n"
    ))
    write_image(root / "images" / "train" / "seq1" / "f.jpg", 64, 32)
    _write(root / "labels" / "train" / "seq1" / "f.txt", "1 0.5 0.5 0.25 0.5\n2 0.5 0.5 0.1 0.1\n")
    write_image(root / "images" / "val" / "g.jpg", 64, 32)
    ds = open_dataset(tmp_path / "cfg" / "drone.yaml", "train")
    assert ds.root == root and ds.images[0].file_name == "images/train/seq1/f.jpg"
    np.testing.assert_allclose(ds.images[0].boxes, [[24, 8, 40, 24]], atol=1e-4)
    assert ds.problems == []


def test_image_list_file(tmp_path):
    write_image(tmp_path / "images" / "x.jpg", 20, 10)
    _write(tmp_path / "labels" / "x.txt", "0 0.5 0.5 0.5 0.5\n")
    _write(tmp_path / "train.txt", "./images/x.jpg\n")
    _write(tmp_path / "data.yaml", "train: train.txt\nnames: [person]\n")
    ds = read_yolo(tmp_path / "data.yaml")
    np.testing.assert_allclose(ds.images[0].boxes, [[5, 2.5, 15, 7.5]])


def test_class_rule_refuses_without_a_person_class(tmp_path):
    write_image(tmp_path / "train" / "images" / "x.jpg")
    _write(tmp_path / "data.yaml", "train: train/images\nnames: [car, bus]\n")
    with pytest.raises(InputError) as err:
        read_yolo(tmp_path / "data.yaml")
    assert "0: 'car', 1: 'bus'" in str(err.value) and "classes=" in str(err.value)
    assert len(read_yolo(tmp_path / "data.yaml", classes=["bus"])) == 1


def test_a_class_named_ignore_gives_ignore_regions(tmp_path):
    write_image(tmp_path / "train" / "images" / "x.jpg", 10, 10)
    _write(tmp_path / "train" / "labels" / "x.txt", "1 0.5 0.5 0.2 0.2\n0 0.5 0.5 0.4 0.4\n")
    _write(tmp_path / "data.yaml", "train: train/images\nnames: [tiny, ignore]\n")
    im = read_yolo(tmp_path / "data.yaml")[0]
    np.testing.assert_allclose(im.boxes, [[3, 3, 7, 7]], atol=1e-5)
    np.testing.assert_allclose(im.ignore_boxes, [[4, 4, 6, 6]], atol=1e-5)
    np.testing.assert_array_equal(im.ignore_flags, [[True, False, False]])


def test_label_path_replaces_the_last_images_folder():
    assert label_path(Path("/d/images/train/images/a.b.jpg")) == Path("/d/images/train/labels/a.b.txt")
    assert label_path(Path("/d/images/x.png")) == Path("/d/labels/x.txt")
    assert label_path(Path("rel/images/sub/x.jpeg")) == Path("rel/labels/sub/x.txt")


def test_a_photo_with_a_rotating_exif_orientation_trains(tmp_path):
    """Frames are decoded as stored (EXIF orientation not applied), so the size read from the
    header must be the stored one too, or the training set builder refuses the photo."""
    from PIL import Image

    from sspnet_cli.data import PatchDataset, training_patches

    root = tmp_path / "rot"
    _write(root / "data.yaml", "train: train/images\nnames: ['person']\n")
    image = Image.fromarray(np.random.default_rng(0).integers(0, 255, (48, 96, 3), dtype=np.uint8))
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees to display
    (root / "train" / "images").mkdir(parents=True)
    image.save(root / "train" / "images" / "r.jpg", exif=exif)
    _write(root / "train" / "labels" / "r.txt", "0 0.5 0.5 0.2 0.4\n")
    ds = open_dataset(root, split="train")
    assert (ds.images[0].width, ds.images[0].height) == (96, 48)
    patches = training_patches(ds.images, (64, 48), 8)
    item, target = PatchDataset(ds, patches, augment=False)[0]
    assert item.shape[1:] == (48, 64) and len(target["boxes"]) == 1
