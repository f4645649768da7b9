"""Hostile files that declare far more memory than they hold are refused before torch allocates it; genuine files of
every checkpoint format still load.

Each bomb is loaded the way ``factory.create_model`` loads weights (the family's ``CheckpointFormat.load_into`` into
the catalogued network), in a fresh process that reports how far its peak RSS grew during the load. Unprotected,
every one of them grows it by a gigabyte or more (the deflated one by 300 MB, within the network's storage bound).
"""
import io
import json
import pickle
import re
import subprocess
import sys
import zipfile
from collections import OrderedDict

import pytest
import torch

from brainscore_plugins import architectures, catalog, errors, families, forge
from brainscore_plugins.weights import formats, unpickle

RESNET18 = "spvvs_resnet18_imagenet_full"  # a 47 MB network: its files may declare 408 MB of storage
GROWTH_LIMIT = 200 << 20

LOAD = r"""
import json, resource, sys
from brainscore_plugins import architectures, catalog, families
from brainscore_plugins.errors import CheckpointInvalidError

entry = catalog.resolve(sys.argv[2])
model = architectures.build(entry.arch, entry.num_classes, entry.training_method)
checkpoint_format = families.get(entry.family).checkpoint_format(entry.checkpoint_format)
baseline = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
try:
    checkpoint_format.load_into(model, sys.argv[1], entry.weights_key)
    outcome = "loaded"
except CheckpointInvalidError as error:
    outcome = "refused: " + str(error)
except BaseException as error:  # what an unprotected load may end in
    outcome = f"{type(error).__name__}: {error}"
grown = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - baseline) * 1024
print("RESULT" + json.dumps({"outcome": outcome, "grown": grown}))
"""


class _Reduce:
    """Pickles as the call ``func(*args)``."""

    def __init__(self, func, *args):
        self.func, self.args = func, args

    def __reduce__(self):
        return self.func, self.args


class _StorageId:
    """Pickles as torch's persistent id of a storage."""

    def __init__(self, storage_type, key: str, numel: int):
        self.pid = ("storage", storage_type, key, "cpu", numel)


class _Pickler(pickle.Pickler):
    def persistent_id(self, obj):
        return obj.pid if isinstance(obj, _StorageId) else None


def _pickled(obj) -> bytes:
    buffer = io.BytesIO()
    _Pickler(buffer, protocol=2).dump(obj)
    return buffer.getvalue()


def _composer(value) -> dict:
    return {"state": {"model": {"module.fc.weight": value}}}


def _write_records(path, records: dict[str, bytes]) -> None:
    """A zip written by torch's own writer (as torch.save writes it), with hand-made records."""
    with torch.serialization._open_zipfile_writer(str(path)) as writer:
        for name, data in records.items():
            writer.write_record(name, data, len(data))


def converted_on_load(path):
    """torch.save of a tensor that torch converts on load: a one-byte storage viewed as 2**28 elements (stride 0),
    turned into float64 by ``_rebuild_device_tensor_from_cpu_tensor``, which torch allows by default: 2 GiB."""
    view = torch.zeros(1, dtype=torch.uint8).expand(2 ** 28)
    torch.save(_composer(_Reduce(torch._utils._rebuild_device_tensor_from_cpu_tensor, view, torch.float64, "cpu",
                                 False)), path)
    return r"\['module.fc.weight'\] calls a tensor rebuild, which declares 268,435,456 elements over a storage of 1"


def bytearray_of_declared_size(path):
    """A hand-written pickle, through torch's zip writer: ``bytearray(2**30)``, allowed by torch by default."""
    _write_records(path, {"data.pkl": b"\x80\x02}X\x05\x00\x00\x00state}X\x05\x00\x00\x00model}"
                                      b"X\x10\x00\x00\x00module.fc.weightcbuiltins\nbytearray\n"
                                      b"\x8a\x05\x00\x00\x00\x40\x00\x85Rsss."})
    return r"\['module.fc.weight'\] calls builtins.bytearray, which allocates a buffer"


def deflated_record(path):
    """A zip whose ``data/0`` record, a 300 MB storage (within the network's storage bound), is deflated to 0.4%."""
    numel = 75_000_000
    tensor = _Reduce(torch._utils._rebuild_tensor_v2, _StorageId(torch.FloatStorage, "0", numel), 0, (numel,), (1,),
                     False, OrderedDict())
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as archive:
        archive.writestr("archive/data.pkl", _pickled(_composer(tensor)), zipfile.ZIP_STORED)
        archive.writestr("archive/version", b"3\n", zipfile.ZIP_STORED)
        with archive.open("archive/data/0", "w") as record:
            for _ in range(numel * 4 >> 20):
                record.write(bytes(1 << 20))
            record.write(bytes(numel * 4 % (1 << 20)))
    return "its record archive/data/0 is compressed"


def repeated_encoding(path):
    """A hand-written pickle that encodes one 1 MiB string 1,024 times (``_codecs.encode``, allowed by torch): a
    1 MiB file building 1 GiB of bytes."""
    text = b"x" * (1 << 20)
    first = b"c_codecs\nencode\nq\x02X" + len(text).to_bytes(4, "little") + text + b"q\x00X\x06\x00\x00\x00latin1q\x01"
    _write_records(path, {"data.pkl": b"\x80\x02](" + first + b"\x86R" + b"h\x02h\x00h\x01\x86R" * 1023 + b"e."})
    return "its pickle builds more than 64 MiB of objects"


@pytest.mark.slow
@pytest.mark.parametrize("bomb", [converted_on_load, bytearray_of_declared_size, deflated_record, repeated_encoding])
def test_bomb_is_refused_before_it_allocates(bomb, tmp_path, repo):
    path = tmp_path / "ep1.pt"
    refusal = bomb(path)
    assert path.stat().st_size < 3 << 20
    done = subprocess.run([sys.executable, "-c", LOAD, str(path), RESNET18], capture_output=True, text=True,
                          timeout=120, cwd=repo)
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.split("RESULT")[-1])
    print(f"{bomb.__name__}: {path.stat().st_size:,} bytes, peak RSS grew by {result['grown'] / 2 ** 20:.1f} MiB")
    assert result["outcome"].startswith("refused: "), result["outcome"]
    assert re.search(refusal, result["outcome"]), result["outcome"]
    assert result["grown"] < GROWTH_LIMIT


def _adamw_state(weights: dict) -> dict:
    """The two AdamW moments and step of every floating weight, as a training checkpoint's optimizer holds them."""
    return {i: {"step": torch.tensor(10.0), "exp_avg": torch.randn_like(v), "exp_avg_sq": torch.rand_like(v)}
            for i, v in enumerate(weights.values()) if v.is_floating_point()}


@pytest.mark.slow
@pytest.mark.parametrize("identifier, with_optimizer", [
    ("spvvs_resnet18_imagenet_full", False),                 # composer
    ("spvvs_convnext_tiny_imagenet_full_seed-0", True),      # composer, EMA copy, AdamW moments: 4 copies
    ("spvvs_simclr_resnet18_imagenet_full_seed-0", False),   # composer-ssl
    ("hlvit_vits14_1.0_1", True),                            # mae-pretrain, decoder, AdamW moments: 6.6 copies
    ("hlvit_vits14_1.0_1-finetuned", False),                 # mae-finetune
])
def test_genuine_checkpoints_of_every_format_load(identifier, with_optimizer, tmp_path):
    entry = catalog.resolve(identifier)
    saved = forge.forged_checkpoint(entry)
    if with_optimizer:
        holder = saved["state"]["optimizers"]["SGD"] if "state" in saved else saved["optimizer"]
        holder["state"] = _adamw_state(saved["state"]["model"] if "state" in saved else saved["model"])
    path = formats.save_atomically(saved, tmp_path / "ep1.pt")
    with torch.device("meta"):  # the bound and the load work on a network that was never initialised
        model = architectures.build(entry.arch, entry.num_classes, entry.training_method)
    checkpoint_format = families.get(entry.family).checkpoint_format(entry.checkpoint_format)
    assert path.stat().st_size < unpickle.storage_bound(model)
    checkpoint_format.load_into(model, path, entry.weights_key)
    weights = saved["state"][entry.weights_key] if "state" in saved else saved["model"]
    for key, value in model.state_dict().items():
        assert not value.is_meta and torch.equal(value, weights[checkpoint_format.prefix + key]), key


def test_storages_beyond_the_networks_bound_are_refused(tmp_path):
    model = torch.nn.Conv2d(3, 4, 3)  # 448 bytes of weights: files may declare 32 MiB and 3.5 KiB
    bound = unpickle.storage_bound(model)
    path = tmp_path / "ep1.pt"
    torch.save({"state": {"model": model.state_dict()}, "rng": torch.zeros(bound // 4, dtype=torch.float32)}, path)
    with pytest.raises(errors.CheckpointInvalidError, match=f"declare more than {bound:,} bytes"):
        formats.CheckpointFormat("state", "", forge=None).load_into(model, path, "model")
    unpickle.safe_load(path)  # without a network to bound it, what the file holds


def test_record_declared_beyond_the_end_of_the_file_is_refused(tmp_path):
    path = tmp_path / "ep1.pt"
    torch.save({"state": {"model": {"w": torch.zeros(4)}}}, path)
    data = bytearray(path.read_bytes())
    entry = data.index(b"PK\x01\x02")  # the central directory's entries, in the order of the records
    while not data[entry + 46:].startswith(b"ep1/data/0"):
        entry = data.index(b"PK\x01\x02", entry + 4)
    data[entry + 20:entry + 28] = (2 ** 31).to_bytes(4, "little") * 2  # its compressed and uncompressed sizes
    path.write_bytes(bytes(data))
    with pytest.raises(errors.CheckpointInvalidError, match="beyond the end of the file"):
        unpickle.safe_load(path)


def test_storage_larger_than_its_record_is_refused(tmp_path):
    path = tmp_path / "ep1.pt"
    tensor = _Reduce(torch._utils._rebuild_tensor_v2, _StorageId(torch.FloatStorage, "0", 2 ** 30), 0, (2 ** 30,),
                     (1,), False, OrderedDict())
    _write_records(path, {"data.pkl": _pickled(_composer(tensor)), "data/0": bytes(16)})
    with pytest.raises(errors.CheckpointInvalidError, match="declares 4,294,967,296 bytes but the file holds 16 bytes"):
        unpickle.safe_load(path)


def test_a_small_deflated_record_is_refused_too(tmp_path):
    path = tmp_path / "ep1.pt"
    torch.save({"state": {"model": {"w": torch.zeros(4)}}}, path)
    with zipfile.ZipFile(path) as stored, zipfile.ZipFile(tmp_path / "deflated.pt", "w", zipfile.ZIP_DEFLATED) as out:
        for info in stored.infolist():
            out.writestr(info.filename, stored.read(info))
    with pytest.raises(errors.CheckpointInvalidError, match="compressed or encrypted"):
        unpickle.safe_load(tmp_path / "deflated.pt")


def test_a_legacy_pickle_in_front_of_a_zip_is_refused(tmp_path):
    """torch.load reads a file that does not start with a zip record as a legacy pickle stream (here one allocating
    256 MiB), while zipfile finds the zip behind it."""
    legacy = b"".join(pickle.dumps(x, protocol=2) for x in (torch.serialization.MAGIC_NUMBER,
                                                            torch.serialization.PROTOCOL_VERSION, {}))
    bomb = _pickled(_composer(_Reduce(bytearray, 2 ** 28)))
    buffer = io.BytesIO()
    torch.save({"state": {"model": {"w": torch.zeros(4)}}}, buffer)
    path = tmp_path / "ep1.pt"
    path.write_bytes(legacy + bomb + buffer.getvalue())
    with pytest.raises(errors.CheckpointInvalidError, match="not a zip archive"):
        unpickle.safe_load(path)


def test_a_zip_directory_elsewhere_than_declared_is_refused(tmp_path):
    """zipfile finds the directory before the end record, torch (miniz) at the offset the end record declares."""
    path = tmp_path / "ep1.pt"
    torch.save({"state": {"model": {"w": torch.zeros(4)}}}, path)
    data = path.read_bytes()
    directory = data.index(b"PK\x01\x02")
    path.write_bytes(data[:directory] + bytes(64) + data[directory:])
    with pytest.raises(errors.CheckpointInvalidError, match="zip directory is not where"):
        unpickle.safe_load(path)
