"""Width/depth-scaled architectures of the study ("flex" models), re-implemented from its training code.

ResNet-Flex (``training/src/models/resnet.py``: ``ResNetFlexFilters``, ``create_resnetflex_model``)
    A torchvision ResNet with BasicBlocks, stem width ``filters[0]`` and stage widths ``filters[1:]``; a stage with
    0 blocks is an ``nn.Identity`` and the classifier reads the last non-empty stage. Module / key names are
    torchvision's (``conv1, bn1, layer1.0.conv1, layer2.0.downsample.0, fc``). Arch strings of the catalog:

    * ``resnetflexfilters-d-a-b-c-e``: depth form, blocks per stage ``[a, b, c, e]``, widths of ResNet-18.
    * ``resnetflexfilters_wr-S-start-end-num-k``: width form with scale S: widths ``[64,64,128,256,512]*S`` divided
      by ``geomspace(start, end, num)[k]``, rounded to multiples of 8 (``r``), two blocks per stage.
    * ``resnetflexfilters-f-start-end-num-k``: the code's parser knows only letters ``w``/``d``; the ``f`` ids are
      the width form with the parser's 4-number default scale 2, widths truncated (``astype(int)``, no ``r``).
      This reproduces every published parameter count of the ``f`` ids (the odd counts such as 2,629,857 only
      arise from truncation).

ConvNeXt-Flex (``training/src/models/convnext.py``: ``create_convnextflex_model``)
    torchvision ConvNeXt with ConvNeXt-T depths ``[3,3,9,3]`` and widths ``round([96,192,384,768] / d / 8) * 8``,
    ``d = geomspace(1, 8, 4 + 1)[k + 1]`` for ``convnextflex-l-k`` (``cfgs/runai/convnext/convnextflex.yaml``:
    geomspace 1 -> 8, 4 steps), LayerScale 1e-6.

DeiT-Flex (``training/src/models/deit.py``: ``create_deitflex_model``)
    DeiT-III ViT-S (depth 12, 6 heads) with width ``round(384 / d / 6) * 6``, same ``d`` as ConvNeXt-Flex
    (``cfgs/runai/deit/deitflex.yaml``), ``no_embed_class=True``, LayerScale 1e-4.
"""
from __future__ import annotations

import re

import numpy as np
from torch import nn
from torchvision.models.convnext import CNBlockConfig, ConvNeXt
from torchvision.models.resnet import BasicBlock, ResNet

from .vit import deit3_vit

RESNET18_WIDTHS = (64, 64, 128, 256, 512)
FLEX_GEOMSPACE = (1, 8, 4)  # geomspace_start / end / num of convnextflex.yaml and deitflex.yaml

RESNETFLEX_PATTERN = re.compile(r"resnetflexfilters(?P<sep>[-_])(?P<config>[a-z]+(?:-\d+)+)")
CONVNEXTFLEX_PATTERN = re.compile(r"convnextflex-l-(?P<k>\d+)")
DEITFLEX_PATTERN = re.compile(r"deitflex-l-(?P<k>\d+)")


class ResNetFlex(ResNet):
    """torchvision's ResNet with free stage widths and depths (its ``_make_layer`` builds the stages)."""

    def __init__(self, depths: list[int], widths: list[int], num_classes: int = 1000):
        nn.Module.__init__(self)
        self._norm_layer = nn.BatchNorm2d
        self.dilation, self.groups, self.base_width = 1, 1, 64
        self.inplanes = widths[0]
        self.conv1 = nn.Conv2d(3, self.inplanes, kernel_size=7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(self.inplanes)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        self.layer1 = self._make_layer(BasicBlock, widths[1], depths[0])
        last = widths[1] * BasicBlock.expansion
        for i in range(1, 4):
            if depths[i] > 0:
                setattr(self, f"layer{i + 1}", self._make_layer(BasicBlock, widths[i + 1], depths[i], stride=2))
                last = widths[i + 1] * BasicBlock.expansion
            else:
                setattr(self, f"layer{i + 1}", nn.Identity())
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(last, num_classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)


def resnetflex_config(arch: str) -> tuple[list[int], list[int]]:
    """(blocks per stage, [stem, stage1..4] widths) for a ``resnetflexfilters`` arch string."""
    match = RESNETFLEX_PATTERN.fullmatch(arch)
    if not match:
        raise ValueError(f"not a resnetflexfilters arch: {arch!r}")
    letters, *numbers = match["config"].split("-")
    numbers = [int(n) for n in numbers]
    if letters == "d":
        if len(numbers) != 4:
            raise ValueError(f"{arch}: the depth form needs 4 stage depths")
        return numbers, list(RESNET18_WIDTHS)
    if letters in ("w", "wr", "f"):
        if len(numbers) == 4:
            scale, (start, end, num, k) = 2, numbers
        elif len(numbers) == 5:
            scale, start, end, num, k = numbers
        else:
            raise ValueError(f"{arch}: the width form needs 4 or 5 numbers")
        if not 0 <= k < num:
            raise ValueError(f"{arch}: divisor index {k} outside geomspace of {num}")
        filters = np.array(RESNET18_WIDTHS) * scale / np.geomspace(start, end, num)[k]
        widths = np.round(filters / 8).astype(int) * 8 if "r" in letters else filters.astype(int)
        return [2, 2, 2, 2], [int(w) for w in widths]
    raise ValueError(f"{arch}: unknown resnetflexfilters config letters {letters!r}")


def build_resnetflex(arch: str, num_classes: int = 1000) -> ResNetFlex:
    depths, widths = resnetflex_config(arch)
    return ResNetFlex(depths, widths, num_classes)


def _flex_divisor(k: int) -> float:
    start, end, num = FLEX_GEOMSPACE
    if not 0 <= k < num:
        raise ValueError(f"flex index {k} outside 0..{num - 1}")
    return float(np.geomspace(start, end, num + 1)[k + 1])  # the first divisor (1) is skipped


def convnextflex_widths(k: int) -> list[int]:
    return [int(w) for w in np.round(np.array([96, 192, 384, 768]) / _flex_divisor(k) / 8).astype(int) * 8]


def build_convnextflex(arch: str, num_classes: int = 1000, **kwargs) -> ConvNeXt:
    k = int(CONVNEXTFLEX_PATTERN.fullmatch(arch)["k"])
    w = convnextflex_widths(k)
    depths = [3, 3, 9, 3]
    setting = [CNBlockConfig(w[i], w[i + 1] if i < 3 else None, depths[i]) for i in range(4)]
    return ConvNeXt(setting, num_classes=num_classes, **{"stochastic_depth_prob": 0.0, "layer_scale": 1e-6, **kwargs})


def deitflex_width(k: int) -> int:
    return int(np.round(384 / _flex_divisor(k) / 6).astype(int) * 6)


def build_deitflex(arch: str, num_classes: int = 1000, **kwargs):
    k = int(DEITFLEX_PATTERN.fullmatch(arch)["k"])
    return deit3_vit(deitflex_width(k), 12, 6, num_classes, **kwargs)


__all__ = ["ResNetFlex", "build_resnetflex", "build_convnextflex", "build_deitflex", "resnetflex_config",
           "convnextflex_widths", "deitflex_width"]
