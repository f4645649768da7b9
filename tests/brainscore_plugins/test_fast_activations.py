"""The fast activations path equals Brain-Score's PytorchWrapper: same activations, paths and layer coordinates,
with padding (a last partial batch), and the fallback when there is only one batch."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from brainscore_vision.model_helpers.activations.pytorch import PytorchWrapper
from PIL import Image

from brainscore_plugins import factory, fast_activations
from brainscore_plugins.fast_activations import FastPytorchWrapper
from brainscore_plugins.preprocessing import preprocessing_for


def _images(folder, n: int, size: tuple[int, int]) -> list[str]:
    """``n`` random RGB PNG files of ``size`` (height, width) in ``folder``."""
    paths = []
    for i in range(n):
        paths.append(str(folder / f"image{i}.png"))
        Image.fromarray(np.random.default_rng(i).integers(0, 255, (*size, 3), dtype=np.uint8)).save(paths[-1])
    return paths


@pytest.mark.slow
@pytest.mark.parametrize("cached", [False, True])  # a worker pipeline per run, or the pixel cache filled by a thread
@pytest.mark.parametrize("n_images", [37, 8])  # several batches with a padded last one; a single batch (fallback)
def test_equal_to_pytorch_wrapper(n_images, cached, tmp_path, monkeypatch):
    from brainscore_plugins import settings
    monkeypatch.setenv("RESULTCACHING_DISABLE", "1")
    monkeypatch.setenv(settings.CACHE, str(tmp_path / "cache"))
    monkeypatch.setenv(settings.PIXEL_CACHE, "10" if cached else "0")
    paths = _images(tmp_path, n_images, (120, 100))
    network = factory.create_model("spvvs_resnet18_imagenet_full", pretrained=False)
    preprocessing = preprocessing_for(72, 64, "bilinear", "brainscore")
    layers = ["layer2.0", "layer4.1", "avgpool"]
    reference = PytorchWrapper(identifier="reference", model=network, preprocessing=preprocessing, batch_size=16)
    fast = FastPytorchWrapper(identifier="fast", model=network, preprocessing=preprocessing, batch_size=16)
    pipelines = []
    monkeypatch.setattr(fast_activations._Batches, "__len__",
                        lambda self: pipelines.append(len(self.paths)) or -(-len(self.paths) // self.batch_size))
    expected, ours = reference(paths, layers=layers), fast(paths, layers=layers)
    assert bool(pipelines) == (n_images > 16 and not cached)  # worker processes only without the cache, on the CPU
    assert set(pipelines) <= {n_images}
    assert bool(list((tmp_path / "cache").glob("pixels/*.npy"))) == cached
    np.testing.assert_allclose(ours.values, expected.values, rtol=1e-6, atol=1e-6)
    assert list(ours.stimulus_path.values) == list(expected.stimulus_path.values) == paths
    assert list(ours.layer.values) == list(expected.layer.values)
    assert fast.identifier == "fast"


def test_the_plugins_extract_with_the_fast_path_unless_told_otherwise(monkeypatch):
    from brainscore_plugins import settings
    monkeypatch.delenv(settings.EXTRACTOR, raising=False)
    model = factory.activations_model("spvvs_resnet18_imagenet_full", pretrained=False)
    assert type(model) is FastPytorchWrapper and model.identifier == "spvvs_resnet18_imagenet_full-untrained"
    monkeypatch.setenv(settings.EXTRACTOR, "brainscore")
    assert type(factory.activations_model("spvvs_resnet18_imagenet_full", pretrained=False)) is PytorchWrapper
    monkeypatch.setenv(settings.EXTRACTOR, "fast-channels-last")
    model = factory.activations_model("spvvs_resnet18_imagenet_full", pretrained=False)
    assert model.channels_last and model.identifier == "spvvs_resnet18_imagenet_full-untrained-channels-last"
    monkeypatch.setenv(settings.PRECISION, "bfloat16")
    model = factory.activations_model("spvvs_resnet18_imagenet_full", pretrained=False)
    assert model.identifier == "spvvs_resnet18_imagenet_full-untrained-channels-last-bfloat16"
    monkeypatch.setenv(settings.EXTRACTOR, "brainscore")
    with pytest.raises(ValueError, match="BRAINSCORE_PLUGINS_PRECISION=bfloat16 needs a fast extractor"):
        factory.activations_model("spvvs_resnet18_imagenet_full", pretrained=False)
    monkeypatch.setenv(settings.PRECISION, "float8")
    with pytest.raises(ValueError, match="BRAINSCORE_PLUGINS_PRECISION is 'float8'; set it to one of float32, "
                                         "bfloat16, float16"):
        factory.activations_model("spvvs_resnet18_imagenet_full", pretrained=False)
    monkeypatch.delenv(settings.PRECISION)
    monkeypatch.setenv(settings.EXTRACTOR, "turbo")
    with pytest.raises(ValueError, match="BRAINSCORE_PLUGINS_EXTRACTOR is 'turbo'; set it to one of fast, "
                                         "fast-channels-last, brainscore"):
        factory.activations_model("spvvs_resnet18_imagenet_full", pretrained=False)


@pytest.mark.slow
def test_channels_last_equals_to_float32_rounding(tmp_path, monkeypatch):
    """Channels-last batches: another summation order, the same activations to float32 rounding (1e-5 of each
    layer's largest magnitude), at every layer of a convolutional network."""
    monkeypatch.setenv("RESULTCACHING_DISABLE", "1")
    paths = _images(tmp_path, 20, (90, 90))
    network = factory.create_model("spvvs_resnet18_imagenet_full", pretrained=False)
    preprocessing = preprocessing_for(72, 64, "bilinear", "brainscore")
    layers = ["conv1", "layer2.0", "layer4.1", "avgpool", "fc"]
    reference = PytorchWrapper(identifier="reference-cl", model=network, preprocessing=preprocessing, batch_size=8)
    fast = FastPytorchWrapper(identifier="fast-cl", model=network, preprocessing=preprocessing, batch_size=8,
                              channels_last=True)
    expected, ours = reference(paths, layers=layers), fast(paths, layers=layers)
    assert list(ours.layer.values) == list(expected.layer.values)
    for layer in layers:
        a, b = (x.sel(layer=layer).values for x in (ours, expected))
        assert np.abs(a - b).max() <= 1e-5 * np.abs(b).max(), layer


def test_the_cuda_path_pins_copies_without_blocking_and_gives_the_same_activations(monkeypatch, tmp_path):
    """No GPU here: the CUDA branch runs on the CPU with the device's type faked, pinning recorded (pinning itself
    needs CUDA); its activations equal PytorchWrapper's exactly; pin_memory=False leaves the batch pageable."""
    import types
    monkeypatch.setenv("RESULTCACHING_DISABLE", "1")
    paths = _images(tmp_path, 3, (60, 50))
    network = factory.create_model("spvvs_resnet18_imagenet_full", pretrained=False)
    preprocessing = preprocessing_for(72, 64, "bilinear", "brainscore")
    expected = PytorchWrapper(identifier="r", model=network, preprocessing=preprocessing)(paths, layers=["avgpool"])
    pinned = []
    monkeypatch.setattr(torch.Tensor, "pin_memory", lambda self: pinned.append(self.shape) or self)
    for pin in (True, False):
        fast = FastPytorchWrapper(identifier=f"f{pin}", model=network, preprocessing=preprocessing, pin_memory=pin)
        real = fast._device
        fast._device = types.SimpleNamespace(type="cuda")  # the branch a CUDA device takes...
        monkeypatch.setattr(fast, "_device_batch", lambda batch, fast=fast, real=real: batch.to(real))  # ...on CPU
        ours = fast(paths, layers=["avgpool"])
        np.testing.assert_array_equal(ours.values, expected.values)
    assert pinned == [(64, 3, 64, 64)]  # one padded batch, pinned once: with pin_memory=True only


@pytest.mark.parametrize("precision, tolerance", [("bfloat16", 0.05), ("float16", 0.01)])
def test_a_lower_precision_runs_under_autocast_and_returns_float32(precision, tolerance, tmp_path, monkeypatch):
    """The forward pass in the lower precision (other numbers than float32's, within that precision's error),
    each layer returned as float32; the weights stay float32."""
    monkeypatch.setenv("RESULTCACHING_DISABLE", "1")
    paths = _images(tmp_path, 3, (60, 50))
    network = factory.create_model("spvvs_resnet18_imagenet_full", pretrained=False)
    preprocessing = preprocessing_for(72, 64, "bilinear", "brainscore")
    layers = ["layer2.0", "fc"]
    expected = PytorchWrapper(identifier="r", model=network, preprocessing=preprocessing)(paths, layers=layers)
    lower = FastPytorchWrapper(identifier="l", model=network, preprocessing=preprocessing, precision=precision)
    ours = lower(paths, layers=layers)
    assert ours.values.dtype == np.float32 and next(network.parameters()).dtype == torch.float32
    for layer in layers:
        a, b = (x.sel(layer=layer).values for x in (ours, expected))
        assert 1e-6 < np.abs(a - b).max() <= tolerance * np.abs(b).max(), layer
    with pytest.raises(ValueError, match="precision is 'half'; use one of float32, bfloat16, float16"):
        FastPytorchWrapper(identifier="h", model=network, preprocessing=preprocessing, precision="half")
