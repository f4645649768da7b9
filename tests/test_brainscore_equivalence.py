"""Same pixels, same activations: our ``spvvs`` plugin against Brain-Score's own ``scaling_models`` plugin.

The same forged checkpoint is loaded through both plugins with ``brainscore_vision.load_model`` (Brain-Score's finds
the file where its ``torch.hub`` lookup looks; it runs in a subprocess, because importing that plugin switches off
TLS verification for the whole process), and the activations at every committed layer are compared on non-square
photographs and square images.
"""
import json
import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from brainscore_plugins import catalog, factory, forge, settings
from brainscore_plugins.preprocessing import TRAINING_CONFIG
from brainscore_plugins.weights import formats

pytestmark = pytest.mark.slow  # equivalence with Brain-Score's own plugin

# one per family: ResNet, EfficientNet, ConvNeXt (EMA weights), DeiT (EMA weights); all also registered by
# Brain-Score's own scaling_models plugin
PEERS = ["resnet18_imagenet_full", "efficientnet_b0_imagenet_full", "convnext_tiny_imagenet_full_seed-0",
         "deit_small_imagenet_full_seed-0"]

THEIRS = """
import json, sys
import numpy as np
import brainscore_vision
model = brainscore_vision.load_model(sys.argv[1])
paths, layers = json.loads(sys.argv[2]), json.loads(sys.argv[3])
model.activations_model._extractor._batch_size = len(paths)  # no padding to 64 images (eval mode: same values)
np.savez(sys.argv[4], **{layer: model.activations_model(paths, layers=[layer]).values for layer in layers})
"""


@pytest.fixture(scope="module")
def images(tmp_path_factory) -> list[str]:
    """Two non-square photographs (427 x 640, 600 x 512), a square photograph crop and a square noise image."""
    import matplotlib.cbook
    from sklearn.datasets import load_sample_images

    folder = tmp_path_factory.mktemp("images")
    china = load_sample_images().images[0]
    with matplotlib.cbook.get_sample_data("grace_hopper.jpg") as f:
        hopper = np.asarray(Image.open(f).convert("RGB"))
    noise = np.random.default_rng(0).integers(0, 256, (300, 300, 3), dtype=np.uint8)
    arrays = {"china.png": china, "hopper.jpg": hopper, "square.png": china[:400, 100:500], "noise.png": noise}
    for name, array in arrays.items():
        Image.fromarray(np.ascontiguousarray(array)).save(folder / name, quality=95)
    return [str(folder / name) for name in arrays]


def _brainscore_activations(model_id: str, checkpoint: dict, entry, images, layers, tmp_path, env) -> dict:
    torch_home = tmp_path / "torch_home"
    formats.save_atomically(checkpoint, torch_home / "hub" / "checkpoints" / f"{model_id}_ep{entry.epoch}.pt")
    out = tmp_path / "theirs.npz"
    import subprocess
    import sys
    result = subprocess.run([sys.executable, "-c", THEIRS, model_id, json.dumps(images), json.dumps(layers),
                             str(out)], env={**os.environ, **env, "TORCH_HOME": str(torch_home)},
                            capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]
    return dict(np.load(out))


@pytest.mark.parametrize("model_id", PEERS)
def test_same_activations_as_brainscores_own_plugin(model_id, images, offline, linked, tmp_path):
    import brainscore_vision
    entry = catalog.resolve(model_id)
    checkpoint = forge.forged_checkpoint(entry)
    formats.save_atomically(checkpoint, Path(offline[settings.MIRROR]) / entry.weights_file)
    ours = brainscore_vision.load_model(f"spvvs_{model_id}")
    layers = list(dict.fromkeys([*entry.layers, *ours.layer_model.region_layer_map.values()]))
    theirs = _brainscore_activations(model_id, checkpoint, entry, images, layers, tmp_path, offline)
    ours.activations_model._extractor._batch_size = len(images)
    for layer in layers:
        mine = ours.activations_model(images, layers=[layer]).values
        reference = theirs[layer]
        assert mine.shape == reference.shape, layer
        worst = np.abs(mine - reference).max() / np.abs(reference).max()
        print(f"{model_id} {layer}: worst relative difference {worst:.2e}")  # shown with pytest -s
        assert worst <= 1e-5, f"{model_id} {layer}: relative difference {worst:.2e}"


def test_training_config_pipeline_is_an_option_with_its_own_identifier(images, offline, monkeypatch):
    """The config-faithful pipeline (argument or environment variable) gives other pixels under another activations
    identifier, so Brain-Score's activation caches never mix the two."""
    name = "spvvs_resnet18_imagenet_full"
    forge.forge_into_mirror(name, offline[settings.MIRROR])
    default = factory.activations_model(name)
    config = factory.activations_model(name, preprocessing=TRAINING_CONFIG)
    tag = factory.weights_tag(default._model)
    assert tag.startswith("weights-") and default.identifier == f"{name}-{tag}"
    assert config.identifier == f"{name}-{tag}-training-config-preprocessing"
    monkeypatch.setenv("BRAINSCORE_PLUGINS_PREPROCESSING", TRAINING_CONFIG)
    assert factory.activations_model(name).identifier == config.identifier
    pixels = [model._extractor.preprocess(images[:1]) for model in (default, config)]
    assert pixels[0].shape == pixels[1].shape == (1, 3, 224, 224)
    assert np.abs(pixels[0] - pixels[1]).max() > 0.1  # a square resize is not a shorter-side resize
    monkeypatch.setenv("BRAINSCORE_PLUGINS_PREPROCESSING", "square")
    with pytest.raises(ValueError, match="Unknown preprocessing 'square'.*brainscore, training-config"):
        factory.activations_model(name)
