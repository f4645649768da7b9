"""One resolution per load: an identifier is resolved once at the entry point and its entry passed down; the region
map and its provenance are looked up once; built models carry what benchmarks ask of them."""
import collections
import json

import pytest

from brainscore_plugins import candidates, catalog, committed_maps, errors, factory, provenance, settings
from brainscore_plugins.scale import scoring

HLVIT = "hlvit_vits14_1.0_1"  # no catalog map: its map is one written by `commit`
STUDY_ALIAS = "resnet18_imagenet_full"  # the study's id of spvvs_resnet18_imagenet_full (a catalog map)


@pytest.fixture
def calls(monkeypatch):
    """Counts of the catalog resolutions, computed-map lookups and provenance records made meanwhile."""
    counted = collections.Counter()
    for module, name in ((catalog, "resolve"), (committed_maps, "locate"), (provenance, "record")):
        def wrapper(*args, _real=getattr(module, name), _label=f"{module.__name__.split('.')[-1]}.{name}", **kwargs):
            counted[_label] += 1
            return _real(*args, **kwargs)
        monkeypatch.setattr(module, name, wrapper)
    return counted


def _committed(tmp_path, monkeypatch) -> dict:
    monkeypatch.setenv(settings.DATA, str(tmp_path / "data"))
    monkeypatch.setattr(committed_maps, "_FOLDERS", [])
    folder = committed_maps.data_folder("hlvit")
    (folder / "region_layer_map").mkdir(parents=True)
    region_map = {"V1": "blocks.1", "V2": "blocks.2", "V4": "blocks.3", "IT": "blocks.7"}
    (folder / "region_layer_map" / f"{HLVIT}.json").write_text(json.dumps(region_map))
    return region_map


def test_a_brain_model_resolves_once_and_looks_its_map_up_once(tmp_path, monkeypatch, calls):
    region_map = _committed(tmp_path, monkeypatch)
    model = factory.brain_model(HLVIT, pretrained=False)
    assert dict(calls) == {"catalog.resolve": 1, "committed_maps.locate": 1, "provenance.record": 1}
    assert dict(model.layer_model.region_layer_map) == region_map
    entry = catalog.resolve(HLVIT)
    assert model.candidate_layers == candidates.for_entry(entry) and model.layers != model.candidate_layers
    assert model.activations_model.feature_maps == {}


def test_a_catalog_map_is_never_looked_up_in_the_data_folder(calls):
    model = factory.brain_model(STUDY_ALIAS, pretrained=False)
    assert dict(calls) == {"catalog.resolve": 1, "provenance.record": 1}
    assert model.identifier == STUDY_ALIAS


def test_callers_that_resolved_pass_the_entry_down(tmp_path, monkeypatch, calls):
    _committed(tmp_path, monkeypatch)
    entry = catalog.resolve(HLVIT)
    calls.clear()
    columns = scoring.model_columns(HLVIT, "bsp-synthetic.IT-pls", 0.5, entry)
    assert columns["commitment_source"] == "committed" and json.loads(columns["layers"])["IT"] == "blocks.7"
    assert provenance.selection_overlap(HLVIT, "bsp-synthetic.IT-pls", entry) is None
    assert factory.preprocessing_variant(HLVIT, entry=entry) == ""
    assert calls["catalog.resolve"] == 0


def test_a_study_alias_names_our_identifier():
    entry = catalog.resolve(STUDY_ALIAS)
    assert entry.identifier_of(STUDY_ALIAS) == "spvvs_resnet18_imagenet_full" == catalog.resolve_identifier(STUDY_ALIAS)
    epoch = catalog.resolve(f"{STUDY_ALIAS}.ep10")
    assert epoch.identifier_of(f"{STUDY_ALIAS}.ep10") == "spvvs_resnet18_imagenet_full.ep10"
    assert epoch.identifier_of(epoch.identifier) == epoch.identifier


def test_create_model_takes_timms_keyword_arguments(tmp_path, use_mirror):
    import torch
    from brainscore_plugins import create_model, forge
    vit = create_model("spvvs_deit_tiny_imagenet_full_seed-0", pretrained=False, drop_path_rate=0.25, drop_rate=0.5)
    assert vit.blocks[-1].drop_path1.drop_prob == 0.25 and vit.head_drop.p == 0.5  # timm's constructor got them
    convnext = create_model("spvvs_convnext_tiny_imagenet_full_seed-0", pretrained=False, stochastic_depth_prob=0.3)
    assert convnext.features[7][2].stochastic_depth.p == 0.3  # torchvision's constructor, ours overridden
    with pytest.raises(TypeError, match=r"the ResNet architecture \(resnet18\) does not take 'drop_path_rate'"):
        create_model("resnet18_imagenet_full", pretrained=False, drop_path_rate=0.1)
    with pytest.raises(TypeError, match=r"CORnet-S architecture \(cornet_s\) does not take 'in_chans'"):
        create_model(catalog.list_models("cornet_s*")[0], pretrained=False, in_chans=1)

    mirror = use_mirror(tmp_path / "mirror", tmp_path / "cache")
    forged = forge.forge_into_mirror("resnet18_imagenet_full", mirror)
    published = create_model("resnet18_imagenet_full")
    resized = create_model("resnet18_imagenet_full", num_classes=10)  # the published weights, a new 10-way head
    assert resized.fc.out_features == 10 and resized.fc.in_features == 512
    assert resized.layer4[1].conv2.weight.equal(published.layer4[1].conv2.weight)
    local = tmp_path / "mine.pt"
    forged.rename(local)  # no mirror copy left: only checkpoint_path can give these weights
    from_file = create_model("resnet18_imagenet_full", checkpoint_path=local)
    assert all(torch.equal(a, b) for a, b in zip(from_file.state_dict().values(), published.state_dict().values()))
    with pytest.raises(FileNotFoundError, match="checkpoint_path .*missing.pt is not a file"):
        create_model("resnet18_imagenet_full", checkpoint_path=tmp_path / "missing.pt")
    with pytest.raises(errors.UnsupportedModelError, match="has no classifier to give 10 classes"):
        create_model("spvvs_simclr_resnet18_imagenet_full_seed-0", pretrained=False, num_classes=10)
    encoder = create_model("hlvit_vits14_1.0_1", pretrained=False, num_classes=10)  # timm's: a head added
    assert encoder(torch.zeros(1, 3, 224, 224)).shape == (1, 10)


@pytest.mark.slow
def test_replaced_weights_never_reuse_cached_activations(tmp_path, monkeypatch, use_mirror):
    """Brain-Score caches activations on disk by the activations identifier: extract, replace the weights under the
    same model name, extract again: the second is computed afresh (before, it returned the first weights'
    activations); the first weights again find their own entry."""
    import numpy as np
    from brainscore_core.supported_data_standards.brainio.stimuli import StimulusSet
    from PIL import Image
    from brainscore_plugins import forge
    monkeypatch.delenv("RESULTCACHING_DISABLE", raising=False)
    monkeypatch.setenv("RESULTCACHING_HOME", str(tmp_path / "result_caching"))
    paths = []
    for i in range(3):
        paths.append(tmp_path / f"image{i}.png")
        Image.fromarray(np.random.default_rng(i).integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(paths[-1])
    stimuli = StimulusSet({"stimulus_id": [f"s{i}" for i in range(3)]})
    stimuli.stimulus_paths = {f"s{i}": str(path) for i, path in enumerate(paths)}
    stimuli.identifier = "bsp-stale-cache-test"
    name, extracted = "spvvs_resnet18_imagenet_full", []
    for run, seed in (("a", 0), ("b", 1), ("c", 0)):  # c: the first weights again, in a fresh cache
        use_mirror(tmp_path / f"mirror-{seed}", tmp_path / f"cache-{run}")
        forge.forge_into_mirror(name, tmp_path / f"mirror-{seed}", seed)
        model = factory.activations_model(name)
        extracted.append((model.identifier, model(stimuli, layers=["avgpool"]).values))
    (first, a), (second, b), (again, c) = extracted
    assert not np.allclose(a, b) and np.array_equal(a, c)  # computed afresh; the first weights' entry reused
    assert first.startswith(f"{name}-weights-") and first != second and again == first
