"""One entry point per level: a torch model, a Brain-Score activations model, a committed brain model.

The public functions take an identifier (or a study model id) and resolve it once (:func:`.catalog.resolve`); the
catalog entry is then passed down, as timm passes a model's ``pretrained_cfg``, and the region map and its provenance
are looked up once per load.
"""
from __future__ import annotations

import logging
from functools import partial
from pathlib import Path

import torch

from . import architectures, candidates, catalog, committed_maps, families, provenance, settings
from .errors import (BenchmarkDataUnavailableError, CommitmentFailedError, CommitmentInputError, ModelNotFoundError,
                     NotCommittedError, UnsupportedModelError)
from .preprocessing import pipeline_name, preprocessing_for
from .weights import fetch

_logger = logging.getLogger(__name__)


def create_model(name: str, pretrained: bool = True, progress: bool = True, *, checkpoint_path=None,
                 num_classes: int | None = None, **kwargs) -> torch.nn.Module:
    """The network for a catalog identifier (or study model id), in eval mode, with its published weights; the
    keyword arguments as timm's ``create_model``: ``checkpoint_path`` loads that local file (safely and strictly, in
    the family's checkpoint layout) instead; ``num_classes`` other than the catalogued one replaces the classifier
    with a new, randomly initialised one of that size after the weights loaded; the others go to the architecture's
    constructor (timm's or torchvision's, e.g. ``drop_path_rate``).

    Raises:
        ModelNotFoundError: ``name`` is not in the catalog.
        UnsupportedModelError: the catalogued architecture cannot be built, or has no classifier to resize.
        TypeError: the architecture's constructor does not take one of ``kwargs``.
        FileNotFoundError: ``checkpoint_path`` is not a file.
        WeightsUnavailableError: the weights are not mirrored or cached and cannot be downloaded.
        CheckpointInvalidError: the weights file is unreadable, unsafe, or holds another model.
    """
    return network(catalog.resolve(name), pretrained, progress, checkpoint_path=checkpoint_path,
                   num_classes=num_classes, **kwargs)


def network(entry: catalog.Entry, pretrained: bool = True, progress: bool = True, *, checkpoint_path=None,
            num_classes: int | None = None, **kwargs) -> torch.nn.Module:
    """:func:`create_model` for a catalog entry already resolved."""
    checkpoint_format = _checkpoint_format(entry)
    if checkpoint_path is not None:
        path = Path(checkpoint_path)
        if not path.is_file():
            raise FileNotFoundError(f"checkpoint_path {path} is not a file; pass the path of a checkpoint of "
                                    f"{entry.identifier}")
        model = checkpoint_format.load_into(_built(entry, True, **kwargs), path, entry.weights_key)
        model.weights_sha256 = fetch.sha256_of(path)
    else:
        weights = _weights(entry, progress) if pretrained else None  # before building: fail fast
        model = _loaded(entry, checkpoint_format, weights, **kwargs)
    if num_classes is not None and num_classes != entry.num_classes:
        _replace_classifier(model, entry, num_classes)
    return model.eval()


def _replace_classifier(model: torch.nn.Module, entry: catalog.Entry, num_classes: int) -> None:
    """A new classifier with ``num_classes`` outputs: timm's ``reset_classifier``, else the last ``nn.Linear`` with
    the catalogued number of outputs replaced by a fresh one."""
    if hasattr(model, "reset_classifier"):
        model.reset_classifier(num_classes)
        return
    heads = [(name, module) for name, module in model.named_modules()
             if isinstance(module, torch.nn.Linear) and module.out_features == entry.num_classes]
    if not entry.num_classes or not heads:
        raise UnsupportedModelError(f"{entry.identifier} has no classifier to give {num_classes} classes (it is a "
                                    f"feature encoder); leave num_classes out")
    name, head = heads[-1]
    parent = model.get_submodule(name.rpartition(".")[0])
    setattr(parent, name.rpartition(".")[2], torch.nn.Linear(head.in_features, num_classes, head.bias is not None))


def _checkpoint_format(entry: catalog.Entry):
    """The entry's checkpoint format; raises :class:`UnsupportedModelError` if its architecture cannot be built."""
    if entry.unsupported:
        raise UnsupportedModelError(f"{entry.identifier} cannot be built: {entry.unsupported}")
    return families.get(entry.family).checkpoint_format(entry.checkpoint_format)


def _built(entry: catalog.Entry, for_weights: bool, **kwargs) -> torch.nn.Module:
    """The network, on the meta device when weights will be loaded into it and it has no buffers that the weights do
    not hold (non-persistent ones, e.g. a rotary embedding's table): the loaded tensors then become its parameters,
    so it is never initialised at random nor held twice (a 3B-parameter network peaks at its weights, not double)."""
    args = (entry.arch, entry.num_classes, entry.training_method)
    if for_weights:
        with torch.device("meta"):
            skeleton = architectures.build(*args, **kwargs)
        if not any(module._non_persistent_buffers_set for module in skeleton.modules()):
            return skeleton
    return architectures.build(*args, **kwargs)


def _loaded(entry: catalog.Entry, checkpoint_format, weights: fetch.Weights | None, **kwargs) -> torch.nn.Module:
    """``entry``'s network (``kwargs`` to its constructor) with ``weights`` loaded strictly; a file no hash vouched
    for is trusted (its sha256 recorded) only once it loaded (:func:`.weights.fetch.trust_after_load`)."""
    model = _built(entry, weights is not None, **kwargs)
    if weights is not None:
        fetch.trust_after_load(weights, entry.identifier,
                               lambda path: checkpoint_format.load_into(model, path, entry.weights_key))
        model.weights_sha256 = weights.sha256  # what the activations identifier names (:func:`activations_model`)
    return model


def _weights(entry: catalog.Entry, progress: bool) -> fetch.Weights:
    if entry.hf_repo:
        return fetch.fetch_hf(entry.hf_repo, entry.weights_file, entry.sha256 or None, progress=progress,
                              mirror_path=entry.mirror_path)
    return fetch.fetch(entry.url, entry.weights_file, entry.sha256 or None, progress=progress)


def weights_path(entry: catalog.Entry, progress: bool = True) -> Path:
    """The local weights file of a catalog entry: mirror, cache or download (a Hugging Face Hub file through
    ``huggingface_hub`` when the entry names a Hub repository), checked against its published or recorded sha256; a
    file with neither is first loaded into its architecture, then its sha256 is recorded.

    Raises:
        UnsupportedModelError, WeightsUnavailableError, CheckpointInvalidError: as :func:`create_model`.
    """
    checkpoint_format = _checkpoint_format(entry)
    weights = _weights(entry, progress)
    if not weights.vouched:
        _loaded(entry, checkpoint_format, weights)
    return weights.final


def activations_model(name: str, pretrained: bool = True, preprocessing: str | None = None):
    """Brain-Score's ``PytorchWrapper`` around :func:`create_model`: by default its drop-in
    :class:`.fast_activations.FastPytorchWrapper` (equal activations, preprocessing in worker processes; on
    channels-last batches with ``$BRAINSCORE_PLUGINS_EXTRACTOR=fast-channels-last``), Brain-Score's own with
    ``brainscore``.

    The activations identifier, which keys Brain-Score's activation and PCA caches, names everything the
    activations depend on beyond the images: ``<name>-weights-<sha256[:12] of the weights file>`` (``<name>-untrained``
    without weights), then ``-<pipeline>-preprocessing`` for a pipeline other than the family's default, then
    ``-channels-last`` for that extractor, then ``-bfloat16`` / ``-float16`` for a forward pass in that precision
    (``$BRAINSCORE_PLUGINS_PRECISION``; float32 by default). ``preprocessing`` (else
    ``$BRAINSCORE_PLUGINS_PREPROCESSING``, else the family's default) names the pipeline of :mod:`.preprocessing`:
    ``brainscore`` (what Brain-Score's own plugin feeds the network; default for ``spvvs``) or ``training-config``.

    Raises:
        ValueError: an unknown preprocessing pipeline, extractor or precision, or a lower precision with
            Brain-Score's extractor.
        ModelNotFoundError, UnsupportedModelError, WeightsUnavailableError, CheckpointInvalidError: as
            :func:`create_model`.
    """
    settings.warn_dependency_installs()
    return _activations_model(catalog.resolve(name), name, pretrained, preprocessing)


def _activations_model(entry: catalog.Entry, name: str, pretrained: bool, preprocessing: str | None):
    """:func:`activations_model` of a resolved ``entry``; it carries ``feature_maps``, how the fMRI encoding search
    reads its layers (:func:`.candidates.feature_maps`)."""
    from brainscore_vision.model_helpers.activations.pytorch import PytorchWrapper
    from .fast_activations import FastPytorchWrapper

    extractor, precision = settings.extractor(), settings.precision()
    if extractor == "brainscore" and precision != "float32":
        raise ValueError(f"${settings.PRECISION}={precision} needs a fast extractor (Brain-Score's PytorchWrapper runs "
                         f"float32 only); unset ${settings.EXTRACTOR} or set it to 'fast'")
    wrapper = PytorchWrapper if extractor == "brainscore" else partial(
        FastPytorchWrapper, channels_last=extractor == "fast-channels-last", precision=precision)
    family = families.get(entry.family)
    variant = preprocessing_variant(name, preprocessing, entry)
    pipeline = variant or family.preprocessing
    model = network(entry, pretrained)
    identifier = f"{name}-{weights_tag(model)}" + (f"-{variant}-preprocessing" if variant else "")
    if extractor == "fast-channels-last":  # not bit-equal: never mixed with the other extractors' caches
        identifier += "-channels-last"
    if precision != "float32":
        identifier += f"-{precision}"
    activations = wrapper(identifier=identifier, model=model, preprocessing=_preprocessing(entry, pipeline),
                          batch_size=family.eval_batch_size(entry.arch))
    activations.feature_maps = candidates.feature_maps(entry, model)
    return activations


def weights_tag(model: torch.nn.Module) -> str:
    """``weights-<the first 12 hex digits of the weights file's sha256>``, or ``untrained`` for a network built
    without weights: in the activations identifier, so that Brain-Score's activation and PCA caches, keyed by it,
    never serve one file's activations for another's (a forged or replaced checkpoint under the same name)."""
    digest = getattr(model, "weights_sha256", None)
    return f"weights-{digest[:12]}" if digest else "untrained"


def preprocessing_variant(name: str, preprocessing: str | None = None, entry: catalog.Entry | None = None) -> str:
    """The pipeline :func:`activations_model` builds ``name`` with (``preprocessing``, else the environment's), when
    it is not the family's default (the activations identifier then ends ``-<pipeline>-preprocessing``); else ''.
    ``entry``: the catalog entry of ``name``, where the caller resolved it already.

    Raises:
        ValueError: an unknown preprocessing pipeline.
        ModelNotFoundError: an unknown identifier.
    """
    default = families.get((entry or catalog.resolve(name)).family).preprocessing
    pipeline = pipeline_name(default, preprocessing)
    return "" if pipeline == default else pipeline


def _preprocessing(entry: catalog.Entry, pipeline: str):
    """The ``pipeline`` for ``entry``'s input size, interpolation and its family's normalisation."""
    return preprocessing_for(entry.resize, entry.crop, entry.interpolation, pipeline,
                             *families.get(entry.family).normalization(entry.arch))


def region_map(name: str, entry: catalog.Entry | None = None) -> tuple[dict[str, str], str] | None:
    """(region -> layer map, behavioral readout layer): the catalog's (see :func:`.provenance.map_provenance`), else
    one computed by ``brainscore-plugins commit`` (:mod:`.committed_maps`: a packaged plugin's own, else the user
    data folder's), else ``None``. ``entry``: the catalog entry of ``name``, where the caller resolved it already."""
    entry = entry or catalog.resolve(name)
    return _region_map(entry, _located(entry, name))


def _located(entry: catalog.Entry, name: str) -> committed_maps.Located | None:
    """Where ``commit`` wrote the map of ``name``; ``None`` for a catalog map (never looked up there) or none."""
    return None if entry.region_layer_map else committed_maps.locate(entry, name)


def _region_map(entry: catalog.Entry, located: committed_maps.Located | None) -> tuple[dict[str, str], str] | None:
    if entry.region_layer_map:
        return entry.region_layer_map, entry.readout
    if located is None:
        return None
    region_layer_map, readout = committed_maps.read(located)
    return region_layer_map, readout or candidates.for_entry(entry)[-1]  # no readout file: the last candidate


def layers(name: str) -> list[str]:
    """The committed layers (region layers, then the behavioral readout); without a commitment, the candidates."""
    entry = catalog.resolve(name)
    found = region_map(name, entry)
    return candidates.for_entry(entry) if found is None else _committed_layers(*found)


def _committed_layers(region_layer_map: dict[str, str], readout: str) -> list[str]:
    return [*dict.fromkeys(v for v in region_layer_map.values() if v != readout), readout]


def commit(name: str, benchmarks: dict | None = None, *, layers: list[str] | str | None = None, reference=None,
           n_components: int = 1000, readout: str | None = None, output=None, progress: bool = True,
           entry: catalog.Entry | None = None):
    """Select layers for ``name`` with ``region_commitment`` and write the map, readout, score table, plot and
    provenance into ``output``, else the user data folder (:mod:`.committed_maps`, never the installed package):
    ``(CommitmentResult, {kind: path})``. The folder is checked writable, and ``n_components`` and the targets
    checked, before the weights load; a study alias is written under our identifier. ``benchmarks``: region ->
    identifier, benchmark object or target (default: ``region_commitment.DEFAULT_BENCHMARKS``); ``layers``: the
    family's candidate layers by default, ``"study"`` or a list; ``entry``: the catalog entry of ``name``, where the
    caller resolved it already; the rest as in ``region_commitment.commit``.

    Raises:
        BenchmarkDataUnavailableError: a benchmark named by identifier cannot be loaded (not cached, not reachable).
        CommitmentInputError: unusable targets or candidate layers (an unknown benchmark or layer, bad data).
        CommitmentFailedError: the output folder is not writable, or region_commitment failed otherwise.
        ModelNotFoundError, UnsupportedModelError, WeightsUnavailableError, CheckpointInvalidError: as
            :func:`create_model`.
    """
    import region_commitment
    from region_commitment import brainscore_internals, reference as reference_sets
    from region_commitment.errors import BenchmarkUnavailableError, RegionCommitmentError

    entry = entry or catalog.resolve(name)
    name = entry.identifier_of(name)  # a study alias is written (and later found) under our identifier
    folder = committed_maps.writable_folder(entry.family, output)  # before the commitment runs
    loaded = {}
    try:  # every input that can be checked before the weights load
        reference_sets.check_count(n_components)
        for region, benchmark in (benchmarks or region_commitment.DEFAULT_BENCHMARKS).items():
            loaded[region] = region_commitment.load_target(region, benchmark)
    except BenchmarkUnavailableError as error:
        raise BenchmarkDataUnavailableError(str(error)) from error
    except RegionCommitmentError as error:
        raise _commitment_error(name, error) from error
    model = _activations_model(entry, name, True, None)
    if layers is None:
        layers = candidates.for_entry(entry, brainscore_internals.torch_module(model))
    try:
        result = region_commitment.commit(model, layers, loaded, reference=reference, n_components=n_components,
                                          behavioral_readout_layer=readout, progress=progress,
                                          cache_dir=settings.cache_dir() / "region_commitment")
    except RegionCommitmentError as error:
        raise _commitment_error(name, error) from error
    return result, result.save(folder, name)


def _commitment_error(name: str, error: Exception) -> CommitmentFailedError:
    """Ours for region_commitment's: bad input (its ``ValueError`` s) stays distinguishable from a failure."""
    kind = CommitmentInputError if isinstance(error, ValueError) else CommitmentFailedError
    return kind(f"{name}: {error}")


def fmri_predictor(name: str, pretrained: bool = True):
    """The fMRI predictor ``<identifier>-fmri`` of a family that declares one (``Family.fmri_predictor``): the
    network with its family's preprocessing, no region commitment needed.

    Raises:
        ModelNotFoundError: an unknown identifier, or a family without fMRI predictors.
        UnsupportedModelError, WeightsUnavailableError, CheckpointInvalidError: as :func:`create_model`.
    """
    base = name[:-len(families.FMRI_SUFFIX)]
    entry = catalog.resolve(base)
    family = families.get(entry.family)
    if family.fmri_predictor is None:
        raise ModelNotFoundError(f"{name}: {family.title} models predict no fMRI; use {base} (a Brain-Score model)")
    return _with_seen_images(family.fmri_predictor(name, network(entry, pretrained),
                                                   _preprocessing(entry, pipeline_name(family.preprocessing))),
                             entry, predictor=True)


def brain_model(name: str, pretrained: bool = True):
    """A ``ModelCommitment`` with the region -> layer map and behavioral readout layer of :func:`region_map`; a model
    without one is first committed by :func:`commit` on the default benchmarks (once: the map is written into the
    user data folder), never by Brain-Score's own network-bound ``LayerSelection``. It carries ``candidate_layers``
    (its family's, readout last: what the fMRI encoding search runs over) and, where its family declares them,
    ``nsd_seen``.

    Raises:
        NotCommittedError: no map, and none can be computed (no weights, or the default benchmarks' data are
            unavailable); the message says how to commit on local recordings.
        ModelNotFoundError, UnsupportedModelError, WeightsUnavailableError, CheckpointInvalidError: as
            :func:`create_model`.
    """
    from brainscore_vision.model_helpers.brain_transformation import ModelCommitment
    from region_commitment.brainscore_internals import torch_module

    settings.warn_dependency_installs()
    if name.endswith(families.FMRI_SUFFIX):
        return fmri_predictor(name, pretrained)
    entry = catalog.resolve(name)
    located = _located(entry, name)
    found = _region_map(entry, located)
    if found is None:
        if not pretrained:
            raise NotCommittedError(f"{name} has no region commitment to use without weights; commit the pretrained "
                                    f"model first (`brainscore-plugins commit {name}`)")
        _logger.warning("%s has no region commitment (%s): selecting its layers with region_commitment; the map is "
                        "written into %s", name, entry.commitment_source, committed_maps.data_folder(entry.family))
        try:
            commit(name, entry=entry)
        except BenchmarkDataUnavailableError as error:
            raise NotCommittedError(
                f"{name} has no region commitment and committing it on the default benchmarks failed: {error}. "
                f"Make that data reachable (or cached), or commit on local recordings with `brainscore-plugins "
                f"commit {name} --assembly REGION=ASSEMBLY.nc,STIMULI.csv ...` (docs/design/region-commitment.md), "
                f"then load the model again.") from error
        located = _located(entry, name)
        found = _region_map(entry, located)
    region_layer_map, readout = found
    provenance.log_map_origin(name, provenance.record(entry, located))
    activations = _activations_model(entry, name, pretrained, None)
    model = ModelCommitment(identifier=name, activations_model=activations,
                            layers=_committed_layers(region_layer_map, readout), behavioral_readout_layer=readout,
                            region_layer_map=region_layer_map)
    model.candidate_layers = candidates.for_entry(entry, torch_module(activations))  # the fMRI search's layers
    return _with_seen_images(model, entry, predictor=False)


def _with_seen_images(model, entry: catalog.Entry, predictor: bool):
    """``model`` with ``nsd_seen`` (the NSD images it was trained or selected on, which the Algonauts benchmarks
    never score it on) where its family declares them."""
    declare = families.get(entry.family).nsd_seen
    seen = None if declare is None else declare(entry, predictor)
    if seen is not None:
        model.nsd_seen = seen
    return model
