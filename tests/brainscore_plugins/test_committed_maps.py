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


HLVIT = "hlvit_vits14_1.0_1"
GOOD_MAP = {"V1": "blocks.1", "V2": "blocks.2", "V4": "blocks.3", "IT": "blocks.7"}


def _committed_files(tmp_path, monkeypatch, files: dict[str, bytes]):
    """``HLVIT``'s commitment files in a fresh data folder: part (``region_layer_map``, ...) -> content; the folder."""
    monkeypatch.setenv(settings.DATA, str(tmp_path / "data"))
    monkeypatch.setattr(committed_maps, "_FOLDERS", [])
    folder = committed_maps.data_folder("hlvit")
    for part, content in files.items():
        (folder / part).mkdir(parents=True)
        (folder / part / f"{HLVIT}.json").write_bytes(content)
    return folder


@pytest.mark.parametrize("name, content, what", [
    ("behavioral_readout", b"{}", "no behavioral_readout_layer name"),
    ("behavioral_readout", b'{"behavioral_readout_layer": 3}', "no behavioral_readout_layer name"),
    ("region_layer_map", b"[1, 2]", "a JSON list, not an object"),
    ("region_layer_map", b'{"V1": ""}', "not a map of regions to layer names"),
    ("region_layer_map", b'{"V1": "blocks.1"', "Expecting"),
    ("region_layer_map", b'{"V1": "\xff"}', "can't decode byte 0xff"),
    ("region_layer_map", b" " * (committed_maps.MAX_FILE_BYTES + 1), "larger than 1,048,576 bytes"),
])
def test_a_damaged_commitment_file_is_named_with_the_fix(tmp_path, monkeypatch, name, content, what):
    good = {"region_layer_map": json.dumps(GOOD_MAP).encode(),
            "behavioral_readout": b'{"behavioral_readout_layer": "fc_norm"}'}
    folder = _committed_files(tmp_path, monkeypatch, {**good, name: content})
    located = committed_maps.locate(catalog.resolve(HLVIT), HLVIT)
    with pytest.raises(errors.CommitmentFailedError) as raised:
        committed_maps.read(located)
    message = str(raised.value)
    assert f"commitment file {folder / name / HLVIT}.json is damaged" in message and what in message
    assert message.endswith(f"delete it and run `brainscore-plugins commit {HLVIT}` again")


def test_a_damaged_commitment_becomes_a_failed_row_not_a_lost_sweep(tmp_path, monkeypatch):
    """The row describing the model reads its commitment: a damaged file fails that pair, nothing is raised."""
    import brainscore_vision
    from brainscore_plugins.scale import scoring, sweep
    _committed_files(tmp_path, monkeypatch, {"region_layer_map": json.dumps(GOOD_MAP).encode(),
                                             "behavioral_readout": b"{}"})
    from brainscore_core.metrics import Score
    monkeypatch.setattr(brainscore_vision, "score", lambda *a: Score(0.5))  # were it to score: the row still fails
    row, failure = scoring.score_row(HLVIT, "bsp-synthetic.IT-pls")
    assert row["status"] == "failed" and row["identifier"] == HLVIT and row["benchmark"] == "bsp-synthetic.IT-pls"
    assert row["error_message"].startswith("CommitmentFailedError: the commitment file") and failure is not None
    assert (row["preprocessing"], row["precision"]) == ("", "float32")  # its key: the next sweep counts it scored
    rows = sweep.failed_rows(scoring.Task(HLVIT, ("a", "b")), "the process died")  # the driver's own rows too
    assert [(r["benchmark"], r["error_message"]) for r in rows] == [("a", "the process died"),
                                                                     ("b", "the process died")]


def test_a_damaged_provenance_record_is_named_with_the_fix(tmp_path, monkeypatch):
    from brainscore_plugins import provenance
    folder = _committed_files(tmp_path, monkeypatch, {"region_layer_map": json.dumps(GOOD_MAP).encode(),
                                                      "provenance": b"{truncated"})
    with pytest.raises(errors.CommitmentFailedError, match=rf"{folder / 'provenance' / HLVIT}.json is damaged"):
        provenance.map_provenance(HLVIT, catalog.resolve(HLVIT))
