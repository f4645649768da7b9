"""One entry point per level: a torch model, a Brain-Score activations model, a committed brain model."""
from __future__ import annotations

import logging

import torch

from . import architectures, candidates, catalog, checkpoint, hub, provenance
from .preprocessing import BRAINSCORE, TRAINING_CONFIG, pipeline_name, preprocessing_for

_logger = logging.getLogger(__name__)
# the default preprocessing per family: Brain-Score's own plugin pipeline where the family's published Brain-Score
# scores were made with it (spvvs), the author's evaluation transform otherwise
FAMILY_PREPROCESSING = {"spvvs": BRAINSCORE, "hlvit": TRAINING_CONFIG}


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


def activations_model(name: str, pretrained: bool = True, preprocessing: str | None = None):
    """Brain-Score's ``PytorchWrapper`` around :func:`create_model`.

    ``preprocessing`` (else ``$BRAINSCORE_PLUGINS_PREPROCESSING``, else the family's default) names the pipeline of
    :mod:`.preprocessing`: ``brainscore`` (what Brain-Score's own plugin feeds the network; default for ``spvvs``) or
    ``training-config``. A model built with a pipeline other than its family's default reports the activations
    identifier ``<name>-<pipeline>-preprocessing``, so Brain-Score's activation and PCA caches never mix the two.
    """
    from brainscore_vision.model_helpers.activations.pytorch import PytorchWrapper

    entry = catalog.resolve(name)
    default = FAMILY_PREPROCESSING[entry.family]
    pipeline = pipeline_name(default, preprocessing)
    identifier = name if pipeline == default else f"{name}-{pipeline}-preprocessing"
    return PytorchWrapper(identifier=identifier, model=create_model(name, pretrained),
                          preprocessing=preprocessing_for(entry.resize, entry.crop, entry.interpolation, pipeline),
                          batch_size=architectures.eval_batch_size(entry.arch))


def commitment(name: str) -> tuple[dict[str, str], str] | None:
    """(region -> layer map, behavioral readout layer): the catalog's (see :func:`.provenance.map_provenance`), else
    the one ``brainscore-plugins commit`` wrote into the plugin folder, else ``None``."""
    import json

    entry = catalog.resolve(name)
    if entry.region_layer_map:
        return entry.region_layer_map, entry.readout
    found = provenance.committed_map(entry, name)
    if found is None:
        return None
    folder, identifier = found
    readout_path = folder / "behavioral_readout" / f"{identifier}.json"
    readout = (json.loads(readout_path.read_text())["behavioral_readout_layer"] if readout_path.is_file()
               else candidates.candidate_layers(entry.arch, entry.method)[-1])
    return json.loads((folder / "region_layer_map" / f"{identifier}.json").read_text()), readout


def layers(name: str) -> list[str]:
    """The committed layers (region layers, then the behavioral readout); without a commitment, the candidates."""
    found = commitment(name)
    if found is None:
        entry = catalog.resolve(name)
        return candidates.candidate_layers(entry.arch, entry.method)
    region_layer_map, readout = found
    return [*dict.fromkeys(v for v in region_layer_map.values() if v != readout), readout]


class BenchmarkDataUnavailableError(RuntimeError):
    """A benchmark named by identifier could not be loaded (its data are neither cached nor reachable)."""


def commit(name: str, benchmarks: dict | None = None, *, layers: list[str] | str | None = None, reference=None,
           n_components: int = 1000, readout: str | None = None, output=None, progress: bool = True):
    """Select layers for ``name`` with ``region_commitment`` and write the map, readout, score table and plot into
    its plugin folder (or ``output``): ``(CommitmentResult, {kind: path})``. ``benchmarks``: region -> identifier,
    benchmark object or target (default: ``region_commitment.DEFAULT_BENCHMARKS``); ``layers``: the architecture's
    candidate rule by default, ``"study"`` or a list; the rest as in ``region_commitment.commit``."""
    import region_commitment
    from region_commitment import brainscore_internals, targets as targets_module
    from . import plugin_sources

    entry = catalog.resolve(name)
    loaded = {}
    for region, benchmark in (benchmarks or targets_module.DEFAULT_BENCHMARKS).items():  # before the model: fail fast
        try:
            loaded[region] = region_commitment.load_target(region, benchmark)
        except Exception as error:
            if not isinstance(benchmark, str):
                raise
            raise BenchmarkDataUnavailableError(
                f"the data of benchmark {benchmark} ({region}) could not be loaded: {error}") from error
    model = activations_model(name)
    layers = candidates.candidate_layers(brainscore_internals.torch_module(model)) if layers is None else layers
    result = region_commitment.commit(model, layers, loaded, reference=reference, n_components=n_components,
                                      behavioral_readout_layer=readout, cache_dir=hub.cache_dir() / "region_commitment",
                                      progress=progress)
    return result, result.save(output or plugin_sources.MODELS_DIR / entry.family, name)


def brain_model(name: str, pretrained: bool = True):
    """A ``ModelCommitment`` with the region -> layer map and behavioral readout layer of :func:`commitment`; a model
    without one is first committed by :func:`commit` on the default benchmarks (once: the map is written into the
    plugin folder), never by Brain-Score's own network-bound ``LayerSelection``."""
    from brainscore_vision.model_helpers.brain_transformation import ModelCommitment

    found = commitment(name)
    if found is None:
        if not pretrained:
            raise catalog.UnsupportedModelError(f"{name} has no region commitment to use without weights; commit "
                                                f"the pretrained model first (`brainscore-plugins commit {name}`)")
        entry = catalog.resolve(name)
        _logger.warning("%s has no region commitment (%s): selecting its layers with region_commitment; the map is "
                        "written into the %s plugin folder", name, entry.commitment_source, entry.family)
        try:
            commit(name)
        except BenchmarkDataUnavailableError as error:
            raise catalog.UnsupportedModelError(
                f"{name} has no region commitment and committing it on the default benchmarks failed: {error}. "
                f"Make that data reachable (or cached), or commit on local recordings with `brainscore-plugins "
                f"commit {name} --assembly REGION=ASSEMBLY.nc,STIMULI.csv ...` (see the README), then load the "
                f"model again.") from error
        found = commitment(name)
    region_layer_map, readout = found
    provenance.log_map_origin(name)
    return ModelCommitment(identifier=name, activations_model=activations_model(name, pretrained),
                           layers=layers(name), behavioral_readout_layer=readout, region_layer_map=region_layer_map)
