"""The pixel cache: each image set is preprocessed once per configuration, read back bit-identical, keyed by the
files' bytes and the configuration, written atomically, bounded."""
from __future__ import annotations

import multiprocessing
import os
import time

import numpy as np
import pytest
from brainscore_vision.model_helpers.activations.pytorch import PytorchWrapper
from PIL import Image

from brainscore_plugins import factory, fast_activations, pixel_cache, preprocessing, settings
from brainscore_plugins.errors import PlantedCacheFileError
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


@pytest.mark.parametrize("in_workers", [True, False])  # filled by worker processes (a GPU), or by one thread (CPU)
def test_a_warm_run_reads_the_pixels_and_gives_the_same_activations(images, cache, monkeypatch, in_workers):
    monkeypatch.setattr(fast_activations._PrefetchingExtractor, "decode_in_workers", in_workers)
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
    assert list(cache.folder.iterdir()) == [] and cache.get("broken", 4) is None
    for age, key in enumerate(["old", "middle", "new"]):
        entry = cache.entry(key, 4)
        entry.write(0, np.full((16, 10), age, np.float32))  # a padded batch: only the first 4 rows are kept
        entry.commit()
        os.utime(cache.folder / f"{key}.npy", (age, age))
    assert cache.get("old", 4) is not None  # reading makes it the most recently used
    cache.max_bytes = 3 * (cache.folder / "old.npy").stat().st_size  # room for three entries
    entry = cache.entry("newest", 4)
    entry.write(0, np.zeros((4, 10), np.float32))
    entry.commit()
    assert sorted(p.stem for p in cache.folder.glob("*.npy")) == ["new", "newest", "old"]  # "middle" evicted
    assert np.array_equal(cache.get("new", 4), np.full((4, 10), 2, np.float32))
    size = (cache.folder / "old.npy").stat().st_size
    (cache.folder / ".other.1.a.tmp.npy").write_bytes(b"x" * size)  # another process's entry, being written
    (cache.folder / ".killed.2.b.tmp.npy").write_bytes(b"x" * size)  # a killed process's, a day old
    os.utime(cache.folder / ".killed.2.b.tmp.npy", (0, time.time() - pixel_cache.STALE_SECONDS - 60))
    cache.trim()  # the one being written counts, and stays; the stale one is removed; the oldest entry goes
    assert sorted(p.name for p in cache.folder.glob("*.npy")) == [".other.1.a.tmp.npy", "new.npy", "newest.npy"]


def test_zero_turns_the_cache_off(images, cache, monkeypatch):
    monkeypatch.setenv(settings.PIXEL_CACHE, "0")
    assert not pixel_cache.PixelCache().enabled
    _wrapper("a", factory.create_model("spvvs_resnet18_imagenet_full", pretrained=False))(images, layers=LAYERS)
    assert not cache.folder.exists()
    monkeypatch.setenv(settings.PIXEL_CACHE, "lots")
    with pytest.raises(ValueError, match="BRAINSCORE_PLUGINS_PIXEL_CACHE_GB is 'lots'; set it to a number"):
        pixel_cache.PixelCache()


def test_unchanged_files_are_stat_ed_not_read_and_a_rewritten_one_is_read(images, cache, monkeypatch):
    from region_commitment import digests
    brainscore = preprocessing_for(72, 64, "bilinear", "brainscore")
    key = cache.key(images, brainscore)
    read = []
    monkeypatch.setattr(digests, "files", lambda paths: read.append(len(paths)) or "0" * 64)
    assert cache.key(images, brainscore) == key and read == []  # remembered under the files' status
    with open(images[5], "r+b") as rewritten:  # same size, same modification time: only the change time moves
        status = os.stat(images[5])
        rewritten.write(b"\x89")
    os.utime(images[5], ns=(status.st_atime_ns, status.st_mtime_ns))
    assert cache.key(images, brainscore) != key and read == [21]


def _entry(cache, key, array):
    entry = cache.entry(key, len(array))
    entry.write(0, array)
    entry.commit()
    return cache.folder / f"{key}.npy"


def test_an_entry_that_is_not_the_runs_pixels_is_removed_and_computed_again(tmp_path):
    cache = pixel_cache.PixelCache(tmp_path / "pixels", max_bytes=10 ** 9)
    pixels = np.arange(4 * 3 * 2 * 2, dtype=np.float32).reshape(4, 3, 2, 2)
    path = _entry(cache, "k", pixels)
    np.testing.assert_array_equal(cache.get("k", 4), pixels)
    assert cache.get("k", 5) is None and not path.exists()  # another number of images
    for damage in (lambda: path.write_bytes(path.read_bytes()[:-8]),  # truncated
                   lambda: np.save(path, pixels.astype(np.int64)),  # not pixels
                   lambda: np.save(path, np.asfortranarray(pixels)),
                   lambda: path.write_bytes(b"\x93NUMPY garbage")):
        _entry(cache, "k", pixels)
        damage()
        assert cache.get("k", 4) is None and not path.exists()


def test_a_planted_link_in_the_cache_is_refused(tmp_path):
    cache = pixel_cache.PixelCache(tmp_path / "pixels", max_bytes=10 ** 9)
    elsewhere = tmp_path / "elsewhere.npy"
    np.save(elsewhere, np.zeros((4, 3), np.float32))
    cache.folder.mkdir()
    (cache.folder / "k.npy").symlink_to(elsewhere)
    with pytest.raises(PlantedCacheFileError, match=r"k.npy is a symbolic link .* refusing to follow it\. Remove"):
        cache.get("k", 4)
    linked = pixel_cache.PixelCache(tmp_path / "linked", max_bytes=10 ** 9)
    linked.folder.symlink_to(cache.folder)
    with pytest.raises(PlantedCacheFileError, match="linked is a symbolic link"):
        linked.get("k", 4)


def test_a_commitment_reads_its_images_from_the_cache(images, cache, monkeypatch, tmp_path):
    """``FastPytorchWrapper.preprocessed`` (how region_commitment feeds its one forward pass) is the preprocessing's
    own array, written to the cache once and read back by the next model without decoding; the features equal those
    of Brain-Score's wrapper."""
    from region_commitment import features
    network = factory.create_model("spvvs_resnet18_imagenet_full", pretrained=False)
    preprocess = preprocessing_for(72, 64, "bilinear", "brainscore")
    np.testing.assert_array_equal(_wrapper("a", network).preprocessed(images), preprocess(images))
    second = _wrapper("b", network)  # Brain-Score's extractor probes one image when built
    with monkeypatch.context() as patched:
        patched.setattr(preprocessing, "_rgb", lambda *a, **k: pytest.fail("decoded again"))
        store = features.extract(second, ["avgpool"], images, tmp_path / "store", progress=False)
    reference = _wrapper("r", network, PytorchWrapper)
    expected = features.extract(reference, ["avgpool"], images, tmp_path / "expected", progress=False)
    np.testing.assert_array_equal(np.asarray(store.layer("avgpool")), np.asarray(expected.layer("avgpool")))


@pytest.mark.parametrize("in_workers", [True, False])
def test_a_cold_entry_is_read_while_it_is_filled_and_a_failure_reaches_the_reader(images, cache, monkeypatch,
                                                                                  in_workers):
    import time
    monkeypatch.setattr(fast_activations._PrefetchingExtractor, "decode_in_workers", in_workers)
    extractor = _wrapper("a", factory.create_model("spvvs_resnet18_imagenet_full", pretrained=False))._extractor
    expected, before = extractor.preprocess(images), set(multiprocessing.active_children())
    filling = extractor.preprocessed(images, batch_size=8)  # 8, 8, 5 (padded)
    assert isinstance(filling, fast_activations._Filling) and len(filling) == 21
    np.testing.assert_array_equal(np.concatenate([filling[0:5], filling[5:13], filling[13:21]]), expected)
    for _ in range(100):  # committed by the filling thread right after its last batch
        if list(cache.folder.glob("*.npy")):
            break
        time.sleep(0.05)
    np.testing.assert_array_equal(extractor.preprocessed(images), expected)  # now memory-mapped from the cache
    (cache.folder.parent / "broken.png").write_bytes(b"not an image")
    broken = [*images[:10], str(cache.folder.parent / "broken.png"), *images[11:]]
    filling = extractor.preprocessed(broken, batch_size=8)
    np.testing.assert_array_equal(filling[0:8], expected[:8])  # what was computed before the failure
    with pytest.raises(Exception, match="cannot identify image file .*broken.png"):
        filling[8:16]
    filling.join()
    assert set(multiprocessing.active_children()) <= before  # a failed pipeline's workers end now, not when collected
    assert len(list(cache.folder.glob("*.npy"))) == 1 and not list(cache.folder.glob(".*"))  # nothing half-written


def test_a_full_disk_skips_the_cache_for_the_run_with_a_warning(images, cache, monkeypatch):
    """The entry is allocated at its first batch, before the filling thread starts: a disk without room for it is
    a warning, and the run extracts without the cache (the same activations), leaving no file in the cache."""
    import errno

    def full(*args):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
    network = factory.create_model("spvvs_resnet18_imagenet_full", pretrained=False)
    expected = _wrapper("reference", network, PytorchWrapper)(images, layers=LAYERS)
    monkeypatch.setattr(os, "posix_fallocate", full)
    with pytest.warns(UserWarning, match=r"The pixel cache is skipped for this run: no room for its 21 images \(0\.00 "
                                         r"GB\) in .*pixels: free disk space there, or set "
                                         r"\$BRAINSCORE_PLUGINS_PIXEL_CACHE_GB=0"):
        ours = _wrapper("a", network)(images, layers=LAYERS)
    np.testing.assert_array_equal(ours.values, expected.values)
    assert list(cache.folder.glob("*.npy")) == [] and list(cache.folder.glob(".*")) == []
