"""Datasets: readers for TinyPerson, COCO and YOLO layouts into one representation, training
patches by the 70 % rule, their augmentation and the torch Dataset over them, and synthetic
scenes for tests.

    from sspnet_cli.data import open_dataset
    ds = open_dataset("data/tinyperson", split="valid")
    ds.images[0].boxes          # (N, 4) float32 xyxy pixels
    ds.problems                 # what was skipped, and where

    patches = PatchDataset(ds, training_patches(ds), seed=0)   # augmented (image, target) items
    loader = torch.utils.data.DataLoader(patches, batch_size=2, shuffle=True, collate_fn=collate)
"""
from sspnet_cli.data.augment import Patch, TrainAugment
from sspnet_cli.data.layout import DatasetLayout, detect_layout, list_splits, open_dataset
from sspnet_cli.data.patches import PatchRef, PatchTargets, patch_targets, training_patches
from sspnet_cli.data.sample import FLAG_NAMES, AnnotatedImage, Dataset, Problem, coco_dict
from sspnet_cli.data.synthetic import SyntheticScene, synthetic_scene, write_synthetic_dataset
from sspnet_cli.data.training_set import PatchDataset, collate, dataset_mean_colour

__all__ = [
    "FLAG_NAMES",
    "AnnotatedImage",
    "Dataset",
    "DatasetLayout",
    "Patch",
    "PatchDataset",
    "PatchRef",
    "PatchTargets",
    "Problem",
    "SyntheticScene",
    "TrainAugment",
    "coco_dict",
    "collate",
    "dataset_mean_colour",
    "detect_layout",
    "list_splits",
    "open_dataset",
    "patch_targets",
    "synthetic_scene",
    "training_patches",
    "write_synthetic_dataset",
]
