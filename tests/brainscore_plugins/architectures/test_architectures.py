"""Architectures: published parameter counts, commitment layer names, checkpoint key layouts, tiny forwards.

Everything heavy is built on the meta device; the real forwards use the smallest archs of each family.
"""
from __future__ import annotations

import csv
import functools
import json

import pytest
import torch

import spvvs_ids
from brainscore_plugins import architectures as A


def _catalog(reference_dir) -> dict[str, str]:
    with open(reference_dir / "model_checkpoints.csv", newline="") as f:
        return {row["model_id"]: row["arch"] for row in csv.DictReader(f)}


def _published_counts(reference_dir) -> dict[str, int]:
    counts = {}
    with open(reference_dir / "benchmark_scores.csv", newline="") as f:
        for row in csv.DictReader(f):
            if row["n_params"]:
                counts.setdefault(row["model_id"], int(float(row["n_params"])))
    return counts


@functools.lru_cache(maxsize=None)
def _meta(arch: str, method: str) -> torch.nn.Module:
    with torch.device("meta"):
        return A.build(arch, 1000, method)


@functools.lru_cache(maxsize=None)
def _count(arch: str) -> int:
    return A.count_parameters(arch)


def test_every_catalog_arch_is_buildable(reference_dir):
    problems = {}
    for model_id, cell in _catalog(reference_dir).items():
        arch, method = spvvs_ids.arch_and_method(model_id, cell)
        reason = A.unsupported_reason(arch, method)
        if reason:
            problems[model_id] = reason
    assert not problems, problems


@pytest.mark.slow
def test_parameter_counts_match_published(reference_dir):
    catalog, published = _catalog(reference_dir), _published_counts(reference_dir)
    rows = [(m, n) for m, n in published.items() if m in catalog]
    assert len(rows) >= 700
    mismatches = {}
    for model_id, n_params in rows:
        arch, _ = spvvs_ids.arch_and_method(model_id, catalog[model_id])
        got = _count(arch)
        if got != n_params:
            mismatches[model_id] = (arch, got, n_params)
    assert not mismatches, f"{len(mismatches)} of {len(rows)} differ: {mismatches}"


def _commitment_arch(key: str, catalog_archs: set[str]) -> tuple[str, str] | None:
    method = "supervised"
    for prefix in ("simclr_", "dino_"):
        if key.startswith(prefix):
            method, key = prefix[:-1], key[len(prefix):]
    arch = key.lower()
    if arch not in catalog_archs or A.unsupported_reason(arch, method):
        return None  # a timm hub model or an arch the study published no checkpoint for
    return arch, method


@pytest.mark.slow
def test_commitment_layers_exist(reference_dir):
    catalog = _catalog(reference_dir)
    archs = {spvvs_ids.arch_and_method(m, c)[0] for m, c in catalog.items()}
    commitments = json.loads((reference_dir / "commitments.json").read_text())
    checked, missing = 0, {}
    for key, per_dataset in commitments.items():
        mapped = _commitment_arch(key, archs)
        if mapped is None:
            continue
        assert spvvs_ids.commitment_key(*mapped) == key
        names = dict(_meta(*mapped).named_modules())
        for dataset, per_seed in per_dataset.items():
            for seed, commitment in per_seed.items():
                layers = set(commitment["layers"]) | set(commitment["region2layer"].values())
                layers.add(commitment["behavioral_readout_layer"])
                absent = sorted(layer for layer in layers if layer not in names)
                if absent:
                    missing[f"{key}/{dataset}/{seed}"] = absent
                checked += 1
    assert checked > 100
    assert not missing, missing


def test_cornet_layers_exist():
    names = dict(_meta("cornet_s", "supervised").named_modules())
    for layer in ["V1.output", "V2.output", "V4.output", "IT.output", "decoder.avgpool"]:
        assert layer in names


def test_fallback_commitment_keys():
    assert spvvs_ids.commitment_key("resnet34", "simclr") == "ResNet34"
    assert spvvs_ids.commitment_key("resnet18", "adversarial") == "ResNet18"
    assert spvvs_ids.commitment_key("resnetflexfilters-f-1-16-20-3", "simclr") == "resnetflexfilters-f-1-16-20-3"
    names = dict(_meta("resnet34", "simclr").named_modules())
    assert "layer4.2.relu" in names and "backbone.layer4.2.relu" in names


def test_arch_and_method_for_empty_cells():
    assert spvvs_ids.arch_and_method("resnet18-adam-00001_imagenet_full", "") == ("resnet18-adam-00001", "supervised")
    assert spvvs_ids.arch_and_method("simclr_resnetflexfilters-f-1-16-20-3_imagenet_full_seed-0", "") == (
        "resnetflexfilters-f-1-16-20-3", "simclr")
    adversarial = "adv_resnetflexfilters-f-1-16-20-0_imagenet_full_ffgsm_eps-1_alpha-125-ep10_seed-0"
    assert spvvs_ids.arch_and_method(adversarial, "") == ("resnetflexfilters-f-1-16-20-0", "adversarial")
    assert spvvs_ids.arch_and_method("vit_b_16_imagenet_10_seed-0", "") == ("vit_b_16", "supervised")
    assert spvvs_ids.arch_and_method("efficientnet_b1_ecoset_10_seed-10", "") == ("efficientnet_b1", "supervised")
    assert spvvs_ids.arch_and_method("resnet34_imagenet21kP_full_seed-0-50ep", "") == ("resnet34", "supervised")
    assert spvvs_ids.arch_and_method("dino_vit_small_imagenet_full_seed-0", "vit_small") == ("vit_small", "dino")


def test_unsupported_reasons():
    assert A.unsupported_reason("resnet18") is None
    assert "unknown architecture" in A.unsupported_reason("resnet19")
    assert A.unsupported_reason("convnext_tiny", "simclr")
    assert A.unsupported_reason("resnet18", "mae")
    with pytest.raises(ValueError):
        A.build("resnetflexfilters-q-1-2-3-4")


# --- key layouts: what the study's Composer models save (``module.`` stripped for ComposerClassifier) ----------

def _keys(arch, method, num_classes=1000):
    with torch.device("meta"):
        return {k: tuple(v.shape) for k, v in A.build(arch, num_classes, method).state_dict().items()}


def test_simclr_keys():
    keys = _keys("resnet18", "simclr")
    assert {k.split(".")[0] for k in keys} == {"backbone", "head"}
    assert keys["backbone.conv1.weight"] == (64, 3, 7, 7)
    assert keys["backbone.layer4.1.bn2.running_var"] == (512,)
    assert not any(k.startswith(("backbone.fc.", "backbone.8.", "layer1.")) for k in keys)  # aliases are hidden
    assert {k: v for k, v in keys.items() if k.startswith("head.")} == {
        "head.layers.0.weight": (2048, 512),
        **{f"head.layers.1.{p}": (2048,) for p in ("weight", "bias", "running_mean", "running_var")},
        "head.layers.1.num_batches_tracked": (),
        "head.layers.3.weight": (128, 2048),
        **{f"head.layers.4.{p}": (128,) for p in ("weight", "bias", "running_mean", "running_var")},
        "head.layers.4.num_batches_tracked": (),
    }
    vit_keys = _keys("vit_small", "simclr")
    assert "backbone.blocks.11.mlp.fc2.weight" in vit_keys and "head.layers.0.weight" in vit_keys
    assert not any(k.startswith("backbone.head.") for k in vit_keys)


def test_dino_keys():
    keys = _keys("resnet50", "dino")
    assert {k.split(".")[0] for k in keys} == {"student_backbone", "teacher_backbone", "student_head",
                                               "teacher_head", "loss_func"}
    assert keys["loss_func.center"] == (1, 1, 65536)
    for side in ("student", "teacher"):
        assert keys[f"{side}_backbone.layer4.2.conv3.weight"] == (2048, 512, 1, 1)
        assert f"{side}_backbone.fc.weight" not in keys
        assert keys[f"{side}_head.layers.0.weight"] == (2048, 2048)
        assert keys[f"{side}_head.layers.4.weight"] == (256, 2048)
        assert keys[f"{side}_head.last_layer.weight_g"] == (65536, 1)
        assert keys[f"{side}_head.last_layer.weight_v"] == (65536, 256)
    vit_keys = _keys("vit_small", "dino")
    assert vit_keys["teacher_head.layers.0.weight"] == (2048, 384)
    assert vit_keys["teacher_backbone.pos_embed"] == (1, 197, 384)


def test_adversarial_keys_equal_supervised():
    assert _keys("resnet50", "adversarial") == _keys("resnet50", "supervised")
    assert _keys("resnetflexfilters-f-1-16-20-7", "adversarial") == _keys("resnetflexfilters-f-1-16-20-7",
                                                                         "supervised")


def test_convnext_and_deit_keys():
    keys = _keys("convnext_tiny", "supervised", 565)
    assert keys["features.0.0.weight"] == (96, 3, 4, 4)
    assert keys["features.1.0.layer_scale"] == (96, 1, 1)
    assert keys["classifier.2.weight"] == (565, 768)
    keys = _keys("deit_tiny", "supervised", 565)
    assert keys["pos_embed"] == (1, 196, 192)  # no_embed_class: no class-token slot
    assert keys["cls_token"] == (1, 1, 192)
    assert keys["blocks.0.ls1.gamma"] == (192,)
    assert keys["head.weight"] == (565, 192)
    assert not any(k.startswith("fc_norm") for k in keys)
    keys = _keys("deit_small", "supervised")
    assert keys["pos_embed"] == (1, 196, 384) and keys["blocks.11.ls2.gamma"] == (384,)


@pytest.mark.parametrize("arch,method", [("resnet18", "simclr"), ("deit_tiny", "supervised"),
                                         ("cornet_s", "supervised")])
def test_composer_layout_loads_strictly(arch, method):
    """A Composer-style dict (``module.``-prefixed for classifiers) loads strictly once the prefix is stripped."""
    with torch.device("meta"):
        model = A.build(arch, 10, method)
        prefix = "" if method in ("simclr", "dino") else "module."
        saved = {prefix + k: torch.empty_like(v) for k, v in model.state_dict().items()}
    stripped = {k[len("module."):] if k.startswith("module.") else k: v for k, v in saved.items()}
    model.load_state_dict(stripped, strict=True, assign=True)


# --- tiny real forwards -----------------------------------------------------------------------------------------

@pytest.mark.parametrize("arch,method,size,out_dim", [
    ("resnetflexfilters-f-1-16-20-19", "supervised", 64, 7),
    ("resnetflexfilters-d-1-0-0-0", "adversarial", 64, 7),
    ("cornet_s", "supervised", 64, 7),
    ("convnextflex-l-3", "supervised", 64, 7),
    ("deitflex-l-3", "supervised", 224, 7),
    ("alexnet", "supervised", 64, 7),
    ("resnetflexfilters-f-1-16-20-19", "simclr", 64, None),
    ("resnet18", "dino", 64, None),
])
def test_tiny_forward(arch, method, size, out_dim):
    torch.manual_seed(0)
    model = A.build(arch, 7, method).eval()
    with torch.no_grad():
        out = model(torch.randn(2, 3, size, size))
    assert out.shape[0] == 2 and torch.isfinite(out).all()
    if out_dim is not None:
        assert out.shape == (2, out_dim)


def test_simclr_aliases_see_the_same_activations():
    torch.manual_seed(0)
    model = A.build("resnetflexfilters-f-1-16-20-19", method="simclr").eval()
    names = dict(model.named_modules())
    assert names["layer1.0.conv1"] is names["backbone.layer1.0.conv1"]
    assert names["backbone.8"] is names["backbone.avgpool"]
    seen = {}
    hooks = [names[n].register_forward_hook(lambda m, i, o, n=n: seen.__setitem__(n, o)) for n in ("backbone.8",)]
    with torch.no_grad():
        features = model(torch.randn(2, 3, 64, 64))
    for h in hooks:
        h.remove()
    assert torch.equal(seen["backbone.8"].flatten(1), features)
    assert sum(p.numel() for p in model.parameters()) == sum(
        v.numel() for k, v in model.state_dict().items() if "running" not in k and "num_batches" not in k)
