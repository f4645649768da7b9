"""Forge checkpoints in a family's exact published layout, with random weights of the real architecture.

Used by the offline demo and the tests: the weights cannot be downloaded here, so we write files that are
byte-for-byte what the loader must cope with (nesting, key prefixes, EMA copy, non-tensor training objects). The
layout of each file is its family's checkpoint format (:attr:`.weights.formats.CheckpointFormat.forge`).
"""
from __future__ import annotations

from pathlib import Path

import torch

from . import architectures, catalog, families


def forged_state_dict(entry: catalog.Entry, seed: int = 0) -> dict[str, torch.Tensor]:
    """Weights of a freshly initialised model for ``entry`` (deterministic in ``seed``)."""
    torch.manual_seed(seed)
    model = architectures.build(entry.arch, entry.num_classes, entry.training_method)
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def forged_checkpoint(entry: catalog.Entry, seed: int = 0) -> dict:
    """The whole checkpoint dict for ``entry``, as its family's training code saved it."""
    checkpoint_format = families.get(entry.family).checkpoint_format(entry.checkpoint_format)
    return checkpoint_format.forge(entry, forged_state_dict(entry, seed), seed)


def forge_into_mirror(name: str, mirror: str | Path, seed: int = 0) -> Path:
    """Write a forged checkpoint for identifier ``name`` at ``<mirror>/<mirror_path>`` (``<model_id>/ep<N>.pt``,
    or the file's path in its Hugging Face repository, see :attr:`.catalog.Entry.mirror_path`), and the other files
    its format loads (e.g. a pretrained trunk)."""
    entry = catalog.resolve(name)
    checkpoint_format = families.get(entry.family).checkpoint_format(entry.checkpoint_format)
    checkpoint_format.forge_companions(Path(mirror), seed)
    return checkpoint_format.forge_file(forged_checkpoint(entry, seed), Path(mirror) / entry.mirror_path)
