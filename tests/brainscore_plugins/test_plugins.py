"""The Brain-Score bridge: generated registry lines, region maps, plugin location, link / unlink, CLI."""
import json
import random
import subprocess
import sys

import pytest

from brainscore_core.plugin_management.import_plugin import ImportPlugin
from brainscore_core.plugin_management.parse_plugin_changes import get_plugin_ids

from brainscore_plugins import bridge, catalog, families, plugin_sources


@pytest.mark.parametrize("prefix", sorted(families.all_families()))
def test_plugin_files_are_in_sync_with_the_family_and_catalog(prefix):
    for name, text in plugin_sources.sources(prefix).items():
        on_disk = (plugin_sources.MODELS_DIR / prefix / name).read_text()
        assert on_disk == text, f"{prefix}/{name} drifted: run `brainscore-plugins generate`"


def test_generate_writes_the_catalog_maps_only(tmp_path):
    assert plugin_sources.region_maps("hlvit") == {}
    maps = tmp_path / "hlvit" / "region_layer_map"
    maps.mkdir(parents=True)
    (maps / "hlvit_vits14_1.0_1.json").write_text("{}")  # computed maps live in the user data folder, not here
    assert plugin_sources.write("hlvit", tmp_path) == (156, 0)
    assert list(maps.iterdir()) == []
    assert {p.name for p in (tmp_path / "hlvit").iterdir()} == {"__init__.py", "model.py", "test.py",
                                                                "requirements.txt", "region_layer_map"}


@pytest.mark.parametrize("prefix", sorted(families.all_families()))
def test_brainscores_scanner_finds_exactly_the_catalog_identifiers_once(prefix):
    """Brain-Score's own get_plugin_ids (what the site uses to choose what to test and score) on our plugin folder."""
    found = get_plugin_ids("models", [prefix], str(plugin_sources.MODELS_DIR.parent))
    assert found == plugin_sources.registered_identifiers(prefix)
    assert found[:len(list(catalog.registered(prefix)))] == [identifier for identifier, _ in catalog.registered(prefix)]
    assert len(found) == len(set(found))


def test_region_maps_are_in_sync_with_the_catalog():
    maps_dir = plugin_sources.MODELS_DIR / "spvvs" / "region_layer_map"
    expected = plugin_sources.region_maps("spvvs")
    assert {p.name for p in maps_dir.glob("*.json")} == set(expected), "run `brainscore-plugins generate`"
    for name in random.Random(0).sample(sorted(expected), 200):
        assert (maps_dir / name).read_text() == expected[name]
    sample = json.loads(expected["spvvs_resnet18_imagenet_full.json"])
    assert set(sample) == {"V1", "V2", "V4", "IT"}  # Brain-Score's region_layer_map format


@pytest.mark.slow
def test_brainscore_locates_our_plugin_for_every_architecture(linked):
    one_per_arch = {}
    for entry in catalog.entries("spvvs"):
        one_per_arch.setdefault((entry.arch, entry.training_method), entry)
    for entry in one_per_arch.values():
        for identifier in (entry.identifier, entry.bare_identifier):
            if identifier == entry.bare_identifier and not entry.latest:
                continue
            assert ImportPlugin("brainscore_vision", "models", identifier).locate_plugin() == "spvvs", identifier
    assert ImportPlugin("brainscore_vision", "benchmarks", "bsp-synthetic.IT-pls").locate_plugin() == "bsp_synthetic"


def test_link_and_unlink_are_idempotent(linked):
    assert bridge.is_linked()
    assert all(line.startswith("ok") for line in bridge.link())
    removed = bridge.unlink()
    assert len(removed) == sum(map(len, bridge.our_plugins().values())) and not bridge.is_linked()
    assert bridge.unlink() == []
    assert all(line.startswith("linked") for line in bridge.link())
    assert bridge.is_linked()


def _cli(*args):
    return subprocess.run([sys.executable, "-m", "brainscore_plugins.cli", *args], capture_output=True, text=True,
                          timeout=120)


@pytest.mark.slow
def test_cli_list_counts():
    bare = _cli("list", "--family", "spvvs").stdout.split()
    everything = _cli("list", "--checkpoints").stdout.split()
    assert len(bare) == families.get("spvvs").published_counts["models"]
    assert len(everything) == len(catalog.identifiers(checkpoints=True))
    assert "spvvs_resnet18_imagenet_full" in bare and "spvvs_resnet18_imagenet_full.ep10" in everything


@pytest.mark.slow
def test_cli_unknown_identifier_suggests():
    process = _cli("info", "resnet18_imagenet_ful")
    assert process.returncode == 2
    assert "Did you mean" in process.stderr and "resnet18_imagenet_full" in process.stderr


@pytest.mark.slow
def test_cli_info_accepts_study_model_id():
    process = _cli("info", "convnext_tiny_imagenet_full_seed-0")
    row = json.loads(process.stdout)
    assert row["identifier"] == "spvvs_convnext_tiny_imagenet_full_seed-0"  # as registered: the model's bare name
    assert row["checkpoint"].startswith("spvvs_convnext_tiny_imagenet_full_seed-0.ep")
    assert row["interpolation"] == "bicubic" and row["weights_key"] == "model_ema_state_dict"


@pytest.mark.slow
def test_cli_list_hlvit():
    listed = _cli("list", "--family", "hlvit").stdout.split()
    assert len(listed) == 156 and "hlvit_vith14@476_1.0_1" in listed and "hlvit_vith14@476_1.0_1-finetuned" in listed
    assert _cli("list", "--family", "hlvit", "--checkpoints").stdout.split() == listed
