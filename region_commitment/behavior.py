"""The behavioral readout: Brain-Score's ``ProbabilitiesMapping`` + a behavioral metric (``i2n``), per layer.

Brain-Score reads behavior out of one layer: ``StandardScaler`` + multinomial ``LogisticRegression(C=1e-3)`` fit on
the fitting stimuli's raw activations (their ``image_label``), class probabilities for the test stimuli, scored
against primate trials by the benchmark's metric and ceiled by the benchmark. The L2-penalised solution lies in the
span of the (standardized) fitting rows, so the same classifier is fit exactly in the ``n_fitting``-dimensional
coordinates of that span (:func:`region_commitment.pca.project` with ``standardize=True`` and every component kept):
the Gram trick again, so a layer of any width costs one streamed pass over its features.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

import numpy as np

from . import brainscore_internals
from .errors import InvalidTargetError
from .pca import project
from .targets import (check_dimensions, check_stimulus_ids, check_unique_stimuli, load_netcdf,
                      stimulus_set_from_csv)

if TYPE_CHECKING:
    from .protocol import LayerView


@dataclass
class BehaviorTarget:
    """The behavioral target (:class:`~region_commitment.protocol.Target`): a readout of each layer scored by the
    benchmark's metric."""
    identifier: str
    fitting_stimuli: object       # StimulusSet with ``image_label`` (placed on screen)
    stimulus_set: object          # the test stimuli the primates saw (placed on screen)
    assembly: object              # BehavioralAssembly of trials: choice per presentation, stimulus_id/sample_obj/...
    metric: object                # Brain-Score metric: (probabilities, assembly) -> Score
    ceiling: object               # the metric's ceiling Score
    ceil: object                  # (score, ceiling) -> ceiled Score
    region: str = "behavior"
    needs_reference: ClassVar[bool] = False

    @property
    def fitting_ids(self) -> list:
        return list(self.fitting_stimuli["stimulus_id"].values)

    @property
    def test_ids(self) -> list:
        return list(self.test_stimuli()["stimulus_id"].values)

    def test_stimuli(self):
        """The test stimulus set, one row per stimulus id."""
        return self.stimulus_set.drop_duplicates(subset=["stimulus_id"])

    def paths(self) -> tuple[list[str], list[str]]:
        """(fitting image paths, test image paths), in the rows' order."""
        return ([str(self.fitting_stimuli.get_stimulus(s)) for s in self.fitting_ids],
                [str(self.stimulus_set.get_stimulus(s)) for s in self.test_ids])

    def image_paths(self) -> list[str]:
        """The fitting images, then the test images."""
        fitting, test = self.paths()
        return fitting + test

    def fingerprint(self) -> str:
        """sha256 of the trials' choices and stimulus ids and the fitting images' labels."""
        values = "\n".join(map(str, [*self.assembly.values, *self.assembly["stimulus_id"].values,
                                      *self.fitting_stimuli["image_label"].values])).encode()
        return hashlib.sha256(values).hexdigest()

    def score(self, layer: LayerView) -> tuple[float, float, float]:
        """:func:`readout_score` of the layer."""
        fitting, test = self.paths()
        return readout_score(layer.features, layer.rows(fitting), layer.rows(test), self)


def _ceil_per_split(score, ceiling):
    """Brain-Score's ``_DicarloRajalingham2018.ceil_score``: per split ``score / sqrt(ceiling)``, mean over splits."""
    raw, ceil = score.raw, ceiling.raw
    value = float(np.mean([float(raw.sel(split=s)) / np.sqrt(float(ceil.sel(split=s))) for s in ceil["split"].values]))
    return value


def _check(identifier: str, assembly, stimulus_set, fitting_stimuli) -> None:
    if "image_label" not in fitting_stimuli.columns:
        raise InvalidTargetError(f"{identifier}: the fitting stimuli have no 'image_label' column to train the "
                                 f"readout on")
    check_dimensions(identifier, assembly, ("presentation",), ("stimulus_id", "sample_obj", "dist_obj", "truth"),
                     needs="one row per trial along presentation, the coordinates stimulus_id, sample_obj, dist_obj, "
                           "truth, and the chosen object as values")
    check_stimulus_ids(identifier, assembly["stimulus_id"].values, stimulus_set)
    objects = set(assembly["sample_obj"].values) | set(assembly["dist_obj"].values)
    unknown = sorted(objects - set(fitting_stimuli["image_label"].values))
    if unknown:
        raise InvalidTargetError(f"{identifier}: objects {unknown[:5]} of the trials have no fitting images "
                                 f"(image_label); the readout could not give them a probability")


def from_behavioral_assembly(assembly, fitting_stimuli, identifier: str | None = None, metric: str = "i2n",
                             visual_degrees: int | None = None, model_visual_degrees: int = 8) -> BehaviorTarget:
    """A target from a ``BehavioralAssembly`` of trials (its ``stimulus_set`` attribute: the test stimuli) and a
    ``StimulusSet`` of fitting images with ``image_label``; the ceiling is the metric's split-half ceiling.

    Raises:
        InvalidTargetError: no attached stimulus set, trials without their dimension or coordinates, stimulus ids
            missing from the stimulus set or listed twice with different metadata, fitting images without
            ``image_label`` or without images of a trial's object.
    """
    from brainscore_vision import load_metric
    from brainscore_vision.benchmark_helpers.screen import place_on_screen

    identifier = identifier or f"behavior-{metric}"
    stimulus_set = assembly.attrs.get("stimulus_set")
    if stimulus_set is None:
        raise InvalidTargetError(f"{identifier}: the assembly has no attrs['stimulus_set']; attach its StimulusSet")
    check_unique_stimuli(identifier, stimulus_set)
    check_unique_stimuli(f"{identifier} (fitting stimuli)", fitting_stimuli)
    _check(identifier, assembly, stimulus_set, fitting_stimuli)
    if visual_degrees is not None:
        stimulus_set, fitting_stimuli = (place_on_screen(s, target_visual_degrees=model_visual_degrees,
                                                         source_visual_degrees=visual_degrees)
                                         for s in (stimulus_set, fitting_stimuli))
    metric_object = load_metric(metric)
    return BehaviorTarget(identifier=identifier, fitting_stimuli=fitting_stimuli, stimulus_set=stimulus_set,
                          assembly=assembly, metric=metric_object,
                          ceiling=metric_object.ceiling(assembly, skipna=True), ceil=_ceil_per_split)


def from_behavioral_benchmark(benchmark, model_visual_degrees: int = 8) -> BehaviorTarget:
    """A target from a Rajalingham2018-style benchmark (identifier or object): fitting stimuli, trials, metric,
    ceiling and ceiling normalisation are the benchmark's own.

    Raises:
        BenchmarkUnavailableError: an identifier that cannot be loaded (no plugin, data not cached nor reachable).
        InvalidTargetError: not a probabilities benchmark with fitting stimuli, or its data are inconsistent (as in
            :func:`from_behavioral_assembly`).
    """
    from brainscore_vision.benchmark_helpers.screen import place_on_screen

    if isinstance(benchmark, str):
        benchmark = brainscore_internals.load_benchmark(benchmark)
    assembly, degrees, fitting_stimuli, metric = brainscore_internals.behavioral_benchmark_parts(benchmark)
    _check(benchmark.identifier, assembly, assembly.stimulus_set, fitting_stimuli)
    fitting, test = (place_on_screen(s, target_visual_degrees=model_visual_degrees, source_visual_degrees=degrees)
                     for s in (fitting_stimuli, assembly.stimulus_set))
    ceil = getattr(benchmark, "ceil_score", None)
    return BehaviorTarget(identifier=benchmark.identifier, fitting_stimuli=fitting, stimulus_set=test,
                          assembly=assembly, metric=metric, ceiling=benchmark.ceiling,
                          ceil=(lambda score, ceiling: float(ceil(score, ceiling))) if ceil else _ceil_per_split)


def from_behavioral_files(assembly_path: str | Path, stimuli_csv: str | Path, fitting_csv: str | Path,
                          **kwargs) -> BehaviorTarget:
    """A target from a lab's own files (formats: docs/design/region-commitment.md, "Committing on your own
    recordings"):

    * ``assembly_path``: netCDF of a 1-D DataArray over ``presentation`` (one row per trial) whose values are the
      chosen object, with coords ``stimulus_id``, ``sample_obj``, ``dist_obj``, ``truth`` (= ``sample_obj``);
    * ``stimuli_csv``: the test images (``stimulus_id``, ``filename`` relative to the CSV);
    * ``fitting_csv``: the fitting images (``stimulus_id``, ``filename``, ``image_label``).

    Raises:
        InvalidTargetError: as :func:`from_behavioral_assembly`, or a CSV without its columns.
        FileNotFoundError: a missing assembly or image file.
    """
    from brainscore_core.supported_data_standards.brainio.assemblies import BehavioralAssembly

    assembly = BehavioralAssembly(load_netcdf(assembly_path))
    assembly.attrs["stimulus_set"] = stimulus_set_from_csv(stimuli_csv)
    return from_behavioral_assembly(assembly, stimulus_set_from_csv(fitting_csv),
                                    identifier=kwargs.pop("identifier", Path(assembly_path).stem), **kwargs)


def probabilities(features: np.ndarray, fitting_rows, test_rows, labels, test_stimuli):
    """``ProbabilitiesMapping``'s class probabilities (a ``BehavioralAssembly``: presentation x choice) for the
    ``test_rows`` of ``features`` (images x features), the classifier fit on ``fitting_rows`` with ``labels``;
    ``test_stimuli`` (the StimulusSet rows of ``test_rows``, in order) give the presentation coordinates."""
    from brainscore_core.supported_data_standards.brainio.assemblies import BehavioralAssembly

    fitting_rows, test_rows = np.asarray(fitting_rows), np.asarray(test_rows)
    coordinates = project(features, fitting_rows, np.concatenate([fitting_rows, test_rows]), None, standardize=True)
    mapping, classifier = brainscore_internals.probabilities_classifier()  # Brain-Score's classifier settings
    indices, index_to_label = mapping.labels_to_indices(list(labels))
    classifier = classifier.fit(coordinates[:len(fitting_rows)], indices)
    proba = classifier.predict_proba(coordinates[len(fitting_rows):])
    presentation = {column: ("presentation", test_stimuli[column].values) for column in test_stimuli.columns}
    presentation["stimulus_path"] = ("presentation", [str(test_stimuli.get_stimulus(s))
                                                      for s in test_stimuli["stimulus_id"].values])
    return BehavioralAssembly(proba, coords={**presentation, "choice": list(index_to_label.values())},
                              dims=["presentation", "choice"])


def readout_score(features, fitting_rows, test_rows, target: BehaviorTarget) -> tuple[float, float, float]:
    """(raw metric score, its error over splits, ceiled score) of reading behavior out of one layer's features."""
    prediction = probabilities(features, fitting_rows, test_rows, target.fitting_stimuli["image_label"].values,
                               target.test_stimuli())
    score = target.metric(prediction, target.assembly)
    error = float(score.attrs["error"]) if "error" in score.attrs else 0.0
    return float(score), error, float(target.ceil(score, target.ceiling))
