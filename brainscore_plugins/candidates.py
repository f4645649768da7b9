"""The candidate layers of a catalogued network for region commitment, readout last.

Class-token ViTs of humanlike-vits: ``blocks.<i>`` ... ``norm``, ``fc_norm`` (the class token, see
:func:`.architectures.humanlike.candidate_layers`); every other network: the block-output rule of
:func:`region_commitment.layers.candidate_layers`. (Here, not in ``architectures``: the builders do not depend on
``region_commitment``.)
"""
from __future__ import annotations

from torch import nn

from region_commitment.layers import candidate_layers as block_outputs

from . import architectures
from .architectures import humanlike


def candidate_layers(model_or_arch: nn.Module | str, method: str | None = None) -> list[str]:
    """For a built model, or an arch name of the registry (built on the meta device, with ``method``)."""
    model = architectures.meta_model(model_or_arch, method) if isinstance(model_or_arch, str) else model_or_arch
    if isinstance(model, humanlike.VisionTransformer):
        return humanlike.candidate_layers(model)
    return block_outputs(model)
