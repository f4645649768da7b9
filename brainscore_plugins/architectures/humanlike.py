"""Vision transformers of *humanlike-vits* (Orhan, 2023, arXiv:2308.03712), built on timm's ``VisionTransformer``.

Architecture names are the repository's ``x``: ``vits14``, ``vitb14``, ``vitl14``, ``vith14``, ``vith14@448``,
``vith14@476`` (ViT-{S,B,L,H}/14; ``@N`` = trained and evaluated on N x N images, else 224).

* Encoder (MAE pretraining in eminorhan/mae, a copy of facebookresearch/mae): patch 14, qkv bias, LayerNorm eps 1e-6,
  MLP ratio 4, class token inside the position embedding (``pos_embed`` is ``(1, 1 + (size/14)^2, dim)``), final
  ``norm``. timm's ``VisionTransformer(global_pool='token')`` has exactly these state-dict keys and shapes; its
  ``fc_norm`` is an ``Identity`` and no key of the checkpoints. Widths: S 384/12 blocks/6 heads, B 768/12/12,
  L 1024/24/16, H 1280/32/16 (MAE's ``mae_vit_{base,large,huge}_patch*`` and the ViT paper; S as in DeiT).
* Pretrained checkpoints: ``num_classes=0`` (``head`` is an ``Identity``; the output is the class token after
  ``norm``). They also hold MAE's decoder (``mask_token``, ``decoder_embed``, ``decoder_pos_embed``,
  ``decoder_blocks.*``, ``decoder_norm``, ``decoder_pred``: dim 512, 8 blocks, 16 heads, 14*14*3 = 588 outputs),
  which we ignore by name (:data:`MAE_DECODER_KEYS`).
* Finetuned checkpoints (2 % of ImageNet, the paper's "permissive" condition): the class-token classifier
  ``head = Sequential(BatchNorm1d(dim, affine=False, eps=1e-6), Linear(dim, 1000))`` (MAE's linear-probe head).

Layers (:func:`candidate_layers`): the output of every block ``blocks.<i>`` (token grids incl. the class token),
the final ``norm``, and ``fc_norm`` for behavior: with ``global_pool='token'`` timm's ``forward_head`` computes
``head(head_drop(fc_norm(x[:, 0])))``, so ``fc_norm`` (an ``Identity``) outputs the normalised class token, for
pretrained and finetuned models alike.
"""
from __future__ import annotations

import functools
import math
import re

import torch
from timm.layers import resample_abs_pos_embed
from timm.models.vision_transformer import VisionTransformer
from torch import nn

PATCH = 14
SIZES = {"s": (384, 12, 6), "b": (768, 12, 12), "l": (1024, 24, 16), "h": (1280, 32, 16)}  # dim, depth, heads
ARCHS = ("vits14", "vitb14", "vitl14", "vith14", "vith14@448", "vith14@476")
PATTERN = re.compile(r"vit(?P<size>[sblh])14(?:(?<=h14)@(?P<img>448|476))?")  # only ViT-H has @448 / @476
READOUT_LAYER = "fc_norm"
MAE_DECODER_KEYS = ("mask_token", "decoder_")  # key prefixes of MAE's decoder in the pretrained files
MAE_DECODER = {"dim": 512, "depth": 8, "heads": 16}


def image_size(arch: str) -> int:
    match = _match(arch)
    return int(match["img"] or 224)


def _match(arch: str) -> re.Match:
    match = PATTERN.fullmatch(arch)
    if not match:
        raise ValueError(f"unknown humanlike-vits architecture {arch!r} (known: {', '.join(ARCHS)})")
    return match


def build(arch: str, num_classes: int = 0, **kwargs) -> VisionTransformer:
    """The encoder (``num_classes=0``) or the finetuned classifier (BatchNorm1d + Linear head), random init;
    ``kwargs``: timm's ``VisionTransformer`` arguments."""
    match = _match(arch)
    dim, depth, heads = SIZES[match["size"]]
    model = VisionTransformer(img_size=int(match["img"] or 224), patch_size=PATCH, embed_dim=dim, depth=depth,
                              num_heads=heads, mlp_ratio=4.0, qkv_bias=True, norm_layer=functools.partial(
                                  nn.LayerNorm, eps=1e-6), num_classes=0, **{"global_pool": "token", **kwargs})
    if num_classes:
        model.head = nn.Sequential(nn.BatchNorm1d(dim, affine=False, eps=1e-6), nn.Linear(dim, num_classes))
        model.num_classes = num_classes
    return model


def candidate_layers(model) -> list[str]:
    """Layers a region may be committed to, readout last: ``blocks.0`` ... ``blocks.<depth-1>``, ``norm``,
    ``fc_norm`` (the class token), of a timm ``VisionTransformer`` with a class token and ``global_pool='token'``."""
    if not isinstance(model, VisionTransformer):
        raise ValueError(f"candidate_layers covers timm VisionTransformers, not {type(model).__name__}")
    if getattr(model, "global_pool", None) != "token" or model.cls_token is None:
        raise ValueError("candidate_layers needs a class-token ViT (global_pool='token'): fc_norm must output "
                         "the class token")
    return [f"blocks.{i}" for i in range(len(model.blocks))] + ["norm", READOUT_LAYER]


def eval_batch_size(arch: str, budget_bytes: int = 1 << 30, cap: int = 64) -> int:
    """Images per forward so that one block's transient activations (attention matrix, MLP hidden) stay within
    ``budget_bytes``: 8 for ViT-H/14@476 (1157 tokens), 64 (Brain-Score's default) for the 224 px models."""
    match = _match(arch)
    dim, _, heads = SIZES[match["size"]]
    tokens = (image_size(arch) // PATCH) ** 2 + 1
    per_image = 4 * (heads * tokens * tokens + 4 * dim * tokens + 4 * dim * tokens)
    return max(1, min(cap, 2 ** int(math.log2(max(1, budget_bytes // per_image)))))


def adapt_pos_embed(state_dict: dict, model: VisionTransformer) -> dict:
    """Resample the checkpoint's ``pos_embed`` to the model's patch grid when only the grid differs (bicubic, class
    token kept), with timm's ``resample_abs_pos_embed``; anything else is left for the strict load to report."""
    theirs, ours = state_dict.get("pos_embed"), model.pos_embed
    if theirs is None or theirs.shape == ours.shape or theirs.shape[-1] != ours.shape[-1]:
        return state_dict
    prefix = model.num_prefix_tokens
    old = math.isqrt(theirs.shape[1] - prefix)
    if old * old != theirs.shape[1] - prefix:
        return state_dict
    new = list(model.patch_embed.grid_size)
    return {**state_dict, "pos_embed": resample_abs_pos_embed(theirs, new, [old, old], num_prefix_tokens=prefix)}


def decoder_shapes(arch: str) -> dict[str, tuple[int, ...]]:
    """Key -> shape of MAE's decoder as stored in the pretrained files (for forging them)."""
    from timm.models.vision_transformer import Block
    dim = SIZES[_match(arch)["size"]][0]
    d, tokens = MAE_DECODER["dim"], (image_size(arch) // PATCH) ** 2 + 1
    with torch.device("meta"):
        block = Block(d, MAE_DECODER["heads"], mlp_ratio=4.0, qkv_bias=True,
                      norm_layer=functools.partial(nn.LayerNorm, eps=1e-6))
    shapes = {"mask_token": (1, 1, d), "decoder_embed.weight": (d, dim), "decoder_embed.bias": (d,),
              "decoder_pos_embed": (1, tokens, d)}
    for i in range(MAE_DECODER["depth"]):
        shapes.update({f"decoder_blocks.{i}.{k}": tuple(v.shape) for k, v in block.state_dict().items()})
    shapes.update({"decoder_norm.weight": (d,), "decoder_norm.bias": (d,),
                   "decoder_pred.weight": (PATCH * PATCH * 3, d), "decoder_pred.bias": (PATCH * PATCH * 3,)})
    return shapes
