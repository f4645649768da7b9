"""Forge checkpoints in a family's exact published layout, with random weights of the real architecture.

Used by the offline demo and the tests: the weights cannot be downloaded here, so we write files that are
byte-for-byte what the loader must cope with (nesting, key prefixes, EMA copy, non-tensor training objects).
"""
from __future__ import annotations

import argparse
import os
from pathlib import Path

import torch

from . import architectures, catalog


def forged_state_dict(entry: catalog.Entry, seed: int = 0) -> dict[str, torch.Tensor]:
    """Weights of a freshly initialised model for ``entry`` (deterministic in ``seed``)."""
    torch.manual_seed(seed)
    model = architectures.build(entry.arch, entry.num_classes, entry.method)
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def composer_checkpoint(state_dict: dict[str, torch.Tensor], weights_key: str, seed: int = 0,
                        prefix: str = "module.") -> dict:
    """The Composer layout: ``{'state': {'model': {'<prefix><key>': ...}, ...}, 'rng': [...]}``.

    When ``weights_key`` names the EMA dict, the plain ``model`` dict holds different (perturbed) weights, so a
    loader that picks the wrong one is caught.
    """
    generator = torch.Generator().manual_seed(seed + 1)
    prefixed = {f"{prefix}{k}": v for k, v in state_dict.items()}
    state = {
        "model": prefixed,
        "optimizers": {"SGD": {"state": {}, "param_groups": [{"lr": 0.1, "params": [0, 1]}]}},
        "timestamp": argparse.Namespace(epoch=1, batch=10),  # a non-tensor training object, as Composer pickles
        "run_name": "forged",
    }
    if weights_key != "model":
        state["model"] = {k: (v + torch.randn(v.shape, generator=generator) if v.is_floating_point() else v)
                          for k, v in prefixed.items()}
        state[weights_key] = prefixed
    return {"state": state, "rng": [{"torch": torch.get_rng_state()}]}


def save_atomically(obj, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)
    return path


def forge_into_mirror(name: str, mirror: str | Path, seed: int = 0) -> Path:
    """Write a forged checkpoint for identifier ``name`` at ``<mirror>/<model_id>/ep<N>.pt``."""
    entry = catalog.resolve(name)
    checkpoint = composer_checkpoint(forged_state_dict(entry, seed), entry.weights_key, seed,
                                     prefix=architectures.checkpoint_prefix(entry.method))
    return save_atomically(checkpoint, Path(mirror) / entry.relative_path)
