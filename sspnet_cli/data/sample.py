"""The one internal representation every dataset reader produces.

An :class:`AnnotatedImage` holds the people of one frame as ``boxes`` (N, 4) float32 ``x1, y1,
x2, y2`` in pixels (GDAL's corner convention, so ``x2 = x + w`` for a COCO ``[x, y, w, h]``) and
the regions not to be scored as ``ignore_boxes`` (M, 4): TinyPerson's ``ignore`` and
``uncertain`` boxes and COCO's ``iscrowd`` ones are kept there, never dropped, with the flags
they carried in ``ignore_flags`` (M, 3) bool, columns in :data:`FLAG_NAMES` order.

A :class:`Dataset` is one split of one dataset: its images and every :class:`Problem` the reader
found and skipped. :meth:`Dataset.to_coco` turns any layout into COCO-style ground truth with
TinyPerson's flags, so evaluation works the same whatever layout the data came in.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Iterator, Sequence

import numpy as np

#: Columns of :attr:`AnnotatedImage.ignore_flags`.
FLAG_NAMES = ("ignore", "uncertain", "iscrowd")

#: The COCO category every person gets in :func:`coco_dict`.
PERSON_CATEGORY = {"id": 1, "name": "person", "supercategory": "person"}


def as_boxes(values: Any) -> np.ndarray:
    """``values`` (anything array-like, possibly empty) as an (N, 4) float32 array."""
    return np.asarray(values, dtype=np.float32).reshape(-1, 4)


@dataclass(frozen=True)
class Problem:
    """Something a reader skipped: which file, where in it, and what was wrong.

    ``where`` names the place the way a person would look it up: ``annotations[12] (id 345)``,
    ``images[3] (id 7)``, ``line 4``.
    """

    file: str
    where: str
    message: str

    def __str__(self) -> str:
        return f"{self.file}: {self.where}: {self.message}"


@dataclass(eq=False)
class AnnotatedImage:
    """One frame and its annotations.

    ``path`` is the image file; ``file_name`` is the name the annotations use for it (relative to
    the split's image folder for COCO/TinyPerson, to the dataset root for YOLO). ``box_ids`` and
    ``ignore_ids`` are the original annotation ids (COCO) or label-file line numbers (YOLO), -1
    where the source had none.
    """

    path: Path
    image_id: int
    file_name: str
    width: int
    height: int
    boxes: np.ndarray = field(default_factory=lambda: as_boxes([]))
    ignore_boxes: np.ndarray = field(default_factory=lambda: as_boxes([]))
    ignore_flags: np.ndarray = field(default_factory=lambda: np.zeros((0, 3), dtype=bool))
    box_ids: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    ignore_ids: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))

    def __post_init__(self) -> None:
        self.path = Path(self.path)
        self.boxes = as_boxes(self.boxes)
        self.ignore_boxes = as_boxes(self.ignore_boxes)
        n, m = len(self.boxes), len(self.ignore_boxes)
        if len(self.ignore_flags) == 0 and m:
            # a region given without its flags counts as a plain TinyPerson "ignore"
            self.ignore_flags = np.tile(np.array([True, False, False]), (m, 1))
        self.ignore_flags = np.asarray(self.ignore_flags, dtype=bool).reshape(-1, 3)
        if len(self.box_ids) == 0 and n:
            self.box_ids = np.full(n, -1, dtype=np.int64)
        if len(self.ignore_ids) == 0 and m:
            self.ignore_ids = np.full(m, -1, dtype=np.int64)
        self.box_ids = np.asarray(self.box_ids, dtype=np.int64).reshape(-1)
        self.ignore_ids = np.asarray(self.ignore_ids, dtype=np.int64).reshape(-1)
        if len(self.box_ids) != n or len(self.ignore_flags) != m or len(self.ignore_ids) != m:
            raise ValueError(
                f"{self.file_name}: {n} boxes / {len(self.box_ids)} ids, {m} ignore regions / "
                f"{len(self.ignore_flags)} flags / {len(self.ignore_ids)} ids do not match"
            )

    def resized(self, width: int, height: int) -> "AnnotatedImage":
        """This frame's annotations as they fall on the frame resized to ``width`` x ``height``
        (boxes and ignore regions scaled per axis); ``path`` still names the stored file."""
        sx, sy = width / self.width, height / self.height
        scale = np.array([sx, sy, sx, sy], dtype=np.float32)
        return replace(self, width=int(width), height=int(height), boxes=self.boxes * scale, ignore_boxes=self.ignore_boxes * scale)

    def __repr__(self) -> str:
        return (
            f"AnnotatedImage({self.file_name!r}, id={self.image_id}, {self.width}x{self.height}, "
            f"{len(self.boxes)} boxes, {len(self.ignore_boxes)} ignore)"
        )


@dataclass(eq=False)
class Dataset:
    """One split of a dataset: ``layout`` is ``"tinyperson"``, ``"coco"`` or ``"yolo"``;
    ``annotations`` the JSON or data.yaml it was read from; ``problems`` what was skipped."""

    root: Path
    split: str
    layout: str
    images: list[AnnotatedImage]
    problems: list[Problem] = field(default_factory=list)
    annotations: Path | None = None

    def __len__(self) -> int:
        return len(self.images)

    def __iter__(self) -> Iterator[AnnotatedImage]:
        return iter(self.images)

    def __getitem__(self, index: int) -> AnnotatedImage:
        return self.images[index]

    @property
    def num_boxes(self) -> int:
        """Number of people (ignore regions not counted)."""
        return sum(len(im.boxes) for im in self.images)

    @property
    def num_ignore(self) -> int:
        """Number of ignore regions (ignore, uncertain and crowd boxes)."""
        return sum(len(im.ignore_boxes) for im in self.images)

    def __repr__(self) -> str:
        return (
            f"Dataset({self.layout}, {str(self.root)!r}, split={self.split!r}, {len(self.images)} images, "
            f"{self.num_boxes} boxes, {self.num_ignore} ignore, {len(self.problems)} problems)"
        )

    def to_coco(self) -> dict[str, Any]:
        """COCO-style ground truth of this split (see :func:`coco_dict`)."""
        return coco_dict(self.images)


def coco_dict(images: Sequence[AnnotatedImage]) -> dict[str, Any]:
    """COCO-style GT for ``images``: one ``person`` category (id 1), ``bbox`` as ``[x, y, w, h]``,
    and TinyPerson's flags on every annotation: ``ignore`` and ``uncertain`` (bool) and
    ``iscrowd`` (0/1). People come first, then ignore regions; annotation ids run from 1.

    Image ids are the readers' ``image_id``; they must be unique.
    """
    out_images: list[dict[str, Any]] = []
    annotations: list[dict[str, Any]] = []
    seen: set[int] = set()
    for im in images:
        if im.image_id in seen:
            raise ValueError(f"duplicate image id {im.image_id} ({im.file_name})")
        seen.add(im.image_id)
        out_images.append({"id": im.image_id, "file_name": im.file_name, "width": im.width, "height": im.height})
        no_flags = np.zeros((len(im.boxes), 3), dtype=bool)
        for boxes, flags in ((im.boxes, no_flags), (im.ignore_boxes, im.ignore_flags)):
            for (x1, y1, x2, y2), (ignore, uncertain, crowd) in zip(boxes.tolist(), flags.tolist()):
                w, h = x2 - x1, y2 - y1
                annotations.append({
                    "id": len(annotations) + 1,
                    "image_id": im.image_id,
                    "category_id": PERSON_CATEGORY["id"],
                    "bbox": [x1, y1, w, h],
                    "area": w * h,
                    "iscrowd": int(crowd),
                    "ignore": bool(ignore),
                    "uncertain": bool(uncertain),
                })
    return {"images": out_images, "annotations": annotations, "categories": [dict(PERSON_CATEGORY)]}
