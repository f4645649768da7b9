"""Vision transformers of the study, built with timm (``pretrained=False``, no network).

* ``deit_small``/``deit_base``/``deit_large``: timm ``deit3_{size}_patch16_224`` (DeiT-III), as in
  ``training/src/models/deit.py``: ``create_model(arch, num_classes=..., drop_path_rate=..., init_values=1e-4)``
  (``layer_scale_init_value: 1e-4`` in ``cfgs/runai/deit/defaults.yaml``).
* ``deit_tiny``: not a timm model; the study registers ``deit3_tiny_patch16_224`` itself (``deit.py``): the DeiT-III
  recipe at ViT-Ti width -- patch 16, embed 192, depth 12, 3 heads, ``no_embed_class=True`` (the position embedding
  has no class-token slot), LayerScale. Built here as a plain timm ``VisionTransformer`` with those arguments.
* ``vit_small``/``vit_base``: the SSL backbones ``vit_{small,base}_patch16_224`` created through timm
  (``use_timm: True`` in ``cfgs/runai/{simclr,dino}/*``); supervised build gives the 1000-class classifier.

Module names are timm's ``VisionTransformer``: ``patch_embed.proj``, ``blocks.N.{norm1,attn.qkv,attn.proj,ls1,
norm2,mlp.fc1,mlp.act,mlp.fc2,ls2}``, ``norm``, ``fc_norm`` (an Identity with class-token pooling), ``head``.
timm 1.x keeps every name the study's commitments use (they were made with timm 0.9.16).
"""
from __future__ import annotations

import timm
from timm.models.vision_transformer import VisionTransformer

DEIT_LAYER_SCALE = 1e-4  # cfgs/runai/deit/defaults.yaml: layer_scale_init_value


def deit3_vit(embed_dim: int, depth: int, num_heads: int, num_classes: int = 1000,
              init_values: float = DEIT_LAYER_SCALE, **kwargs) -> VisionTransformer:
    """A DeiT-III style ViT (patch 16, 224 px, class token outside the position embedding, LayerScale); ``kwargs``:
    timm's ``VisionTransformer`` arguments."""
    return VisionTransformer(patch_size=16, embed_dim=embed_dim, depth=depth, num_heads=num_heads,
                             no_embed_class=True, init_values=init_values, num_classes=num_classes, **kwargs)


def build_deit(size: str, num_classes: int = 1000, **kwargs) -> VisionTransformer:
    if size == "tiny":
        return deit3_vit(192, 12, 3, num_classes, **kwargs)
    return timm.create_model(f"deit3_{size}_patch16_224", pretrained=False, num_classes=num_classes,
                             **{"init_values": DEIT_LAYER_SCALE, **kwargs})


def build_timm_vit(size: str, num_classes: int = 1000, **kwargs) -> VisionTransformer:
    """``vit_{size}_patch16_224`` (timm defaults: class token, qkv bias, no LayerScale)."""
    return timm.create_model(f"vit_{size}_patch16_224", pretrained=False, num_classes=num_classes, **kwargs)
