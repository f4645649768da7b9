"""Safe unpickling, unwrapping of the published nesting, strict loading."""
import os
import shutil

import pytest
import torch

from brainscore_plugins import checkpoint, errors
from brainscore_plugins.families import spvvs


class _RunsCodeOnLoad:
    """Unpickling this calls shutil.copyfile (a non-blocked module): a pickle-borne code execution."""

    def __init__(self, source, target):
        self.args = (source, target)

    def __reduce__(self):
        return shutil.copyfile, self.args


class _CallsSystem:
    def __init__(self, command):
        self.command = command

    def __reduce__(self):
        return os.system, (self.command,)


def _tiny():
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.BatchNorm2d(4))


def test_unknown_training_objects_become_inert_placeholders(tmp_path):
    path = tmp_path / "ep1.pt"
    torch.save(spvvs.composer_checkpoint(_tiny().state_dict(), "model"), path)
    loaded = checkpoint.safe_load(path)
    assert isinstance(loaded["state"]["timestamp"], checkpoint.Placeholder)  # argparse.Namespace, not trusted
    assert torch.equal(loaded["state"]["model"]["module.0.weight"], _tiny().state_dict()["0.weight"])


def test_pickle_that_would_run_code_does_not(tmp_path):
    marker_source, marker = tmp_path / "src", tmp_path / "copied-by-pickle"
    marker_source.write_text("x")
    payload = {"state": {"model": _tiny().state_dict()}, "hook": _RunsCodeOnLoad(str(marker_source), str(marker))}
    path = tmp_path / "evil.pt"
    torch.save(payload, path)
    loaded = checkpoint.safe_load(path)
    assert not marker.exists()
    assert isinstance(loaded["hook"], checkpoint.Placeholder)
    torch.load(path, weights_only=False)  # proof that the file really runs code under an unsafe load
    assert marker.exists()


def test_pickle_calling_a_blocked_module_is_refused(tmp_path):
    marker = tmp_path / "created-by-system"
    path = tmp_path / "evil.pt"
    torch.save({"state": {"model": {}}, "x": _CallsSystem(f"touch {marker}")}, path)
    with pytest.raises(errors.CheckpointInvalidError, match="would run code"):
        checkpoint.safe_load(path)
    assert not marker.exists()


def test_truncated_file_is_a_clear_error(tmp_path):
    path = tmp_path / "ep1.pt"
    torch.save(spvvs.composer_checkpoint(_tiny().state_dict(), "model"), path)
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(errors.CheckpointInvalidError, match="truncated or corrupted"):
        checkpoint.safe_load(path)


def test_extract_unwraps_composer_nesting_and_prefers_the_requested_copy():
    weights = _tiny().state_dict()
    ema = spvvs.composer_checkpoint(weights, "model_ema_state_dict")
    extracted = checkpoint.extract_state_dict(ema, "model_ema_state_dict")
    assert set(extracted) == set(weights) and torch.equal(extracted["0.weight"], weights["0.weight"])
    assert not torch.equal(checkpoint.extract_state_dict(ema, "model")["0.weight"], weights["0.weight"])


def test_wrong_nesting_lists_what_is_there():
    with pytest.raises(errors.CheckpointInvalidError, match=r"checkpoint\['state'\]\['model'\].*top-level keys"):
        checkpoint.extract_state_dict({"model": _tiny().state_dict()}, "model")
    with pytest.raises(errors.CheckpointInvalidError, match="state keys"):
        checkpoint.extract_state_dict({"state": {"model_ema_state_dict": {}}}, "model")


def test_strict_load_lists_missing_unexpected_and_shape_mismatches():
    model = _tiny()
    state = {k: v.clone() for k, v in model.state_dict().items()}
    state["extra.weight"] = state.pop("1.weight")
    state["0.bias"] = torch.zeros(5)
    with pytest.raises(errors.CheckpointInvalidError) as error:
        checkpoint.load_strict(model, state)
    message = str(error.value)
    assert "Missing keys: 1.weight" in message and "Unexpected keys: extra.weight" in message
    assert "0.bias: (5,) vs model (4,)" in message
