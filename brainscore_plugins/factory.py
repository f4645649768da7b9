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
    path = weights_path(entry, progress=progress) if pretrained else None  # before building: fail fast
    model = architectures.build(entry.arch, entry.num_classes, entry.method)
    if pretrained:
        layout = architectures.checkpoint_layout(entry.method)
        state_dict = checkpoint.extract_state_dict(checkpoint.safe_load(path), entry.weights_key,
                                                   prefix=layout.prefix, container=layout.container)
        if layout.resample_pos_embed:
            state_dict = architectures.humanlike.adapt_pos_embed(state_dict, model)
        checkpoint.load_strict(model, state_dict, source=str(path), ignore=layout.ignore)
    return model.eval()


def weights_path(entry: catalog.Entry, progress: bool = True):
    """The verified local weights file of a catalog entry (mirror, cache or download; Hugging Face Hub files
    through ``huggingface_hub``)."""
    if entry.hf_repo:
        repo_id, filename = entry.hf_repo
        return hub.fetch_hf(repo_id, filename, entry.sha256 or None, progress=progress)
    return hub.fetch(entry.url, entry.relative_path, entry.sha256 or None, progress=progress)


def activations_model(name: str, pretrained: bool = True):
    """Brain-Score's ``PytorchWrapper`` around :func:`create_model`, with the checkpoint's eval preprocessing."""
    from brainscore_vision.model_helpers.activations.pytorch import PytorchWrapper

    entry = catalog.resolve(name)
    return PytorchWrapper(identifier=name, model=create_model(name, pretrained),
                          preprocessing=preprocessing_for(entry.resize, entry.crop, entry.interpolation),
                          batch_size=architectures.eval_batch_size(entry.arch))


def layers(name: str) -> list[str]:
    """The committed layers (region layers, then the behavioral readout); for a model without a published
    commitment, those of its computed ``region_layer_map/<id>.json``, else its candidate layers."""
    entry = catalog.resolve(name)
    if entry.layers:
        return entry.layers
    computed = computed_region_layer_map(entry)
    readout = architectures.candidate_layers(entry.arch)[-1]
    if computed:
        return [*dict.fromkeys(v for v in computed.values() if v != readout), readout]
    return architectures.candidate_layers(entry.arch)


def computed_region_layer_map(entry: catalog.Entry) -> dict[str, str] | None:
    """The map ``brainscore-plugins commit`` wrote to ``models/<family>/region_layer_map/<identifier>.json``."""
    import json
    from . import plugin_sources
    path = plugin_sources.MODELS_DIR / entry.family / "region_layer_map" / f"{entry.identifier}.json"
    if not path.is_file():
        return None
    return {region: layer for region, layer in json.loads(path.read_text()).items() if region in catalog.REGIONS}


def brain_model(name: str, pretrained: bool = True):
    """A ``ModelCommitment`` with the catalog's region -> layer map and behavioral readout layer."""
    from brainscore_vision.model_helpers.brain_transformation import ModelCommitment

    entry = catalog.resolve(name)
    if not entry.region_layer_map:  # no published commitment (humanlike-vits): a computed one, or a clear error
        computed = computed_region_layer_map(entry)
        if not computed:
            raise catalog.UnsupportedModelError(
                f"{name} has no region commitment ({entry.commitment_source}) and no region_layer_map/"
                f"{entry.identifier}.json exists in the {entry.family} plugin folder; without one Brain-Score would "
                f"run its network-bound LayerSelection. Compute one with `brainscore-plugins commit "
                f"{entry.identifier}` (it selects a layer per region with the region_commitment package and writes "
                f"that file), then load the model again.")
        committed = layers(name)
        return ModelCommitment(identifier=name, activations_model=activations_model(name, pretrained),
                               layers=committed, behavioral_readout_layer=committed[-1], region_layer_map=computed)
    return ModelCommitment(identifier=name, activations_model=activations_model(name, pretrained),
                           layers=entry.layers, behavioral_readout_layer=entry.readout,
                           region_layer_map=entry.region_layer_map)
