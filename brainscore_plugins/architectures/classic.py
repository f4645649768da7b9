"""Stock torchvision classifiers as the study created them (``training/src/models/{resnet,efficientnet,convnext,
others}.py``: ``torchvision.models.<arch>(weights=None)``, the last Linear replaced for ``num_classes != 1000``,
which gives exactly the shapes of ``torchvision.models.<arch>(num_classes=...)``)."""
from __future__ import annotations

import torchvision
from torch import nn


def build_torchvision(name: str, num_classes: int = 1000, **kwargs) -> nn.Module:
    return getattr(torchvision.models, name)(weights=None, num_classes=num_classes, **kwargs)
