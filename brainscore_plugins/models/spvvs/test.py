"""Brain-Score style plugin test: the identifiers load as committed models (offline, on forged weights)."""
import os

import pytest

import brainscore_vision
from brainscore_plugins import bridge, forge, hub


@pytest.fixture(autouse=True)
def forged_weights(tmp_path, monkeypatch):
    monkeypatch.setenv(hub.MIRROR_ENV, str(tmp_path / "mirror"))
    monkeypatch.setenv(hub.CACHE_ENV, str(tmp_path / "cache"))
    monkeypatch.setenv("BS_INSTALL_DEPENDENCIES", "no")
    bridge.link()


@pytest.mark.parametrize("identifier", ["spvvs_alexnet_ecoset_full_seed-0", "spvvs_resnet34_imagenet_full.ep5"])
def test_identifier(identifier):
    forge.forge_into_mirror(identifier, os.environ[hub.MIRROR_ENV])
    model = brainscore_vision.load_model(identifier)
    assert model.identifier == identifier
    assert set(model.layer_model.region_layer_map) == {"V1", "V2", "V4", "IT"}


def test_bibtex():
    assert "Gokce" in brainscore_vision.load_model_bibtex("spvvs_resnet18_imagenet_full")
