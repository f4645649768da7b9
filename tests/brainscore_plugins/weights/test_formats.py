"""Safe unpickling, unwrapping of the published nesting, strict loading."""
import argparse
import os
import shutil

import pytest
import torch

from brainscore_plugins import errors
from brainscore_plugins.weights import formats, unpickle
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
    loaded = unpickle.safe_load(path)
    assert isinstance(loaded["state"]["timestamp"], unpickle.Placeholder)  # argparse.Namespace, not trusted
    assert torch.equal(loaded["state"]["model"]["module.0.weight"], _tiny().state_dict()["0.weight"])


def test_pickle_that_would_run_code_does_not(tmp_path):
    marker_source, marker = tmp_path / "src", tmp_path / "copied-by-pickle"
    marker_source.write_text("x")
    payload = {"state": {"model": _tiny().state_dict()}, "hook": _RunsCodeOnLoad(str(marker_source), str(marker))}
    path = tmp_path / "evil.pt"
    torch.save(payload, path)
    loaded = unpickle.safe_load(path)
    assert not marker.exists()
    assert isinstance(loaded["hook"], unpickle.Placeholder)
    torch.load(path, weights_only=False)  # proof that the file really runs code under an unsafe load
    assert marker.exists()


def test_pickle_calling_a_blocked_module_is_refused(tmp_path):
    marker = tmp_path / "created-by-system"
    path = tmp_path / "evil.pt"
    torch.save({"state": {"model": {}}, "x": _CallsSystem(f"touch {marker}")}, path)
    with pytest.raises(errors.CheckpointInvalidError, match="would run code"):
        unpickle.safe_load(path)
    assert not marker.exists()


def test_truncated_file_is_a_clear_error(tmp_path):
    path = tmp_path / "ep1.pt"
    torch.save(spvvs.composer_checkpoint(_tiny().state_dict(), "model"), path)
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(errors.CheckpointInvalidError, match="truncated or corrupted"):
        unpickle.safe_load(path)


def test_extract_unwraps_composer_nesting_and_prefers_the_requested_copy():
    weights = _tiny().state_dict()
    ema = spvvs.composer_checkpoint(weights, "model_ema_state_dict")
    extracted = formats.extract_state_dict(ema, "model_ema_state_dict")
    assert set(extracted) == set(weights) and torch.equal(extracted["0.weight"], weights["0.weight"])
    assert not torch.equal(formats.extract_state_dict(ema, "model")["0.weight"], weights["0.weight"])


def test_wrong_nesting_lists_what_is_there():
    with pytest.raises(errors.CheckpointInvalidError, match=r"checkpoint\['state'\]\['model'\].*top-level keys"):
        formats.extract_state_dict({"model": _tiny().state_dict()}, "model")
    with pytest.raises(errors.CheckpointInvalidError, match="state keys"):
        formats.extract_state_dict({"state": {"model_ema_state_dict": {}}}, "model")


def test_strict_load_lists_missing_unexpected_and_shape_mismatches():
    model = _tiny()
    state = {k: v.clone() for k, v in model.state_dict().items()}
    state["extra.weight"] = state.pop("1.weight")
    state["0.bias"] = torch.zeros(5)
    with pytest.raises(errors.CheckpointInvalidError) as error:
        formats.load_strict(model, state)
    message = str(error.value)
    assert "Missing keys: 1.weight" in message and "Unexpected keys: extra.weight" in message
    assert "0.bias: (5,) vs model (4,)" in message


class _Reduce:
    """Pickles as the call ``func(*args)``."""

    def __init__(self, func, *args):
        self.func, self.args = func, args

    def __reduce__(self):
        return self.func, self.args


def _load_tiny(tmp_path, change):
    weights = {f"module.{k}": v for k, v in _tiny().state_dict().items()}
    change(weights)
    path = tmp_path / "ep1.pt"
    torch.save({"state": {"model": weights}, "rng": [{"torch": torch.get_rng_state()}]}, path)
    formats.CheckpointFormat("state", "module.", forge=None).load_into(_tiny(), path, "model")


@pytest.mark.filterwarnings("ignore::UserWarning")
@pytest.mark.parametrize("change, message", [
    (lambda w: w.__setitem__(7, w.pop("module.1.bias")), r"key 7 is of type int, not a string"),
    (lambda w: w.__setitem__("module.1.bias", 0.5), r"key 'module.1.bias' holds an object of type float"),
    (lambda w: w.__setitem__("module.1.bias", argparse.Namespace()),
     r"key 'module.1.bias' holds an object of type argparse.Namespace"),
    (lambda w: w.__setitem__("module.1.bias", torch.zeros(4, device="meta")),
     r"key 'module.1.bias' is a meta tensor"),
    (lambda w: w.__setitem__("module.1.bias", torch.zeros(4, dtype=torch.int32)),
     r"Dtype mismatches: 1.bias: torch.int32 vs model torch.float32"),
    (lambda w: w.__setitem__("module.1.bias", torch.zeros(4).to_sparse()),
     r"\['module.1.bias'\] calls torch._utils._rebuild_sparse_tensor, which builds a sparse tensor"),
    (lambda w: w.__setitem__("module.1.bias", torch.quantize_per_tensor(torch.zeros(4), 0.1, 0, torch.qint8)),
     r"\['module.1.bias'\] calls torch._utils._rebuild_qtensor, which builds a quantized tensor"),
    (lambda w: w.__setitem__("module.1.bias", _Reduce(torch._utils._rebuild_device_tensor_from_cpu_tensor,
                                                      torch.zeros(4), torch.float64, "cpu", False)),
     r"\['module.1.bias'\] calls torch._utils._rebuild_device_tensor_from_cpu_tensor, which converts"),
    (lambda w: w.__setitem__("module.1.bias", _Reduce(torch.FloatTensor, 2 ** 31)),
     r"\['module.1.bias'\] calls torch.FloatTensor, which is not what torch.save writes"),
    (lambda w: w.__setitem__("module.1.bias", _Reduce(torch.UntypedStorage, 2 ** 31)),
     r"\['module.1.bias'\] calls torch.storage.UntypedStorage, which is not what torch.save writes"),
])
def test_malformed_weights_are_checkpoint_errors_naming_the_key(tmp_path, change, message):
    with pytest.raises(errors.CheckpointInvalidError, match=message):
        _load_tiny(tmp_path, change)


@pytest.mark.filterwarnings("ignore::UserWarning")  # quantized and nested tensors are deprecated / prototypes
@pytest.mark.parametrize("tensor, message", [
    (lambda: torch.zeros(4, device="meta"), "is a meta tensor"),
    (lambda: torch.zeros(4).to_sparse(), "is a torch.sparse_coo tensor"),
    (lambda: torch.quantize_per_tensor(torch.zeros(4), 0.1, 0, torch.qint8), "is a quantized tensor"),
    (lambda: torch.nested.nested_tensor([torch.zeros(4)]), "is a nested tensor"),
])
def test_strict_load_names_a_tensor_without_dense_data(tensor, message):
    state = {**_tiny().state_dict(), "1.bias": tensor()}
    with pytest.raises(errors.CheckpointInvalidError, match=rf"key '1.bias' {message}"):
        formats.load_strict(_tiny(), state)


def test_a_network_on_the_meta_device_gets_the_weights(tmp_path):
    path = tmp_path / "ep1.pt"
    torch.save(spvvs.composer_checkpoint(_tiny().state_dict(), "model"), path)
    with torch.device("meta"):
        model = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.BatchNorm2d(4))
    formats.CheckpointFormat("state", "module.", forge=None).load_into(model, path, "model")
    assert all(torch.equal(v, _tiny().state_dict()[k]) for k, v in model.state_dict().items())
