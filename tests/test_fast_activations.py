"""The fast activations path equals Brain-Score's PytorchWrapper: same activations, paths and layer coordinates,
with padding (a last partial batch), and the fallback when there is only one batch."""
from __future__ import annotations

import numpy as np
import pytest
from brainscore_vision.model_helpers.activations.pytorch import PytorchWrapper
from PIL import Image

from brainscore_plugins import factory, fast_activations
from brainscore_plugins.fast_activations import FastPytorchWrapper
from brainscore_plugins.preprocessing import preprocessing_for


@pytest.mark.parametrize("n_images", [37, 8])  # several batches with a padded last one; a single batch (fallback)
def test_equal_to_pytorch_wrapper(n_images, tmp_path, monkeypatch):
    monkeypatch.setenv("RESULTCACHING_DISABLE", "1")
    paths = []
    for i in range(n_images):
        paths.append(str(tmp_path / f"image{i}.png"))
        Image.fromarray(np.random.default_rng(i).integers(0, 255, (120, 100, 3), dtype=np.uint8)).save(paths[-1])
    network = factory.create_model("spvvs_resnet18_imagenet_full", pretrained=False)
    preprocessing = preprocessing_for(72, 64, "bilinear", "brainscore")
    layers = ["layer2.0", "layer4.1", "avgpool"]
    reference = PytorchWrapper(identifier="reference", model=network, preprocessing=preprocessing, batch_size=16)
    fast = FastPytorchWrapper(identifier="fast", model=network, preprocessing=preprocessing, batch_size=16)
    pipelines = []
    monkeypatch.setattr(fast_activations._Batches, "__len__",
                        lambda self: pipelines.append(len(self.paths)) or -(-len(self.paths) // self.batch_size))
    expected, ours = reference(paths, layers=layers), fast(paths, layers=layers)
    assert bool(pipelines) == (n_images > 16)  # the worker pipeline ran, over every image, only when it pays
    assert set(pipelines) <= {n_images}
    np.testing.assert_allclose(ours.values, expected.values, rtol=1e-6, atol=1e-6)
    assert list(ours.stimulus_path.values) == list(expected.stimulus_path.values) == paths
    assert list(ours.layer.values) == list(expected.layer.values)
    assert fast.identifier == "fast"
