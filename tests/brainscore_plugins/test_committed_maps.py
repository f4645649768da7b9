"""Computed region maps live outside the installed package: written to the user data folder, checked writable
before a commitment runs, found again by load_model; a packaged folder's own maps win for its identifiers."""
import json

import pytest

from brainscore_plugins import catalog, committed_maps, errors, factory, settings

HLVIT = "hlvit_vits14_1.0_1"


def test_an_unwritable_data_folder_fails_before_the_commitment_runs(tmp_path, monkeypatch):
    import region_commitment

    (tmp_path / "a_file").write_text("")
    monkeypatch.setenv(settings.DATA, str(tmp_path / "a_file" / "data"))  # below a file: cannot be created
    monkeypatch.setattr(region_commitment, "load_target", lambda *a: pytest.fail("the commitment started"))
    with pytest.raises(errors.CommitmentFailedError, match=f"cannot write the commitment into .*{settings.DATA}"):
        factory.commit(HLVIT, {"IT": "bsp-synthetic.IT-pls"})
    assert not (tmp_path / "a_file").is_dir()


def test_the_data_folder_is_checked_without_being_created(tmp_path, monkeypatch):
    monkeypatch.setenv(settings.DATA, str(tmp_path / "data"))
    folder = committed_maps.writable_folder("hlvit")
    assert folder == tmp_path / "data" / "commitments" / "hlvit" and not (tmp_path / "data").exists()
    assert list(tmp_path.iterdir()) == []


def _write_map(folder, identifier, region_map):
    (folder / "region_layer_map").mkdir(parents=True, exist_ok=True)
    (folder / "region_layer_map" / f"{identifier}.json").write_text(json.dumps(region_map))


def test_a_packaged_folder_wins_over_the_data_folder(tmp_path, monkeypatch):
    monkeypatch.setenv(settings.DATA, str(tmp_path / "data"))
    monkeypatch.setattr(committed_maps, "_FOLDERS", [])
    entry = catalog.resolve(HLVIT)
    assert committed_maps.locate(entry, HLVIT) is None and factory.region_map(HLVIT) is None
    _write_map(committed_maps.data_folder("hlvit"), HLVIT, {"IT": "blocks.3"})
    assert factory.region_map(HLVIT) == ({"IT": "blocks.3"}, "fc_norm")  # no readout file: the last candidate
    _write_map(tmp_path / "packaged", HLVIT, {"IT": "blocks.7"})
    committed_maps.add_folder(tmp_path / "packaged")
    assert committed_maps.locate(entry, HLVIT) == (tmp_path / "packaged", HLVIT)
    assert factory.region_map(HLVIT)[0] == {"IT": "blocks.7"}
