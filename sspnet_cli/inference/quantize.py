"""int8 for the dense graph of an ONNX export: static quantisation, and where it pays.

The dense graph (backbone, neck, RPN head: about two thirds of a tile's time on the CPU) is
quantised with onnxruntime's static QDQ quantisation: weights int8 per output channel, activations
uint8 with ranges measured (min/max) on calibration tiles. The R-CNN head and everything between
the graphs stay fp32. On a CPU with int8 dot-product units (AVX512-VNNI, AVX-VNNI or AMX) one
dense pass runs about 2.8x faster, and the shipped model's AP50-tiny on the valid split does not
drop (benchmarks/README.md, "int8"). Without those units onnxruntime's int8 kernels can saturate,
and the speed was not measured, so ``auto`` stays fp32 there.

Calibration tiles: ``weights/calibration/`` (crops of train frames, docs/make_calibration.py), or
any folder of images given to ``sspnet export --int8 --calibration DIR``; each is seen at scale 1
and at the model's other test scales, as detect shows tiles to the model.
"""
from __future__ import annotations

import hashlib
import tempfile
from pathlib import Path
from typing import Iterable, Iterator, Optional, Sequence, Union

import cv2
import numpy as np

from sspnet_cli.errors import SSPNetError
from sspnet_cli.inference.weights import REPO_WEIGHTS

PRECISIONS = ("auto", "fp32", "int8")
CALIBRATION_DIR = REPO_WEIGHTS / "calibration"
#: what OpenCV decodes (imagery.inputs also takes GDAL-only rasters such as .vrt, which it cannot)
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".tif", ".tiff", ".bmp")
#: the calibration method and settings, recorded in the sidecar
METHOD = {"format": "QDQ", "weights": "int8, per output channel", "activations": "uint8, min/max over the calibration tiles"}


def cpu_has_int8_dot() -> bool:
    """Whether this CPU has int8 dot-product instructions (AVX512-VNNI, AVX-VNNI or AMX), where
    onnxruntime's int8 kernels are fast and exact in their accumulation."""
    try:
        import torch

        if torch.cpu._is_vnni_supported() or torch.cpu._is_amx_tile_supported():
            return True
    except (ImportError, AttributeError, RuntimeError):
        pass
    try:  # AVX-VNNI (laptop cores since Alder Lake), which torch's check does not cover
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("flags"):
                    return bool({"avx_vnni", "avx512_vnni", "amx_int8"} & set(line.split()))
    except OSError:
        pass
    return False


def calibration_installed() -> bool:
    """Whether the shipped calibration tiles are in this install (a checkout or editable install)."""
    return CALIBRATION_DIR.is_dir() and any(p.suffix.lower() in IMAGE_SUFFIXES for p in CALIBRATION_DIR.iterdir())


def calibration_images(folder: Union[str, Path, None] = None) -> list[Path]:
    """The calibration images in ``folder`` (default: the tiles shipped in weights/calibration/),
    sorted by name; a one-line error where there are none."""
    where = Path(folder) if folder is not None else CALIBRATION_DIR
    images = sorted(p for p in where.glob("*") if p.suffix.lower() in IMAGE_SUFFIXES) if where.is_dir() else []
    if not images:
        if folder is None:
            raise SSPNetError(
                f"int8 needs calibration tiles, and {CALIBRATION_DIR} has none in this install; "
                "use --precision fp32, or export with `sspnet export --int8 --calibration DIR`"
            )
        raise SSPNetError(f"{where}: no calibration images (.jpg, .png, .tif) in it")
    return images


def calibration_digest(images: Sequence[Path]) -> str:
    """A short digest of the calibration images' bytes (part of an int8 export's identity)."""
    h = hashlib.sha256()
    for p in images:
        h.update(p.name.encode())
        h.update(p.read_bytes())
    return h.hexdigest()[:16]


def calibration_inputs(images: Sequence[Path], scales: Sequence[float], tile: tuple[int, int], divisible: int) -> Iterator[np.ndarray]:
    """The dense graph's inputs for calibration: each image, cut to at most one ``tile`` (its
    top-left corner), at each of ``scales``, padded to a multiple of ``divisible`` with the
    edge's own pixels, as (1, 3, H, W) float32 RGB on the 0-255 scale."""
    for path in images:
        img = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if img is None:
            raise SSPNetError(f"{path}: not a readable image")
        img = img[: tile[1], : tile[0], ::-1]
        for s in scales:
            view = img if s == 1 else cv2.resize(img, None, fx=s, fy=s, interpolation=cv2.INTER_LINEAR)
            h, w = view.shape[:2]
            ph, pw = -(-h // divisible) * divisible - h, -(-w // divisible) * divisible - w
            if ph or pw:
                view = cv2.copyMakeBorder(view, 0, ph, 0, pw, cv2.BORDER_REPLICATE)
            yield np.ascontiguousarray(view.transpose(2, 0, 1)[None], dtype=np.float32)


def quantize_dense(dense: Path, out: Path, inputs: Iterable[np.ndarray]) -> None:
    """Write ``dense`` (an fp32 dense graph) quantised to int8 to ``out``, activation ranges
    measured on ``inputs`` (the graph's ``image``)."""
    try:
        from onnxruntime.quantization import CalibrationDataReader, CalibrationMethod, QuantFormat, QuantType, quantize_static
        from onnxruntime.quantization.shape_inference import quant_pre_process
    except ImportError:
        raise SSPNetError("an int8 export needs onnxruntime: pip install onnxruntime") from None

    class _Reader(CalibrationDataReader):
        def __init__(self, items: Iterable[np.ndarray]) -> None:
            self.items = iter(items)

        def get_next(self) -> Optional[dict[str, np.ndarray]]:
            item = next(self.items, None)
            return None if item is None else {"image": item}

    with tempfile.TemporaryDirectory(dir=out.parent) as tmp:
        prepared = Path(tmp) / "prepared.onnx"
        # shape inference and graph clean-up first, as onnxruntime's quantisation guide asks
        quant_pre_process(str(dense), str(prepared), skip_symbolic_shape=True)
        quantize_static(
            str(prepared), str(out), _Reader(inputs), quant_format=QuantFormat.QDQ, per_channel=True,
            activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8, calibrate_method=CalibrationMethod.MinMax,
        )
