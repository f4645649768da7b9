"""Reading published checkpoints without running code and in bounded memory (:func:`safe_load`).

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
from pathlib import Path
from typing import Callable

import torch
from torch import _weights_only_unpickler as _torch_unpickler

from ..errors import CheckpointInvalidError

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
TENSOR_TYPES = (torch.Tensor, torch.nn.Parameter)
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
        if getattr(new_type, "target", None) not in TENSOR_TYPES:
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
