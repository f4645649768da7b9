"""ONE-PEACE's vision branch: released config and key names, the published file layout, and the forward against a
re-implementation of the official layer math (fairseq layout: time-major, scaled q, additive rel-pos bias)."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from brainscore_plugins.architectures import onepeace
from brainscore_plugins.weights.formats import load_strict
from brainscore_plugins.weights.unpickle import safe_load, storage_bound
from brainscore_plugins.errors import CheckpointInvalidError

TINY = onepeace.CONFIGS["tiny-test"]


def test_released_config_matches_the_study():
    with torch.device("meta"):
        model = onepeace.build()
    count = sum(p.numel() for p in model.parameters())
    assert count == 1_516_932_960  # adapter 3.39M, 40 x (attention 9.45M + image FFN 28.3M), norms, image_proj 2.36M
    assert abs(count - 1.5e9) < 0.05e9  # the study's "ONE-PEACE, N/A, 1.5B"
    shapes = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    assert len(model.fusion_model.layers) == 40 and len(shapes) == 5 + 10 + 40 * 21 + 4
    assert shapes["image_adapter.embed_images.0.weight"] == (384, 3, 4, 4)
    assert shapes["image_adapter.embed_images.1.layer_norm.weight"] == (384,)
    assert shapes["image_adapter.embed_images.6.weight"] == (1536, 384, 2, 2)
    assert shapes["image_adapter.pos_embed"] == (257, 1536)
    assert shapes["image_adapter.rel_pos_table_list.0.weight"] == (31 * 31 + 3, 24)
    assert shapes["image_adapter.rp_bucket"] == (257, 257)
    assert shapes["fusion_model.layers.0.self_attn.k_proj.weight"] == (1536, 1536)
    assert "fusion_model.layers.0.self_attn.k_proj.bias" not in shapes
    assert shapes["fusion_model.layers.39.self_attn.ln.weight"] == (1536,)
    assert shapes["fusion_model.layers.0.image_ffn.0.wi_0.weight"] == (6144, 1536)
    assert shapes["fusion_model.layers.0.image_ffn.0.wi_1.weight"] == (6144, 1536)
    assert shapes["fusion_model.layers.0.image_ffn.2.weight"] == (6144,)
    assert shapes["fusion_model.layers.0.image_ffn.3.weight"] == (1536, 6144)
    assert shapes["fusion_model.layers.0.gamma_1"] == shapes["fusion_model.layers.0.gamma_2"] == (1536,)
    assert shapes["fusion_model.image_layer_norm.weight"] == (1536,)
    assert shapes["image_proj.weight"] == (1536, 1536)
    layers = onepeace.candidate_layers(model)
    assert layers[0] == "fusion_model.layers.0" and layers[-2:] == ["fusion_model.layers.39", "image_proj"]


def test_vision_keys_are_selected_by_name():
    published = dict.fromkeys([
        "encoder_wrapper.image_adapter.pos_embed", "encoder_wrapper.fusion_model.layers.3.image_ffn.3.bias",
        "image_proj.weight", "encoder_wrapper.fusion_model.layers.39.audio_ffn.0.wi_0.weight",
        "encoder_wrapper.fusion_model.layers.12.text_ffn.2.bias", "encoder_wrapper.fusion_model.version",
        "image_mask_token", "image_mask_head.weight", "decoder_image_embed.bias",
        "decoder_wrapper.image_adapter.pos_embed", "audio_proj.bias", "logit_scale", "encoder_wrapper.something_new"])
    assert sorted(onepeace.vision_state_dict(published)) == [
        "fusion_model.layers.3.image_ffn.3.bias", "image_adapter.pos_embed", "image_proj.weight", "something_new"]


def _random_tiny(seed: int, **changes) -> onepeace.OnePeaceVision:
    torch.manual_seed(seed)
    model = onepeace.OnePeaceVision(**{**TINY, **changes}).eval()
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.copy_(torch.randn_like(parameter) * 0.3)
    return model


def _load_forged(source: onepeace.OnePeaceVision, path, config: str = "tiny-test") -> onepeace.OnePeaceVision:
    torch.save(onepeace.checkpoint(source.state_dict()), path)
    with torch.device("meta"):
        model = onepeace.build(config)
    published = safe_load(path, max_bytes=storage_bound(model))
    assert {"cfg", "model"} <= set(published)
    load_strict(model, onepeace.vision_state_dict(published["model"]), source=str(path))
    return model.eval()


def test_forged_file_loads_strictly_and_runs(tmp_path):
    source = _random_tiny(0)
    model = _load_forged(source, tmp_path / "one-peace.pt")
    grid = TINY["image_size"] // 16
    captured = {}
    for name in onepeace.candidate_layers(model):
        model.get_submodule(name).register_forward_hook(
            lambda module, inputs, output, name=name: captured.__setitem__(name, output))
    images = torch.randn(2, 3, TINY["image_size"], TINY["image_size"])
    with torch.no_grad():
        tokens = model(images)
        assert torch.equal(tokens, source(images))
    assert tokens.shape == (2, 1 + grid * grid, TINY["embed_dim"]) and tokens.isfinite().all()
    assert list(captured) == onepeace.candidate_layers(model)
    assert all(captured[f"fusion_model.layers.{i}"].shape == tokens.shape for i in range(TINY["layers"]))
    torch.testing.assert_close(captured["image_proj"].norm(dim=1), torch.ones(2))
    with pytest.raises(ValueError, match="32 x 32"):
        model(torch.randn(1, 3, 48, 48))


def _relative_index(grid: int) -> torch.Tensor:
    """BEiT-style index, pair by pair: 2-D offset of patches, then class->patch, patch->class, class->class."""
    rows, tokens = (2 * grid - 1) ** 2 + 3, grid * grid + 1
    index = torch.zeros(tokens, tokens, dtype=torch.long)
    for i in range(tokens):
        for j in range(tokens):
            if i == 0 or j == 0:
                index[i, j] = rows - 1 if i == j == 0 else rows - 3 if i == 0 else rows - 2
            else:
                (hi, wi), (hj, wj) = divmod(i - 1, grid), divmod(j - 1, grid)
                index[i, j] = (hi - hj + grid - 1) * (2 * grid - 1) + (wi - wj + grid - 1)
    return index


def _reference(w: dict, images: torch.Tensor, heads: int, layers: int):
    """The official image path (adapter/image.py, transformer_layer.py, multihead_attention.py without xformers)."""
    def ln(x, name):
        return F.layer_norm(x, x.shape[-1:], w[f"{name}.weight"], w[f"{name}.bias"], 1e-5)

    def ln2d(x, name):
        return ln(x.permute(0, 2, 3, 1), name).permute(0, 3, 1, 2)

    e = "image_adapter.embed_images"
    x = F.gelu(ln2d(F.conv2d(images, w[f"{e}.0.weight"], w[f"{e}.0.bias"], stride=4), f"{e}.1.layer_norm"))
    x = F.gelu(ln2d(F.conv2d(x, w[f"{e}.3.weight"], w[f"{e}.3.bias"], stride=2), f"{e}.4.layer_norm"))
    x = F.conv2d(x, w[f"{e}.6.weight"], w[f"{e}.6.bias"], stride=2).flatten(2).transpose(1, 2)
    bsz, dim = len(x), x.shape[-1]
    x = torch.cat([w["image_adapter.cls_embedding"].expand(bsz, -1, -1), x], 1) + w["image_adapter.pos_embed"]
    seq, head_dim = x.shape[1], dim // heads
    bias = w["image_adapter.rel_pos_table_list.0.weight"][_relative_index(round((seq - 1) ** 0.5))]
    bias = bias.permute(2, 0, 1).expand(bsz, -1, -1, -1).reshape(bsz * heads, seq, seq)
    x, states = x.transpose(0, 1), []  # T x B x C
    for i in range(layers):
        p = f"fusion_model.layers.{i}"
        h = ln(x, f"{p}.self_attn_layer_norm")
        q = F.linear(h, w[f"{p}.self_attn.q_proj.weight"], w[f"{p}.self_attn.q_proj.bias"]) * head_dim ** -0.5
        k = F.linear(h, w[f"{p}.self_attn.k_proj.weight"])
        v = F.linear(h, w[f"{p}.self_attn.v_proj.weight"], w[f"{p}.self_attn.v_proj.bias"])
        q, k, v = (t.reshape(seq, bsz * heads, head_dim).transpose(0, 1) for t in (q, k, v))
        attn = torch.bmm(torch.softmax(torch.bmm(q, k.transpose(1, 2)) + bias, dim=-1), v)
        attn = ln(attn.transpose(0, 1).reshape(seq, bsz, dim), f"{p}.self_attn.ln")
        attn = F.linear(attn, w[f"{p}.self_attn.out_proj.weight"], w[f"{p}.self_attn.out_proj.bias"])
        x = x + w[f"{p}.gamma_1"] * attn
        h = ln(x, f"{p}.final_layer_norm")
        h = F.gelu(F.linear(h, w[f"{p}.image_ffn.0.wi_0.weight"])) * F.linear(h, w[f"{p}.image_ffn.0.wi_1.weight"])
        h = F.linear(ln(h, f"{p}.image_ffn.2"), w[f"{p}.image_ffn.3.weight"], w[f"{p}.image_ffn.3.bias"])
        x = x + w[f"{p}.gamma_2"] * h
        states.append(x.transpose(0, 1))
    tokens = ln(x, "fusion_model.image_layer_norm").transpose(0, 1)
    return states, tokens, F.normalize(F.linear(tokens[:, 0], w["image_proj.weight"], w["image_proj.bias"]), dim=1)


def test_forward_matches_official_layer_math():
    model = _random_tiny(1)
    assert torch.equal(model.image_adapter.rp_bucket, _relative_index(TINY["image_size"] // 16))
    images = torch.randn(2, 3, TINY["image_size"], TINY["image_size"])
    captured = []
    for layer in model.fusion_model.layers:
        layer.register_forward_hook(lambda module, inputs, output: captured.append(output))
    with torch.no_grad():
        tokens, embedding = model(images), model.embed(images)
        states, ref_tokens, ref_embedding = _reference(model.state_dict(), images, TINY["attention_heads"],
                                                       TINY["layers"])
    for ours, theirs in zip(captured, states):
        torch.testing.assert_close(ours, theirs, rtol=0, atol=1e-5)
    torch.testing.assert_close(tokens, ref_tokens, rtol=0, atol=1e-5)
    torch.testing.assert_close(embedding, ref_embedding, rtol=0, atol=1e-5)


def test_wrong_variant_fails_the_strict_load(tmp_path):
    with pytest.raises(CheckpointInvalidError, match=r"Shape mismatches: .*pos_embed: \(5, 48\) vs model \(5, 32\)"):
        _load_forged(_random_tiny(2, embed_dim=48, ffn_embed_dim=96), tmp_path / "one-peace.pt")
