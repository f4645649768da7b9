"""ScalingVisionEncoder encoders: parameter counts against the study's table and timm's own, the streamed
safetensors loading of a forged full-size EVA02-CLIP-base (timm's Hub layout), and bad files."""
from __future__ import annotations

import numpy as np
import pytest
import timm
import torch
from PIL import Image

from brainscore_plugins import architectures, candidates, catalog, errors, factory, families, forge, settings
from brainscore_plugins.weights import formats
from brainscore_plugins.architectures import internimage, onepeace
from brainscore_plugins.preprocessing import TRAINING_CONFIG, UNNORMALIZED, load_preprocess_images

# study model id -> (the study's table in billions, its decimals; the layers the study extracted, our candidates)
# (InternImage-G: "3.0B" in the study's table, "3B" in InternImage's README; the network has 3.08B, so only the
# README's precision holds. Of its 56 blocks (depths 2 + 2 + 48 + 4) the study extracted 52; of ConvNeXt's stem and
# 41 blocks, 40: tests/brainscore_plugins/families/test_svenc_study.py.)
PUBLISHED = {"eva-clip-giant": (1.0, 1, 40), "eva02-clip-base": (0.086, 3, 12), "eva02-clip-large": (0.3, 1, 24),
             "eva02-clip-enormous": (4.4, 1, 64), "clip-convnext": (0.85, 2, 40), "internimage": (3, 0, 52),
             "one-peace": (1.5, 1, 40)}
TIMM = ("eva-clip-giant", "eva02-clip-base", "eva02-clip-large", "eva02-clip-enormous", "clip-convnext")


def _on_meta(model_id: str):
    """The catalog entry of ``model_id`` and its network, built on the meta device."""
    entry = catalog.resolve(model_id)
    with torch.device("meta"):
        return entry, architectures.build(entry.arch, entry.num_classes, entry.training_method)


@pytest.mark.slow
@pytest.mark.parametrize("model_id", PUBLISHED)
def test_parameter_counts_and_layers_on_the_meta_device(model_id):
    entry, model = _on_meta(model_id)
    count = sum(p.numel() for p in model.parameters())
    billions, decimals, layers = PUBLISHED[model_id]
    assert round(count / 1e9, decimals) == billions and count == entry.n_params
    names = candidates.for_entry(entry, model)
    assert len(names) == layers and set(names) <= set(dict(model.named_modules()))


@pytest.mark.slow
@pytest.mark.parametrize("model_id", TIMM)
def test_timm_encoders_have_timms_count_and_key_layout(model_id):
    entry, model = _on_meta(model_id)
    with torch.device("meta"):
        reference = timm.create_model(entry.arch, pretrained=False, num_classes=entry.num_classes)
    assert sum(p.numel() for p in model.parameters()) == sum(p.numel() for p in reference.parameters())
    assert list(model.state_dict()) == list(reference.state_dict())  # timm's key layout, as its Hub files hold


@pytest.fixture(scope="module")
def mirror(tmp_path_factory):
    folder = tmp_path_factory.mktemp("svenc-mirror")
    forge.forge_into_mirror("svenc_eva02-clip-base", folder)
    return folder


@pytest.fixture
def offline(mirror, tmp_path, monkeypatch, use_mirror):
    return use_mirror(mirror, tmp_path / "cache")


@pytest.mark.slow
def test_forged_hub_file_streams_into_the_model(offline):
    entry = catalog.resolve("svenc_eva02-clip-base")
    path = offline / "timm/eva02_base_patch16_clip_224.merged2b/model.safetensors"
    assert entry.mirror_path == "timm/eva02_base_patch16_clip_224.merged2b/model.safetensors" and path.is_file()
    model = factory.create_model("svenc_eva02-clip-base")
    reference = timm.create_model(entry.arch, pretrained=False, num_classes=entry.num_classes).eval()
    reference.load_state_dict(formats.load_safetensors(path))
    images = torch.randn(2, 3, 224, 224)
    with torch.no_grad():
        torch.testing.assert_close(model(images), reference(images))
    assert (settings.cache_dir() / "huggingface" / entry.hf_repo / "model.safetensors.sha256").is_file()


@pytest.mark.slow
def test_wrong_variant_and_truncated_files_are_refused(offline, tmp_path, monkeypatch):
    """The base tower's file where the large one is expected fails from the header (shapes named); a truncated file
    names safetensors."""
    bad = tmp_path / "bad"
    large = catalog.resolve("svenc_eva02-clip-large")
    data = (offline / catalog.resolve("svenc_eva02-clip-base").mirror_path).read_bytes()
    (bad / large.mirror_path).parent.mkdir(parents=True)
    (bad / large.mirror_path).write_bytes(data)
    monkeypatch.setenv(settings.MIRROR, str(bad))
    with pytest.raises(errors.CheckpointInvalidError, match="Shape mismatches: .*vs model"):
        factory.create_model("svenc_eva02-clip-large")
    (bad / large.mirror_path).write_bytes(data[:len(data) // 3])
    monkeypatch.setenv(settings.CACHE, str(tmp_path / "cache2"))
    with pytest.raises(errors.CheckpointInvalidError, match="safetensors"):
        factory.create_model("svenc_eva02-clip-large")


def test_training_config_option_is_the_default_normalised(tmp_path):
    """The option ``training-config``: the study's [0, 1] input (the default) normalised with CLIP's mean/std."""
    path = tmp_path / "image.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (300, 280, 3), dtype=np.uint8)).save(path)
    mean, std = (0.48145466, 0.4578275, 0.40821073), (0.26862954, 0.26130258, 0.27577711)
    raw = load_preprocess_images([path], 224, 224, "bicubic", UNNORMALIZED)
    normalized = load_preprocess_images([path], 224, 224, "bicubic", TRAINING_CONFIG, mean, std)
    assert raw.min() >= 0 and raw.max() <= 1
    np.testing.assert_allclose(normalized * np.array(std)[:, None, None] + np.array(mean)[:, None, None], raw,
                               atol=1e-5)
    assert families.get("svenc").preprocessing == UNNORMALIZED


@pytest.mark.parametrize("model_id,build", [("internimage", lambda: internimage.build("tiny-test")),
                                            ("one-peace", lambda: onepeace.build("tiny-test"))])
def test_written_here_encoders_load_their_published_layout(model_id, build, tmp_path):
    """A scaled-down network's weights forged into the published file layout (InternImage's {'model': ...}; ONE-PEACE's
    fairseq dict with every modality) load through the family's format into a meta-built network and extract; a
    wrong variant's file is refused by name."""
    entry = catalog.resolve(model_id)
    checkpoint_format = families.get("svenc").checkpoint_format(entry.checkpoint_format)
    torch.manual_seed(0)
    source = build().eval()
    path = checkpoint_format.forge_file(checkpoint_format.forge(entry, source.state_dict(), 0), tmp_path / "file.pt")
    with torch.device("meta"):
        model = build()
    checkpoint_format.load_into(model, path, entry.weights_key)
    size = 64 if model_id == "internimage" else 32
    images = torch.randn(2, 3, size, size)
    with torch.no_grad():
        torch.testing.assert_close(model.eval()(images), source(images))
    names = candidates.for_entry(entry, model)
    assert names and not {"fc_norm", "image_proj"} & set(names)  # the study's layers: no readout
    torch.manual_seed(1)
    wider = {k: torch.cat([v, v]) if v.ndim and v.is_floating_point() else v for k, v in source.state_dict().items()}
    bad = checkpoint_format.forge_file(checkpoint_format.forge(entry, wider, 0), tmp_path / "bad.pt")
    with torch.device("meta"):
        model = build()
    with pytest.raises(errors.CheckpointInvalidError, match="Shape mismatches"):
        checkpoint_format.load_into(model, bad, entry.weights_key)
