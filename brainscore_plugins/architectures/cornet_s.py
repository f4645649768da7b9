"""CORnet-S as the study trained it (``training/src/models/cornet.py`` of scaling-primate-vvs).

Re-implementation of the published CORnet-S definition (Kubilius et al. 2019, https://github.com/dicarlolab/CORnet)
in the study's variant: every area ends in an ``output`` Identity (so ``V1.output`` ... ``IT.output`` can be read
out), the decoder is ``avgpool, flatten, linear, output``. The study's Composer model stores
``CORnet_S_TORCH(...).model`` -- the ``Sequential`` of ``V1, V2, V4, IT, decoder`` -- as its ``module``, so the
checkpoint keys are ``module.V1.conv1.weight``, ..., ``module.decoder.linear.bias``; this builder returns that
``Sequential`` (keys without the ``module.`` prefix).
"""
from __future__ import annotations

import math
from collections import OrderedDict

import torch
from torch import nn


class CORblockS(nn.Module):
    """Recurrent bottleneck area; ``times`` unrolled steps with one set of convolutions and per-step BatchNorms."""

    scale = 4

    def __init__(self, in_channels: int, out_channels: int, times: int = 1):
        super().__init__()
        self.times = times
        wide = out_channels * self.scale
        self.conv_input = nn.Conv2d(in_channels, out_channels, kernel_size=1, bias=False)
        self.skip = nn.Conv2d(out_channels, out_channels, kernel_size=1, stride=2, bias=False)
        self.norm_skip = nn.BatchNorm2d(out_channels)
        self.conv1 = nn.Conv2d(out_channels, wide, kernel_size=1, bias=False)
        self.nonlin1 = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(wide, wide, kernel_size=3, stride=2, padding=1, bias=False)
        self.nonlin2 = nn.ReLU(inplace=True)
        self.conv3 = nn.Conv2d(wide, out_channels, kernel_size=1, bias=False)
        self.nonlin3 = nn.ReLU(inplace=True)
        self.output = nn.Identity()
        for t in range(times):
            setattr(self, f"norm1_{t}", nn.BatchNorm2d(wide))
            setattr(self, f"norm2_{t}", nn.BatchNorm2d(wide))
            setattr(self, f"norm3_{t}", nn.BatchNorm2d(out_channels))

    def forward(self, inp: torch.Tensor) -> torch.Tensor:
        x = self.conv_input(inp)
        for t in range(self.times):
            skip = self.norm_skip(self.skip(x)) if t == 0 else x
            self.conv2.stride = (2, 2) if t == 0 else (1, 1)  # only the first step downsamples
            x = self.nonlin1(getattr(self, f"norm1_{t}")(self.conv1(x)))
            x = self.nonlin2(getattr(self, f"norm2_{t}")(self.conv2(x)))
            x = getattr(self, f"norm3_{t}")(self.conv3(x))
            x = self.nonlin3(x + skip)
            out = self.output(x)
        return out


def _init_weights(model: nn.Module) -> None:
    """The CORnet initialisation (He normal with fan-out, BN to identity); works on the meta device."""
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            fan_out = m.kernel_size[0] * m.kernel_size[1] * m.out_channels
            nn.init.normal_(m.weight, 0.0, math.sqrt(2.0 / fan_out))
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)


def build_cornet_s(num_classes: int = 1000) -> nn.Sequential:
    v1 = nn.Sequential(OrderedDict([
        ("conv1", nn.Conv2d(3, 64, kernel_size=7, stride=2, padding=3, bias=False)),
        ("norm1", nn.BatchNorm2d(64)),
        ("nonlin1", nn.ReLU(inplace=True)),
        ("pool", nn.MaxPool2d(kernel_size=3, stride=2, padding=1)),
        ("conv2", nn.Conv2d(64, 64, kernel_size=3, stride=1, padding=1, bias=False)),
        ("norm2", nn.BatchNorm2d(64)),
        ("nonlin2", nn.ReLU(inplace=True)),
        ("output", nn.Identity()),
    ]))
    decoder = nn.Sequential(OrderedDict([
        ("avgpool", nn.AdaptiveAvgPool2d(1)),
        ("flatten", nn.Flatten()),
        ("linear", nn.Linear(512, num_classes)),
        ("output", nn.Identity()),
    ]))
    model = nn.Sequential(OrderedDict([
        ("V1", v1),
        ("V2", CORblockS(64, 128, times=2)),
        ("V4", CORblockS(128, 256, times=4)),
        ("IT", CORblockS(256, 512, times=2)),
        ("decoder", decoder),
    ]))
    _init_weights(model)
    return model
