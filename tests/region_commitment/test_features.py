"""The one-pass feature store: column-blocked files written batch by batch read back to exactly the activations; a
failed extraction leaves none of its files behind."""
import errno

import numpy as np
import pytest
import torch
import torchvision

from brainscore_plugins import synthetic_recordings
from brainscore_plugins.preprocessing import preprocessing_for
from region_commitment import DiskFullError, features


@pytest.fixture(scope="module")
def wrapper_and_paths(tmp_path_factory):
    from brainscore_vision.model_helpers.activations.pytorch import PytorchWrapper
    torch.manual_seed(0)
    wrapper = PytorchWrapper(identifier="resnet18-store", model=torchvision.models.resnet18(),
                             preprocessing=preprocessing_for(40, 32, "bilinear"))
    stimuli = synthetic_recordings.stimulus_set(tmp_path_factory.mktemp("stimuli"), n_per_object=3, size=32)
    return wrapper, [str(stimuli.get_stimulus(s)) for s in stimuli["stimulus_id"]]


def test_blocks_and_batches_read_back_exactly(wrapper_and_paths, tmp_path, monkeypatch):
    wrapper, paths = wrapper_and_paths
    monkeypatch.setattr(features, "BLOCK_BYTES", 4 * len(paths) * 100)  # 100 columns per block: many blocks
    layers = ["layer1.0", "avgpool"]
    store = features.extract(wrapper, layers, paths, tmp_path / "store", batch_size=5, progress=False)  # 5, 5, 2
    expected = wrapper.get_activations(wrapper._extractor.preprocess(paths), layers)
    for layer in layers:
        stored = store.layer(layer)
        assert stored.shape == (len(paths), expected[layer][0].size)
        np.testing.assert_array_equal(np.asarray(stored), expected[layer].reshape(len(paths), -1))
    assert [block.shape[1] for block in store.layer("layer1.0").column_blocks()][:2] == [100, 100]
    assert features.extract(wrapper, layers[:1], paths, tmp_path / "store").directory == store.directory  # reused


def test_reduced_layers_are_stored_reduced(wrapper_and_paths, tmp_path):
    """``reduce`` stores a function of each batch's rows instead of the layer's output; a store extracted without it
    is not reused for it."""
    wrapper, paths = wrapper_and_paths
    plain = features.extract(wrapper, ["layer1.0"], paths, tmp_path / "store", batch_size=5, progress=False)
    full = np.asarray(plain.layer("layer1.0")).copy()
    halve = {"layer1.0": lambda rows: rows[:, ::2] * 2}
    store = features.extract(wrapper, ["layer1.0"], paths, tmp_path / "store", batch_size=5, progress=False,
                             reduce=halve)
    np.testing.assert_array_equal(np.asarray(store.layer("layer1.0")), full[:, ::2] * 2)


def test_a_truncated_store_is_a_clear_error(wrapper_and_paths, tmp_path):
    wrapper, paths = wrapper_and_paths
    store = features.extract(wrapper, ["avgpool"], paths, tmp_path / "store", progress=False)
    path = tmp_path / "store" / "avgpool.f32"
    path.write_bytes(path.read_bytes()[:100])
    with pytest.raises(EOFError, match="truncated"):
        np.asarray(store.layer("avgpool"))


def test_a_store_of_other_images_is_extracted_again(wrapper_and_paths, tmp_path):
    wrapper, paths = wrapper_and_paths
    features.extract(wrapper, ["avgpool"], paths[:4], tmp_path / "store", progress=False)
    store = features.extract(wrapper, ["avgpool"], paths, tmp_path / "store", progress=False)
    assert store.paths == paths and store.layer("avgpool").shape[0] == len(paths)


def test_a_failed_extraction_removes_its_files(wrapper_and_paths, tmp_path, monkeypatch):
    """A full disk at the second batch (the files are written, partly): a DiskFullError saying how much is needed;
    the store's files go, what else its folder held stays. An interrupt removes the folder the extraction made."""
    wrapper, paths = wrapper_and_paths
    real, writes = features._write, []

    def full_at_the_second_batch(*args):
        writes.append(1)
        if len(writes) == 2:
            raise OSError(errno.ENOSPC, "No space left on device")
        real(*args)

    monkeypatch.setattr(features, "_write", full_at_the_second_batch)
    (tmp_path / "store").mkdir()
    (tmp_path / "store" / "notes.txt").write_text("not the store's")
    need = 4 * len(paths) * (64 * 8 * 8 + 512) / 1e9  # layer1.0 (64 x 8 x 8 at 32 px) and avgpool
    with pytest.raises(DiskFullError, match=rf"Disk full at .*store: the features of 2 layer\(s\) for {len(paths)} "
                                            rf"images need ~{need:.2f} GB"):
        features.extract(wrapper, ["layer1.0", "avgpool"], paths, tmp_path / "store", batch_size=5, progress=False)
    assert [p.name for p in (tmp_path / "store").iterdir()] == ["notes.txt"]

    def interrupted(*args):
        raise KeyboardInterrupt
    monkeypatch.setattr(features, "_write", interrupted)
    with pytest.raises(KeyboardInterrupt):
        features.extract(wrapper, ["avgpool"], paths, tmp_path / "new", progress=False)
    assert not (tmp_path / "new").exists()


def test_a_model_that_offers_all_its_pixels_is_fed_from_them(wrapper_and_paths, tmp_path, monkeypatch):
    """An activations model with ``preprocessed(paths)`` (the plugins' pixel cache) is fed rows of that array, in
    order, across batches; no ``preprocess`` call per batch."""
    wrapper, paths = wrapper_and_paths
    shifted = np.asarray(wrapper._extractor.preprocess(paths)) + 1  # other pixels than preprocess gives: seen below
    monkeypatch.setattr(wrapper, "preprocessed", lambda given: shifted if given == paths else None, raising=False)
    calls = []
    preprocess = wrapper._extractor.preprocess
    monkeypatch.setattr(wrapper._extractor, "preprocess", lambda batch: calls.append(len(batch)) or preprocess(batch))
    store = features.extract(wrapper, ["avgpool"], paths, tmp_path / "store", batch_size=5, progress=False)
    expected = wrapper.get_activations(shifted, ["avgpool"])["avgpool"].reshape(len(paths), -1)
    np.testing.assert_array_equal(np.asarray(store.layer("avgpool")), expected)
    assert calls == []
