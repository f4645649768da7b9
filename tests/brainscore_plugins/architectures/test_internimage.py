"""InternImage-G in pure PyTorch: the DCNv3 operator against its definition and the official reference's
formulation, the G network's official names and size on the meta device, and strict loads of forged checkpoints."""
from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from brainscore_plugins.architectures import internimage
from brainscore_plugins.weights.formats import load_strict
from brainscore_plugins.weights.unpickle import safe_load, storage_bound
from brainscore_plugins.errors import CheckpointInvalidError

G = "internimage_g_22kto1k_512"
G_PARAMETERS = 3_076_373_352  # also what the official InternImage(...) of the G yaml counts


def _direct(x, offset, mask, kh, kw, sh, sw, ph, pw, dh, dw, group, gc, scale):
    """DCNv3 by its definition, one output pixel, group and sampling point at a time (float64); also how many
    bilinear corners fell outside the input."""
    x, offset, mask = x.double(), offset.double(), mask.double()
    n, h, w, _ = x.shape
    _, ho, wo, _ = offset.shape
    points, outside = kh * kw, 0
    out = torch.zeros(n, ho, wo, group * gc, dtype=torch.float64)
    for b in range(n):
        for i in range(ho):
            for j in range(wo):
                for g in range(group):
                    channels = slice(g * gc, (g + 1) * gc)
                    for col in range(kw):
                        for row in range(kh):
                            p = g * points + col * kh + row  # points column-major within a group
                            dx, dy = offset[b, i, j, 2 * p].item(), offset[b, i, j, 2 * p + 1].item()
                            lx = j * sw - pw + (col * dw - dw * (kw - 1) // 2 + dx) * scale + dw * (kw - 1) // 2
                            ly = i * sh - ph + (row * dh - dh * (kh - 1) // 2 + dy) * scale + dh * (kh - 1) // 2
                            x0, y0 = math.floor(lx), math.floor(ly)
                            for yy, wy in ((y0, 1 - (ly - y0)), (y0 + 1, ly - y0)):
                                for xx, wx in ((x0, 1 - (lx - x0)), (x0 + 1, lx - x0)):
                                    if 0 <= yy < h and 0 <= xx < w:
                                        out[b, i, j, channels] += mask[b, i, j, p] * wy * wx * x[b, yy, xx, channels]
                                    else:
                                        outside += 1
    return out, outside


def _official_formulation(x, offset, mask, kh, kw, sh, sw, ph, pw, dh, dw, group, gc, scale):
    """The official ``dcnv3_core_pytorch`` re-derived: zero-pad the input (its F.pad pads W by pad_h and H by pad_w;
    the same when they are equal), reference points and the kernel grid (both scaled) in [0, 1] coordinates of the
    padded input plus offset * scale / size, then one ``grid_sample`` (align_corners=False) per group and point."""
    x = F.pad(x, [0, 0, ph, ph, pw, pw])
    n, hin, win, _ = x.shape
    _, ho, wo, _ = offset.shape
    ref_x = (torch.arange(wo) * sw + dw * (kw - 1) // 2 + 0.5) / win
    ref_y = (torch.arange(ho) * sh + dh * (kh - 1) // 2 + 0.5) / hin
    ref = torch.stack(torch.meshgrid(ref_x, ref_y, indexing="xy"), -1)  # (ho, wo, 2)
    kernel_x = (torch.arange(kw) * dw - dw * (kw - 1) // 2) / win
    kernel_y = (torch.arange(kh) * dh - dh * (kh - 1) // 2) / hin
    kernel = torch.stack(torch.meshgrid(kernel_x, kernel_y, indexing="ij"), -1).reshape(-1, 2)
    size = torch.tensor([win, hin])
    out = torch.zeros(n, ho, wo, group * gc)
    for g in range(group):
        values = x[..., g * gc:(g + 1) * gc].permute(0, 3, 1, 2)
        for k in range(kh * kw):
            p = g * kh * kw + k
            loc = ref + kernel[k] * scale + offset[..., 2 * p:2 * p + 2] * scale / size
            sampled = F.grid_sample(values, 2 * loc - 1, mode="bilinear", padding_mode="zeros", align_corners=False)
            out[..., g * gc:(g + 1) * gc] += sampled.permute(0, 2, 3, 1) * mask[..., p:p + 1]
    return out


def _operands(kh, kw, sh, sw, ph, pw, dh, dw, group=2, gc=3, size=5, seed=0):
    gen = torch.Generator().manual_seed(seed)
    ho = (size + 2 * ph - (dh * (kh - 1) + 1)) // sh + 1
    wo = (size + 2 * pw - (dw * (kw - 1) + 1)) // sw + 1
    x = torch.randn(1, size, size, group * gc, generator=gen)
    offset = 2.5 * torch.randn(1, ho, wo, group * kh * kw * 2, generator=gen)
    mask = torch.rand(1, ho, wo, group * kh * kw, generator=gen)
    return x, offset, mask


# kernel_h, kernel_w, stride_h, stride_w, pad_h, pad_w, dilation_h, dilation_w, offset_scale
CASES = [(3, 3, 1, 1, 1, 1, 1, 1, 1.0), (3, 3, 2, 2, 1, 1, 1, 1, 1.0), (3, 5, 1, 1, 2, 2, 2, 1, 0.5)]


@pytest.mark.parametrize("case", CASES + [(3, 5, 2, 1, 1, 2, 1, 1, 1.0)])
def test_dcnv3_equals_its_definition(case):
    *geometry, scale = case
    x, offset, mask = _operands(*geometry)
    expected, outside = _direct(x, offset, mask, *geometry, 2, 3, scale)
    assert outside > 0  # the zero padding is exercised
    got = internimage.dcnv3(x, offset, mask, *geometry, 2, 3, scale)
    assert got.shape == expected.shape
    torch.testing.assert_close(got.double(), expected, atol=1e-5, rtol=0)


@pytest.mark.parametrize("case", CASES)
def test_dcnv3_equals_the_official_pytorch_formulation(case):
    *geometry, scale = case
    x, offset, mask = _operands(*geometry, seed=1)
    expected = _official_formulation(x, offset, mask, *geometry, 2, 3, scale)
    torch.testing.assert_close(internimage.dcnv3(x, offset, mask, *geometry, 2, 3, scale), expected, atol=1e-5,
                               rtol=0)


def test_g_builds_on_meta_with_the_official_names_and_size():
    with torch.device("meta"):
        model = internimage.build(G)
    count = sum(p.numel() for p in model.parameters())
    print(f"InternImage-G parameters: {count:,}")
    assert count == G_PARAMETERS
    assert round(count / 1e9) == round(internimage.published_parameters / 1e9) == 3  # the README's "3B"
    shapes = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    assert len(shapes) == 1295
    assert shapes["patch_embed.conv1.weight"] == (256, 3, 3, 3)
    assert shapes["patch_embed.norm1.1.weight"] == (256,)
    assert shapes["patch_embed.norm2.1.weight"] == (512,)
    assert shapes["levels.2.blocks.47.dcn.offset.weight"] == (64 * 9 * 2, 2048)
    assert shapes["levels.2.blocks.47.dcn.mask.weight"] == (64 * 9, 2048)
    assert shapes["levels.2.blocks.47.dcn.dw_conv.0.weight"] == (2048, 1, 5, 5)
    assert shapes["levels.2.blocks.47.dcn.dw_conv.1.1.weight"] == (2048,)
    assert shapes["levels.2.blocks.47.dcn.center_feature_scale_proj_weight"] == (64, 2048)
    assert shapes["levels.2.blocks.47.dcn.center_feature_scale_proj_bias"] == (64,)
    assert shapes["levels.2.blocks.47.mlp.fc1.weight"] == (8192, 2048)
    assert shapes["levels.2.post_norms.7.0.weight"] == (2048,)
    assert shapes["levels.2.downsample.conv.weight"] == (4096, 2048, 3, 3)
    assert shapes["levels.2.downsample.norm.1.weight"] == (4096,)
    assert shapes["levels.3.norm.0.weight"] == (4096,)
    assert shapes["dcnv3_head_x4.0.weight"] == (4096, 4096, 1, 1)
    assert shapes["dcnv3_head_x3.weight"] == (1024, 2048, 1, 1)
    assert shapes["clip_projector.norm1_q.0.weight"] == (1024,)
    assert shapes["clip_projector.cross_dcn.q_bias"] == (1024,)
    assert shapes["clip_projector.cross_dcn.proj.weight"] == (768, 1024)
    assert shapes["fc_norm.0.weight"] == (768,)
    assert shapes["head.weight"] == (1000, 768)
    assert not any(k.startswith(("conv_head", "levels.3.downsample")) or "gamma" in k or "res_post_norm" in k
                   for k in shapes)
    layers = internimage.candidate_layers(model)
    assert len(layers) == 2 + 2 + 48 + 4 + 1
    assert layers[:3] == ["levels.0.blocks.0", "levels.0.blocks.1", "levels.1.blocks.0"]
    assert layers[-2:] == ["levels.3.blocks.3", "fc_norm"]
    assert set(layers) <= {name for name, _ in model.named_modules()}
    assert internimage.IMAGE_SIZE[G] == 512


def _random_weights(model, seed):
    gen = torch.Generator().manual_seed(seed)
    return {k: 0.2 * torch.randn(v.shape, generator=gen) for k, v in model.state_dict().items()}


def test_tiny_checkpoint_loads_strictly_and_runs(tmp_path):
    model = internimage.build("tiny-test", num_classes=10).eval()
    weights = _random_weights(model, seed=0)
    path = tmp_path / "internimage_tiny.pth"
    torch.save(internimage.checkpoint(weights), path)
    loaded = safe_load(path, max_bytes=storage_bound(model))
    assert set(loaded) == {"model"}
    load_strict(model, loaded["model"], source=str(path))
    assert all(torch.equal(v, weights[k]) for k, v in model.state_dict().items())

    outputs = {}
    layers = internimage.candidate_layers(model)
    for name in layers:
        model.get_submodule(name).register_forward_hook(lambda m, i, out, name=name: outputs.__setitem__(name, out))
    images = torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        logits = model(images)
    assert logits.shape == (2, 10) and torch.isfinite(logits).all()
    assert list(outputs) == layers
    depths, channels = internimage.CONFIGS["tiny-test"]["depths"], internimage.CONFIGS["tiny-test"]["channels"]
    assert len(layers) == sum(depths) + 1
    for i, depth in enumerate(depths):
        side, width = 16 >> i, channels << i
        for j in range(depth):
            assert outputs[f"levels.{i}.blocks.{j}"].shape == (2, side, side, width)
    assert outputs["fc_norm"].shape == (2, internimage.CONFIGS["tiny-test"]["clip_embed_dim"])
    torch.testing.assert_close(model.head(outputs["fc_norm"]), logits)

    with torch.device("meta"):
        on_meta = internimage.build("tiny-test", num_classes=10)
    load_strict(on_meta, loaded["model"])
    with torch.no_grad():
        torch.testing.assert_close(on_meta.eval()(images), logits)


def test_wrong_variant_fails_strict_load():
    model = internimage.build("tiny-test")
    wider = internimage.InternImage(**{**internimage.CONFIGS["tiny-test"], "channels": 16})
    with pytest.raises(CheckpointInvalidError, match=r"patch_embed\.conv1\.weight: \(8, 3, 3, 3\) vs model "
                                                     r"\(4, 3, 3, 3\)"):
        load_strict(model, _random_weights(wider, seed=2))


def test_unknown_config():
    with pytest.raises(ValueError, match="tiny-test"):
        internimage.build("internimage_h")
