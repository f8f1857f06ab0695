"""Inference-only rewrites of a loaded model that give the same outputs for less work.

:func:`fold_batchnorm` folds every eval-mode ``BatchNorm2d`` that directly follows a ``Conv2d`` in
an ``nn.Sequential`` (all of MobileNetV2's, the ResNets' stems and blocks where laid out that way,
the SSPNet neck's context convolutions) into that convolution's weights and bias, and puts an
``nn.Identity`` in its place. A folded model's state dict no longer matches its checkpoint: fold
only a model that will not be saved or trained (the detector's copy).
"""
from __future__ import annotations

from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval


def fold_batchnorm(model: nn.Module) -> int:
    """Fold Conv2d -> BatchNorm2d pairs in place (``model`` must be in eval mode); returns how many."""
    if model.training:
        raise ValueError("fold_batchnorm needs a model in eval mode")
    folded = 0
    for module in model.modules():
        if not isinstance(module, nn.Sequential):
            continue
        names = list(module._modules)
        for first, second in zip(names, names[1:]):
            conv, norm = module._modules[first], module._modules[second]
            if (
                isinstance(conv, nn.Conv2d)
                and type(norm) is nn.BatchNorm2d
                and norm.track_running_stats
                and norm.running_mean is not None
                and norm.num_features == conv.out_channels
            ):
                module._modules[first] = fuse_conv_bn_eval(conv, norm)
                module._modules[second] = nn.Identity()
                folded += 1
    return folded
