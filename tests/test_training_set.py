"""Training patches: ignore regions painted, 70 % rule applied, deterministic per (seed, epoch, index)."""
import numpy as np
import torch

from sspnet_cli.data import AnnotatedImage, Dataset, PatchRef, open_dataset, training_patches, write_synthetic_dataset
from sspnet_cli.data.training_set import PatchDataset, collate, paint
from sspnet_cli.types import Window


def one_image_dataset(tmp_path):
    import cv2

    img = np.full((300, 400, 3), 90, np.uint8)
    img[50:70, 60:70] = (255, 0, 0)  # a person
    img[200:240, 300:340] = (0, 255, 0)  # an ignore region
    path = tmp_path / "f.png"
    cv2.imwrite(str(path), cv2.cvtColor(img, cv2.COLOR_RGB2BGR))
    im = AnnotatedImage(
        path=path, image_id=1, file_name="f.png", width=400, height=300,
        boxes=np.array([[60, 50, 70, 70], [395, 100, 405, 110]], np.float32),
        ignore_boxes=np.array([[300, 200, 340, 240]], np.float32),
        ignore_flags=np.array([[True, False, False]]),
        box_ids=np.array([1, 2]), ignore_ids=np.array([3]),
    )
    return Dataset(tmp_path, "train", "coco", [im])


def test_ignore_regions_are_painted_and_cut_boxes_become_ignore(tmp_path):
    ds = one_image_dataset(tmp_path)
    # window covering x 0..390: the second person (395..405) lies half outside -> becomes ignore
    patches = [PatchRef(0, Window(0, 0, 390, 300))]
    item = PatchDataset(ds, patches, augment=False, mean_colour=(10, 20, 30))
    image, target = item[0]
    assert target["boxes"].tolist() == [[60, 50, 70, 70]]
    assert target["labels"].tolist() == [1]
    pixels = (image * 255).round().to(torch.uint8).permute(1, 2, 0).numpy()
    assert (pixels[210, 310] == [10, 20, 30]).all()  # the ignore region
    assert (pixels[60, 65] == [255, 0, 0]).all()  # the person is untouched


def test_paint_covers_fractional_boxes():
    img = np.zeros((10, 10, 3), np.uint8)
    paint(img, np.array([[1.5, 2.2, 3.1, 4.0]], np.float32), (9, 9, 9))
    assert img[2:4, 1:4].min() == 9 and img.sum() == 9 * 3 * 6


def test_deterministic_by_seed_epoch_index(tmp_path):
    root = write_synthetic_dataset(tmp_path / "ds", layout="tinyperson", splits={"train": 2}, size=(640, 512), seed=3)
    ds = open_dataset(root, split="train")
    patches = training_patches(ds.images)
    a, b = PatchDataset(ds, patches, seed=5), PatchDataset(ds, patches, seed=5)
    x1, t1 = a[0]
    x2, t2 = b[0]
    assert torch.equal(x1, x2) and torch.equal(t1["boxes"], t2["boxes"])
    b.set_epoch(1)
    x3, _ = b[0]
    assert not (x3.shape == x1.shape and torch.equal(x3, x1))


def test_dataloader_batches(tmp_path):
    root = write_synthetic_dataset(tmp_path / "ds", layout="coco", splits={"train": 3}, size=(320, 256), seed=4)
    ds = open_dataset(root, split="train")
    data = PatchDataset(ds, training_patches(ds.images), seed=0)
    loader = torch.utils.data.DataLoader(data, batch_size=2, collate_fn=collate, num_workers=0)
    images, targets = next(iter(loader))
    assert len(images) == 2 and images[0].dtype == torch.float32 and images[0].shape[0] == 3
    assert float(images[0].max()) <= 1.0 and targets[0]["boxes"].shape[1] == 4
