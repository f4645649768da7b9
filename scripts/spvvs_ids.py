"""How the scaling-primate-vvs study names its models and commitments (used by ``build_catalog.py`` only).

:func:`arch_and_method` parses a study model id, :func:`commitment_key` names its entry in ``commitments.json``.
"""
from __future__ import annotations

from brainscore_plugins import architectures

SSL_COMMITMENT_KEYS = frozenset({"simclr_resnet18", "simclr_resnet50", "simclr_vit_small", "dino_resnet50",
                                 "dino_vit_small", "dino_vit_base"})  # the self-supervised keys of commitments.json
_METHOD_PREFIXES = {"simclr_": "simclr", "dino_": "dino", "adv_": "adversarial"}
# commitments.json key of the supervised commitment per architecture family (default: the arch string as it is)
_COMMITMENT_NAMES = {
    "resnet": lambda m: f"ResNet{m['base'][6:]}",
    "efficientnet": lambda m: f"EfficientNet_B{m['base'][-1]}",
    "convnext": lambda m: f"ConvNeXt_{m['base'][9:].title()}",
    "alexnet": lambda m: "AlexNet",
    "vit_b_16": lambda m: "ViT_B_16",
    "cornet_s": lambda m: "CORnet_S",
    "deit": lambda m: f"DeiT_{m['size'].title()}",
}


def arch_and_method(model_id: str, arch_cell: str = "") -> tuple[str, str]:
    """(arch, training method) of a study model id; ``arch_cell`` is its ``arch`` column (may be empty).

    The method comes from the id's prefix (``simclr_``, ``dino_``, ``adv_``; else supervised). With an empty cell
    the arch is the longest ``_``-separated prefix of the rest of the id that a registry pattern matches, e.g.
    ``resnet18-adam-00001_imagenet_full`` -> ``resnet18-adam-00001``, ``vit_b_16_imagenet_10_seed-0`` ->
    ``vit_b_16``, ``simclr_resnetflexfilters-f-1-16-20-3_imagenet_full_seed-0`` -> ``resnetflexfilters-f-1-16-20-3``.
    """
    method, rest = "supervised", model_id
    for prefix, name in _METHOD_PREFIXES.items():
        if model_id.startswith(prefix):
            method, rest = name, model_id[len(prefix):]
            break
    if arch_cell:
        return arch_cell, method
    parts = rest.split("_")
    for end in range(len(parts), 0, -1):
        candidate = "_".join(parts[:end])
        if architectures.lookup(candidate):
            return candidate, method
    raise ValueError(f"cannot derive an architecture from model id {model_id!r}")


def commitment_key(arch: str, method: str = "supervised") -> str:
    """The ``commitments.json`` key of the study's layer commitment for this arch / method.

    Supervised: ``ResNet18``, ``ConvNeXt_Tiny``, ``DeiT_Tiny``, ``EfficientNet_B0``, ``AlexNet``, ``ViT_B_16``; flex
    and recipe archs as they are. ``CORnet_S`` has no entry in the file (the study hard-codes
    ``V1.output, V2.output, V4.output, IT.output``, readout ``decoder.avgpool``). SSL: ``simclr_<arch>`` /
    ``dino_<arch>`` where published; otherwise (SimCLR ResNet-34/101/152 and flex) the supervised key, whose
    backbone-relative names resolve through the SimCLR wrapper's aliases. Adversarial models have no commitments of
    their own: the supervised key of the same arch (the study's adversarial runs fine-tune those networks).
    """
    found = architectures.lookup(arch)
    if found is None:
        raise ValueError(f"unknown architecture {arch!r}")
    key, _, match = found
    if method in ("simclr", "dino") and f"{method}_{arch}" in SSL_COMMITMENT_KEYS:
        return f"{method}_{arch}"
    return _COMMITMENT_NAMES.get(key, lambda m: m.string)(match)


def checkpoint_format(method: str) -> str:
    """The family's checkpoint format of a training method: SSL models are bare ``ComposerModel`` s."""
    return "composer-ssl" if method in ("simclr", "dino") else "composer"
