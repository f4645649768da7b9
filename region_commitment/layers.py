"""The default candidate layers of a network: its block outputs (override with an explicit list).

Rule, applied to ``named_modules()`` in order:

1. the children of every homogeneous block container: an ``nn.Sequential`` / ``nn.ModuleList`` whose children all
   share one class that itself has sub-modules (ResNet ``layer1.0``, ConvNeXt ``features.1.0``, EfficientNet
   ``features.4.0``, ViT ``blocks.3``);
2. when that finds fewer than three (plain stacks such as AlexNet), every activation-function module instead;
3. then the readout candidates: global average pools, and a ``norm`` / ``fc_norm`` beside a block container (the
   final norm of a ViT, not the norms inside its blocks).
"""
from __future__ import annotations

from torch import nn

ACTIVATIONS = (nn.ReLU, nn.GELU, nn.SiLU, nn.ReLU6, nn.Hardswish)
POOLS = (nn.AdaptiveAvgPool1d, nn.AdaptiveAvgPool2d)


def candidate_layers(model: nn.Module) -> list[str]:
    blocks, holders = [], set()
    for name, module in model.named_modules():
        children = list(module.children())
        if isinstance(module, (nn.Sequential, nn.ModuleList)) and len(children) > 1 \
                and len({type(c) for c in children}) == 1 and any(True for _ in children[0].children()):
            blocks += [f"{name}.{child}" if name else child for child, _ in module.named_children()]
            holders.add(name.rsplit(".", 1)[0] if "." in name else "")
    if len(blocks) < 3:
        blocks = [name for name, module in model.named_modules() if isinstance(module, ACTIVATIONS)]
    final_norms = {f"{holder}.{norm}" if holder else norm for holder in holders for norm in ("norm", "fc_norm")}
    readouts = [name for name, module in model.named_modules() if isinstance(module, POOLS) or name in final_norms]
    return list(dict.fromkeys(blocks + readouts))
