"""One entry point per level: a torch model, a Brain-Score activations model, a committed brain model."""
from __future__ import annotations

import torch

from . import architectures, catalog, checkpoint, hub
from .preprocessing import preprocessing_for


def create_model(name: str, pretrained: bool = True, progress: bool = True) -> torch.nn.Module:
    """The network for a catalog identifier (or study model id), in eval mode, with its published weights."""
    entry = catalog.resolve(name)
    if entry.unsupported:
        raise catalog.UnsupportedModelError(f"{entry.identifier} cannot be built: {entry.unsupported}")
    model = architectures.build(entry.arch, entry.num_classes, entry.method)
    if pretrained:
        path = hub.fetch(entry.url, entry.relative_path, entry.sha256 or None, progress=progress)
        state_dict = checkpoint.extract_state_dict(checkpoint.safe_load(path), entry.weights_key,
                                                   prefix=architectures.checkpoint_prefix(entry.method))
        checkpoint.load_strict(model, state_dict, source=str(path))
    return model.eval()


def activations_model(name: str, pretrained: bool = True):
    """Brain-Score's ``PytorchWrapper`` around :func:`create_model`, with the checkpoint's eval preprocessing."""
    from brainscore_vision.model_helpers.activations.pytorch import PytorchWrapper

    entry = catalog.resolve(name)
    return PytorchWrapper(identifier=name, model=create_model(name, pretrained),
                          preprocessing=preprocessing_for(entry.resize, entry.crop, entry.interpolation))


def layers(name: str) -> list[str]:
    """The committed layers (region layers, then the behavioral readout)."""
    return catalog.resolve(name).layers


def brain_model(name: str, pretrained: bool = True):
    """A ``ModelCommitment`` with the catalog's region -> layer map and behavioral readout layer."""
    from brainscore_vision.model_helpers.brain_transformation import ModelCommitment

    entry = catalog.resolve(name)
    if not entry.region_layer_map:
        raise catalog.UnsupportedModelError(
            f"{name} has no region commitment in the catalog ({entry.commitment_source}); without one Brain-Score "
            f"would run its network-bound LayerSelection.")
    return ModelCommitment(identifier=name, activations_model=activations_model(name, pretrained),
                           layers=entry.layers, behavioral_readout_layer=entry.readout,
                           region_layer_map=entry.region_layer_map)
