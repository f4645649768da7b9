"""The candidate layers of a catalogued network for region commitment, readout last: its family's rule
(:attr:`.families.Family.candidate_layers`), applied to the built network or, without one, to the architecture built
on the meta device; and how the fMRI encoding search reads them (:attr:`.families.Family.feature_maps`). (Here, not
in ``architectures``: the builders do not depend on ``region_commitment``.)
"""
from __future__ import annotations

from torch import nn

from . import architectures, catalog, families


def candidate_layers(entry, model: nn.Module | None = None) -> list[str]:
    """For a catalog entry, on ``model`` when given (e.g. the module inside a Brain-Score wrapper)."""
    model = architectures.meta_model(entry.arch, entry.training_method) if model is None else model
    return families.get(entry.family).candidate_layers(model)


def feature_maps(activations_identifier: str, model: nn.Module) -> dict:
    """Layer -> :class:`.families.FeatureMap` of the family of an activations model built by
    :func:`.factory.activations_model` (its identifier: a registered one, or one followed by ``-`` and that
    function's preprocessing / extractor suffixes); {} for any other model or a family that declares none."""
    registered = dict(catalog.registered())
    parts = activations_identifier.split("-")
    for end in range(len(parts), 0, -1):  # the longest registered identifier it starts with
        entry = registered.get("-".join(parts[:end]))
        if entry is not None:
            declared = families.get(entry.family).feature_maps
            return {} if declared is None else declared(model)
    return {}
