"""The architectures of the catalogued studies, checkpoint-faithful (scaling-primate-vvs, Gokce & Schrimpf,
arXiv:2411.05712; humanlike-vits, Orhan, arXiv:2308.03712).

Public API: :func:`build`, :func:`unsupported_reason`, :func:`count_parameters`, :func:`meta_model`,
:func:`lookup`, :func:`register` and :data:`REGISTRY` (key -> :class:`ArchSpec`: one builder per architecture, as
timm). ``arch`` is the catalog's ``arch`` string (for scaling-primate-vvs the study's ``model_checkpoints.csv`` arch,
or the one ``scripts/spvvs_ids.py`` derives for ids whose cell is empty); ``method`` one of
:data:`TRAINING_METHODS`. How checkpoint files hold these networks is declared per model family
(:mod:`brainscore_plugins.families`).

Checkpoint key layout (what :func:`build` reproduces; read from the study's ``training/src/models/*.py``)
-------------------------------------------------------------------------------------------------------
Composer checkpoints hold the weights at ``ckpt['state']['model']``; ConvNeXt and DeiT (trained with timm's
``ModelEmaV3`` through ``utils/composer_utils.py:EmaWithEvalTIMM``) also at ``ckpt['state']['model_ema_state_dict']``
(saved with timm's ``get_state_dict``, which unwraps the EMA wrapper, so same keys), which the study's loaders use
for those two architectures (``artifacts_helpers.py``: ``load_model_ema`` iff ``convnext`` or ``deit`` in the arch).
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

from . import classic, cornet_s, flex, grouplin, humanlike, internimage, onepeace, ssl, vit

TRAINING_METHODS = ("supervised", "adversarial", "simclr", "dino", "mae", "mae-finetuned", "grouplin-head",
                    "grouplin-finetune", "clip", "clip-finetuned", "multimodal")
# humanlike-vits (arXiv:2308.03712): "mae" = MAE-pretrained encoder (no head), "mae-finetuned" = its ImageNet
# finetuned classifier. GroupLin (arXiv:2308.02351): "grouplin-head" = the fMRI head trained on a frozen trunk
# (phase 1), "grouplin-finetune" = head and trunk attention fine-tuned (phase 2). ScalingVisionEncoder
# (arXiv:2308.00678): "clip" = a CLIP image tower (head: the image projection), "clip-finetuned" = a CLIP image
# tower fine-tuned as an ImageNet classifier, "multimodal" = ONE-PEACE's vision branch (vision-language-audio
# pretraining).


@dataclass(frozen=True)
class ArchSpec:
    """One architecture: a full-match pattern for the arch string, a builder, a display name and the
    training methods its models were trained with."""

    name: str
    pattern: re.Pattern
    builder: Callable[..., nn.Module]  # (match, num_classes, **constructor keyword arguments) -> network
    training_methods: tuple[str, ...] = ("supervised",)


def _timm(name: str, num_classes: int, **kwargs) -> nn.Module:
    import timm
    return timm.create_model(name, pretrained=False, num_classes=num_classes, **kwargs)


def _tv(m: re.Match, num_classes: int, **kwargs) -> nn.Module:
    return classic.build_torchvision(m["base"], num_classes, **kwargs)


_RESNET_DEPTHS = "18|34|50|101|152"
REGISTRY: dict[str, ArchSpec] = {
    "resnet": ArchSpec("ResNet", re.compile(rf"(?P<base>resnet(?:{_RESNET_DEPTHS}))"), _tv,
                       ("supervised", "adversarial", "simclr", "dino")),
    # Recipe ablations (optimizer / schedule / augmentation variants): torchvision ResNets
    "resnet_recipe": ArchSpec("ResNet", re.compile(rf"(?P<base>resnet(?:{_RESNET_DEPTHS}))(?:-[a-z0-9]+)+"), _tv),
    "efficientnet": ArchSpec("EfficientNet", re.compile(r"(?P<base>efficientnet_b[0-2])"), _tv),
    "convnext": ArchSpec("ConvNeXt", re.compile(r"(?P<base>convnext_(?:tiny|small|base|large))"), _tv),
    "alexnet": ArchSpec("AlexNet", re.compile(r"(?P<base>alexnet)"), _tv),
    "vit_b_16": ArchSpec("ViT", re.compile(r"(?P<base>vit_b_16)"), _tv),
    "cornet_s": ArchSpec("CORnet-S", re.compile(r"cornet_s"), lambda m, n: cornet_s.build_cornet_s(n)),
    "deit": ArchSpec("DeiT", re.compile(r"deit_(?P<size>tiny|small|base|large)"),
                     lambda m, n, **kw: vit.build_deit(m["size"], n, **kw)),
    "vit_ssl": ArchSpec("ViT", re.compile(r"vit_(?P<size>small|base)"),
                        lambda m, n, **kw: vit.build_timm_vit(m["size"], n, **kw), ("supervised", "simclr", "dino")),
    "resnetflex": ArchSpec("ResNetFlex", flex.RESNETFLEX_PATTERN, lambda m, n: flex.build_resnetflex(m.string, n),
                           ("supervised", "adversarial", "simclr")),
    "convnextflex": ArchSpec("ConvNeXtFlex", flex.CONVNEXTFLEX_PATTERN,
                             lambda m, n, **kw: flex.build_convnextflex(m.string, n, **kw)),
    "deitflex": ArchSpec("ViTFlex", flex.DEITFLEX_PATTERN, lambda m, n, **kw: flex.build_deitflex(m.string, n, **kw)),
    "humanlike_vit": ArchSpec("HumanlikeViT", humanlike.PATTERN, lambda m, n, **kw: humanlike.build(m.string, n, **kw),
                              ("mae", "mae-finetuned")),
    "grouplin": ArchSpec("GroupLin", grouplin.PATTERN, lambda m, n: grouplin.build(),
                         ("grouplin-head", "grouplin-finetune")),
    "timm_clip": ArchSpec("CLIP image tower (timm)", re.compile(
        r"eva02_(?:base_patch16|large_patch14|enormous_patch14)_clip_224|eva_giant_patch14_clip_224|convnext_xxlarge"),
        lambda m, n, **kw: _timm(m.string, n, **kw), ("clip", "clip-finetuned")),
    "internimage": ArchSpec("InternImage", re.compile(r"internimage_g_22kto1k_512"),
                            lambda m, n, **kw: internimage.build(m.string, n, **kw)),
    "one_peace": ArchSpec("ONE-PEACE vision", re.compile(r"one-peace"), lambda m, n: onepeace.build(),
                          ("multimodal",)),
}


def register(key: str, spec: ArchSpec) -> ArchSpec:
    """Add an architecture (a model family's module may bring its own builder)."""
    if key in REGISTRY and REGISTRY[key] != spec:
        raise ValueError(f"architecture {key!r} is registered twice")
    REGISTRY[key] = spec
    return spec


def lookup(arch: str) -> tuple[str, ArchSpec, re.Match] | None:
    """(registry key, spec, match) of the first architecture whose pattern matches ``arch``."""
    for key, spec in REGISTRY.items():
        match = spec.pattern.fullmatch(arch)
        if match:
            return key, spec, match
    return None


def unsupported_reason(arch: str, method: str = "supervised") -> str | None:
    """Why ``build(arch, method=method)`` cannot give the published architecture; ``None`` if it can."""
    if method not in TRAINING_METHODS:
        return f"unknown training method {method!r} (known: {', '.join(TRAINING_METHODS)})"
    found = lookup(arch)
    if found is None:
        return f"unknown architecture {arch!r}: no registered architecture matches it"
    key, spec, _ = found
    if method not in spec.training_methods:
        return f"no {method} {spec.name} models were trained ({arch!r})"
    try:
        if key == "resnetflex":
            flex.resnetflex_config(arch)
    except ValueError as error:
        return str(error)
    return None


def build(arch: str, num_classes: int = 1000, method: str = "supervised", **kwargs) -> nn.Module:
    """The network whose ``state_dict()`` equals the checkpoint's weights (wrapper prefix stripped), randomly
    initialised; ``kwargs`` go to the architecture's constructor (timm's or torchvision's, e.g. ``drop_path_rate``).

    Classifiers (supervised, adversarial) return logits; SSL wrappers return backbone features (DINO: teacher).
    Works under ``with torch.device('meta')``. SSL wrappers ignore ``num_classes`` (their classifier is removed).

    Raises:
        ValueError: ``arch`` cannot be built with ``method``.
        TypeError: the constructor does not take one of ``kwargs`` (the message names the architecture).
    """
    reason = unsupported_reason(arch, method)
    if reason:
        raise ValueError(reason)
    _, spec, match = lookup(arch)
    try:
        if method == "simclr":
            return ssl.SimCLRModel(spec.builder(match, 1000, **kwargs))
        if method == "dino":
            return ssl.DINOModel(spec.builder(match, 1000, **kwargs), spec.builder(match, 1000, **kwargs))
        return spec.builder(match, num_classes, **kwargs)
    except TypeError as error:
        if not kwargs:
            raise
        raise TypeError(f"the {spec.name} architecture ({arch}) does not take {', '.join(map(repr, kwargs))}: "
                        f"{error}; pass only keyword arguments its constructor takes") from None


def meta_model(arch: str, method: str | None = None) -> nn.Module:
    """``arch`` built on the meta device (no memory, no weights), with ``method`` or the arch's first method."""
    found = lookup(arch)
    if found is None:
        raise ValueError(f"unknown architecture {arch!r}")
    method = method or found[1].training_methods[0]
    with torch.device("meta"):
        return build(arch, 0 if method == "mae" else 1000, method)


def count_parameters(arch: str, method: str = "supervised", num_classes: int = 1000) -> int:
    """Parameter count of ``build(arch, num_classes, method)``, built on the meta device (no memory, fast)."""
    with torch.device("meta"):
        model = build(arch, num_classes, method)
    return sum(p.numel() for p in model.parameters())


__all__ = ["TRAINING_METHODS", "REGISTRY", "ArchSpec", "build", "unsupported_reason", "count_parameters",
           "lookup", "register", "meta_model"]
