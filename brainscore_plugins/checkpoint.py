"""Reading published checkpoints without running code, and loading their weights strictly.

Training checkpoints (Composer's ``State``, MAE's ``argparse.Namespace``, numpy RNG states, ...) pickle more than
tensors. ``torch.load(weights_only=False)`` would execute whatever a downloaded pickle asks for. Instead we use
torch's weights-only unpickler and allow-list every non-tensor global of the file as an inert :class:`Placeholder`
that only stores its arguments and state. Globals that torch blocks outright (``os``, ``posix``, ``subprocess``,
``sys``, ...: what a malicious pickle calls) make the load fail with an error naming them; nothing is ever called.
Tensors are rebuilt by torch's own allow-listed functions.
"""
from __future__ import annotations

import pickle
import zipfile
from collections.abc import Mapping
from pathlib import Path

from dataclasses import dataclass
from typing import Callable

import torch

from .errors import CheckpointInvalidError


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


def safe_load(path: str | Path) -> dict:
    """Unpickle a torch checkpoint on the CPU with every non-tensor global replaced by an inert placeholder."""
    path = Path(path)
    try:
        unsafe = torch.serialization.get_unsafe_globals_in_checkpoint(path)
        placeholders = [(_placeholder_for(name), name) for name in unsafe]
        with torch.serialization.safe_globals(placeholders):
            return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:
        if "blocked" in str(error):
            raise CheckpointInvalidError(
                f"Refusing to load {path}: its pickle references a global that would run code "
                f"({str(error).split('Trying to load')[-1].split(chr(10))[0].strip()}). The file is not a genuine "
                f"checkpoint; delete it and fetch it again from the published URL.") from error
        raise CheckpointInvalidError(f"Cannot read checkpoint {path}: {error}. The file is truncated or corrupted; "
                              f"delete it so it is downloaded again (or replace the mirrored copy).") from error
    except (RuntimeError, OSError, zipfile.BadZipFile, EOFError, ValueError, KeyError) as error:
        raise CheckpointInvalidError(
            f"Cannot read checkpoint {path}: {error}. The file is truncated or corrupted; delete it so it is "
            f"downloaded again (or replace the mirrored copy).") from error


def extract_state_dict(checkpoint: Mapping, weights_key: str, prefix: str = "module.",
                       container: str | None = "state") -> dict[str, torch.Tensor]:
    """The weights at ``checkpoint['state'][weights_key]`` (``checkpoint[weights_key]`` with ``container=None``, as
    in MAE's ``save_model`` dicts), with the training wrapper's ``prefix`` stripped."""
    if container is None:
        weights = checkpoint.get(weights_key) if isinstance(checkpoint, Mapping) else None
        if not isinstance(weights, Mapping):
            top = sorted(checkpoint) if isinstance(checkpoint, Mapping) else type(checkpoint).__name__
            raise CheckpointInvalidError(
                f"Expected the weights at checkpoint[{weights_key!r}]; found top-level keys {top}. The file is not a "
                f"checkpoint of this family, or the catalog's weights_key is wrong.")
        return {(k[len(prefix):] if prefix and k.startswith(prefix) else k): v for k, v in weights.items()}
    state = checkpoint.get(container) if isinstance(checkpoint, Mapping) else None
    if not isinstance(state, Mapping) or not isinstance(state.get(weights_key), Mapping):
        top = sorted(checkpoint) if isinstance(checkpoint, Mapping) else type(checkpoint).__name__
        inner = sorted(state) if isinstance(state, Mapping) else None
        raise CheckpointInvalidError(
            f"Expected the weights at checkpoint['state'][{weights_key!r}] (Composer layout); found top-level keys "
            f"{top}" + (f" and state keys {inner}" if inner is not None else "") +
            ". The file is not a checkpoint of this family, or the catalog's weights_key is wrong.")
    weights = state[weights_key]
    return {(k[len(prefix):] if k.startswith(prefix) else k): v for k, v in weights.items()}


def load_strict(model: torch.nn.Module, state_dict: Mapping[str, torch.Tensor], source: str = "checkpoint",
                ignore: tuple[str, ...] = ()) -> None:
    """``load_state_dict(strict=True)`` with an error that lists missing and unexpected keys and bad shapes.

    Keys starting with one of ``ignore`` (training-only modules such as MAE's decoder) are dropped by name first;
    every other key must match the model exactly.
    """
    if ignore:
        state_dict = {k: v for k, v in state_dict.items() if not k.startswith(ignore)}
    expected = model.state_dict()
    missing = [k for k in expected if k not in state_dict]
    unexpected = [k for k in state_dict if k not in expected]
    mismatched = [f"{k}: {tuple(state_dict[k].shape)} vs model {tuple(v.shape)}"
                  for k, v in expected.items() if k in state_dict and state_dict[k].shape != v.shape]
    if missing or unexpected or mismatched:
        def show(keys):
            return ", ".join(keys[:10]) + (f" ... ({len(keys)} in all)" if len(keys) > 10 else "") or "none"
        raise CheckpointInvalidError(
            f"The weights in {source} do not match the architecture. Missing keys: {show(missing)}. "
            f"Unexpected keys: {show(unexpected)}. Shape mismatches: {show(mismatched)}. "
            f"Check the catalog's arch / num_classes for this identifier.")
    model.load_state_dict(state_dict, strict=True)


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

    def load_into(self, model: torch.nn.Module, path: str | Path, weights_key: str) -> torch.nn.Module:
        """Read ``path`` safely and load its weights strictly into ``model``.

        Raises:
            CheckpointInvalidError: the file is unreadable, unsafe, or holds weights of another layout or model.
        """
        state_dict = extract_state_dict(safe_load(path), weights_key, prefix=self.prefix, container=self.container)
        if self.state_dict_filter is not None:
            state_dict = self.state_dict_filter(state_dict, model)
        load_strict(model, state_dict, source=str(path), ignore=self.ignore)
        return model
