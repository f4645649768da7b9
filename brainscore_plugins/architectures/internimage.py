"""InternImage-G (Wang et al., arXiv:2211.05778; github.com/OpenGVLab/InternImage) in pure PyTorch.

The deformable-convolution operator DCNv3 is :func:`dcnv3` (``F.grid_sample``; no CUDA extension). Module and
parameter names are those of the official ``classification/models/intern_image.py`` and
``ops_dcnv3/modules/dcnv3.py``, so the published ``internimage_g_22kto1k_512.pth`` (weights at ``'model'``) loads
with ``strict=True``. Only what the G config uses is built (``classification/configs/internimage_g_22kto1k_512.yaml``
with ``classification/config.py`` defaults): CORE_OP DCNv3, post-norm blocks (POST_NORM True) without layer scale
(LAYER_SCALE None) or res-post-norm (RES_POST_NORM False), all 9 sampling points (REMOVE_CENTER False), centre feature
scale (CENTER_FEATURE_SCALE True), extra LayerNorms after some blocks of level 2 (LEVEL2_POST_NORM True), and the
H/G head (USE_CLIP_PROJECTOR True): the last two levels' maps, merged at stride 16, attention-pooled by
``clip_projector``, normalised by ``fc_norm`` and classified by ``head`` (no ``conv_head``). Norms are LayerNorms
(eps 1e-6) wrapped in ``nn.Sequential`` with channel permutations, as the official ``build_norm_layer``; dropout and
drop path (eval only) are omitted.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

CONFIGS = {
    "internimage_g_22kto1k_512": dict(  # the yaml's MODEL.INTERN_IMAGE; the head sizes are fixed in the official code
        channels=512, depths=(2, 2, 48, 4), groups=(16, 32, 64, 128), mlp_ratio=4.0, dw_kernel_size=5,
        offset_scale=1.0, level2_post_norm_block_ids=(5, 11, 17, 23, 29, 35, 41, 47),
        pretrain_embed_dim=1024, attnpool_num_heads=16, clip_embed_dim=768),
    "tiny-test": dict(  # the same structure, 4 levels so that level 2 (with its post norms) exists
        channels=8, depths=(1, 1, 3, 1), groups=(1, 2, 4, 8), mlp_ratio=2.0, dw_kernel_size=5,
        offset_scale=1.0, level2_post_norm_block_ids=(0, 2),
        pretrain_embed_dim=16, attnpool_num_heads=2, clip_embed_dim=12),
}
IMAGE_SIZE = {"internimage_g_22kto1k_512": 512}
published_parameters = 3.0e9  # the seed table's 3.0B (InternImage README: "3B"); exactly 3,076,373,352


def dcnv3(input: torch.Tensor, offset: torch.Tensor, mask: torch.Tensor, kernel_h: int, kernel_w: int,
          stride_h: int, stride_w: int, pad_h: int, pad_w: int, dilation_h: int, dilation_w: int, group: int,
          group_channels: int, offset_scale: float) -> torch.Tensor:
    """The DCNv3 operator, channels-last: input ``(N, H, W, group * group_channels)``, offset
    ``(N, H_out, W_out, group * P * 2)`` ((x, y) per point), mask ``(N, H_out, W_out, group * P)`` -> output
    ``(N, H_out, W_out, group * group_channels)``, with ``P = kernel_h * kernel_w`` points ordered column-major
    (``p = column * kernel_h + row``) as the official op.

    Output pixel ``(i, j)`` of group ``g`` is ``sum_p mask[p] * input_g(loc_p)``, bilinear with zeros outside the
    input, at ``loc_p = p0 + (k_p * dilation + offset_p) * offset_scale`` (pixel centres at integers) with
    ``p0 = (j * stride_w - pad_w + c_w, i * stride_h - pad_h + c_h)``, ``c = dilation * (kernel - 1) // 2`` and
    ``k_p`` the kernel point relative to the centre: the official CUDA kernel and ``dcnv3_core_pytorch`` (which
    pads, then samples with ``align_corners=False``).
    """
    n, h, w, _ = input.shape
    _, h_out, w_out, _ = offset.shape
    points = kernel_h * kernel_w
    kwargs = dict(device=input.device, dtype=torch.promote_types(input.dtype, torch.float32))  # locations in fp32+
    centre_h, centre_w = dilation_h * (kernel_h - 1) // 2, dilation_w * (kernel_w - 1) // 2
    kernel = torch.stack(torch.meshgrid(torch.arange(kernel_w, **kwargs) * dilation_w - centre_w,
                                        torch.arange(kernel_h, **kwargs) * dilation_h - centre_h,
                                        indexing="ij"), -1).reshape(points, 2)
    p0 = torch.stack(torch.meshgrid(torch.arange(w_out, **kwargs) * stride_w - pad_w + centre_w,
                                    torch.arange(h_out, **kwargs) * stride_h - pad_h + centre_h,
                                    indexing="xy"), -1)  # (h_out, w_out, 2)
    loc = p0[:, :, None, None] + (kernel + offset.reshape(n, h_out, w_out, group, points, 2)) * offset_scale
    grid = (2 * loc + 1) / torch.tensor([w, h], **kwargs) - 1  # align_corners=False coordinates
    grid = grid.view(n, h_out * w_out, group, points, 2).transpose(1, 2).reshape(n * group, h_out * w_out, points, 2)
    values = input.reshape(n, h * w, group, group_channels).permute(0, 2, 3, 1)
    sampled = F.grid_sample(values.reshape(n * group, group_channels, h, w), grid.to(input.dtype), mode="bilinear",
                            padding_mode="zeros", align_corners=False)  # (n * group, group_channels, h_out*w_out, P)
    weights = mask.reshape(n, h_out * w_out, group, 1, points).transpose(1, 2).reshape(n * group, 1, h_out * w_out,
                                                                                     points)
    out = (sampled * weights).sum(-1).view(n, group * group_channels, h_out * w_out)
    return out.transpose(1, 2).reshape(n, h_out, w_out, group * group_channels)


class ToChannelsFirst(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.permute(0, 3, 1, 2)


class ToChannelsLast(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.permute(0, 2, 3, 1)


def layer_norm(dim: int, in_first: bool = False, out_first: bool = False) -> nn.Sequential:
    """The official ``build_norm_layer(dim, 'LN', in_format, out_format)``: permutations around a LayerNorm, so
    its parameters are ``<name>.0.*`` (channels-last input) or ``<name>.1.*`` (channels-first input)."""
    layers = [ToChannelsLast()] if in_first else []
    layers.append(nn.LayerNorm(dim, eps=1e-6))
    return nn.Sequential(*layers, *([ToChannelsFirst()] if out_first else []))


class DCNv3(nn.Module):
    """The official ``DCNv3`` / ``DCNv3_pytorch`` module (3 x 3, stride 1, pad 1, with centre feature scale)."""

    def __init__(self, channels: int, group: int, dw_kernel_size: int, offset_scale: float, kernel_size: int = 3):
        super().__init__()
        self.group, self.group_channels = group, channels // group
        self.kernel_size, self.offset_scale = kernel_size, offset_scale
        self.dw_conv = nn.Sequential(
            nn.Conv2d(channels, channels, dw_kernel_size, padding=(dw_kernel_size - 1) // 2, groups=channels),
            layer_norm(channels, in_first=True), nn.GELU())
        self.offset = nn.Linear(channels, group * kernel_size ** 2 * 2)
        self.mask = nn.Linear(channels, group * kernel_size ** 2)
        self.input_proj = nn.Linear(channels, channels)
        self.output_proj = nn.Linear(channels, channels)
        self.center_feature_scale_proj_weight = nn.Parameter(torch.zeros(group, channels))
        self.center_feature_scale_proj_bias = nn.Parameter(torch.zeros(group))
        for layer in (self.offset, self.mask):  # the official _reset_parameters: sample the plain 3 x 3 grid
            nn.init.zeros_(layer.weight)
            nn.init.zeros_(layer.bias)
        for layer in (self.input_proj, self.output_proj):
            nn.init.xavier_uniform_(layer.weight)
            nn.init.zeros_(layer.bias)

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        n, h, w, _ = input.shape
        x_proj = self.input_proj(input)
        x1 = self.dw_conv(input.permute(0, 3, 1, 2))
        mask = self.mask(x1).view(n, h, w, self.group, -1).softmax(-1).view(n, h, w, -1)
        x = dcnv3(x_proj, self.offset(x1), mask, self.kernel_size, self.kernel_size, 1, 1, 1, 1, 1, 1, self.group,
                  self.group_channels, self.offset_scale)
        scale = F.linear(x1, self.center_feature_scale_proj_weight, self.center_feature_scale_proj_bias).sigmoid()
        scale = scale.repeat_interleave(self.group_channels, dim=-1)
        return self.output_proj(x * (1 - scale) + x_proj * scale)


class MLPLayer(nn.Module):
    def __init__(self, in_features: int, hidden_features: int):
        super().__init__()
        self.fc1 = nn.Linear(in_features, hidden_features)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden_features, in_features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(x)))


class InternImageLayer(nn.Module):
    """One post-norm block: ``x + norm1(dcn(x))``, then ``x + norm2(mlp(x))``; ``(N, H, W, C)`` in and out."""

    def __init__(self, channels: int, groups: int, mlp_ratio: float, dw_kernel_size: int, offset_scale: float):
        super().__init__()
        self.norm1 = layer_norm(channels)
        self.dcn = DCNv3(channels, groups, dw_kernel_size, offset_scale)
        self.norm2 = layer_norm(channels)
        self.mlp = MLPLayer(channels, int(channels * mlp_ratio))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.norm1(self.dcn(x))
        return x + self.norm2(self.mlp(x))


class DownsampleLayer(nn.Module):
    def __init__(self, channels: int):
        super().__init__()
        self.conv = nn.Conv2d(channels, 2 * channels, kernel_size=3, stride=2, padding=1, bias=False)
        self.norm = layer_norm(2 * channels, in_first=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(self.conv(x.permute(0, 3, 1, 2)))


class InternImageBlock(nn.Module):
    """A level: its blocks (each in ``post_norm_block_ids`` followed by a LayerNorm of ``post_norms``), ``norm``,
    then ``downsample`` (all levels but the last)."""

    def __init__(self, channels: int, depth: int, groups: int, downsample: bool, mlp_ratio: float,
                 dw_kernel_size: int, offset_scale: float, post_norm_block_ids: tuple[int, ...] = ()):
        super().__init__()
        self.blocks = nn.ModuleList(InternImageLayer(channels, groups, mlp_ratio, dw_kernel_size, offset_scale)
                                    for _ in range(depth))
        self.norm = layer_norm(channels)  # the official level has it when not post_norm or center_feature_scale
        self.post_norm_block_ids = tuple(post_norm_block_ids)
        if self.post_norm_block_ids:
            self.post_norms = nn.ModuleList(layer_norm(channels) for _ in self.post_norm_block_ids)
        self.downsample = DownsampleLayer(channels) if downsample else None

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The level's output (after ``downsample``) and its map before ``downsample``."""
        for i, block in enumerate(self.blocks):
            x = block(x)
            if i in self.post_norm_block_ids:
                x = self.post_norms[self.post_norm_block_ids.index(i)](x)
        x = self.norm(x)
        return (x if self.downsample is None else self.downsample(x)), x


class StemLayer(nn.Module):
    """Two stride-2 3 x 3 convolutions: ``(N, 3, H, W)`` -> ``(N, H/4, W/4, C)``."""

    def __init__(self, out_chans: int, in_chans: int = 3):
        super().__init__()
        self.conv1 = nn.Conv2d(in_chans, out_chans // 2, kernel_size=3, stride=2, padding=1)
        self.norm1 = layer_norm(out_chans // 2, in_first=True, out_first=True)
        self.act = nn.GELU()
        self.conv2 = nn.Conv2d(out_chans // 2, out_chans, kernel_size=3, stride=2, padding=1)
        self.norm2 = layer_norm(out_chans, in_first=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm2(self.conv2(self.act(self.norm1(self.conv1(x)))))


class CrossAttention(nn.Module):
    """Multi-head attention of one query over the tokens, separate q / k / v weights and biases (official names)."""

    def __init__(self, dim: int, num_heads: int, out_dim: int):
        super().__init__()
        self.num_heads = num_heads
        self.q = nn.Linear(dim, dim, bias=False)
        self.k = nn.Linear(dim, dim, bias=False)
        self.v = nn.Linear(dim, dim, bias=False)
        self.q_bias = nn.Parameter(torch.zeros(dim))
        self.k_bias = nn.Parameter(torch.zeros(dim))
        self.v_bias = nn.Parameter(torch.zeros(dim))
        self.proj = nn.Linear(dim, out_dim)

    def forward(self, x: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        def heads(tokens, linear, bias):
            return F.linear(tokens, linear.weight, bias).unflatten(-1, (self.num_heads, -1)).transpose(1, 2)

        out = F.scaled_dot_product_attention(heads(x, self.q, self.q_bias), heads(k, self.k, self.k_bias),
                                             heads(v, self.v, self.v_bias))  # scale head_dim ** -0.5
        return self.proj(out.transpose(1, 2).flatten(2))


class AttentionPoolingBlock(nn.Module):
    """The official ``AttentionPoolingBlock``: the token mean attends to the tokens; ``(N, L, dim)`` -> ``(N, out)``."""

    def __init__(self, dim: int, num_heads: int, out_dim: int):
        super().__init__()
        self.norm1_q = layer_norm(dim)
        self.norm1_k = layer_norm(dim)
        self.norm1_v = layer_norm(dim)
        self.cross_dcn = CrossAttention(dim, num_heads, out_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        query = self.norm1_q(x.mean(1, keepdim=True))
        return self.cross_dcn(query, k=self.norm1_k(x), v=self.norm1_v(x)).squeeze(1)


class InternImage(nn.Module):
    """InternImage with the H/G head; ``forward`` maps ``(N, 3, H, W)`` images (H, W multiples of 32) to logits."""

    def __init__(self, channels: int, depths: tuple[int, ...], groups: tuple[int, ...], mlp_ratio: float,
                 dw_kernel_size: int, offset_scale: float, level2_post_norm_block_ids: tuple[int, ...],
                 pretrain_embed_dim: int, attnpool_num_heads: int, clip_embed_dim: int, num_classes: int = 1000):
        super().__init__()
        self.patch_embed = StemLayer(channels)
        self.levels = nn.ModuleList(
            InternImageBlock(channels * 2 ** i, depth, groups[i], i < len(depths) - 1, mlp_ratio, dw_kernel_size,
                             offset_scale, level2_post_norm_block_ids if i == 2 else ())
            for i, depth in enumerate(depths))
        num_features = channels * 2 ** (len(depths) - 1)
        self.dcnv3_head_x4 = nn.Sequential(nn.Conv2d(num_features, pretrain_embed_dim * 4, kernel_size=1),
                                           nn.PixelShuffle(2))
        self.dcnv3_head_x3 = nn.Conv2d(num_features // 2, pretrain_embed_dim, kernel_size=1)
        self.clip_projector = AttentionPoolingBlock(pretrain_embed_dim, attnpool_num_heads, clip_embed_dim)
        self.fc_norm = layer_norm(clip_embed_dim)
        self.head = nn.Linear(clip_embed_dim, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.patch_embed(x)
        maps = []
        for level in self.levels:
            x, before_downsample = level(x)
            maps.append(before_downsample.permute(0, 3, 1, 2))
        x = self.dcnv3_head_x4(maps[-1]) + self.dcnv3_head_x3(maps[-2])  # both at the second-to-last level's stride
        x = self.clip_projector(x.flatten(2).transpose(1, 2))
        return self.head(self.fc_norm(x))


def build(config: str = "internimage_g_22kto1k_512", num_classes: int = 1000, **kwargs) -> InternImage:
    """The network of ``CONFIGS[config]``, randomly initialised (works under ``with torch.device('meta')``)."""
    if config not in CONFIGS:
        raise ValueError(f"unknown InternImage config {config!r} (known: {', '.join(CONFIGS)})")
    return InternImage(**{**CONFIGS[config], **kwargs}, num_classes=num_classes)


def candidate_layers(model: InternImage) -> list[str]:
    """Every block's output ``levels.<i>.blocks.<j>`` (``(N, H, W, C)``; in level 2 before the block's post norm, if
    any), in depth order, then ``fc_norm``: the official ``forward_clip_projector`` ends with
    ``fc_norm(clip_projector(x))`` and ``head`` reads that vector, so ``fc_norm`` is the pooled embedding
    (``clip_projector``'s output is the same vector before its LayerNorm)."""
    blocks = [f"levels.{i}.blocks.{j}" for i, level in enumerate(model.levels) for j in range(len(level.blocks))]
    return blocks + ["fc_norm"]


def checkpoint(state_dict: dict[str, torch.Tensor]) -> dict:
    """The published file's layout: ``{'model': state_dict}``. The official ``save_checkpoint`` also writes
    ``optimizer``, ``lr_scheduler``, ``max_accuracy``, ``epoch``, ``config`` (and EMA entries); the released weights
    are read by the official ``load_pretrained`` / HF ``convert.py`` from ``'model'`` alone."""
    return {"model": state_dict}
