"""humanlike-vits (hlvit): catalog grid, architectures and parameter counts, MAE checkpoints (forged in the published
layout), Hugging Face cache / mirror / offline behaviour, layers, and Brain-Score loading in a fresh process."""
import csv
import functools
import importlib.util
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from brainscore_plugins import architectures as A
from brainscore_plugins import candidates
from brainscore_plugins import catalog, errors, factory, families, forge, settings
from brainscore_plugins.weights import fetch, formats, unpickle
from brainscore_plugins.architectures import humanlike as H

PRE, FT = "hlvit_vits14_1.0_1", "hlvit_vits14_1.0_1-finetuned"

# Encoder parameters (num_classes=0). References: timm 1.0 ``vit_huge_patch14_224`` (MAE's ViT-H/14, identical
# state-dict keys and shapes) has 630,764,800; the others are timm's ``vit_{small,base,large}_patch16_224``
# (21,665,664 / 85,798,656 / 303,301,632 without head) moved to patch 14 and a 16x16 grid:
# + 3*dim*(14^2 - 16^2) (patch projection) + dim*(257 - 197) (position embedding); the @N variants add
# dim*((N/14)^2 - 16^2) position-embedding rows to ViT-H/14. The MAE paper's rounded counts (with a 1000-class
# head): ViT-B 86M, ViT-L 304M, ViT-H 632M.
ENCODER_PARAMS = {"vits14": 21_619_584, "vitb14": 85_706_496, "vitl14": 303_178_752, "vith14": 630_764_800,
                  "vith14@448": 631_747_840, "vith14@476": 631_916_800}
TIMM_PATCH16 = {"vits14": ("vit_small_patch16_224", 21_665_664), "vitb14": ("vit_base_patch16_224", 85_798_656),
                "vitl14": ("vit_large_patch16_224", 303_301_632)}


# ---------------------------------------------------------------- catalog

def test_catalog_is_the_documented_grid_and_in_sync_with_its_script(repo):
    entries = catalog.entries("hlvit")
    assert len(entries) == 156 and len({e.identifier for e in entries}) == 156
    ids = {e.model_id for e in entries if e.training_method == "mae"}
    assert len(ids) == 78
    assert {e.model_id for e in entries if e.training_method == "mae-finetuned"} == {f"{i}-finetuned" for i in ids}
    assert "vith14@476_1.0_1" in ids and "vits14_0.0001_3" in ids and "vits14_1.0_2" not in ids
    spec = importlib.util.spec_from_file_location("bch", repo / "scripts" / "build_catalog_humanlike.py")
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    with open(families.get("hlvit").catalog_path, newline="") as f:
        on_disk = list(csv.DictReader(f))
    assert on_disk == [{k: str(v) for k, v in row.items()} for row in script.build_rows()]


def test_identifiers_are_safe_file_names_and_resolve():
    for identifier in catalog.identifiers("hlvit"):
        assert re.fullmatch(r"hlvit_vit[sblh]14(@4[47][86])?_(1\.0|0\.1|0\.01|0\.001|0\.0001)_[123](-finetuned)?",
                            identifier), identifier
    entry = catalog.resolve("vith14@476_1.0_1-finetuned")  # the repository's id is an alias
    assert entry.identifier == "hlvit_vith14@476_1.0_1-finetuned" and entry.epoch is None
    assert (entry.hf_repo, entry.weights_file, entry.url) == (
        "eminorhan/humanlike-vits", "finetuned_vith14@476/vith14@476_1.0_1.pth", "")
    assert (entry.training_method, entry.checkpoint_format) == ("mae-finetuned", "mae-finetune")
    other = catalog.resolve("hlvit_vitb14_0.1_2")
    assert (other.hf_repo, other.weights_file, other.checkpoint_format) == (
        "eminorhan/humanlike-vits", "vitb14/vitb14_0.1_2.pth", "mae-pretrain")
    assert (entry.resize, entry.crop, entry.interpolation) == (508, 476, "bicubic")
    assert (catalog.resolve(PRE).resize, catalog.resolve(PRE).crop) == (256, 224)
    assert (catalog.resolve("hlvit_vith14@448_0.01_1").resize, catalog.resolve("hlvit_vith14@448_0.01_1").crop) \
        == (480, 448)
    assert not entry.region_layer_map and not entry.readout


@pytest.mark.parametrize("name, suggestion", [("hlvit_vits16_1.0_1", "hlvit_vits14_1.0_1"),      # unknown arch
                                              ("hlvit_vitb14_0.5_1", "hlvit_vitb14_0.1_1"),      # unknown fraction
                                              ("hlvit_vitl14_1.0_2", "hlvit_vitl14_1.0_1"),      # no seed 2 at 1.0
                                              ("vith14@476_0.01_4", "vith14@476_0.01_1")])       # unknown seed
def test_bad_identifiers_get_suggestions(name, suggestion):
    with pytest.raises(errors.ModelNotFoundError) as error:
        catalog.resolve(name)
    assert "Did you mean" in str(error.value) and suggestion in str(error.value)


# ---------------------------------------------------------------- architectures

@pytest.mark.slow
@pytest.mark.parametrize("arch", H.ARCHS)
def test_parameter_counts(arch):
    assert A.count_parameters(arch, "mae", 0) == ENCODER_PARAMS[arch]
    dim = H.SIZES[arch[3]][0]
    assert A.count_parameters(arch, "mae-finetuned", 1000) == ENCODER_PARAMS[arch] + dim * 1000 + 1000
    if arch in TIMM_PATCH16:
        import timm
        name, count = TIMM_PATCH16[arch]
        with torch.device("meta"):
            reference = sum(p.numel() for p in timm.create_model(name, num_classes=0).parameters())
        assert reference == count
        assert ENCODER_PARAMS[arch] == count + 3 * dim * (14 ** 2 - 16 ** 2) + dim * (257 - 197)


def test_vith14_equals_timm_mae_vit_huge_and_grids():
    import timm
    with torch.device("meta"):
        reference = timm.create_model("vit_huge_patch14_224", num_classes=0)
        ours = {a: A.build(a, 0, "mae") for a in ("vith14", "vith14@448", "vith14@476")}
        finetuned = A.build("vith14@476", 1000, "mae-finetuned")
    assert sum(p.numel() for p in reference.parameters()) == ENCODER_PARAMS["vith14"]
    assert {k: v.shape for k, v in reference.state_dict().items()} == \
        {k: v.shape for k, v in ours["vith14"].state_dict().items()}
    assert ours["vith14@448"].pos_embed.shape == (1, 32 * 32 + 1, 1280)
    assert ours["vith14@476"].pos_embed.shape == (1, 34 * 34 + 1, 1280)
    assert ours["vith14@476"].patch_embed.proj.weight.shape == (1280, 3, 14, 14)
    assert len(ours["vith14@476"].blocks) == 32 and ours["vith14@476"].norm.eps == 1e-6
    head = finetuned.head
    assert isinstance(head[0], torch.nn.BatchNorm1d) and not head[0].affine and head[0].eps == 1e-6
    assert head[1].out_features == 1000
    assert {k for k in finetuned.state_dict() if k.startswith("head.")} == {
        "head.0.running_mean", "head.0.running_var", "head.0.num_batches_tracked", "head.1.weight", "head.1.bias"}
    assert H.eval_batch_size("vith14@476") == 8 and H.eval_batch_size("vits14") == 64
    with pytest.raises(ValueError, match="vits14@448"):
        H.build("vits14@448")
    assert A.unsupported_reason("vits14@448", "mae") is not None


def test_candidate_layers_and_class_token_readout():
    layers = candidates.for_entry(catalog.resolve("hlvit_vits14_1.0_1"))
    assert layers == [f"blocks.{i}" for i in range(12)] + ["norm", "fc_norm"]
    assert candidates.for_entry(catalog.resolve("hlvit_vith14@476_1.0_1"))[-3:] == ["blocks.31", "norm",
                                                                                          "fc_norm"]
    torch.manual_seed(0)
    model = A.build("vits14", 1000, "mae-finetuned").eval()
    out = {}
    for name in ("norm", "fc_norm"):
        dict(model.named_modules())[name].register_forward_hook(lambda m, i, o, name=name: out.__setitem__(name, o))
    with torch.no_grad():
        model(torch.randn(2, 3, 224, 224))
    assert out["norm"].shape == (2, 257, 384) and torch.equal(out["fc_norm"], out["norm"][:, 0])
    # other families: the block-output rule
    assert candidates.for_entry(catalog.resolve("spvvs_resnet18_imagenet_full"))[:2] == ["layer1.0", "layer1.1"]


# ---------------------------------------------------------------- checkpoints

@pytest.fixture(scope="module")
def mirror(tmp_path_factory):
    root = tmp_path_factory.mktemp("hlvit_mirror")
    for name in (PRE, FT):
        forge.forge_into_mirror(name, root)
    return root


@pytest.fixture
def env(mirror, tmp_path, monkeypatch):
    monkeypatch.setenv(settings.MIRROR, str(mirror))
    monkeypatch.setenv(settings.CACHE, str(tmp_path / "cache"))
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    return tmp_path


def test_forged_files_have_the_published_layout(mirror):
    raw = unpickle.safe_load(mirror / "vits14" / "vits14_1.0_1.pth")
    assert set(raw) == {"model", "optimizer", "epoch", "scaler", "args"}
    assert isinstance(raw["args"], unpickle.Placeholder)  # an argparse.Namespace, never constructed
    keys = set(raw["model"])
    assert {"mask_token", "decoder_embed.weight", "decoder_pos_embed", "decoder_blocks.7.mlp.fc2.weight",
            "decoder_norm.weight", "decoder_pred.weight", "cls_token", "pos_embed", "norm.weight"} <= keys
    assert raw["model"]["decoder_pred.weight"].shape == (588, 512)
    finetuned = unpickle.safe_load(mirror / "finetuned_vits14" / "vits14_1.0_1.pth")["model"]
    assert "head.0.running_var" in finetuned and "head.1.weight" in finetuned and "mask_token" not in finetuned


def test_pretrained_and_finetuned_load_exactly(env, mirror):
    for name, filename in ((PRE, "vits14/vits14_1.0_1.pth"), (FT, "finetuned_vits14/vits14_1.0_1.pth")):
        model = factory.create_model(name, progress=False)
        stored = torch.load(mirror / filename, map_location="cpu", weights_only=False)["model"]  # our own file
        assert all(torch.equal(v, stored[k]) for k, v in model.state_dict().items())
        record = env / "cache" / "huggingface" / "eminorhan" / "humanlike-vits" / f"{filename}.sha256"
        assert record.read_text().strip() == fetch.sha256_of(mirror / filename)
    with torch.no_grad():
        assert model(torch.randn(2, 3, 224, 224)).shape == (2, 1000)


def _rewrite(mirror, tmp_path, filename, change) -> Path:
    raw = torch.load(mirror / filename, map_location="cpu", weights_only=False)
    change(raw["model"])
    target = tmp_path / "bad_mirror" / filename
    formats.save_atomically(raw, target)
    return target.parents[1]


def test_missing_or_unexpected_encoder_key_is_named(env, mirror, tmp_path, monkeypatch):
    bad = _rewrite(mirror, tmp_path, "vits14/vits14_1.0_1.pth", lambda sd: sd.pop("blocks.3.attn.qkv.weight"))
    monkeypatch.setenv(settings.MIRROR, str(bad))
    with pytest.raises(errors.CheckpointInvalidError, match=r"Missing keys: blocks\.3\.attn\.qkv\.weight"):
        factory.create_model(PRE, progress=False)
    bad = _rewrite(mirror, tmp_path, "finetuned_vits14/vits14_1.0_1.pth",
                   lambda sd: sd.__setitem__("fc_norm.weight", torch.ones(384)))
    monkeypatch.setenv(settings.MIRROR, str(bad))
    with pytest.raises(errors.CheckpointInvalidError, match=r"Unexpected keys: fc_norm\.weight"):
        factory.create_model(FT, progress=False)


def test_position_embedding_is_resampled_to_the_model_grid(env, mirror, tmp_path, monkeypatch):
    from timm.layers import resample_abs_pos_embed
    small = torch.randn(1, 8 * 8 + 1, 384)  # a checkpoint trained at 112 px
    bad = _rewrite(mirror, tmp_path, "finetuned_vits14/vits14_1.0_1.pth",
                   lambda sd: sd.__setitem__("pos_embed", small))
    monkeypatch.setenv(settings.MIRROR, str(bad))
    model = factory.create_model(FT, progress=False)
    assert torch.equal(model.pos_embed, resample_abs_pos_embed(small, [16, 16], [8, 8], num_prefix_tokens=1))
    assert torch.equal(model.pos_embed[:, 0], small[:, 0])  # the class token's embedding is kept
    wrong_width = _rewrite(mirror, tmp_path / "w", "finetuned_vits14/vits14_1.0_1.pth",
                           lambda sd: sd.__setitem__("pos_embed", torch.randn(1, 65, 192)))
    monkeypatch.setenv(settings.MIRROR, str(wrong_width))
    monkeypatch.setenv(settings.CACHE, str(tmp_path / "cache2"))  # a different file: no recorded hash yet
    with pytest.raises(errors.CheckpointInvalidError, match="pos_embed"):
        factory.create_model(FT, progress=False)


# ---------------------------------------------------------------- weights: Hugging Face cache, offline

def test_offline_and_not_cached_is_a_clear_error(env, monkeypatch):
    monkeypatch.delenv(settings.MIRROR)
    with pytest.raises(errors.WeightsUnavailableError) as error:
        factory.create_model("hlvit_vith14@476_0.1_2", progress=False)
    message = str(error.value)
    assert "eminorhan/humanlike-vits" in message and "vith14@476/vith14@476_0.1_2.pth" in message
    assert settings.MIRROR in message and "HF_HUB_OFFLINE" in message


def test_hugging_face_cache_is_used_offline_and_verified(env, mirror, monkeypatch):
    monkeypatch.delenv(settings.MIRROR)
    commit = "0123456789abcdef0123456789abcdef01234567"
    repo = env / "hf" / "models--eminorhan--humanlike-vits"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(commit)
    cached = repo / "snapshots" / commit / "finetuned_vits14" / "vits14_1.0_1.pth"
    cached.parent.mkdir(parents=True)
    cached.write_bytes((mirror / "finetuned_vits14" / "vits14_1.0_1.pth").read_bytes())
    assert factory.weights_path(catalog.resolve(FT), progress=False) == cached
    assert factory.create_model(FT, progress=False).head[1].weight.shape == (1000, 384)
    with open(cached, "r+b") as f:  # the cached file changes after its hash was recorded
        f.seek(1000)
        f.write(b"\x00" * 16)
    with pytest.raises(errors.ChecksumMismatchError):
        factory.create_model(FT, progress=False)


# ---------------------------------------------------------------- Brain-Score

LOAD = """
import json, os, sys
import numpy as np, torch
import brainscore_vision
from brainscore_plugins import settings, synthetic_recordings

identifier, data = sys.argv[1], sys.argv[2]
result = {}
try:
    brainscore_vision.load_model(identifier)
except Exception as error:
    result["error"] = f"{type(error).__name__}: {error}"
from brainscore_vision.models.hlvit import model as plugin
wrapper = plugin.get_model(identifier)
result["layers"] = plugin.get_layers(identifier)
stimuli = synthetic_recordings.stimulus_set(settings.cache_dir() / "stimuli", n_per_object=1, size=64)
paths = [str(stimuli.get_stimulus(s)) for s in stimuli["stimulus_id"].values[:3]]
result["activations"] = list(wrapper(paths, layers=["blocks.5", "norm"]).shape)  # token grids
result["readout"] = list(wrapper(paths, layers=["fc_norm"]).shape)  # the class token
# a region map written by `brainscore-plugins commit` into the user data folder
os.environ[settings.DATA] = data
model = brainscore_vision.load_model(identifier)
result["map"] = model.layer_model.region_layer_map
model.start_recording("IT", time_bins=[(70, 170)])
recorded = model.look_at(stimuli, number_of_trials=1)
result["recorded"] = list(recorded.squeeze("time_bin").shape if "time_bin" in recorded.dims else recorded.shape)
print("RESULT" + json.dumps(result))
"""


@pytest.mark.slow
def test_load_model_in_a_fresh_process(mirror, offline_env, linked, tmp_path, repo):
    region_map = {"V1": "blocks.2", "V2": "blocks.4", "V4": "blocks.6", "IT": "blocks.9"}
    maps = tmp_path / "data" / "commitments" / "hlvit" / "region_layer_map"
    maps.mkdir(parents=True)
    (maps / f"{FT}.json").write_text(json.dumps(region_map))
    env = {**offline_env, settings.MIRROR: str(mirror), "HF_HUB_OFFLINE": "1", "HF_HUB_CACHE": str(tmp_path / "hf"),
           settings.DATA: str(tmp_path / "empty")}
    process = subprocess.run([sys.executable, "-c", LOAD, FT, str(tmp_path / "data")],
                             env={**os.environ, **env}, capture_output=True, text=True, timeout=600, cwd=repo)
    assert "RESULT" in process.stdout, process.stderr[-3000:]
    result = json.loads(process.stdout.split("RESULT", 1)[1])
    assert "NotCommittedError" in result["error"] and f"brainscore-plugins commit {FT}" in result["error"]
    assert result["layers"] == [f"blocks.{i}" for i in range(12)] + ["norm", "fc_norm"]
    assert result["activations"] == [3, 2 * 257 * 384] and result["readout"] == [3, 384]
    assert result["map"] == region_map
    assert result["recorded"][1] == 257 * 384  # IT = blocks.9, every token


@pytest.mark.slow
def test_an_uncommitted_model_is_committed_on_load(env, linked, tmp_path, monkeypatch):
    """brain_model commits a model without a map through region_commitment (here on the synthetic benchmarks, as the
    defaults' data are not reachable offline), writes the map into the user data folder, and reuses it afterwards."""
    import region_commitment
    from region_commitment import reference, settings as commitment_settings

    monkeypatch.setattr(region_commitment, "DEFAULT_BENCHMARKS", {"IT": "bsp-synthetic.IT-pls",
                                                                  "behavior": "bsp-synthetic-i2n"})
    monkeypatch.setenv(settings.DATA, str(tmp_path / "data"))
    images = tmp_path / "reference"
    images.mkdir()
    for path in reference.default_reference_images(tmp_path / "images", n=30):
        (images / path.name).symlink_to(path)
    monkeypatch.setenv(commitment_settings.REFERENCE_ENV, str(images))
    # as many PCA components as the 30 reference images hold (a folder must hold n_components images)
    monkeypatch.setattr(factory, "commit", functools.partial(factory.commit, n_components=30))

    model = factory.brain_model(FT)
    folder = tmp_path / "data" / "commitments" / "hlvit"
    written = json.loads((folder / "region_layer_map" / f"{FT}.json").read_text())
    readout = json.loads((folder / "behavioral_readout" / f"{FT}.json").read_text())["behavioral_readout_layer"]
    candidates = [f"blocks.{i}" for i in range(12)] + ["norm", "fc_norm"]
    assert set(written) == {"IT"} and written["IT"] in candidates and readout in candidates
    assert model.layer_model.region_layer_map == written
    assert (folder / "layer_scores" / f"{FT}.png").is_file()

    monkeypatch.setattr(region_commitment, "commit", lambda *a, **k: pytest.fail("committed twice"))
    assert factory.brain_model(FT).layer_model.region_layer_map == written


def test_brainscore_locates_the_hlvit_plugin(linked):
    from brainscore_core.plugin_management.import_plugin import ImportPlugin
    for identifier in (PRE, FT, "hlvit_vith14@476_1.0_1", "hlvit_vith14@448_0.0001_3-finetuned"):
        assert ImportPlugin("brainscore_vision", "models", identifier).locate_plugin() == "hlvit"
