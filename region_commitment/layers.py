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

from .errors import CommitmentError

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


STUDY, DEFAULT = "study", "default"


def study_layers(model: nn.Module) -> list[str]:
    """The search space of the scaling-primate-vvs study: every named module, as its ``get_layers(model, 'all')``
    (``brainscore/src/utils/layers.py``: no module type is skipped in that mode; the skips of its typed modes do not
    apply). Modules whose output is not a tensor, or that the forward pass never calls, cannot be scored; ``commit``
    drops them with a warning."""
    return [name for name, _ in model.named_modules() if name]


def resolve_layers(model: nn.Module | None, layers) -> tuple[list[str], str]:
    """(candidate layers, mode) for ``layers``: ``None`` / ``"default"`` (:func:`candidate_layers`), ``"study"``
    (:func:`study_layers`) or a list (mode ``"explicit"``, or that of the rule it equals). Without a torch
    ``model`` only a list can be given.

    Raises:
        CommitmentError: an unknown layer set, or a rule asked of a model without a torch module.
    """
    if model is None:
        if layers is None or isinstance(layers, str):
            raise CommitmentError("The activations model has no torch module to apply a layer rule to; pass its "
                                  "candidate layers as a list")
        return list(layers), "explicit"
    if layers is None or layers == DEFAULT:
        return candidate_layers(model), DEFAULT
    if layers == STUDY:
        return study_layers(model), STUDY
    if isinstance(layers, str):
        raise CommitmentError(f"Unknown layer set {layers!r}; pass '{DEFAULT}', '{STUDY}' or a list of layer names")
    layers = list(layers)
    return layers, next((mode for mode, rule in ((DEFAULT, candidate_layers), (STUDY, study_layers))
                         if rule(model) == layers), "explicit")
