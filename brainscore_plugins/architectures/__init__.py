"""Architectures of the scaling-primate-vvs study (Gokce & Schrimpf, arXiv:2411.05712), checkpoint-faithful.

Public API: :func:`build`, :func:`unsupported_reason`, :func:`count_parameters`, :func:`arch_and_method`,
:func:`commitment_key`, and :data:`REGISTRY` (pattern -> family spec). ``arch`` is the ``arch`` string of the
study's ``model_checkpoints.csv`` (or the one :func:`arch_and_method` derives for ids whose cell is empty);
``method`` is ``supervised``, ``adversarial``, ``simclr`` or ``dino``.

Checkpoint key layout (what :func:`build` reproduces; read from the study's ``training/src/models/*.py``)
-------------------------------------------------------------------------------------------------------
Composer checkpoints hold the weights at ``ckpt['state']['model']``; ConvNeXt and DeiT (trained with timm's
``ModelEmaV3`` through ``utils/composer_utils.py:EmaWithEvalTIMM``) also at ``ckpt['state']['model_ema_state_dict']``
(saved with timm's ``get_state_dict``, which unwraps the EMA wrapper, so same keys), which the study's loaders use
for those two families (``artifacts_helpers.py``: ``load_model_ema`` iff ``convnext`` or ``deit`` in the arch).
Composer strips DDP's own ``module.`` before saving.

* supervised (``base.py:ClassifierBase`` is a ``ComposerClassifier``; the network is its ``module`` attribute):
  ``module.<network keys>``; losses / torchmetrics hold no persistent state. Strip ``module.`` and the keys are
  those of the network :func:`build` returns (torchvision names for ResNet/EfficientNet/ConvNeXt/AlexNet/
  ViT-B/16 and the flex ResNets/ConvNeXts, timm ``VisionTransformer`` names for DeiT, ``V1..decoder`` for CORnet-S).
* adversarial (``adversarial.py:AdvModel``, also a ``ComposerClassifier`` around the same network): ``module.*``
  exactly as supervised. The attack (``torchattacks`` ``Attack`` is a plain ``object``) and its normalisation
  constants are not modules or buffers, so there is no extra wrapper or normalisation layer in the weights.
* simclr / dino (``ssl.py``: ``SSLBase`` is a bare ``ComposerModel``): no ``module.`` prefix; see
  :mod:`.ssl` for ``backbone.*``/``head.*`` and ``student_backbone.*``/``teacher_backbone.*``/``student_head.*``/
  ``teacher_head.*``/``loss_func.center``.

Parameter counts: ``benchmark_scores.csv``'s ``n_params`` is the supervised classifier's count with a 1000-class
head, SSL ids included; :func:`count_parameters` (``method='supervised'``) reproduces it for every published row.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Callable

import torch
from torch import nn

from . import classic, cornet_s, flex, humanlike, ssl, vit

METHODS = ("supervised", "adversarial", "simclr", "dino", "mae", "mae-finetuned")
# humanlike-vits (arXiv:2308.03712): "mae" = MAE-pretrained encoder (no head), "mae-finetuned" = its ImageNet
# finetuned classifier. Their checkpoints are MAE's ``save_model`` dicts (see :func:`checkpoint_layout`).
MAE_METHODS = ("mae", "mae-finetuned")
_METHOD_PREFIXES = {"simclr_": "simclr", "dino_": "dino", "adv_": "adversarial"}


@dataclass(frozen=True)
class ArchSpec:
    """One family: a full-match pattern for the arch string, a builder, and what the study calls it."""

    family: str
    pattern: re.Pattern
    builder: Callable[[re.Match, int], nn.Module]
    methods: tuple[str, ...] = ("supervised",)
    commitment_name: Callable[[re.Match], str] = lambda m: m.string


def _tv(m: re.Match, num_classes: int) -> nn.Module:
    return classic.build_torchvision(m["base"], num_classes)


_RESNET_DEPTHS = "18|34|50|101|152"
REGISTRY: dict[str, ArchSpec] = {
    "resnet": ArchSpec("ResNet", re.compile(rf"(?P<base>resnet(?:{_RESNET_DEPTHS}))"), _tv,
                       ("supervised", "adversarial", "simclr", "dino"), lambda m: f"ResNet{m['base'][6:]}"),
    # Recipe ablations (optimizer / schedule / augmentation variants): torchvision ResNets, commitments keyed as is.
    "resnet_recipe": ArchSpec("ResNet", re.compile(rf"(?P<base>resnet(?:{_RESNET_DEPTHS}))(?:-[a-z0-9]+)+"), _tv),
    "efficientnet": ArchSpec("EfficientNet", re.compile(r"(?P<base>efficientnet_b[0-2])"), _tv,
                             commitment_name=lambda m: f"EfficientNet_B{m['base'][-1]}"),
    "convnext": ArchSpec("ConvNeXt", re.compile(r"(?P<base>convnext_(?:tiny|small|base|large))"), _tv,
                         commitment_name=lambda m: f"ConvNeXt_{m['base'][9:].title()}"),
    "alexnet": ArchSpec("AlexNet", re.compile(r"(?P<base>alexnet)"), _tv, commitment_name=lambda m: "AlexNet"),
    "vit_b_16": ArchSpec("ViT", re.compile(r"(?P<base>vit_b_16)"), _tv, commitment_name=lambda m: "ViT_B_16"),
    "cornet_s": ArchSpec("CORnet-S", re.compile(r"cornet_s"), lambda m, n: cornet_s.build_cornet_s(n),
                         commitment_name=lambda m: "CORnet_S"),
    "deit": ArchSpec("DeiT", re.compile(r"deit_(?P<size>tiny|small|base|large)"),
                     lambda m, n: vit.build_deit(m["size"], n),
                     commitment_name=lambda m: f"DeiT_{m['size'].title()}"),
    "vit_ssl": ArchSpec("ViT", re.compile(r"vit_(?P<size>small|base)"), lambda m, n: vit.build_timm_vit(m["size"], n),
                        ("supervised", "simclr", "dino")),
    "resnetflex": ArchSpec("ResNetFlex", flex.RESNETFLEX_PATTERN, lambda m, n: flex.build_resnetflex(m.string, n),
                           ("supervised", "adversarial", "simclr")),
    "convnextflex": ArchSpec("ConvNeXtFlex", flex.CONVNEXTFLEX_PATTERN,
                             lambda m, n: flex.build_convnextflex(m.string, n)),
    "deitflex": ArchSpec("ViTFlex", flex.DEITFLEX_PATTERN, lambda m, n: flex.build_deitflex(m.string, n)),
    "humanlike_vit": ArchSpec("HumanlikeViT", humanlike.PATTERN, lambda m, n: humanlike.build(m.string, n),
                              MAE_METHODS),
}

# Self-supervised commitments in commitments.json (the others fall back to the supervised key; see commitment_key).
SSL_COMMITMENT_KEYS = frozenset({"simclr_resnet18", "simclr_resnet50", "simclr_vit_small", "dino_resnet50",
                                 "dino_vit_small", "dino_vit_base"})


def _lookup(arch: str) -> tuple[ArchSpec, re.Match] | None:
    for spec in REGISTRY.values():
        match = spec.pattern.fullmatch(arch)
        if match:
            return spec, match
    return None


def unsupported_reason(arch: str, method: str = "supervised") -> str | None:
    """Why ``build(arch, method=method)`` cannot give the published architecture; ``None`` if it can."""
    if method not in METHODS:
        return f"unknown training method {method!r} (known: {', '.join(METHODS)})"
    found = _lookup(arch)
    if found is None:
        return f"unknown architecture {arch!r}: no family of the scaling-primate-vvs study matches it"
    spec, _ = found
    if method not in spec.methods:
        return f"the study trained no {method} {spec.family} models ({arch!r})"
    try:
        if spec is REGISTRY["resnetflex"]:
            flex.resnetflex_config(arch)
    except ValueError as error:
        return str(error)
    return None


def build(arch: str, num_classes: int = 1000, method: str = "supervised") -> nn.Module:
    """The network whose ``state_dict()`` equals the checkpoint's weights (``module.`` stripped), randomly initialised.

    Classifiers (supervised, adversarial) return logits; SSL wrappers return backbone features (DINO: teacher).
    Works under ``with torch.device('meta')``. SSL wrappers ignore ``num_classes`` (their classifier is removed).
    """
    reason = unsupported_reason(arch, method)
    if reason:
        raise ValueError(reason)
    spec, match = _lookup(arch)
    if method == "simclr":
        return ssl.SimCLRModel(spec.builder(match, 1000))
    if method == "dino":
        return ssl.DINOModel(spec.builder(match, 1000), spec.builder(match, 1000))
    return spec.builder(match, num_classes)


def checkpoint_prefix(method: str) -> str:
    """The wrapper prefix of the checkpoint's weight keys: ``module.`` for Composer classifiers, none for SSL / MAE."""
    return "" if method in ("simclr", "dino", *MAE_METHODS) else "module."


@dataclass(frozen=True)
class CheckpointLayout:
    """Where a family's weights sit in its checkpoint dict and which of its keys are not part of the network."""

    container: str | None  # ``checkpoint[container][weights_key]``; None: ``checkpoint[weights_key]``
    prefix: str  # wrapper prefix stripped from every key
    ignore: tuple[str, ...] = ()  # key prefixes of training-only modules (MAE's decoder), ignored by name
    resample_pos_embed: bool = False  # resample ``pos_embed`` to the model's grid when only the grid differs


def checkpoint_layout(method: str) -> CheckpointLayout:
    """Composer (``ckpt['state'][key]``) for the scaling-primate-vvs methods; MAE's ``save_model`` dict
    (``{'model', 'optimizer', 'epoch', 'scaler', 'args'}``, weights at ``ckpt['model']``) for humanlike-vits."""
    if method in MAE_METHODS:
        return CheckpointLayout(None, "", humanlike.MAE_DECODER_KEYS, resample_pos_embed=True)
    return CheckpointLayout("state", checkpoint_prefix(method))


def meta_model(arch: str, method: str | None = None) -> nn.Module:
    """``arch`` built on the meta device (no memory, no weights), with ``method`` or the arch's first method."""
    found = _lookup(arch)
    if found is None:
        raise ValueError(f"unknown architecture {arch!r}")
    method = method or found[0].methods[0]
    with torch.device("meta"):
        return build(arch, 0 if method == "mae" else 1000, method)


def eval_batch_size(arch: str) -> int:
    """Images per forward for activation extraction: bounded for the large-grid ViTs, else Brain-Score's 64."""
    found = _lookup(arch)
    if found and found[0] is REGISTRY["humanlike_vit"]:
        return humanlike.eval_batch_size(arch)
    return 64


def count_parameters(arch: str, method: str = "supervised", num_classes: int = 1000) -> int:
    """Parameter count of ``build(arch, num_classes, method)``, built on the meta device (no memory, fast)."""
    with torch.device("meta"):
        model = build(arch, num_classes, method)
    return sum(p.numel() for p in model.parameters())


def arch_and_method(model_id: str, arch_cell: str = "") -> tuple[str, str]:
    """(arch, method) of a catalog model id; ``arch_cell`` is its ``arch`` column (may be empty).

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
        if _lookup(candidate):
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
    found = _lookup(arch)
    if found is None:
        raise ValueError(f"unknown architecture {arch!r}")
    spec, match = found
    if method in ("simclr", "dino") and f"{method}_{arch}" in SSL_COMMITMENT_KEYS:
        return f"{method}_{arch}"
    return spec.commitment_name(match)


__all__ = ["METHODS", "REGISTRY", "ArchSpec", "build", "unsupported_reason", "count_parameters",
           "arch_and_method", "commitment_key", "checkpoint_prefix", "SSL_COMMITMENT_KEYS", "MAE_METHODS",
           "CheckpointLayout", "checkpoint_layout", "eval_batch_size", "meta_model"]
