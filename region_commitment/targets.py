"""What a region is committed against: stimuli, target responses, cross-validation splits, PLS size, ceiling.

A target is read from a Brain-Score ``NeuralBenchmark`` (an identifier such as ``MajajHong2015public.IT-pls``, or
a benchmark object built on a local assembly), or built from any local ``NeuroidAssembly`` with its
``StimulusSet``. The splits are made by Brain-Score's own ``CrossValidation`` code, so they are the very splits its
PLS metric would use.
"""
from __future__ import annotations

import logging
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

_logger = logging.getLogger(__name__)

# the public benchmarks Brain-Score's ModelCommitment selects layers on (and its public behavioral benchmark)
DEFAULT_BENCHMARKS = {
    "V1": "FreemanZiemba2013public.V1-pls",
    "V2": "FreemanZiemba2013public.V2-pls",
    "V4": "MajajHong2015public.V4-pls",
    "IT": "MajajHong2015public.IT-pls",
    "behavior": "Rajalingham2018public-i2n",
}


@dataclass
class RegionTarget:
    region: str
    identifier: str
    stimulus_set: object          # StimulusSet as the model sees it (placed on screen)
    stimulus_ids: np.ndarray      # row order of ``responses``
    responses: np.ndarray         # stimuli x neuroids, repetitions averaged, bad neuroids removed
    splits: list                  # [(train row indices, test row indices)], Brain-Score's splits
    n_components: int             # PLS components
    ceiling: float
    excluded_neuroids: int = 0


def _has_coord(assembly, name: str) -> bool:
    """Coordinates of a Brain-Score assembly may be levels of a dimension's MultiIndex."""
    try:
        assembly[name]
        return True
    except KeyError:
        return False


def _valid_neuroids(values: np.ndarray, identifier: str) -> np.ndarray:
    keep = np.isfinite(values).all(axis=0) & (np.nanstd(values, axis=0) > 0)
    if not keep.any():
        raise ValueError(f"{identifier}: every neuroid is NaN or constant; nothing to predict")
    if not keep.all():
        warnings.warn(f"{identifier}: excluded {int((~keep).sum())} of {keep.size} neuroids that are NaN or constant")
    return keep


def check_stimulus_ids(identifier: str, stimulus_ids, stimulus_set) -> None:
    """Every stimulus id of an assembly must be in its stimulus set."""
    missing = sorted(set(stimulus_ids) - set(stimulus_set["stimulus_id"].values))
    if missing:
        raise ValueError(f"{identifier}: {len(missing)} stimulus ids of the assembly are not in its stimulus set "
                         f"(e.g. {missing[:3]}); the assembly and the StimulusSet do not belong together")


def from_assembly(assembly, region: str, ceiling: float | None = None, identifier: str | None = None,
                  n_components: int = 25, stratification_coord: str | None = "object_name",
                  splits: int = 10, train_size: float = 0.9, visual_degrees: int | None = None,
                  model_visual_degrees: int = 8) -> RegionTarget:
    """A target from a ``NeuroidAssembly`` whose ``stimulus_set`` attribute holds the stimuli.

    Repetitions (a ``repetition`` coordinate) are averaged; without an explicit ``ceiling`` it is Brain-Score's
    split-half internal consistency over repetitions (1.0, with a warning, when there are none).
    """
    from brainscore_vision.benchmark_helpers.neural_common import average_repetition
    from brainscore_vision.benchmark_helpers.screen import place_on_screen
    from brainscore_vision.metric_helpers.transformations import CrossValidation

    identifier = identifier or f"{region}-assembly"
    stimulus_set = assembly.attrs.get("stimulus_set")
    if stimulus_set is None:
        raise ValueError(f"{identifier}: the assembly has no attrs['stimulus_set']; attach its StimulusSet")
    if "time_bin" in assembly.dims:
        assembly = assembly.squeeze("time_bin")
    if ceiling is None:
        if _has_coord(assembly, "repetition") and len(np.unique(assembly["repetition"])) > 1:
            from brainscore_vision import load_ceiling
            ceiling = float(load_ceiling("internal_consistency")(assembly))
        else:
            warnings.warn(f"{identifier}: no repetitions to estimate a ceiling from; using 1.0")
            ceiling = 1.0
    if _has_coord(assembly, "repetition"):
        assembly = average_repetition(assembly)
    assembly = assembly.transpose("presentation", "neuroid")
    stimulus_ids = assembly["stimulus_id"].values
    check_stimulus_ids(identifier, stimulus_ids, stimulus_set)
    if visual_degrees is not None:
        stimulus_set = place_on_screen(stimulus_set, target_visual_degrees=model_visual_degrees,
                                       source_visual_degrees=visual_degrees)
    if stratification_coord and not _has_coord(assembly, stratification_coord):
        stratification_coord = None
    cv = CrossValidation(splits=splits, train_size=train_size, test_size=None,
                         stratification_coord=stratification_coord)
    if len(stimulus_ids) < splits:
        raise ValueError(f"{identifier}: {len(stimulus_ids)} stimuli are fewer than the {splits} cross-validation "
                         f"splits")
    values, split_list = cv._split.build_splits(assembly)
    values = np.asarray(values.values)  # split-coordinate value of each split index
    coord = assembly[cv._split._split_coord].values
    rows_of = {value: np.flatnonzero(coord == value) for value in np.unique(values)}
    splits_rows = [(np.concatenate([rows_of[values[i]] for i in train]),
                    np.concatenate([rows_of[values[i]] for i in test])) for train, test in split_list]
    responses = assembly.values.astype(np.float64)
    keep = _valid_neuroids(responses, identifier)
    return RegionTarget(region=region, identifier=identifier, stimulus_set=stimulus_set, stimulus_ids=stimulus_ids,
                        responses=responses[:, keep], splits=splits_rows, n_components=n_components,
                        ceiling=float(ceiling), excluded_neuroids=int((~keep).sum()))


def from_benchmark(benchmark, region: str | None = None, model_visual_degrees: int = 8) -> RegionTarget:
    """A target from a ``NeuralBenchmark`` object or identifier: its assembly, metric settings and ceiling."""
    if isinstance(benchmark, str):
        from brainscore_vision import load_benchmark
        benchmark = load_benchmark(benchmark)
    metric = getattr(benchmark, "_similarity_metric", None)
    regression = getattr(getattr(metric, "regression", None), "_regression", None)
    cv = getattr(metric, "cross_validation", None)
    if regression is None or type(regression).__name__ != "PLSRegression" or cv is None:
        raise ValueError(f"{benchmark.identifier}: only cross-validated PLS neural benchmarks are supported "
                         f"(its metric is {type(metric).__name__})")
    split = cv._split
    return from_assembly(
        benchmark._assembly, region=region or benchmark.region, ceiling=float(benchmark.ceiling),
        identifier=benchmark.identifier, n_components=regression.n_components,
        stratification_coord=split._stratification_coord, splits=split._split.get_n_splits(),
        train_size=getattr(split._split, "train_size", 0.9), visual_degrees=benchmark._visual_degrees,
        model_visual_degrees=model_visual_degrees)


def stimulus_set_from_csv(stimuli_csv: str | Path):
    """A ``StimulusSet`` from a table with columns ``stimulus_id``, ``filename`` (relative to the CSV's folder) and
    any other metadata (``object_name``, ``image_label``, ...)."""
    import pandas as pd
    from brainscore_core.supported_data_standards.brainio.stimuli import StimulusSet

    stimuli_csv = Path(stimuli_csv)
    table = pd.read_csv(stimuli_csv)
    for column in ("stimulus_id", "filename"):
        if column not in table:
            raise ValueError(f"{stimuli_csv} has no column {column!r} (needs stimulus_id, filename)")
    stimulus_set = StimulusSet(table.drop(columns="filename"))
    stimulus_set.stimulus_paths = {sid: str(stimuli_csv.parent / name)
                                   for sid, name in zip(table["stimulus_id"], table["filename"])}
    stimulus_set.identifier = stimuli_csv.stem
    missing_files = [p for p in stimulus_set.stimulus_paths.values() if not Path(p).is_file()]
    if missing_files:
        raise FileNotFoundError(f"{len(missing_files)} stimulus files listed in {stimuli_csv} do not exist, "
                                f"e.g. {missing_files[0]}")
    return stimulus_set


def from_files(assembly_path: str | Path, stimuli_csv: str | Path, region: str, **kwargs) -> RegionTarget:
    """A target from a lab's own files (formats in README, "Committing on your own recordings"):

    * ``assembly_path``: an xarray netCDF file of a DataArray with dims ``presentation x neuroid`` (optionally
      ``x time_bin``), presentation coords ``stimulus_id`` (+ optional ``repetition``, ``object_name``), neuroid
      coord ``neuroid_id``; MultiIndexes reset before saving (``assembly.reset_index(list(assembly.dims))``);
    * ``stimuli_csv``: see :func:`stimulus_set_from_csv`.
    """
    import xarray as xr
    from brainscore_core.supported_data_standards.brainio.assemblies import NeuroidAssembly

    assembly = NeuroidAssembly(xr.load_dataarray(assembly_path))
    assembly.attrs["stimulus_set"] = stimulus_set_from_csv(stimuli_csv)
    return from_assembly(assembly, region, identifier=kwargs.pop("identifier", Path(assembly_path).stem), **kwargs)
