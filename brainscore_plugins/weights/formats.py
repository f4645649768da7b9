"""Where each family's file holds the weights (:class:`CheckpointFormat`), loading them strictly with a key diff
(:func:`load_strict`), and writing checkpoint files atomically (:func:`save_atomically`).

A checkpoint is read by :func:`.unpickle.safe_load` (bounded, nothing runs) or, for ``.safetensors`` files, by
safetensors itself (a format that holds only tensors).
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch

from region_commitment import atomic

from ..errors import CheckpointInvalidError
from .unpickle import TENSOR_TYPES, Placeholder, safe_load, storage_bound



def save_atomically(obj, path: Path) -> Path:
    """``torch.save`` ``obj`` to ``path`` atomically; returns ``path``."""
    with atomic.replacing(path) as tmp:
        torch.save(obj, tmp)
    return path


def check_tensors(weights: Mapping, source: str) -> None:
    """Every key a string, every value a dense tensor with data; else CheckpointInvalidError naming the key."""
    for key, value in weights.items():
        if not isinstance(key, str):
            problem = f"is of type {type(key).__name__}, not a string"
        elif type(value) not in TENSOR_TYPES:
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
    check_tensors(weights, source)
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
    check_tensors(state_dict, source)
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
