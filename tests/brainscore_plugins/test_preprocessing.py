"""Evaluation preprocessing follows the training config: the configured interpolation is the one used."""
import numpy as np
import pytest
from PIL import Image
from torchvision import transforms

from brainscore_plugins import catalog
from brainscore_plugins.preprocessing import IMAGENET_MEAN, IMAGENET_STD, eval_transform, load_preprocess_images


@pytest.fixture
def photo(tmp_path):
    rng = np.random.default_rng(0)
    pixels = (rng.random((300, 400, 3)) * 255).astype(np.uint8)  # high-frequency content: interpolations differ
    path = tmp_path / "photo.png"
    Image.fromarray(pixels).save(path)
    return path


def _manual(path, resize, crop, mode):
    pipeline = transforms.Compose([transforms.Resize(resize, interpolation=mode), transforms.CenterCrop(crop),
                                   transforms.ToTensor(), transforms.Normalize(IMAGENET_MEAN, IMAGENET_STD)])
    return pipeline(Image.open(path).convert("RGB")).numpy()


@pytest.mark.parametrize("name", ["efficientnet_b1_imagenet_full", "convnext_tiny_imagenet_full_seed-0",
                                  "resnet18_imagenet_full"])
def test_configured_interpolation_and_sizes_are_applied(photo, name):
    entry = catalog.resolve(name)
    batch = load_preprocess_images([str(photo)], entry.resize, entry.crop, entry.interpolation)
    assert batch.shape == (1, 3, entry.crop, entry.crop) and batch.dtype == np.float32
    configured = transforms.InterpolationMode(entry.interpolation)
    other = (transforms.InterpolationMode.BILINEAR if configured == transforms.InterpolationMode.BICUBIC
             else transforms.InterpolationMode.BICUBIC)
    assert np.allclose(batch[0], _manual(photo, entry.resize, entry.crop, configured), atol=1e-6)
    assert not np.allclose(batch[0], _manual(photo, entry.resize, entry.crop, other), atol=1e-3)


def test_unknown_interpolation_is_a_clear_error():
    with pytest.raises(ValueError, match="Unknown interpolation 'cubic'.*bicubic"):
        eval_transform(256, 224, "cubic")
