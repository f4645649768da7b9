"""The pixel cache: each image set is preprocessed once per configuration, read back bit-identical, keyed by the
files' bytes and the configuration, written atomically, bounded."""
from __future__ import annotations

import numpy as np
import pytest
from brainscore_vision.model_helpers.activations.pytorch import PytorchWrapper
from PIL import Image

from brainscore_plugins import factory, fast_activations, pixel_cache, preprocessing, settings
from brainscore_plugins.fast_activations import FastPytorchWrapper
from brainscore_plugins.preprocessing import preprocessing_for

LAYERS = ["layer2.0", "avgpool"]


@pytest.fixture
def images(tmp_path):
    paths = []
    for i in range(21):  # two batches of 16, the last padded
        paths.append(str(tmp_path / "images" / f"image{i}.png"))
        (tmp_path / "images").mkdir(exist_ok=True)
        Image.fromarray(np.random.default_rng(i).integers(0, 255, (70, 90, 3), dtype=np.uint8)).save(paths[-1])
    return paths


@pytest.fixture
def cache(tmp_path, monkeypatch) -> pixel_cache.PixelCache:
    monkeypatch.setenv(settings.CACHE, str(tmp_path / "cache"))
    monkeypatch.setenv("RESULTCACHING_DISABLE", "1")
    return pixel_cache.PixelCache()


def _wrapper(identifier, network, kind=FastPytorchWrapper):
    return kind(identifier=identifier, model=network, preprocessing=preprocessing_for(72, 64, "bilinear",
                                                                                       "brainscore"), batch_size=16)


@pytest.mark.parametrize("workers", [2, 0])  # the worker pipeline, and the extractor's own preprocessing calls
def test_a_warm_run_reads_the_pixels_and_gives_the_same_activations(images, cache, monkeypatch, workers):
    monkeypatch.setattr(fast_activations._PrefetchingExtractor, "workers", workers)
    network = factory.create_model("spvvs_resnet18_imagenet_full", pretrained=False)
    expected = _wrapper("reference", network, PytorchWrapper)(images, layers=LAYERS)
    cold = _wrapper("a", network)(images, layers=LAYERS)
    [entry] = list(cache.folder.glob("*.npy"))
    assert np.load(entry).shape == (21, 3, 64, 64) and not list(cache.folder.glob(".*"))  # no temporary left

    def no_decoding(*args, **kwargs):
        raise AssertionError("decoded again")
    monkeypatch.setattr(preprocessing, "_rgb", no_decoding)  # every pipeline opens each image through it
    warm = _wrapper("b", network)(images, layers=LAYERS)
    np.testing.assert_array_equal(cold.values, expected.values)
    np.testing.assert_array_equal(warm.values, expected.values)  # bit-identical, and nothing decoded


def test_the_key_follows_the_files_and_the_configuration(images, cache):
    brainscore = preprocessing_for(72, 64, "bilinear", "brainscore")
    key = cache.key(images, brainscore)
    assert key == cache.key(list(images), preprocessing_for(72, 64, "bilinear", "brainscore"))  # stable
    assert key != cache.key(images, preprocessing_for(72, 64, "bilinear", "training-config"))
    assert key != cache.key(images, preprocessing_for(80, 64, "bilinear", "brainscore"))
    assert key != cache.key(images[::-1], brainscore)  # the order is the rows' order
    Image.fromarray(np.zeros((70, 90, 3), dtype=np.uint8)).save(images[3])  # rewritten in place
    assert key != cache.key(images, brainscore)
    assert cache.key(images, lambda paths: paths) is None  # no stable description: never cached
    assert pixel_cache.configuration(brainscore).count("albumentations=") == 1  # library versions are in the key


def test_a_failed_run_leaves_no_entry_and_the_bound_evicts_the_least_recently_used(tmp_path):
    cache = pixel_cache.PixelCache(tmp_path / "pixels", max_bytes=10 ** 9)
    broken = cache.entry("broken", 4)
    broken.write(0, np.ones((2, 10), np.float32))
    broken.commit()  # incomplete: discarded
    assert list(cache.folder.iterdir()) == [] and cache.get("broken") is None
    import os
    for age, key in enumerate(["old", "middle", "new"]):
        entry = cache.entry(key, 4)
        entry.write(0, np.full((16, 10), age, np.float32))  # a padded batch: only the first 4 rows are kept
        entry.commit()
        os.utime(cache.folder / f"{key}.npy", (age, age))
    assert cache.get("old") is not None  # reading makes it the most recently used
    cache.max_bytes = 3 * (cache.folder / "old.npy").stat().st_size  # room for three entries
    entry = cache.entry("newest", 4)
    entry.write(0, np.zeros((4, 10), np.float32))
    entry.commit()
    assert sorted(p.stem for p in cache.folder.glob("*.npy")) == ["new", "newest", "old"]  # "middle" evicted
    assert np.array_equal(cache.get("new"), np.full((4, 10), 2, np.float32))


def test_zero_turns_the_cache_off(images, cache, monkeypatch):
    monkeypatch.setenv(settings.PIXEL_CACHE, "0")
    assert not pixel_cache.PixelCache().enabled
    _wrapper("a", factory.create_model("spvvs_resnet18_imagenet_full", pretrained=False))(images, layers=LAYERS)
    assert not cache.folder.exists()
    monkeypatch.setenv(settings.PIXEL_CACHE, "lots")
    with pytest.raises(ValueError, match="BRAINSCORE_PLUGINS_PIXEL_CACHE_GB is 'lots'; set it to a number"):
        pixel_cache.PixelCache()
