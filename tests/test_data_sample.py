"""The shared representation and its COCO ground truth."""
from __future__ import annotations

import numpy as np
import pytest

from sspnet_cli.data import AnnotatedImage, Dataset, coco_dict
from sspnet_cli.data.classes import choose_classes
from sspnet_cli.errors import InputError


def _image(image_id=0, **kw):
    return AnnotatedImage(path="a.jpg", image_id=image_id, file_name="a.jpg", width=100, height=80, **kw)


def test_defaults_and_coercion():
    im = _image(boxes=[[1, 2, 3, 4]], ignore_boxes=[[5, 5, 9, 9]])
    assert im.boxes.dtype == np.float32 and im.boxes.shape == (1, 4)
    np.testing.assert_array_equal(im.box_ids, [-1])
    np.testing.assert_array_equal(im.ignore_flags, [[True, False, False]])
    empty = _image()
    assert empty.boxes.shape == (0, 4) and empty.ignore_flags.shape == (0, 3)
    with pytest.raises(ValueError, match="do not match"):
        _image(boxes=[[1, 2, 3, 4]], box_ids=[1, 2])


def test_coco_dict_round_numbers_and_flags():
    im = _image(
        image_id=42,
        boxes=[[10, 20, 15, 30]],
        ignore_boxes=[[0, 0, 4, 4], [50, 50, 60, 70]],
        ignore_flags=[[False, True, False], [True, False, True]],
    )
    gt = coco_dict([im])
    assert gt["images"] == [{"id": 42, "file_name": "a.jpg", "width": 100, "height": 80}]
    a, b, c = gt["annotations"]
    assert (a["bbox"], a["area"], a["ignore"], a["uncertain"], a["iscrowd"]) == ([10, 20, 5, 10], 50, False, False, 0)
    assert (b["ignore"], b["uncertain"], b["iscrowd"]) == (False, True, 0)
    assert (c["ignore"], c["uncertain"], c["iscrowd"], c["bbox"]) == (True, False, 1, [50, 50, 10, 20])
    assert [x["id"] for x in gt["annotations"]] == [1, 2, 3]
    with pytest.raises(ValueError, match="duplicate image id 42"):
        coco_dict([im, im])


def test_to_coco_is_usable_by_pycocotools():
    pytest.importorskip("pycocotools")
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    ds = Dataset(root=".", split="test", layout="coco", images=[
        _image(0, boxes=[[10, 10, 20, 30], [40, 40, 50, 60]], ignore_boxes=[[70, 10, 90, 30]], ignore_flags=[[False, False, True]]),
        _image(1, boxes=[[5, 5, 15, 25]]),
    ])
    gt = COCO()
    gt.dataset = ds.to_coco()
    gt.createIndex()
    dets = [
        {"image_id": a["image_id"], "category_id": 1, "bbox": a["bbox"], "score": 0.9}
        for a in gt.dataset["annotations"] if not a["iscrowd"]
    ]
    ev = COCOeval(gt, gt.loadRes(dets), "bbox")
    ev.params.areaRng = [[0, 1e10]]
    ev.params.areaRngLbl = ["all"]
    ev.evaluate()
    ev.accumulate()
    precision = ev.eval["precision"][0, :, 0, 0, -1]  # IoU 0.5, all recall points
    assert np.all(precision == 1.0)


def test_class_rule_accepts_a_single_name_or_id_string():
    names = {0: "car", 1: "Pedestrian", 2: "ignore"}
    choice = choose_classes(names, None, "x")
    assert (choice.person, choice.ignore) == ({1}, {2})
    assert choose_classes(names, "car", "x").person == {0}
    assert choose_classes(names, ["0", 1], "x").person == {0, 1}
    with pytest.raises(InputError, match="several classes look like people"):
        choose_classes({0: "person", 1: "people"}, None, "x")
