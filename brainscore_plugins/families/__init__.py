"""One declaration per model family: everything that differs between the studies we package, as data.

A family module in this package (``<prefix>.py``) calls :func:`register` with a frozen :class:`Family`: identifier
prefix, the script generating its catalog CSV (``data/<prefix>.csv``), citation, checkpoint formats (where the
weights sit in the file, a state-dict filter, how to forge a test file), default preprocessing, candidate layers,
evaluation batch size and how the fMRI encoding search reads its feature maps (:class:`FeatureMap`). The catalog,
factory, forging, plugin generation and the command line loop over :func:`all_families` and never name a family;
this module imports no catalog (the catalog reads the families, never the other way round). Listing and resolving
identifiers need only :func:`prefixes` and :func:`catalog_path`, which import no family module (so no torch). Adding
one: the module, its generator script and CSV, then ``brainscore-plugins generate`` (docs/adding-a-family.md).
Modules are discovered, not listed, on first use.
"""
from __future__ import annotations

import functools
import importlib
import pkgutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Mapping

from ..errors import ModelNotFoundError

DATA_DIR = Path(__file__).resolve().parents[1] / "data"
FMRI_SUFFIX = "-fmri"


def _imagenet_normalization(arch: str) -> tuple:
    from ..preprocessing import IMAGENET_MEAN, IMAGENET_STD  # imported when used: listing needs no numpy
    return IMAGENET_MEAN, IMAGENET_STD


def _block_outputs(model) -> list[str]:
    from region_commitment.layers import candidate_layers
    return candidate_layers(model)


@dataclass(frozen=True)
class FeatureMap:
    """How the fMRI encoding search (:mod:`..algonauts.encoding`) reads a layer where its output's shape alone does not
    say it: ``channels_last``, an ``(N, H, W, C)`` map (not ``(N, C, H, W)``); ``pre_pool``, max-pooled to a
    ``pre_pool x pre_pool`` grid (``nn.AdaptiveMaxPool2d``) before the search's own pooling kernels."""
    pre_pool: int | None = None
    channels_last: bool = False


@dataclass(frozen=True)
class Family:
    """A study's checkpoints: what the generic machinery needs to know about them."""

    prefix: str                    # identifier prefix and plugin folder name, e.g. "spvvs"
    title: str                     # the study, e.g. "scaling-primate-vvs (Gokce & Schrimpf, 2024)"
    summary: str                   # the generated plugin's docstring
    generator: str                 # the script (under scripts/) that writes the CSV
    citation: str                  # BibTeX
    formats: Mapping               # checkpoint_format column value -> weights.formats.CheckpointFormat
    preprocessing: str             # default pipeline of brainscore_plugins.preprocessing
    published_counts: Mapping[str, int]  # what the study published: {"models": n, "checkpoints": n}
    test_identifiers: tuple[str, ...]  # identifiers the generated plugin test.py loads
    requirements: tuple[str, ...] = ("torch", "torchvision", "timm", "numpy<2")
    candidate_layers: Callable = _block_outputs        # built network -> candidate layers, readout last
    eval_batch_size: Callable[[str], int] = field(default=lambda arch: 64)  # arch -> images per forward pass
    normalization: Callable[[str], tuple] = _imagenet_normalization
    # arch -> (mean, std) the network was trained with
    fmri_predictor: Callable | None = None  # (identifier, network, preprocessing) -> a model that predicts fMRI;
    # when set, every identifier X also registers X + FMRI_SUFFIX (:func:`brainscore_plugins.factory.brain_model`)
    nsd_seen: Callable | None = None  # (entry, predictor: bool) -> None, or (subject, its training images' NSD
    # ids) -> the NSD ids the model (its fMRI predictor when ``predictor``) was trained or selected on; the
    # Algonauts benchmarks never score it on those
    feature_maps: Callable | None = None  # built network -> {layer: FeatureMap} for the layers the encoding search
    # reads otherwise than their shape says; None: every layer as its shape says

    @property
    def catalog(self) -> str:
        """The catalog CSV's file name under ``brainscore_plugins/data/``."""
        return catalog_path(self.prefix).name

    @property
    def catalog_path(self) -> Path:
        return catalog_path(self.prefix)

    def checkpoint_format(self, name: str):
        """The format named in a catalog row; a clear error for a name this family does not declare."""
        if name not in self.formats:
            raise ModelNotFoundError(f"checkpoint format {name!r} is not declared by family {self.prefix!r} "
                                     f"(declared: {', '.join(self.formats)}); fix the catalog CSV or the family module")
        return self.formats[name]


_REGISTRY: dict[str, Family] = {}


def catalog_path(prefix: str) -> Path:
    """The catalog CSV of family ``prefix``: ``brainscore_plugins/data/<prefix>.csv``."""
    return DATA_DIR / f"{prefix}.csv"


@functools.lru_cache(maxsize=None)
def prefixes() -> tuple[str, ...]:
    """The family prefixes, in order: the family modules' names, found without importing them."""
    return tuple(sorted(module.name for module in pkgutil.iter_modules(__path__)))


def check_prefix(prefix: str) -> str:
    """``prefix``, if a family module declares it.

    Raises:
        ModelNotFoundError: it names no family.
    """
    if prefix not in prefixes():
        raise ModelNotFoundError(f"Unknown model family {prefix!r}; known families: {', '.join(prefixes())}")
    return prefix


def register(family: Family) -> Family:
    """Add a family (called by its module at import); a prefix is registered once."""
    if family.prefix in _REGISTRY and _REGISTRY[family.prefix] != family:
        raise ValueError(f"model family {family.prefix!r} is registered twice")
    _REGISTRY[family.prefix] = family
    return family


@functools.lru_cache(maxsize=None)
def _discover() -> None:
    for prefix in prefixes():
        importlib.import_module(f"{__name__}.{prefix}")


def all_families() -> dict[str, Family]:
    """Prefix -> family, in prefix order."""
    _discover()
    return dict(sorted(_REGISTRY.items()))


def get(prefix: str) -> Family:
    """The family of a prefix.

    Raises:
        ModelNotFoundError: no family module registers ``prefix``.
    """
    check_prefix(prefix)
    return all_families()[prefix]
