"""The target protocol: what every target offers ``commit`` (:class:`Target`), what it sees of one layer
(:class:`LayerView`) and what a layer's score is (:class:`LayerScore`).

``commit`` runs every target through one loop, so a new kind of target (an fMRI encoding target, ...) needs no
change there, only an entry in :data:`region_commitment.factories.TARGET_FACTORIES` when it is read from a
Brain-Score benchmark. Targets with ``needs_reference`` see their images projected onto the layer's PCA of the
reference images (Brain-Score's ``LayerPCA``), computed once per layer over all of their images and shared.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Protocol, runtime_checkable

import numpy as np

from .pca import project


@dataclass(frozen=True)
class LayerScore:
    """One target's score of one candidate layer. ``region``: the key the target was given under; ``depth``: the
    layer's index among the candidates; ``error``: over cross-validation splits; the best ``ceiled`` is chosen."""
    region: str
    layer: str
    depth: int
    raw: float
    error: float
    ceiled: float

    def as_dict(self) -> dict:
        """The row of the per-layer JSON cache."""
        return asdict(self)

    @classmethod
    def from_dict(cls, row: dict) -> LayerScore:
        return cls(**row)


class LayerView:
    """One layer's features as every target sees them: ``features`` (images x features, read a column block at a
    time), the feature ``rows`` of images, and the :meth:`projected` activations of ``projected_paths``."""

    def __init__(self, store, layer: str, reference_paths: list[str], projected_paths: list[str],
                 n_components: int):
        self.features = store.layer(layer)
        self._store, self._reference_paths, self._projected_paths = store, reference_paths, projected_paths
        self._n_components = n_components
        self._projection, self._row = None, {}

    def rows(self, paths) -> np.ndarray:
        return self._store.rows(paths)

    def projected(self, paths: list[str]) -> np.ndarray:
        """The images' activations in the layer's PCA basis of the reference images (``n_components``), projected
        once for every one of ``projected_paths`` on first use."""
        if self._projection is None:
            self._projection = project(self.features, self.rows(self._reference_paths),
                                       self.rows(self._projected_paths), self._n_components)
            self._row = {path: i for i, path in enumerate(self._projected_paths)}
        return self._projection[[self._row[path] for path in paths]]


@runtime_checkable
class Target(Protocol):
    """What ``commit`` needs of a target: its data's ``identifier`` and :meth:`fingerprint` (the cache key and the
    provenance record them), the images it needs features of, and a score per layer. ``needs_reference``: its
    images are read through :meth:`LayerView.projected` (``commit`` then loads the PCA reference images)."""
    region: str
    identifier: str
    needs_reference: bool

    def image_paths(self) -> list[str]:
        """Every image whose features it reads."""

    def fingerprint(self) -> str:
        """A digest of its data."""

    def score(self, layer: LayerView) -> tuple[float, float, float]:
        """(raw score, its error, ceiled score) of one layer."""
