"""From a forged published checkpoint to Brain-Score: ``load_model`` in a fresh process, ``look_at``, ``score``."""
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from brainscore_plugins import catalog, errors, factory, forge, settings, synthetic_recordings
from brainscore_plugins.families import spvvs
from brainscore_plugins.weights import formats

pytestmark = pytest.mark.slow  # fresh interpreters and full Brain-Score runs

# one identifier per family of checkpoints that the tests forge in the exact published layout
FORGED = [
    "spvvs_resnet18_imagenet_full",
    "spvvs_alexnet_imagenet_full_seed-0",
    "spvvs_efficientnet_b0_imagenet_full",
    "spvvs_convnext_tiny_imagenet_full_seed-0",       # EMA weights
    "spvvs_deit_tiny_imagenet_full_seed-0",           # EMA weights, custom timm registration
    "spvvs_cornet_s_imagenet_full_seed-0",
    "spvvs_simclr_resnet18_imagenet_full_seed-0",     # SSL
    "spvvs_adv_resnet18_imagenet_full_ffgsm_eps-1_alpha-125-ep10_seed-0",  # adversarial
    "spvvs_resnet18_imagenet_full.ep10",              # an intermediate epoch checkpoint
]

LOOK_AT = """
import json, sys
import numpy as np, torch
import brainscore_vision
from brainscore_vision.model_helpers.brain_transformation import ModelCommitment
from brainscore_plugins import catalog, errors, factory, settings, synthetic_recordings

stimuli = synthetic_recordings.stimulus_set(settings.cache_dir() / "stimuli", n_per_object=1, size=64)
results = {}
for identifier in sys.argv[1:] or %r:
    model = brainscore_vision.load_model(identifier)
    assert isinstance(model, ModelCommitment), type(model)
    entry = catalog.resolve(identifier)
    model.start_recording("IT", time_bins=[(70, 170)])
    recorded = model.look_at(stimuli, number_of_trials=1)
    # the same layer, read directly from the directly built model on the same preprocessed images
    direct = factory.create_model(identifier)
    layer = dict(direct.named_modules())[entry.IT]
    captured = []
    handle = layer.register_forward_hook(lambda m, i, o: captured.append(o))
    images = model.activations_model._extractor.preprocess(
        [stimuli.get_stimulus(s) for s in recorded["stimulus_id"].values])
    with torch.no_grad():
        direct(torch.from_numpy(np.asarray(images)))
    handle.remove()
    expected = captured[-1].reshape(len(images), -1).numpy()  # recurrent blocks: the last pass, as Brain-Score keeps
    if "time_bin" in recorded.dims:
        recorded = recorded.squeeze("time_bin")
    values = recorded.transpose("presentation", "neuroid").values
    results[identifier] = {"shape": list(values.shape),
                           "relative_diff": float(np.abs(values - expected).max() / np.abs(expected).max()),
                           "finite": bool(np.isfinite(values).all()), "layer": entry.IT}
print("RESULT" + json.dumps(results))
"""


@pytest.fixture(scope="module")
def forged_mirror(offline_env):
    for identifier in FORGED:
        forge.forge_into_mirror(identifier, offline_env[settings.MIRROR])
    return offline_env


def test_load_model_look_at_matches_direct_model_in_fresh_process(forged_mirror, linked, run_python):
    process = run_python(LOOK_AT % (FORGED,), forged_mirror)
    assert process.returncode == 0, process.stderr[-3000:]
    results = json.loads(process.stdout.split("RESULT", 1)[1])
    assert set(results) == set(FORGED)
    for identifier, result in results.items():
        assert result["finite"], identifier
        assert result["shape"][0] == len(synthetic_recordings.OBJECTS) and result["shape"][1] > 0, (identifier, result)
        assert result["relative_diff"] < 1e-5, (identifier, result)  # batch-size-dependent float kernels only


def test_ema_weights_are_the_ones_loaded(forged_mirror, offline):
    entry = catalog.resolve("spvvs_convnext_tiny_imagenet_full_seed-0")
    assert entry.weights_key == "model_ema_state_dict"
    loaded = factory.create_model(entry.identifier).state_dict()
    ema = forge.forged_state_dict(entry)
    assert all(torch.equal(loaded[k], ema[k]) for k in ema)


def test_score_runs_through_brainscore(forged_mirror, linked, run_python):
    """A neural and a behavioral benchmark (ModelCommitment's committed V1 layer and its behavioral readout)."""
    code = ("import brainscore_vision; s = brainscore_vision.score('spvvs_resnet18_imagenet_full', "
            "'bsp-synthetic.V1-pls'); print('RESULT=', float(s), float(s.raw), float(s.ceiling)); "
            "b = brainscore_vision.score('spvvs_resnet18_imagenet_full', 'bsp-synthetic-i2n'); "
            "print('BEHAVIOR=', float(b), float(b.raw))")
    process = run_python(code, forged_mirror)
    assert process.returncode == 0, process.stderr[-3000:]
    value, raw, ceiling = map(float, process.stdout.split("RESULT=", 1)[1].split("BEHAVIOR=")[0].split())
    assert np.isfinite(value) and 0 < ceiling <= 1 and -1 <= raw <= 1
    ceiled, raw = map(float, process.stdout.split("BEHAVIOR=", 1)[1].split())
    assert np.isfinite(ceiled) and -1 <= raw <= 1 and raw != 0


def test_corrupted_mirror_file_is_caught_by_its_recorded_hash(forged_mirror, offline):
    identifier = "spvvs_resnet18_imagenet_full.ep1"
    path = forge.forge_into_mirror(identifier, offline[settings.MIRROR], seed=3)
    factory.create_model(identifier)  # first use records the hash
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(errors.ChecksumMismatchError, match="corrupted"):
        factory.create_model(identifier)


def test_truncated_checkpoint_is_a_clear_error(offline):
    identifier = "spvvs_resnet18_imagenet_full.ep2"
    path = forge.forge_into_mirror(identifier, offline[settings.MIRROR])
    path.write_bytes(path.read_bytes()[:100_000])
    with pytest.raises(errors.CheckpointInvalidError, match="truncated or corrupted"):
        factory.create_model(identifier)


def test_wrong_nesting_and_wrong_keys_are_clear_errors(offline):
    identifier = "spvvs_resnet18_imagenet_full.ep3"
    entry = catalog.resolve(identifier)
    weights = forge.forged_state_dict(entry)
    formats.save_atomically(weights, Path(offline[settings.MIRROR]) / entry.weights_file)  # flat, not nested
    with pytest.raises(errors.CheckpointInvalidError, match=r"checkpoint\['state'\]\['model'\]"):
        factory.create_model(identifier)
    identifier = "spvvs_resnet18_imagenet_full.ep4"
    entry = catalog.resolve(identifier)
    weights = forge.forged_state_dict(entry)
    weights["fc.weights"] = weights.pop("fc.weight")
    formats.save_atomically(spvvs.composer_checkpoint(weights, "model"),
                          Path(offline[settings.MIRROR]) / entry.weights_file)
    with pytest.raises(errors.CheckpointInvalidError, match="Missing keys: fc.weight.*Unexpected keys: fc.weights"):
        factory.create_model(identifier)


def test_offline_without_mirror_is_a_clear_error_and_leaves_nothing(offline, monkeypatch):
    monkeypatch.delenv(settings.MIRROR)
    entry = catalog.resolve("spvvs_resnet50_imagenet_full")
    with pytest.raises(errors.WeightsUnavailableError) as error:
        factory.create_model(entry.identifier)
    assert entry.url in str(error.value) and settings.MIRROR in str(error.value)
    assert not (settings.cache_dir() / entry.weights_file).exists()


def test_missing_layer_is_named(offline):
    from brainscore_vision.model_helpers.activations.pytorch import PytorchWrapper
    forge.forge_into_mirror("spvvs_resnet18_imagenet_full.ep5", offline[settings.MIRROR])
    wrapper = factory.activations_model("spvvs_resnet18_imagenet_full.ep5")
    assert isinstance(wrapper, PytorchWrapper)
    with pytest.raises(AssertionError, match="layer9"):
        wrapper.get_layer("layer9.0")
