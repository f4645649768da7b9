"""The vision branch of ONE-PEACE (Wang et al., arXiv:2305.11172; github.com/OFA-Sys/ONE-PEACE) in plain PyTorch.

ONE-PEACE is one 40-layer transformer whose self-attention is shared by text, image and audio and whose FFNs are
per modality. Its vision branch (what ``extract_image_features`` runs, ``encoder_type='image'``) is the image adapter,
every layer's shared attention and ``image_ffn``, the final ``image_layer_norm`` and the retrieval head ``image_proj``.
Architecture as in ``one_peace/models/{adapter/image.py,transformer/*.py}``, released config from
``one_peace/run_scripts/finetune_3B.yaml`` (= ``pretrain/pretrain_vl_3B.yaml``'s encoder):

* adapter (``vision_encoder_type: hmlp``): conv 4x4/4 -> LN -> GELU -> conv 2x2/2 -> LN -> GELU -> conv 2x2/2
  (patch 16, ``embed_dim // 4`` hidden channels), class token, learned position embedding of the
  ``bucket_size: 16`` grid, and one 2-D relative position bias table (``use_attn_bias``; the pretrained model has
  one table, ``rel_pos_table_list.0``, shared by all layers);
* each layer (pre-LN, ``use_layer_scale``): ``x + gamma_1 * attn(LN(x))``, ``x + gamma_2 * image_ffn(LN(x))``;
  attention with Magneto's sub-LN before ``out_proj`` (``magneto_scale_attn: true``), no key bias,
  ``scale_attn: false``, ``scale_heads: false``; ``image_ffn`` = GeGLU (``wi_0``, ``wi_1``, exact GELU) -> LN
  (``scale_fc: true``) -> linear; LayerNorm eps 1e-5 everywhere;
* ``image_layer_norm`` on the last layer's tokens; ``image_proj`` (linear) of the class token, L2-normalised.

Published file ``one-peace.pt``: a fairseq checkpoint (top-level ``args``, ``cfg``, ``model``, ``criterion``,
``optimizer_history``, ``task_state``, ``extra_state`` as ``one_peace/trainer.py`` saves them; read from the code, not
from the file) with the weights at ``checkpoint['model']`` (``convert_to_vision.py`` reads them there); the vision keys
are ``encoder_wrapper.{image_adapter,fusion_model}.*`` and the top-level ``image_proj.*`` (the authors'
``one_peace_vision/convert_to_vision.py`` drops exactly the other keys: text, audio, decoder, mask, logit_scale,
version). :func:`vision_state_dict` strips :data:`VISION_PREFIX`, giving this module's keys.

Preprocessing (``hub_interface.py``): resize to 256 x 256, bicubic, CLIP mean/std (``CLIP_DEFAULT_MEAN`` /
``_STD`` of ``one_peace/data/base_dataset.py``; :data:`brainscore_plugins.preprocessing.OPENAI_CLIP_MEAN`).
The ScalingVisionEncoder study (arXiv:2308.00678, ``encoding/extracting.py``) fed 256 px images with
``ToTensor()`` only (its ``Normalize`` is commented out) and read every layer's output before ``image_layer_norm``
(``image_encoder_states``), class token dropped, as a 16 x 16 grid.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

CONFIGS = {
    "one-peace": {"embed_dim": 1536, "ffn_embed_dim": 6144, "layers": 40, "attention_heads": 24, "image_size": 256},
    "tiny-test": {"embed_dim": 32, "ffn_embed_dim": 64, "layers": 2, "attention_heads": 2, "image_size": 32},
}
IMAGE_SIZE = 256
PATCH = 16  # the hmlp stem's strides 4 * 2 * 2
LAYER_SCALE_INIT = 1e-6  # layer_scale_init_value
VISION_PREFIX = "encoder_wrapper."
IGNORED_PREFIXES = (
    "encoder_wrapper.text_adapter.", "encoder_wrapper.audio_adapter.",
    "encoder_wrapper.fusion_model.text_layer_norm.", "encoder_wrapper.fusion_model.audio_layer_norm.",
    "encoder_wrapper.fusion_model.version",  # fairseq's TransformerEncoder version buffer
    *(f"encoder_wrapper.fusion_model.layers.{i}.{modality}_ffn."
      for i in range(CONFIGS["one-peace"]["layers"]) for modality in ("text", "audio")),
    "decoder_wrapper.", "text_proj.", "audio_proj.", "logit_scale",
    *(f"{part}{modality}{end}" for modality in ("text", "image", "audio")
      for part, end in (("decoder_", "_embed."), ("", "_mask_token"), ("", "_mask_head."))),
)
"""Keys of the published ``model`` dict outside the vision branch: text and audio adapters, FFNs and norms, the
masked-prediction decoder and its embeddings / mask tokens / heads, the other projections and the logit scale."""


def _relative_position_index(grid: int) -> torch.Tensor:
    """Row of the relative position table for each (query, key) token pair: patches by their 2-D offset, then
    class -> patch, patch -> class and class -> class (the table's last three rows)."""
    rows = (2 * grid - 1) ** 2 + 3
    h, w = (c.flatten() for c in torch.meshgrid(torch.arange(grid), torch.arange(grid), indexing="ij"))
    index = torch.empty(grid * grid + 1, grid * grid + 1, dtype=torch.long)
    index[1:, 1:] = (h[:, None] - h[None, :] + grid - 1) * (2 * grid - 1) + w[:, None] - w[None, :] + grid - 1
    index[0, :] = rows - 3
    index[:, 0] = rows - 2
    index[0, 0] = rows - 1
    return index


class _LayerNorm2d(nn.Module):
    """LayerNorm over the channels of an ``(N, C, H, W)`` map (the authors' ``LayerNorm2D``)."""

    def __init__(self, channels: int):
        super().__init__()
        self.layer_norm = nn.LayerNorm(channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layer_norm(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)


class ImageAdapter(nn.Module):
    """Images ``(N, 3, S, S)`` -> tokens ``(N, 1 + g * g, dim)`` and the relative position bias ``(heads, T, T)``."""

    def __init__(self, embed_dim: int, attention_heads: int, grid: int):
        super().__init__()
        hidden = embed_dim // 4
        self.grid = grid
        self.embed_images = nn.Sequential(
            nn.Conv2d(3, hidden, 4, stride=4), _LayerNorm2d(hidden), nn.GELU(),
            nn.Conv2d(hidden, hidden, 2, stride=2), _LayerNorm2d(hidden), nn.GELU(),
            nn.Conv2d(hidden, embed_dim, 2, stride=2))
        self.cls_embedding = nn.Parameter(torch.zeros(1, 1, embed_dim))
        self.pos_embed = nn.Parameter(torch.zeros(grid * grid + 1, embed_dim))
        nn.init.trunc_normal_(self.cls_embedding, std=0.02, a=-0.02, b=0.02)
        nn.init.trunc_normal_(self.pos_embed, std=0.02, a=-0.02, b=0.02)
        self.register_buffer("position_idx", torch.arange(grid * grid + 1))  # in the checkpoint, unused
        self.register_buffer("rp_bucket", _relative_position_index(grid))
        self.rel_pos_table_list = nn.ModuleList([nn.Embedding((2 * grid - 1) ** 2 + 3, attention_heads)])

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        size = self.grid * PATCH
        if images.shape[-2:] != (size, size):
            raise ValueError(f"ONE-PEACE takes {size} x {size} images (its position embeddings), not "
                             f"{tuple(images.shape[-2:])}")
        x = self.embed_images(images).flatten(2).transpose(1, 2)
        x = torch.cat([self.cls_embedding.expand(len(x), -1, -1), x], dim=1) + self.pos_embed
        bias = self.rel_pos_table_list[0](self.rp_bucket).permute(2, 0, 1)
        return x, bias


class SelfAttention(nn.Module):
    """Multi-head attention shared by the modalities, with Magneto's sub-LN (``ln``) before ``out_proj``."""

    def __init__(self, embed_dim: int, heads: int):
        super().__init__()
        self.heads = heads
        self.ln = nn.LayerNorm(embed_dim)
        self.k_proj = nn.Linear(embed_dim, embed_dim, bias=False)
        self.v_proj = nn.Linear(embed_dim, embed_dim)
        self.q_proj = nn.Linear(embed_dim, embed_dim)
        self.out_proj = nn.Linear(embed_dim, embed_dim)

    def forward(self, x: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
        n, t, d = x.shape
        q, k, v = (proj(x).view(n, t, self.heads, -1).transpose(1, 2)
                   for proj in (self.q_proj, self.k_proj, self.v_proj))
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=bias.to(q.dtype))
        return self.out_proj(self.ln(out.transpose(1, 2).reshape(n, t, d)))


class GeGLU(nn.Module):
    def __init__(self, embed_dim: int, ffn_dim: int):
        super().__init__()
        self.wi_0 = nn.Linear(embed_dim, ffn_dim, bias=False)
        self.wi_1 = nn.Linear(embed_dim, ffn_dim, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.gelu(self.wi_0(x)) * self.wi_1(x)


class FusionLayer(nn.Module):
    """One layer on image tokens ``(N, T, dim)``: shared attention, then the image FFN, each with layer scale."""

    def __init__(self, embed_dim: int, ffn_dim: int, heads: int):
        super().__init__()
        self.self_attn = SelfAttention(embed_dim, heads)
        self.self_attn_layer_norm = nn.LayerNorm(embed_dim)
        # index 1 is the authors' activation dropout (no weights), kept so that the LN and linear are .2 and .3
        self.image_ffn = nn.Sequential(GeGLU(embed_dim, ffn_dim), nn.Identity(), nn.LayerNorm(ffn_dim),
                                       nn.Linear(ffn_dim, embed_dim))
        self.final_layer_norm = nn.LayerNorm(embed_dim)
        self.gamma_1 = nn.Parameter(torch.full((embed_dim,), LAYER_SCALE_INIT))
        self.gamma_2 = nn.Parameter(torch.full((embed_dim,), LAYER_SCALE_INIT))

    def forward(self, x: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
        x = x + self.gamma_1 * self.self_attn(self.self_attn_layer_norm(x), bias)
        return x + self.gamma_2 * self.image_ffn(self.final_layer_norm(x))


class FusionModel(nn.Module):
    """The layers, then ``image_layer_norm``."""

    def __init__(self, embed_dim: int, ffn_dim: int, heads: int, layers: int):
        super().__init__()
        self.layers = nn.ModuleList(FusionLayer(embed_dim, ffn_dim, heads) for _ in range(layers))
        self.image_layer_norm = nn.LayerNorm(embed_dim)

    def forward(self, x: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
        for layer in self.layers:
            x = layer(x, bias)
        return self.image_layer_norm(x)


class NormalizedProjection(nn.Linear):
    """``image_proj``: the retrieval embedding, L2-normalised (what ``extract_image_features`` returns)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.normalize(super().forward(x), dim=-1)


class OnePeaceVision(nn.Module):
    """Images ``(N, 3, S, S)`` (S = ``image_size``) -> tokens ``(N, 1 + (S/16)^2, dim)`` after ``image_layer_norm``,
    class token first. Each forward also computes the pooled embedding ``image_proj`` of the class token (the
    readout; hook it, or call :meth:`embed`)."""

    def __init__(self, embed_dim: int, ffn_embed_dim: int, layers: int, attention_heads: int, image_size: int):
        super().__init__()
        self.image_adapter = ImageAdapter(embed_dim, attention_heads, image_size // PATCH)
        self.fusion_model = FusionModel(embed_dim, ffn_embed_dim, attention_heads, layers)
        self.image_proj = NormalizedProjection(embed_dim, embed_dim)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self._run(images)[0]

    def embed(self, images: torch.Tensor) -> torch.Tensor:
        """The unit-norm retrieval embedding ``(N, dim)``."""
        return self._run(images)[1]

    def _run(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        tokens = self.fusion_model(*self.image_adapter(images))
        return tokens, self.image_proj(tokens[:, 0])


def build(config: str = "one-peace") -> OnePeaceVision:
    """The vision branch of ``CONFIGS[config]`` (random weights; builds under ``torch.device('meta')``)."""
    if config not in CONFIGS:
        raise ValueError(f"unknown ONE-PEACE config {config!r} (known: {', '.join(CONFIGS)})")
    return OnePeaceVision(**CONFIGS[config])


def _published_key(key: str) -> str:
    return key if key.startswith("image_proj.") else VISION_PREFIX + key


def vision_state_dict(checkpoint_model_dict: dict) -> dict:
    """The vision weights of the published ``checkpoint['model']``: :data:`IGNORED_PREFIXES` dropped by name,
    :data:`VISION_PREFIX` stripped. Any other key is kept, for the strict load to report."""
    return {(key[len(VISION_PREFIX):] if key.startswith(VISION_PREFIX) else key): value
            for key, value in checkpoint_model_dict.items() if not key.startswith(IGNORED_PREFIXES)}


def checkpoint(state_dict: dict, seed: int = 0) -> dict:
    """A file laid out as ``one-peace.pt`` around the vision ``state_dict`` of this module: fairseq's top-level
    fields (plain values), the vision keys as published, and random small tensors for a few non-vision keys."""
    generator = torch.Generator().manual_seed(seed)
    dim = state_dict["image_proj.weight"].shape[0]
    heads = state_dict["image_adapter.rel_pos_table_list.0.weight"].shape[1]
    ffn = state_dict["fusion_model.layers.0.image_ffn.3.weight"].shape[1]
    shapes = {
        "encoder_wrapper.text_adapter.embed_tokens.weight": (16, dim),
        "encoder_wrapper.text_adapter.cls_embedding": (1, 1, dim),
        "encoder_wrapper.audio_adapter.mask_embedding": (1, dim),
        "encoder_wrapper.fusion_model.layers.0.text_ffn.0.wi_0.weight": (ffn, dim),
        "encoder_wrapper.fusion_model.layers.0.audio_ffn.3.bias": (dim,),
        "encoder_wrapper.fusion_model.text_layer_norm.weight": (dim,),
        "decoder_wrapper.fusion_model.layers.0.self_attn.q_proj.weight": (8, 8),
        "decoder_image_embed.weight": (8, dim),
        "image_mask_token": (1, 8),
        "text_proj.weight": (dim, dim),
        "logit_scale": (),
    }
    model = {_published_key(key): value for key, value in state_dict.items()}
    model.update({key: torch.randn(shape, generator=generator) * 0.02 for key, shape in shapes.items()})
    model["encoder_wrapper.fusion_model.version"] = torch.tensor([3.0])
    cfg = {"model": {"_name": "one_peace_pretrain", "encoder": {"embed_dim": dim, "ffn_embed_dim": ffn,
                                                                "attention_heads": heads}},
           "task": {"_name": "audio_text_pretrain", "patch_image_size": IMAGE_SIZE}}
    return {"args": None, "cfg": cfg, "model": model, "criterion": None,
            "optimizer_history": [{"criterion_name": "AudioTextPretrainLossCriterion", "optimizer_name": "AdjustAdam",
                                   "lr_scheduler_state": {"best": None}, "num_updates": 0}],
            "task_state": {}, "extra_state": {"metrics": {}, "previous_training_time": 0.0}}


def candidate_layers(model: OnePeaceVision) -> list[str]:
    """Every layer's output (``fusion_model.layers.N``: tokens before ``image_layer_norm``, class token first, as the
    study read them), then the readout ``image_proj`` (the unit-norm class-token embedding)."""
    return [f"fusion_model.layers.{i}" for i in range(len(model.fusion_model.layers))] + ["image_proj"]
