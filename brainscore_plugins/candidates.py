"""The candidate layers of a catalogued network for region commitment, readout last: its family's rule
(:attr:`.families.Family.candidate_layers`), applied to the built network or, without one, to the architecture built
on the meta device; and how the fMRI encoding search reads them (:attr:`.families.Family.feature_maps`). (Here, not
in ``architectures``: the builders do not depend on ``region_commitment``.)
"""
from __future__ import annotations

from torch import nn

from . import architectures, families


def for_entry(entry, model: nn.Module | None = None) -> list[str]:
    """The candidate layers of a catalog entry, on ``model`` when given (e.g. the module inside a Brain-Score
    wrapper)."""
    model = architectures.meta_model(entry.arch, entry.training_method) if model is None else model
    return families.get(entry.family).candidate_layers(model)


def feature_maps(entry, model: nn.Module) -> dict:
    """Layer -> :class:`.families.FeatureMap` for the layers of ``model`` (``entry``'s network) that the encoding
    search reads otherwise than their shape says; {} when its family declares none."""
    declared = families.get(entry.family).feature_maps
    return {} if declared is None else declared(model)
