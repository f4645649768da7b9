"""Reading published checkpoints without running code and in bounded memory, and loading their weights strictly.

Training checkpoints (Composer's ``State``, MAE's ``argparse.Namespace``, numpy RNG states, ...) pickle more than
tensors. ``torch.load(weights_only=False)`` would execute whatever a downloaded pickle asks for. Instead we use
torch's weights-only unpickler and allow-list every non-tensor global of the file as an inert :class:`Placeholder`
that only stores its arguments and state. Globals that torch blocks outright (``os``, ``posix``, ``sys``, ...: what a
malicious pickle calls) make the load fail with an error naming them; nothing is ever called. Tensors are rebuilt
by torch's own allow-listed functions.

Before torch reads anything, the file is checked so that a small hostile file cannot make it allocate much:

* the zip directory: the file starts with a record and the directory is where its end record says (else torch
  reads another directory, or the file as a legacy pickle); every record stored as it is (``torch.save`` never
  compresses; a deflated record inflates up to a thousandfold), inside the file and not overlapping another; the
  pickle at most :data:`PICKLE_LIMIT` bytes;
* the pickle, by a dry run of torch's weights-only unpickler that calls nothing. Besides inert placeholders and
  containers it may only call the rebuild functions of dense tensors, each no larger than its storage; torch's
  other allow-listed callables that allocate from a size the file declares (``bytearray``, storage and legacy
  tensor constructors, quantized, sparse, nested, wrapper-subclass and converted tensors) are refused, naming where
  in the checkpoint they sit. The objects it builds are costed: at most :data:`OBJECT_BUDGET` bytes;
* every storage the pickle declares has a record of exactly its size, and together they hold at most the
  ``max_bytes`` of :func:`safe_load` (:func:`storage_bound` of the network the weights are loaded into).
"""
from __future__ import annotations

import io
import math
import os
import pickle
import struct
import zipfile
from collections import Counter, OrderedDict, deque
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch
from torch import _weights_only_unpickler as _torch_unpickler

from .errors import CheckpointInvalidError

WEIGHT_COPIES = 8
"""Storage bytes a checkpoint may declare per byte of its network's state dict. Published training checkpoints hold
the optimizer's state besides the weights (Composer and MAE's ``save_model`` save it): Composer ConvNeXt / DeiT files
hold the weights, their EMA copy and two AdamW moments (4 copies); MAE pretraining files the encoder, MAE's decoder
(1.2 times a ViT-S/14 encoder) and two AdamW moments of both (6.6 copies). Forged files, without optimizer moments,
declare at most 2.2 copies."""
SLACK_BYTES = 32 << 20
"""Storage bytes allowed besides: RNG states, step counters, metrics (5 KiB in forged Composer files)."""
PICKLE_LIMIT = 16 << 20
"""The pickle and torch's other small records together (37 KiB in the largest forged file)."""
OBJECT_BUDGET = 64 << 20
"""Estimated memory of the objects the pickle builds besides storages (about 1 KiB per tensor)."""
_DIRECTORY_LIMIT = 4 << 20  # the zip's central directory: about 100 bytes per record, 40,000 records

_OP_COST, _MEMO_COST, _SET_COST, _ITEM_COST, _OBJECT_COST = 64, 64, 256, 128, 1024
_TENSOR_TYPES = (torch.Tensor, torch.nn.Parameter)
_REFUSALS = {
    "builtins.bytearray": "allocates a buffer of a size the file declares",
    "torch._utils._rebuild_qtensor": "builds a quantized tensor, allocated from the size the file declares",
    "torch._utils._rebuild_sparse_tensor": "builds a sparse tensor",
    "torch._utils._rebuild_nested_tensor": "builds a nested tensor",
    "torch._utils._rebuild_wrapper_subclass": "builds a tensor subclass without storage, of a size the file declares",
    "torch._utils._rebuild_device_tensor_from_numpy": "converts a tensor on load, allocating from its declared size",
    "torch._utils._rebuild_device_tensor_from_cpu_tensor": "converts a tensor on load, allocating from its declared "
                                                           "size",
}
_REFUSED_BY_DEFAULT = "is not what torch.save writes for a dense tensor (it may allocate from a declared size)"


class Placeholder:
    """Stands in for a pickled object of a class we do not trust; keeps what it was given, runs nothing."""

    qualified_name = "?"

    def __new__(cls, *args, **kwargs):
        instance = object.__new__(cls)
        instance.__dict__["_args"] = args
        return instance

    def __init__(self, *args, **kwargs):
        pass

    def __setstate__(self, state):
        self.__dict__["_state"] = state

    def __repr__(self):
        return f"<inert placeholder for {self.qualified_name}>"


def _placeholder_for(qualified_name: str) -> type:
    return type("Placeholder", (Placeholder,), {"qualified_name": qualified_name})


def storage_bound(model: torch.nn.Module) -> int:
    """The most storage bytes a checkpoint of ``model`` may declare: :data:`WEIGHT_COPIES` times its state dict plus
    :data:`SLACK_BYTES` (``model`` may be on the meta device)."""
    return WEIGHT_COPIES * sum(t.numel() * t.element_size() for t in model.state_dict().values()) + SLACK_BYTES


def _hostile(path, what: str) -> CheckpointInvalidError:
    return CheckpointInvalidError(f"Refusing to load {path}: {what}. The file is not a genuine checkpoint")


def _corrupted(path, error) -> CheckpointInvalidError:
    return CheckpointInvalidError(f"Cannot read checkpoint {path}: {error}. The file is truncated or corrupted")


def _read_archive(file, path) -> tuple[dict[str, zipfile.ZipInfo], str, bytes]:
    """The records of the torch zip archive ``file`` by lower-cased name (torch looks names up ignoring case), its
    folder, and its pickle; refuses compressed, out-of-file or overlapping records before reading any."""
    size = os.fstat(file.fileno()).st_size
    end = zipfile._EndRecData(file)  # the directory's declared place and size, before zipfile parses the directory
    if file.seek(0) != 0 or file.read(4) != b"PK\x03\x04" or end is None:  # else torch would read a legacy pickle
        raise zipfile.BadZipFile("it is not a zip archive (torch.save's format)")
    if end[zipfile._ECD_SIZE] > _DIRECTORY_LIMIT:
        raise _hostile(path, f"its zip directory declares {end[zipfile._ECD_SIZE]:,} bytes")
    with zipfile.ZipFile(file) as archive:
        infos = archive.infolist()
        if archive.start_dir != end[zipfile._ECD_OFFSET] or len(infos) != end[zipfile._ECD_ENTRIES_TOTAL]:
            raise _hostile(path, "its zip directory is not where or what its end record declares (torch reads "
                                 "another one)")
        folder = infos[0].filename.split("/")[0] if infos else ""
        records, small, total = {}, 0, 0
        for info in infos:
            name = info.filename
            if info.compress_type != zipfile.ZIP_STORED or info.compress_size != info.file_size or info.flag_bits & 1:
                raise _hostile(path, f"its record {name} is compressed or encrypted (torch.save stores records as "
                                     f"they are)")
            if not name.isascii() or not name.startswith(folder + "/") or name.lower() in records:
                raise _hostile(path, f"its record name {name!r} is not one torch.save writes")
            if info.header_offset + info.file_size > size:
                raise _hostile(path, f"its record {name} declares {info.file_size:,} bytes beyond the end of the file")
            total += info.file_size
            small += 0 if name.startswith(folder + "/data/") else info.file_size
            records[name.lower()] = info
        if total > size:
            raise _hostile(path, f"its records declare {total:,} bytes in a file of {size:,} (they overlap)")
        if small > PICKLE_LIMIT:
            raise _hostile(path, f"its pickle and small records hold {small:,} bytes (at most {PICKLE_LIMIT:,})")
        pickled = records.get(f"{folder}/data.pkl".lower())
        if pickled is None:
            raise zipfile.BadZipFile("it has no data.pkl record")
        return records, folder, archive.read(pickled)


class _Global:
    """A global the pickle names: torch's allow-listed object, or ``None`` for an inert placeholder."""

    __slots__ = ("name", "target")

    def __init__(self, name: str, target):
        self.name, self.target = name, target


class _Storage:
    __slots__ = ("dtype", "nbytes")

    def __init__(self, dtype: torch.dtype, nbytes: int):
        self.dtype, self.nbytes = dtype, nbytes


class _Tensor:
    """A tensor the dry run has checked: dense and no larger than its storage, or meta (no data)."""

    __slots__ = ()


class _Inert:
    """What an inert call returns (a placeholder, bytes, a device): its arguments and state, to search for keys."""

    __slots__ = ("parts",)

    def __init__(self, parts: list):
        self.parts = parts


class _Refused:
    __slots__ = ("name", "reason")

    def __init__(self, name: str, reason: str):
        self.name, self.reason = name, reason


def _is_shape(value) -> bool:
    return type(value) is tuple and len(value) <= 64 and all(type(n) is int and n >= 0 for n in value)


class _DryRun:
    """Replays a pickle as torch's weights-only unpickler (``torch/_weights_only_unpickler.py``) would, calling
    nothing: checks every call, storage and tensor, costs the objects built, and collects the untrusted globals."""

    def __init__(self, path, records: dict[str, zipfile.ZipInfo], folder: str, max_bytes: int | None):
        self.path, self.records, self.folder, self.max_bytes = path, records, folder, max_bytes
        self.allowed = _torch_unpickler._get_allowed_globals()
        self.untrusted: set[str] = set()
        self.storages: dict[str, tuple[torch.dtype, int]] = {}
        self.declared = self.cost = 0
        self.refused: _Refused | None = None
        self.calls: dict[str, Callable] = {
            "torch._utils._rebuild_tensor": self._rebuild_tensor,
            "torch._utils._rebuild_tensor_v2": self._rebuild_tensor_v2,
            "torch._utils._rebuild_tensor_v3": self._rebuild_tensor_v3,
            "torch._utils._rebuild_meta_tensor_no_storage": self._rebuild_meta_tensor_no_storage,
            "torch._utils._rebuild_parameter": lambda data, *_: self._data(data),
            "torch._utils._rebuild_parameter_with_state": lambda data, grad, hooks, state: self._data(data),
            "torch._tensor._rebuild_from_type_v2": self._rebuild_from_type_v2,
            "torch.nn.parameter.Parameter": lambda data=None, *_: self._data(data),
            "collections.OrderedDict": lambda *args: self._copy(OrderedDict, args),
            "collections.Counter": lambda *args: self._copy(Counter, args),
            "builtins.set": lambda *args: self._copy(set, args),
            "torch.Size": lambda *args: self._copy(tuple, args),
            "builtins.complex": lambda *args: _Inert([]),
            "torch.device": lambda *args: _Inert([]),
            "torch.serialization._get_layout": lambda *args: _Inert([]),
            "_codecs.encode": self._encode,
        }

    def run(self, pickled: bytes) -> set[str]:
        """The untrusted globals of ``pickled``, to be replaced by placeholders.

        Raises:
            CheckpointInvalidError: a call, storage or tensor is refused, or the objects cost too much.
        """
        try:
            root = self._replay(io.BytesIO(pickled))
        except (IndexError, KeyError, TypeError, ValueError, AttributeError, OverflowError, EOFError,
                struct.error) as error:
            raise _corrupted(self.path, f"malformed pickle ({type(error).__name__}: {error})") from error
        if self.refused is not None:
            raise _hostile(self.path, f"{_where(root, self.refused)} calls {self.refused.name}, which "
                                      f"{self.refused.reason}")
        return self.untrusted

    def _replay(self, file):
        """What the pickle builds, one branch per opcode as in torch's ``Unpickler.load``."""
        read, readline = file.read, file.readline
        stack, metastack, memo = [], [], {}
        while True:
            key = read(1)
            if not key:
                raise EOFError("the pickle ends without STOP")
            op = key[0]
            self._spend(_OP_COST)
            if op == pickle.GLOBAL[0]:
                stack.append(self._global(*_torch_unpickler._read_global_instruction(readline)))
            elif op == pickle.NEWOBJ[0]:
                args, cls = stack.pop(), stack.pop()
                stack.append(self._new(cls, args))
            elif op == pickle.REDUCE[0]:
                args = stack.pop()
                stack[-1] = self._call(stack[-1], args)
            elif op == pickle.BUILD[0]:
                state = stack.pop()
                self._build(stack[-1], state)
            elif op == pickle.APPEND[0]:
                item = stack.pop()
                _list(stack[-1]).append(item)
            elif op == pickle.APPENDS[0]:
                items, stack = stack, metastack.pop()
                _list(stack[-1]).extend(items)
            elif op == pickle.SETITEM[0]:
                value, name = stack.pop(), stack.pop()
                _dict(stack[-1])[name] = value
            elif op == pickle.SETITEMS[0]:
                items, stack = stack, metastack.pop()
                target = _dict(stack[-1])
                for i in range(0, len(items), 2):
                    target[items[i]] = items[i + 1]
            elif op == pickle.MARK[0]:
                metastack.append(stack)
                stack = []
            elif op == pickle.TUPLE[0]:
                items, stack = stack, metastack.pop()
                stack.append(tuple(items))
            elif op == pickle.TUPLE1[0]:
                stack[-1] = (stack[-1],)
            elif op == pickle.TUPLE2[0]:
                stack[-2:] = [(stack[-2], stack[-1])]
            elif op == pickle.TUPLE3[0]:
                stack[-3:] = [(stack[-3], stack[-2], stack[-1])]
            elif op in _CONSTANTS:
                stack.append(_CONSTANTS[op]())
                self._spend(_SET_COST if op == pickle.EMPTY_SET[0] else 0)
            elif op == pickle.BININT[0]:
                stack.append(struct.unpack("<i", read(4))[0])
            elif op == pickle.BININT1[0]:
                stack.append(read(1)[0])
            elif op == pickle.BININT2[0]:
                stack.append(struct.unpack("<H", read(2))[0])
            elif op == pickle.BINFLOAT[0]:
                stack.append(struct.unpack(">d", read(8))[0])
            elif op == pickle.BINUNICODE[0]:
                data = read(struct.unpack("<I", read(4))[0])
                self._spend(4 * len(data))
                stack.append(str(data, "utf-8", "surrogatepass"))
            elif op == pickle.SHORT_BINSTRING[0]:
                data = read(read(1)[0])
                self._spend(4 * len(data))
                stack.append(data.decode("utf-8", "strict"))  # torch.load's encoding
            elif op == pickle.BINPERSID[0]:
                stack.append(self._storage(stack.pop()))
            elif op in (pickle.BINGET[0], pickle.LONG_BINGET[0]):
                stack.append(memo[(read(1) if op == pickle.BINGET[0] else struct.unpack("<I", read(4)))[0]])
            elif op in (pickle.BINPUT[0], pickle.LONG_BINPUT[0]):
                memo[(read(1) if op == pickle.BINPUT[0] else struct.unpack("<I", read(4)))[0]] = stack[-1]
                self._spend(_MEMO_COST)
            elif op == pickle.LONG1[0]:
                stack.append(pickle.decode_long(read(read(1)[0])))
            elif op == pickle.PROTO[0]:
                read(1)
            elif op == pickle.STOP[0]:
                return stack.pop()
            else:
                raise ValueError(f"opcode {key!r} is not one torch's weights-only unpickler reads")

    def _spend(self, nbytes: int) -> None:
        self.cost += nbytes
        if self.cost > OBJECT_BUDGET:
            raise _hostile(self.path, f"its pickle builds more than {OBJECT_BUDGET >> 20} MiB of objects")

    def _refuse(self, name: str, reason: str) -> _Refused:
        refused = _Refused(name, reason)
        self.refused = self.refused or refused
        return refused

    def _global(self, module: str, name: str) -> _Global:
        qualified = f"{module}.{name}"
        if module in _torch_unpickler._blocklisted_modules:
            raise _hostile(self.path, f"its pickle references a global that would run code ({qualified}, whose "
                                      f"module {module} is blocked)")
        target = self.allowed.get(qualified)
        if target is None:
            self.untrusted.add(qualified)
        return _Global(qualified, target)

    def _call(self, func, args):
        if not isinstance(func, _Global) or type(args) is not tuple:
            raise TypeError("REDUCE of something that is not an allowed global")
        refused = next((arg for arg in args if isinstance(arg, _Refused)), None)
        if refused is not None:
            return refused
        if func.target is None:  # an inert placeholder
            self._spend(_OBJECT_COST + 8 * len(args))
            return _Inert(list(args))
        if func.name not in self.calls:
            return self._refuse(func.name, _REFUSALS.get(func.name, _REFUSED_BY_DEFAULT))
        return self.calls[func.name](*args)

    def _new(self, cls, args):
        if not isinstance(cls, _Global) or type(args) is not tuple:
            raise TypeError("NEWOBJ of something that is not an allowed class")
        if cls.target is None or cls.target is torch.nn.Parameter:
            return self._call(cls, args)
        if cls.target in (OrderedDict, Counter, set):
            return cls.target()  # __new__ ignores the arguments
        if cls.target in (complex, torch.device, torch.Size):
            return self._call(cls, args)
        return self._refuse(cls.name, _REFUSALS.get(cls.name, _REFUSED_BY_DEFAULT))

    def _build(self, inst, state) -> None:
        if isinstance(inst, _Inert):
            inst.parts.append(state)
        elif isinstance(inst, _Tensor):  # torch would set_() the tensor to a storage, offset, size and stride
            self._refuse("BUILD", "re-points a tensor at a size the file declares")
        elif not isinstance(inst, _Refused) and type(inst) not in (OrderedDict, Counter):
            raise TypeError(f"BUILD of a {type(inst).__name__}")

    def _storage(self, pid) -> _Storage:
        if type(pid) is not tuple or len(pid) != 5 or pid[0] != "storage":
            raise TypeError("a persistent id that is not a storage")
        _, storage_type, key, location, numel = pid
        target = storage_type.target if isinstance(storage_type, _Global) else None
        if target is torch.UntypedStorage:
            dtype = torch.uint8
        elif isinstance(target, torch.serialization.StorageType):
            dtype = target.dtype
        else:
            raise TypeError("a storage of no storage type")
        if type(key) is not str or not key.isascii() or type(location) is not str or type(numel) is not int:
            raise TypeError("a storage with a malformed key, location or size")
        nbytes = numel * dtype.itemsize
        record = self.records.get(f"{self.folder}/data/{key}".lower())
        if record is None or record.file_size != nbytes:
            held = f"{record.file_size:,} bytes" if record else "no record"
            raise _hostile(self.path, f"its storage {key!r} declares {nbytes:,} bytes but the file holds {held}")
        if key not in self.storages:
            self.storages[key] = (dtype, nbytes)
            self.declared += nbytes
        elif self.storages[key] != (dtype, nbytes):
            raise TypeError(f"storage {key!r} declared twice with different types or sizes")
        self._spend(_OBJECT_COST)
        if self.max_bytes is not None and self.declared > self.max_bytes:
            raise _hostile(self.path, f"its storages declare more than {self.max_bytes:,} bytes, the most a "
                                      f"checkpoint of the network it is loaded into holds (checkpoint.storage_bound)")
        return _Storage(dtype, nbytes)

    def _tensor(self, storage, offset, size, stride, dtype) -> _Tensor | _Refused:
        if not (isinstance(storage, _Storage) and isinstance(dtype, torch.dtype) and type(offset) is int
                and offset >= 0 and _is_shape(size) and _is_shape(stride) and len(size) == len(stride)):
            raise TypeError("a tensor with a malformed storage, dtype, offset, size or stride")
        numel, capacity = math.prod(size), storage.nbytes // max(dtype.itemsize, 1) - offset
        if numel and (numel > capacity or sum((n - 1) * s for n, s in zip(size, stride)) >= capacity):
            return self._refuse("a tensor rebuild", f"declares {numel:,} elements over a storage of "
                                                    f"{max(capacity, 0):,} (materialising it would allocate them)")
        self._spend(_OBJECT_COST)
        return _Tensor()

    def _rebuild_tensor(self, storage, offset, size, stride):
        return self._tensor(storage, offset, size, stride, getattr(storage, "dtype", None))

    def _rebuild_tensor_v2(self, storage, offset, size, stride, requires_grad, backward_hooks, metadata=None):
        return self._tensor(storage, offset, size, stride, getattr(storage, "dtype", None))

    def _rebuild_tensor_v3(self, storage, offset, size, stride, requires_grad, backward_hooks, dtype, metadata=None):
        return self._tensor(storage, offset, size, stride, getattr(dtype, "target", None))

    def _rebuild_meta_tensor_no_storage(self, dtype, size, stride, requires_grad):
        if not (_is_shape(size) and _is_shape(stride)):
            raise TypeError("a meta tensor with a malformed size or stride")
        self._spend(_OBJECT_COST)
        return _Tensor()

    def _rebuild_from_type_v2(self, func, new_type, args, state):
        if getattr(new_type, "target", None) not in _TENSOR_TYPES:
            raise TypeError("a tensor rebuilt as something other than a tensor")
        return self._call(func, args)

    @staticmethod
    def _data(data):
        if not isinstance(data, (_Tensor, _Refused)) and data is not None:
            raise TypeError("a parameter of something that is not a tensor")
        return _Tensor() if data is None else data

    def _copy(self, kind: type, args: tuple):
        self._spend(_ITEM_COST * sum(len(arg) for arg in args if isinstance(arg, (str, tuple, list, dict, set))))
        return kind(*args)

    def _encode(self, text, encoding="utf-8", errors="strict"):
        if type(text) is not str or encoding not in ("latin1", "latin-1"):
            return self._refuse("_codecs.encode", "encodes other than latin-1 strings, as pickle writes bytes")
        self._spend(len(text))
        return _Inert([])


_CONSTANTS = {pickle.NONE[0]: lambda: None, pickle.NEWFALSE[0]: lambda: False, pickle.NEWTRUE[0]: lambda: True,
              pickle.EMPTY_TUPLE[0]: tuple, pickle.EMPTY_LIST[0]: list, pickle.EMPTY_DICT[0]: dict,
              pickle.EMPTY_SET[0]: set}


def _list(target) -> list:
    if type(target) is not list:
        raise TypeError(f"APPEND to a {type(target).__name__}")
    return target


def _dict(target) -> dict:
    if type(target) not in (dict, OrderedDict, Counter):
        raise TypeError(f"SETITEM on a {type(target).__name__}")
    return target


def _where(root, target) -> str:
    """Where ``target`` sits in what the dry run built, as ``checkpoint['state']['model']['fc.weight']``."""
    parents, queue, seen = [(None, None)], deque([(root, 0)]), set()
    while queue:
        node, index = queue.popleft()
        if node is target:
            keys = []
            while index:
                index, label = parents[index]
                keys.append(label)
            return "checkpoint" + "".join(f"[{label!r:.80}]" for label in reversed(keys) if label is not None)
        if id(node) in seen:
            continue
        seen.add(id(node))
        if isinstance(node, dict):
            children = node.items()
        elif isinstance(node, (list, tuple)):
            children = enumerate(node)
        elif isinstance(node, _Inert):
            children = ((None, part) for part in node.parts)
        else:
            continue
        for label, child in children:
            parents.append((index, label))
            queue.append((child, len(parents) - 1))
    return "its pickle"


_READ_ERRORS = (pickle.UnpicklingError, RuntimeError, OSError, zipfile.BadZipFile, EOFError, ValueError, KeyError,
                IndexError, TypeError, AttributeError, OverflowError, struct.error)


def safe_load(path: str | Path, max_bytes: int | None = None) -> dict:
    """Unpickle a torch checkpoint on the CPU with every non-tensor global replaced by an inert placeholder, once the
    checks of this module's docstring show that it allocates at most its storages (``max_bytes`` together, else what
    the file holds) and :data:`OBJECT_BUDGET` bytes of objects.

    Raises:
        CheckpointInvalidError: the file is unreadable, unsafe, or declares more than that.
    """
    path = Path(path)
    try:
        with open(path, "rb") as file:  # one open file for the checks and the load
            records, folder, pickled = _read_archive(file, path)
            untrusted = _DryRun(path, records, folder, max_bytes).run(pickled)
            file.seek(0)
            with torch.serialization.safe_globals([(_placeholder_for(name), name) for name in sorted(untrusted)]):
                return torch.load(file, map_location="cpu", weights_only=True)
    except CheckpointInvalidError:
        raise
    except _READ_ERRORS as error:
        raise _corrupted(path, error) from error


def _check_tensors(weights: Mapping, source: str) -> None:
    """Every key a string, every value a dense tensor with data; else CheckpointInvalidError naming the key."""
    for key, value in weights.items():
        if not isinstance(key, str):
            problem = f"is of type {type(key).__name__}, not a string"
        elif type(value) not in _TENSOR_TYPES:
            kind = value.qualified_name if isinstance(value, Placeholder) else type(value).__name__
            problem = f"holds an object of type {kind}, not a tensor"
        elif value.is_meta:
            problem = "is a meta tensor (it holds no data)"
        elif value.layout != torch.strided or value.is_nested or value.is_quantized:
            problem = f"is a {'quantized' if value.is_quantized else 'nested' if value.is_nested else value.layout} " \
                      f"tensor, not a dense one"
        else:
            continue
        raise CheckpointInvalidError(f"The weights in {source} are malformed: key {key!r} {problem}. The file is not "
                                     f"a checkpoint of this family")


def _kind(tensor: torch.Tensor) -> str:
    if tensor.is_floating_point() or tensor.is_complex():
        return "complex" if tensor.is_complex() else "floating"
    return "bool" if tensor.dtype == torch.bool else "integer"


def load_safetensors(path: str | Path) -> dict[str, torch.Tensor]:
    """The tensors of a ``.safetensors`` file (a format that holds only tensors: nothing in it runs).

    Raises:
        CheckpointInvalidError: the file is truncated, corrupt or no safetensors file.
    """
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    try:
        return load_file(str(path), device="cpu")
    except (SafetensorError, OSError, ValueError, RuntimeError) as error:
        raise CheckpointInvalidError(f"{path} is not a readable safetensors file ({error}); delete it so that it is "
                                     f"fetched again") from error


def extract_state_dict(checkpoint: Mapping, weights_key: str, prefix: str = "module.",
                       container: str | None = "state", source: str = "checkpoint") -> dict[str, torch.Tensor]:
    """The weights at ``checkpoint['state'][weights_key]`` (``checkpoint[weights_key]`` with ``container=None``, as
    in MAE's ``save_model`` dicts), with the training wrapper's ``prefix`` stripped.

    Raises:
        CheckpointInvalidError: no weights there, or a key that is no string or a value that is no dense tensor.
    """
    top = sorted(checkpoint, key=repr) if isinstance(checkpoint, Mapping) else type(checkpoint).__name__
    if container is None:
        weights = checkpoint.get(weights_key) if isinstance(checkpoint, Mapping) else None
        if not isinstance(weights, Mapping):
            raise CheckpointInvalidError(
                f"Expected the weights at checkpoint[{weights_key!r}]; found top-level keys {top}. The file is not a "
                f"checkpoint of this family, or the catalog's weights_key is wrong.")
    else:
        state = checkpoint.get(container) if isinstance(checkpoint, Mapping) else None
        if not isinstance(state, Mapping) or not isinstance(state.get(weights_key), Mapping):
            inner = sorted(state, key=repr) if isinstance(state, Mapping) else None
            raise CheckpointInvalidError(
                f"Expected the weights at checkpoint['state'][{weights_key!r}] (Composer layout); found top-level keys "
                f"{top}" + (f" and state keys {inner}" if inner is not None else "") +
                ". The file is not a checkpoint of this family, or the catalog's weights_key is wrong.")
        weights = state[weights_key]
    _check_tensors(weights, source)
    return {(k[len(prefix):] if prefix and k.startswith(prefix) else k): v for k, v in weights.items()}


def check_layout(expected: Mapping[str, tuple], found: Mapping[str, tuple], source: str = "checkpoint") -> None:
    """Keys, shapes and dtypes of a file's tensors, ``{key: (shape, torch dtype)}``, against the model's (a dtype of
    the same kind, :func:`_kind`, is fine: it is cast on load).

    Raises:
        CheckpointInvalidError: listing missing and unexpected keys, bad shapes and weights of another kind.
    """
    missing = [k for k in expected if k not in found]
    unexpected = [k for k in found if k not in expected]
    mismatched = [f"{k}: {found[k][0]} vs model {shape}" for k, (shape, _) in expected.items()
                  if k in found and found[k][0] != shape]
    other_kind = [f"{k}: {found[k][1]} vs model {dtype}" for k, (_, dtype) in expected.items()
                  if k in found and _kind(torch.empty(0, dtype=found[k][1])) != _kind(torch.empty(0, dtype=dtype))]
    if missing or unexpected or mismatched or other_kind:
        def show(keys):
            return ", ".join(keys[:10]) + (f" ... ({len(keys)} in all)" if len(keys) > 10 else "") or "none"
        raise CheckpointInvalidError(
            f"The weights in {source} do not match the architecture. Missing keys: {show(missing)}. "
            f"Unexpected keys: {show(unexpected)}. Shape mismatches: {show(mismatched)}. "
            + (f"Dtype mismatches: {show(other_kind)}. " if other_kind else "") +
            "Check the catalog's arch / num_classes for this identifier.")


def load_strict(model: torch.nn.Module, state_dict: Mapping[str, torch.Tensor], source: str = "checkpoint",
                ignore: tuple[str, ...] = ()) -> None:
    """``load_state_dict(strict=True)`` with an error that lists missing and unexpected keys, bad shapes and weights of
    another kind (an integer tensor for a floating one, ...). A model on the meta device gets the tensors themselves.

    Keys starting with one of ``ignore`` (training-only modules such as MAE's decoder) are dropped by name first;
    every other key must match the model exactly.
    """
    _check_tensors(state_dict, source)
    if ignore:
        state_dict = {k: v for k, v in state_dict.items() if not k.startswith(ignore)}
    expected = model.state_dict()
    check_layout({k: (tuple(v.shape), v.dtype) for k, v in expected.items()},
                 {k: (tuple(v.shape), v.dtype) for k, v in state_dict.items()}, source)
    on_meta = any(v.is_meta for v in expected.values())
    if on_meta:
        state_dict = {k: v.to(expected[k].dtype) for k, v in state_dict.items()}
    model.load_state_dict(state_dict, strict=True, assign=on_meta)


@dataclass(frozen=True)
class CheckpointFormat:
    """How a published checkpoint file holds a network's weights (the catalog's ``checkpoint_format`` column names one
    of a family's formats), and how to forge such a file for tests.

    ``container``: the weights sit at ``checkpoint[container][weights_key]`` (``None``: ``checkpoint[weights_key]``);
    ``prefix``: the training wrapper's prefix stripped from every key; ``ignore``: key prefixes of training-only
    modules (MAE's decoder), dropped by name; ``state_dict_filter(state_dict, model)``: model-specific surgery before
    the strict load (e.g. resampling a position embedding); ``forge(entry, state_dict, seed)``: the whole file's dict
    around a network's weights, as the authors' training code saved it.
    """

    container: str | None
    prefix: str
    forge: Callable[[object, dict, int], dict]
    ignore: tuple[str, ...] = ()
    state_dict_filter: Callable[[dict, torch.nn.Module], dict] | None = None

    def forge_file(self, checkpoint: dict, path: Path) -> Path:
        """Write a forged ``checkpoint`` (from :attr:`forge`) as the published file at ``path``, atomically: a torch
        pickle."""
        from .forge import save_atomically
        return save_atomically(checkpoint, path)

    def forge_companions(self, mirror: Path, seed: int = 0) -> list[Path]:
        """Forge into ``mirror`` the files this format loads besides the checkpoint itself (none here)."""
        return []

    def load_into(self, model: torch.nn.Module, path: str | Path, weights_key: str) -> torch.nn.Module:
        """Read ``path`` safely, declaring at most :func:`storage_bound` of ``model`` (which may be on the meta
        device), and load its weights strictly into ``model``.

        Raises:
            CheckpointInvalidError: the file is unreadable, unsafe, too large for ``model``, or holds weights of
                another layout or model.
        """
        checkpoint = safe_load(path, max_bytes=storage_bound(model))
        state_dict = extract_state_dict(checkpoint, weights_key, prefix=self.prefix, container=self.container,
                                        source=str(path))
        if self.state_dict_filter is not None:
            state_dict = self.state_dict_filter(state_dict, model)
        load_strict(model, state_dict, source=str(path), ignore=self.ignore)
        return model


_SAFETENSORS_DTYPES = {"F64": torch.float64, "F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16,
                       "I64": torch.int64, "I32": torch.int32, "I16": torch.int16, "I8": torch.int8, "U8": torch.uint8,
                       "BOOL": torch.bool}


@dataclass(frozen=True)
class SafetensorsFormat(CheckpointFormat):
    """Weights in a ``.safetensors`` file under the network's own key names (timm's Hugging Face repositories).

    The file's header (keys, shapes, dtypes) is checked against the model first, so a wrong variant fails before any
    weight is read; then the tensors are copied one at a time from the memory-mapped file into the model (cast to its
    dtype), so the weights are never held twice: peak memory is the model plus its largest tensor.
    """

    container: str | None = None
    prefix: str = ""
    forge: Callable[[object, dict, int], dict] = lambda entry, state_dict, seed: state_dict  # the file is the weights

    def forge_file(self, checkpoint: dict, path: Path) -> Path:
        """Write the forged weights as a safetensors file (atomically)."""
        from safetensors.torch import save_file

        from region_commitment import atomic
        with atomic.replacing(path) as tmp:
            save_file({k: v.contiguous() for k, v in checkpoint.items()}, str(tmp))
        return path

    def load_into(self, model: torch.nn.Module, path: str | Path, weights_key: str = "") -> torch.nn.Module:
        from safetensors import SafetensorError, safe_open

        expected = model.state_dict()
        if any(v.is_meta for v in expected.values()):
            load_strict(model, load_safetensors(path), source=str(path))
            return model
        try:
            with safe_open(str(path), framework="pt", device="cpu") as file:
                found = {}
                for key in file.keys():
                    piece = file.get_slice(key)
                    if piece.get_dtype() not in _SAFETENSORS_DTYPES:
                        raise CheckpointInvalidError(f"{path}: tensor {key} has dtype {piece.get_dtype()}, which no "
                                                     f"network here uses; delete the file so that it is fetched again")
                    found[key] = (tuple(piece.get_shape()), _SAFETENSORS_DTYPES[piece.get_dtype()])
                check_layout({k: (tuple(v.shape), v.dtype) for k, v in expected.items()}, found, str(path))
                with torch.no_grad():
                    for key in found:
                        expected[key].copy_(file.get_tensor(key))
        except (SafetensorError, OSError, ValueError, RuntimeError) as error:
            raise CheckpointInvalidError(f"{path} is not a readable safetensors file ({error}); delete it so that it "
                                         f"is fetched again") from error
        return model
