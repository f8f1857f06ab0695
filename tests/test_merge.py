"""Cross-tile merging: cut persons become one box, nodata never yields detections."""
import torch

from sspnet_cli.inference.merge import merge_frame, tile_to_frame
from sspnet_cli.imagery.tiling import window_grid


def det(boxes, scores):
    return {
        "boxes": torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4),
        "scores": torch.tensor(scores, dtype=torch.float32),
        "labels": torch.ones(len(scores), dtype=torch.long),
    }


def test_person_cut_by_a_tile_border_ends_up_as_one_box():
    frame = (1250, 512)
    windows = window_grid(*frame)  # x = 0, 610
    assert [w.x for w in windows] == [0, 610]
    # a person at x 630..645 (frame): tile 0 sees its left part (630..640), tile 1 sees it whole
    a, cut_a = tile_to_frame(det([[630, 100, 640, 118]], [0.8]), windows[0], frame)
    b, cut_b = tile_to_frame(det([[20, 100, 35, 118]], [0.7]), windows[1], frame)
    assert cut_a.tolist() == [True] and cut_b.tolist() == [False]
    merged = merge_frame([(a, cut_a, 0), (b, cut_b, 1)], windows, nms_iou=0.5)
    assert len(merged) == 1
    assert merged.boxes[0].tolist() == [630, 100, 645, 118]  # the whole person, not the cut part
    # here NMS alone would also merge them (IoU 10/15); with a smaller cut part (IoU 4/15) plain
    # NMS keeps both, while dropping cut boxes held whole elsewhere still gives one:
    a2, c2 = tile_to_frame(det([[636, 100, 640, 118]], [0.9]), windows[0], frame)
    b2, d2 = tile_to_frame(det([[26, 100, 41, 118]], [0.7]), windows[1], frame)  # 636..651
    merged = merge_frame([(a2, c2, 0), (b2, d2, 1)], windows, nms_iou=0.5)
    assert merged.boxes.tolist() == [[636, 100, 651, 118]]


def test_cut_box_that_no_window_holds_whole_is_kept():
    frame = (1250, 512)
    windows = window_grid(*frame)
    # a big object (60 px) straddles the overlap: neither tile sees it whole
    a, ca = tile_to_frame(det([[600, 10, 640, 80]], [0.9]), windows[0], frame)
    merged = merge_frame([(a, ca, 0)], windows, nms_iou=0.5)
    assert len(merged) == 1


def test_frame_border_is_not_a_cut():
    frame = (640, 512)
    w = window_grid(*frame)[0]
    _, cut = tile_to_frame(det([[0, 0, 10, 10], [630, 500, 640, 512]], [0.9, 0.9]), w, frame)
    assert cut.tolist() == [False, False]


def test_nodata_and_padding_never_give_detections_and_boxes_stay_in_the_frame():
    frame = (300, 200)  # smaller than a tile: the window reaches past it, padding is invalid
    window = window_grid(*frame)[0]
    valid = torch.zeros(512, 640, dtype=torch.bool)
    valid[:200, :300] = True
    valid[50:100, 50:100] = False  # a nodata hole
    d, _ = tile_to_frame(
        det([[10, 10, 20, 20], [60, 60, 70, 70], [400, 300, 420, 320], [290, 190, 310, 210]], [0.9] * 4),
        window,
        frame,
        valid,
    )
    # kept: only the first; the second is centred in the hole, the third in padding, the last
    # has its centre pixel (300, 200) just past the frame
    assert d.boxes.tolist() == [[10, 10, 20, 20]]
    d, _ = tile_to_frame(det([[280, 180, 310, 205]], [0.9]), window, frame, valid)
    assert d.boxes.tolist() == [[280, 180, 300, 200]]  # clipped to the frame


def test_merge_sorts_by_score_and_applies_the_threshold():
    frame = (640, 512)
    w = window_grid(*frame)
    d, c = tile_to_frame(det([[0, 0, 10, 10], [100, 100, 110, 110], [1, 1, 11, 11]], [0.4, 0.9, 0.2]), w[0], frame)
    merged = merge_frame([(d, c, 0)], w, nms_iou=0.5, score_thr=0.3)
    assert merged.scores.tolist() == [0.8999999761581421, 0.4000000059604645]
    assert len(merge_frame([], w, 0.5)) == 0
