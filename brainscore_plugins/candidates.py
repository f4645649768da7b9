"""The candidate layers of a catalogued network for region commitment, readout last: its family's rule
(:attr:`.families.Family.candidate_layers`), applied to the built network or, without one, to the architecture built
on the meta device. (Here, not in ``architectures``: the builders do not depend on ``region_commitment``.)
"""
from __future__ import annotations

from torch import nn

from . import architectures, families


def candidate_layers(entry, model: nn.Module | None = None) -> list[str]:
    """For a catalog entry, on ``model`` when given (e.g. the module inside a Brain-Score wrapper)."""
    model = architectures.meta_model(entry.arch, entry.training_method) if model is None else model
    return families.get(entry.family).candidate_layers(model)
