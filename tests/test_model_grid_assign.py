"""The sparse (grid) assignment equals the dense all-anchors x all-GTs one, bit for bit."""
import pytest
import torch

from sspnet_cli.config import default_anchors
from sspnet_cli.model.anchors import AnchorGenerator
from sspnet_cli.model.sampling import MaxIoUAssigner, _pairwise_inter, candidate_pairs

RPN_RULE = (0.7, 0.3, 0.3)  # RPN: positive, negative, low-quality floor
RETINA_RULE = (0.5, 0.4, 0.0)  # RetinaNet: every GT keeps its best anchors


def anchors_for(detector: str, height: int, width: int):
    cfg = default_anchors(detector)
    gen = AnchorGenerator(cfg.scales, cfg.ratios, cfg.strides)
    sizes = [(-(-height // s), -(-width // s)) for s in cfg.strides]
    return torch.cat(gen.grid_anchors(sizes, torch.device("cpu"))), gen.grid(sizes)


def random_people(n: int, height: int, width: int, g: torch.Generator) -> torch.Tensor:
    xy = torch.rand(n, 2, generator=g) * torch.tensor([width + 40.0, height + 40.0]) - 20
    wh = torch.rand(n, 2, generator=g) ** 3 * 120 + 0.3  # mostly tiny, some large
    return torch.cat([xy, xy + wh], 1)


def assert_same(gt, anchors, grid, rule):
    assigner = MaxIoUAssigner(*rule, low_quality=True)
    dense = assigner._assign_dense(gt.float(), anchors)
    sparse = assigner(gt, anchors, grid)
    assert torch.equal(dense.matched, sparse.matched)
    assert torch.equal(dense.max_iof, sparse.max_iof)
    return dense


@pytest.mark.parametrize("detector,rule", [("faster_rcnn", RPN_RULE), ("retinanet", RETINA_RULE)])
def test_random_frames_assign_exactly_as_dense(detector, rule):
    g = torch.Generator().manual_seed(1)
    for height, width in ((256, 320), (200, 264)):  # the second: odd-sized levels
        anchors, grid = anchors_for(detector, height, width)
        positives = 0
        for trial in range(6):
            gt = random_people(int(torch.randint(1, 60, (1,), generator=g)), height, width, g)
            if trial == 1:
                gt = torch.cat([gt, gt[:3]])  # duplicated people: tied IoUs
            if trial == 2:
                gt[0] = torch.tensor([50.0, 50.0, 50.0, 58.0])  # zero width
            positives += int((assert_same(gt, anchors, grid, rule).matched >= 0).sum())
        assert positives > 0  # the rule was exercised, not only negatives


def test_candidate_pairs_hold_every_overlapping_anchor():
    g = torch.Generator().manual_seed(2)
    anchors, grid = anchors_for("faster_rcnn", 256, 320)
    gt = random_people(30, 256, 320, g)
    gi, ai = candidate_pairs(gt, grid)
    overlapping = torch.nonzero(_pairwise_inter(gt, anchors) > 0)
    have = set(zip(gi.tolist(), ai.tolist()))
    assert all((int(i), int(a)) in have for i, a in overlapping)
    assert len(gi) < 0.1 * len(gt) * len(anchors)  # and far fewer pairs than dense


def test_a_grid_of_another_layout_is_refused():
    anchors, _ = anchors_for("faster_rcnn", 256, 320)
    _, other = anchors_for("faster_rcnn", 128, 160)
    with pytest.raises(ValueError):
        MaxIoUAssigner(*RPN_RULE, low_quality=True)(torch.tensor([[0.0, 0, 10, 10]]), anchors, other)


def test_real_tinyperson_patches_assign_exactly_as_dense(shared_dir):
    from sspnet_cli.data import open_dataset, patch_targets, training_patches

    data = shared_dir / "data" / "tinyperson-rf"
    if not data.is_dir():
        pytest.skip("tinyperson-rf not in the shared folder (SSPNET_SHARED_DIR points at the real-data folder)")
    ds = open_dataset(data, split="valid")
    anchors, grid = anchors_for("faster_rcnn", 512, 640)
    refs = training_patches(ds.images, (640, 512), 30)
    for ref in refs[:: max(1, len(refs) // 3)][:3]:
        gt = torch.from_numpy(patch_targets(ds.images[ref.image_index], ref.window).boxes)
        assert len(gt) > 0
        assert_same(gt, anchors, grid, RPN_RULE)
