"""Brain-Score style plugin test: identifiers resolve to this plugin, load (offline, on forged weights) as activations
models, and ask for a region commitment when none has been computed."""
import pytest

import brainscore_vision
from brainscore_plugins import bridge, forge, hub

IDENTIFIER = "hlvit_vits14_0.1_3"


@pytest.fixture(autouse=True)
def forged_weights(tmp_path, monkeypatch):
    monkeypatch.setenv(hub.MIRROR_ENV, str(tmp_path / "mirror"))
    monkeypatch.setenv(hub.CACHE_ENV, str(tmp_path / "cache"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("BS_INSTALL_DEPENDENCIES", "no")
    bridge.link()


def test_without_a_region_map_load_model_says_how_to_make_one(tmp_path):
    forge.forge_into_mirror(IDENTIFIER, tmp_path / "mirror")
    with pytest.raises(Exception, match=f"brainscore-plugins commit {IDENTIFIER}"):
        brainscore_vision.load_model(IDENTIFIER)
    from brainscore_vision.models.hlvit import model
    assert model.get_layers(IDENTIFIER)[-2:] == ["norm", "fc_norm"]
    assert model.get_model(IDENTIFIER).identifier == IDENTIFIER


def test_bibtex():
    assert "Orhan" in brainscore_vision.load_model_bibtex("hlvit_vith14@476_1.0_1")
