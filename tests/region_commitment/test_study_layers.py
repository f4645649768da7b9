"""The study's search space (every named module) and disk-bounded extraction in layer groups."""
import json
import warnings

import numpy as np
import pytest
import torch
import torchvision

from brainscore_plugins import candidates, catalog, synthetic_recordings
from brainscore_plugins.preprocessing import preprocessing_for
from region_commitment import commit, from_assembly
from region_commitment.layers import resolve_layers, study_layers
from region_commitment.reference import default_reference_images

PLANTED = "layer3.0.conv2"  # not a block output: the default rule cannot choose it


def _wrapper():
    """resnet18 with random weights and random BatchNorm statistics (so a BatchNorm is not a rescaled copy of the
    convolution before it)."""
    from brainscore_vision.model_helpers.activations.pytorch import PytorchWrapper
    torch.manual_seed(0)
    model = torchvision.models.resnet18()
    for module in model.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            module.running_mean.normal_(0, 0.5)
            module.running_var.uniform_(0.5, 2)
            module.weight.data.uniform_(0.5, 1.5)
            module.bias.data.normal_(0, 0.5)
    return PytorchWrapper(identifier="resnet18-study", model=model.eval(),
                          preprocessing=preprocessing_for(128, 112, "bilinear"))


def test_study_layers_are_every_named_module_and_reach_the_published_maps(reference_dir):
    model = torchvision.models.resnet18()
    layers = study_layers(model)
    assert layers == [name for name, _ in model.named_modules()][1:] and PLANTED in layers
    assert resolve_layers(model, "study") == (layers, "study")
    assert resolve_layers(model, None)[1] == resolve_layers(model, resolve_layers(model, None)[0])[1] == "default"
    with pytest.raises(ValueError, match="Unknown layer set 'all'"):
        resolve_layers(model, "all")
    published = json.loads((reference_dir / "commitments.json").read_text())["ResNet18"]["imagenet_full"]["seed-0"]
    assert set(published["region2layer"].values()) <= set(layers)
    entry = catalog.resolve("resnet18_imagenet_full")
    assert not set(entry.region_layer_map.values()) & set(candidates.for_entry(entry, model))


@pytest.mark.slow
def test_study_mode_recovers_a_planted_module_in_disk_bounded_groups(tmp_path):
    wrapper = _wrapper()
    stimuli = synthetic_recordings.stimulus_set(tmp_path / "stimuli", n_per_object=20, size=96)
    reference = [str(p) for p in default_reference_images(tmp_path / "reference", n=60)]
    paths = reference + [str(stimuli.get_stimulus(s)) for s in stimuli["stimulus_id"]]
    flat = wrapper.get_activations(wrapper._extractor.preprocess(paths), [PLANTED])[PLANTED].reshape(len(paths), -1)
    source = flat.astype(np.float64)
    responses = synthetic_recordings.planted_responses(source[:60], source[60:], seed=3)
    target = from_assembly(synthetic_recordings.repeated_assembly(stimuli, responses, "IT", noise=0.3, seed=3), "IT",
                           identifier="planted-IT")
    weights = {k: v.clone() for k, v in wrapper._model.state_dict().items()}

    default = commit(wrapper, None, {"IT": target}, reference=str(tmp_path / "reference"), n_components=60,
                     cache_dir=tmp_path / "cache", progress=False)
    budget = 4 * len(paths) * 64 * 28 * 28 * 6  # about six layer2-sized layers per group: several forward passes
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # every module of resnet18 gives a tensor: nothing is dropped
        study = commit(wrapper, "study", {"IT": target}, reference=str(tmp_path / "reference"), n_components=60,
                       cache_dir=tmp_path / "cache", disk_budget=budget, progress=False)

    assert default.region_layer_map["IT"] != PLANTED and PLANTED not in default.layers
    assert study.region_layer_map["IT"] == PLANTED
    assert study.provenance["layers"] == {"mode": "study", "candidates": study_layers(wrapper._model)}
    assert default.provenance["layers"]["mode"] == "default"
    same = {r.layer: r.raw for r in default.scores}
    for row in study.scores:  # layers of both sets: the same score, grouped or not
        if row.layer in same:
            assert row.raw == pytest.approx(same[row.layer], abs=1e-9)
    assert not list((tmp_path / "cache").rglob("*.f32"))  # each group's features removed once scored
    assert all(torch.equal(weights[k], v) for k, v in wrapper._model.state_dict().items())  # the probe changed nothing


@pytest.mark.slow
def test_a_layer_larger_than_the_disk_budget_is_a_clear_error(tmp_path):
    stimuli = synthetic_recordings.stimulus_set(tmp_path / "stimuli", n_per_object=3, size=64)
    target = from_assembly(synthetic_recordings.neural_assembly(stimuli, "IT"), "IT", identifier="tiny-IT", splits=2,
                           stratification_coord=None)
    with pytest.raises(OSError, match=r"Layer conv1 needs .* GiB of feature files .*free disk space"):
        commit(_wrapper(), ["conv1", "layer1.0"], {"IT": target}, reference=str(tmp_path / "stimuli"),
               n_components=5, cache_dir=tmp_path / "cache", disk_budget=1000, progress=False)
