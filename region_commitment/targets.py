"""What a region is committed against: stimuli, target responses, cross-validation splits, PLS size, ceiling.

A target is read from a Brain-Score ``NeuralBenchmark`` (an identifier such as ``MajajHong2015public.IT-pls``, or
a benchmark object built on a local assembly), or built from any local ``NeuroidAssembly`` with its
``StimulusSet``. The splits are made by Brain-Score's own ``Split`` (a benchmark's own, with its seed, folds and
stratification), so they are the very splits its PLS metric would use.
"""
from __future__ import annotations

import hashlib
import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

import numpy as np

from . import brainscore_internals
from .errors import InvalidTargetError
from .pls import cross_validated_score

if TYPE_CHECKING:
    from .protocol import LayerView

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
    """A neural target (:class:`~region_commitment.protocol.Target`): cross-validated PLS from the layer's PCA
    projection of its stimuli."""
    region: str
    identifier: str
    stimulus_set: object          # StimulusSet as the model sees it (placed on screen)
    stimulus_ids: np.ndarray      # row order of ``responses``
    responses: np.ndarray         # stimuli x neuroids, repetitions averaged, bad neuroids removed
    splits: list                  # [(train row indices, test row indices)], Brain-Score's splits
    n_components: int             # PLS components
    ceiling: float
    excluded_neuroids: int = 0
    needs_reference: ClassVar[bool] = True

    def image_paths(self) -> list[str]:
        """The stimuli, in the rows' order."""
        return [str(self.stimulus_set.get_stimulus(s)) for s in self.stimulus_ids]

    def fingerprint(self) -> str:
        """sha256 of the responses and the splits."""
        splits = np.concatenate([np.concatenate(split) for split in self.splits])
        return hashlib.sha256(self.responses.tobytes() + splits.tobytes()).hexdigest()

    def score(self, layer: LayerView) -> tuple[float, float, float]:
        """(mean over splits of the median r over neuroids, its standard error, ``r**2 / ceiling`` as Brain-Score's
        ``explained_variance`` ceils it) of PLS from the layer's PCA projection."""
        raw, error = cross_validated_score(layer.projected(self.image_paths()), self.responses, self.splits,
                                           self.n_components)
        return raw, error, raw ** 2 / self.ceiling


def _has_coord(assembly, name: str) -> bool:
    """Coordinates of a Brain-Score assembly may be levels of a dimension's MultiIndex."""
    try:
        assembly[name]
        return True
    except KeyError:
        return False


def _coordinates(assembly) -> list[str]:
    """The assembly's coordinate names, the levels of a MultiIndex included."""
    names = []
    for name in assembly.coords:
        index = assembly.indexes.get(name)
        names += list(index.names) if getattr(index, "nlevels", 1) > 1 else [name]
    return list(dict.fromkeys(names))


def check_dimensions(identifier: str, assembly, dims: tuple[str, ...], coords: tuple[str, ...], needs: str,
                     optional: tuple[str, ...] | None = None) -> None:
    """The assembly has the dimensions ``dims`` (and, where ``optional`` is given, no others than those) and the
    coordinates ``coords``; ``needs`` says in words what it should look like.

    Raises:
        InvalidTargetError: naming what is missing (or unexpected) and what the assembly has.
    """
    present = _coordinates(assembly)
    missing_dims = [d for d in dims if d not in assembly.dims]
    extra_dims = [d for d in assembly.dims if optional is not None and d not in dims + optional]
    missing_coords = [c for c in coords if c not in present]
    problems = [f"lacks the dimension(s) {missing_dims}"] * bool(missing_dims) + \
               [f"has the unexpected dimension(s) {extra_dims}"] * bool(extra_dims) + \
               [f"lacks the coordinate(s) {missing_coords}"] * bool(missing_coords)
    if problems:
        raise InvalidTargetError(f"{identifier}: the assembly {' and '.join(problems)} (its dimensions: "
                                 f"{list(assembly.dims)}, its coordinates: {present}); it needs {needs}")


def _conflicting_ids(table) -> list:
    """Stimulus ids listed in several rows of ``table`` that differ (identical rows are the same stimulus)."""
    repeated = table[table["stimulus_id"].duplicated(keep=False)]
    return [stimulus_id for stimulus_id, rows in repeated.astype(str).groupby(repeated["stimulus_id"])
            if len(rows.drop_duplicates()) > 1]


def check_unique_stimuli(identifier: str, stimulus_set) -> None:
    """A stimulus id listed in several rows of a stimulus set must have the same metadata in each.

    Raises:
        InvalidTargetError: ids whose rows differ.
    """
    conflicting = _conflicting_ids(stimulus_set)
    if conflicting:
        raise InvalidTargetError(f"{identifier}: stimulus ids {conflicting[:5]} ({len(conflicting)} in all) are "
                                 f"listed in several rows of the stimulus set with different metadata; list each "
                                 f"stimulus once")


def _valid_neuroids(values: np.ndarray, identifier: str) -> np.ndarray:
    keep = np.isfinite(values).all(axis=0) & (np.nanstd(values, axis=0) > 0)
    if not keep.any():
        raise InvalidTargetError(f"{identifier}: every neuroid is NaN or constant; nothing to predict")
    if not keep.all():
        warnings.warn(f"{identifier}: excluded {int((~keep).sum())} of {keep.size} neuroids that are NaN or constant")
    return keep


def check_stimulus_ids(identifier: str, stimulus_ids, stimulus_set) -> None:
    """Every stimulus id of an assembly must be in its stimulus set."""
    missing = sorted(set(stimulus_ids) - set(stimulus_set["stimulus_id"].values))
    if missing:
        raise InvalidTargetError(f"{identifier}: {len(missing)} stimulus ids of the assembly are not in its stimulus "
                                 f"set (e.g. {missing[:3]}); the assembly and the StimulusSet do not belong together")


# Brain-Score's ``Split.Defaults`` (and ``CrossRegressedCorrelation``'s train_size), so that a local assembly is split
# as a benchmark built on it with ``load_metric('pls')`` would split it
SPLITS, TRAIN_SIZE, RANDOM_STATE, STRATIFICATION_COORD = 10, 0.9, 1, "object_name"
# time bins averaged when an assembly has several: MajajHong2015's single bin, inside FreemanZiemba2013's 50-200 ms
DEFAULT_TIME_WINDOW = (70, 170)


def _average_time_bins(assembly, time_bin: tuple[float, float] | None, identifier: str):
    """The responses averaged over the time bins lying within ``time_bin = (start, end)`` ms; with ``None``, a single
    bin is used as it is and several are averaged over :data:`DEFAULT_TIME_WINDOW`."""
    if "time_bin" not in assembly.dims:
        return assembly
    if time_bin is None and assembly.sizes["time_bin"] == 1:
        return assembly.squeeze("time_bin")
    start, end = time_bin or DEFAULT_TIME_WINDOW
    if not (_has_coord(assembly, "time_bin_start") and _has_coord(assembly, "time_bin_end")):
        raise InvalidTargetError(f"{identifier}: its time bins have no time_bin_start / time_bin_end coordinates "
                                 f"(ms); add them to select the bins within {start}-{end} ms")
    starts, ends = assembly["time_bin_start"].values, assembly["time_bin_end"].values
    inside = (starts >= start) & (ends <= end)
    if not inside.any():
        bins = ", ".join(f"{s}-{e}" for s, e in zip(starts, ends))
        raise InvalidTargetError(f"{identifier}: no time bin lies within {start}-{end} ms (its bins: {bins} ms); "
                                 f"pass time_bin=(start, end) spanning at least one")
    return assembly.isel(time_bin=np.flatnonzero(inside)).mean("time_bin", keep_attrs=True)


def _average_repetitions(assembly):
    """Brain-Score's ``average_repetition``, keeping the ``presentation`` dimension where ``stimulus_id`` is the only
    coordinate left to group by (xarray then names the dimension after it)."""
    from brainscore_vision.benchmark_helpers.neural_common import average_repetition

    averaged = average_repetition(assembly)
    if "presentation" in averaged.dims:
        return averaged
    return averaged.rename(stimulus_id="presentation").assign_coords(
        stimulus_id=("presentation", averaged["stimulus_id"].values))


def _split_rows(split, assembly, identifier: str) -> list:
    """The (train rows, test rows) of ``assembly`` that Brain-Score's ``Split`` gives its PLS metric: the rows whose
    split coordinate has the values of each split (as its ``subset`` selects them)."""
    coord, stratification, n_splits = brainscore_internals.split_settings(split)
    if stratification and not _has_coord(assembly, stratification):
        raise InvalidTargetError(f"{identifier}: the splits are stratified by {stratification!r}, which the "
                                 f"assembly lacks; add it as a presentation coordinate, or pass "
                                 f"stratification_coord=None to split without")
    if len(assembly[coord]) < n_splits:
        raise InvalidTargetError(f"{identifier}: {len(assembly[coord])} stimuli are fewer than the {n_splits} "
                                 f"cross-validation splits")
    try:
        values, splits = split.build_splits(assembly)
    except ValueError as error:
        if not stratification:
            raise InvalidTargetError(f"{identifier}: Brain-Score cannot split it: {error}") from error
        _, first = np.unique(assembly[coord].values, return_index=True)
        classes, counts = np.unique(assembly[stratification].values[first], return_counts=True)
        raise InvalidTargetError(
            f"{identifier}: too few stimuli per {stratification!r} class for {n_splits} stratified splits (stimuli "
            f"per class: {dict(zip(map(str, classes), map(int, counts)))}; scikit-learn: {error}); add stimuli, "
            f"or pass fewer splits or stratification_coord=None") from error
    values, rows = np.asarray(values.values), assembly[coord].values
    return [(np.flatnonzero(np.isin(rows, values[train])), np.flatnonzero(np.isin(rows, values[test])))
            for train, test in splits]


def _target(assembly, region: str, split, ceiling: float | None, identifier: str, n_components: int,
            time_bin: tuple[float, float] | None, visual_degrees: int | None,
            model_visual_degrees: int) -> RegionTarget:
    """A target from ``assembly`` cross-validated by a Brain-Score ``Split`` (see :func:`from_assembly`)."""
    from brainscore_vision.benchmark_helpers.screen import place_on_screen

    stimulus_set = assembly.attrs.get("stimulus_set")
    if stimulus_set is None:
        raise InvalidTargetError(f"{identifier}: the assembly has no attrs['stimulus_set']; attach its StimulusSet")
    check_dimensions(identifier, assembly, ("presentation", "neuroid"), ("stimulus_id",), optional=("time_bin",),
                     needs="the dimensions presentation x neuroid (x time_bin) and a stimulus_id coordinate along "
                           "presentation")
    assembly = _average_time_bins(assembly, time_bin, identifier)
    repeated = _has_coord(assembly, "repetition")
    averaged = (_average_repetitions(assembly) if repeated else assembly).transpose("presentation", "neuroid")
    stimulus_ids = averaged["stimulus_id"].values
    check_stimulus_ids(identifier, stimulus_ids, stimulus_set)
    splits = _split_rows(split, averaged, identifier)  # before the ceiling: a data error surfaces at once
    if ceiling is None:
        if repeated and len(np.unique(assembly["repetition"])) > 1:
            from brainscore_vision import load_ceiling
            ceiling = float(load_ceiling("internal_consistency")(assembly))
        else:
            warnings.warn(f"{identifier}: no repetitions to estimate a ceiling from; using 1.0")
            ceiling = 1.0
    if visual_degrees is not None:
        stimulus_set = place_on_screen(stimulus_set, target_visual_degrees=model_visual_degrees,
                                       source_visual_degrees=visual_degrees)
    responses = averaged.values.astype(np.float64)
    keep = _valid_neuroids(responses, identifier)
    return RegionTarget(region=region, identifier=identifier, stimulus_set=stimulus_set, stimulus_ids=stimulus_ids,
                        responses=responses[:, keep], splits=splits, n_components=n_components,
                        ceiling=float(ceiling), excluded_neuroids=int((~keep).sum()))


def from_assembly(assembly, region: str, ceiling: float | None = None, identifier: str | None = None,
                  n_components: int = 25, stratification_coord: str | None = STRATIFICATION_COORD,
                  splits: int = SPLITS, train_size: float = TRAIN_SIZE, kfold: bool = False,
                  random_state: int = RANDOM_STATE, time_bin: tuple[float, float] | None = None,
                  visual_degrees: int | None = None, model_visual_degrees: int = 8) -> RegionTarget:
    """A target from a ``NeuroidAssembly`` whose ``stimulus_set`` attribute holds the stimuli.

    Split as Brain-Score's ``load_metric('pls')`` splits it by default: ``splits`` stratified shuffle splits of
    ``train_size`` by ``stimulus_id`` with seed ``random_state``, stratified by ``stratification_coord`` (an error
    where the assembly lacks it; ``None``: not stratified); ``kfold=True``: ``splits`` shuffled folds instead.
    A single time bin is used as it is; several are averaged over those within ``time_bin = (start, end)`` ms
    (default :data:`DEFAULT_TIME_WINDOW`), and a given ``time_bin`` always applies. Repetitions (a ``repetition``
    coordinate) are averaged; without an explicit ``ceiling`` it is Brain-Score's split-half internal consistency
    over repetitions (1.0, with a warning, when there are none).

    Raises:
        InvalidTargetError: no attached stimulus set, missing dimensions or coordinates, stimulus ids missing from
            the stimulus set or listed there twice with different metadata, no usable time bin, fewer stimuli than
            splits or too few per stratification class, a missing stratification coordinate, only NaN or constant
            neuroids, or ``kfold=True`` with another ``train_size``.
    """
    from brainscore_vision.metric_helpers.transformations import Split

    if kfold and train_size != TRAIN_SIZE:
        raise InvalidTargetError(f"kfold=True splits into {splits} equal folds; leave train_size at {TRAIN_SIZE}")
    identifier = identifier or f"{region}-assembly"
    if assembly.attrs.get("stimulus_set") is not None:
        check_unique_stimuli(identifier, assembly.attrs["stimulus_set"])
    split = Split(splits=splits, train_size=train_size, stratification_coord=stratification_coord, kfold=kfold,
                  random_state=random_state)
    return _target(assembly, region, split, ceiling, identifier, n_components, time_bin,
                   visual_degrees, model_visual_degrees)


def from_benchmark(benchmark, region: str | None = None, model_visual_degrees: int = 8) -> RegionTarget:
    """A target from a ``NeuralBenchmark`` object or identifier: its assembly, ceiling, PLS size and its metric's own
    ``Split`` (seed, folds, stratification, split coordinate), so the splits are those its PLS metric uses.

    Raises:
        BenchmarkUnavailableError: an identifier that cannot be loaded (no plugin, data not cached nor reachable).
        InvalidTargetError: not a cross-validated PLS benchmark, or its data cannot make a target
            (:func:`from_assembly`).
    """
    if isinstance(benchmark, str):
        benchmark = brainscore_internals.load_benchmark(benchmark)
    assembly, visual_degrees, n_components, split = brainscore_internals.neural_benchmark_parts(benchmark)
    return _target(assembly, region or benchmark.region, split, float(benchmark.ceiling), benchmark.identifier,
                   n_components, None, visual_degrees, model_visual_degrees)


def stimulus_set_from_csv(stimuli_csv: str | Path):
    """A ``StimulusSet`` from a table with columns ``stimulus_id``, ``filename`` (relative to the CSV's folder) and
    any other metadata (``object_name``, ``image_label``, ...).

    A stimulus listed in several identical rows (the same file, once resolved) is kept once.

    Raises:
        InvalidTargetError: a column is missing, or a stimulus id is listed with different files or metadata.
        FileNotFoundError: a listed image file does not exist.
    """
    import pandas as pd
    from brainscore_core.supported_data_standards.brainio.stimuli import StimulusSet

    stimuli_csv = Path(stimuli_csv)
    table = pd.read_csv(stimuli_csv)
    for column in ("stimulus_id", "filename"):
        if column not in table:
            raise InvalidTargetError(f"{stimuli_csv} has no column {column!r} (needs stimulus_id, filename)")
    table["filename"] = [os.path.normpath(stimuli_csv.parent / str(name)) for name in table["filename"]]
    conflicting = _conflicting_ids(table)
    if conflicting:
        raise InvalidTargetError(f"{stimuli_csv}: stimulus ids {conflicting[:5]} ({len(conflicting)} in all) are "
                                 f"listed in several rows with different files or metadata; list each stimulus once")
    table = table.drop_duplicates(ignore_index=True)
    stimulus_set = StimulusSet(table.drop(columns="filename"))
    stimulus_set.stimulus_paths = dict(zip(table["stimulus_id"], table["filename"]))
    stimulus_set.identifier = stimuli_csv.stem
    missing_files = [p for p in stimulus_set.stimulus_paths.values() if not Path(p).is_file()]
    if missing_files:
        raise FileNotFoundError(f"{len(missing_files)} stimulus files listed in {stimuli_csv} do not exist, "
                                f"e.g. {missing_files[0]}")
    return stimulus_set


_NETCDF_SIGNATURES = (b"CDF\x01", b"CDF\x02", b"CDF\x05", b"\x89HDF\r\n\x1a\n")  # classic, 64-bit, netCDF-4


def load_netcdf(path: str | Path):
    """The DataArray in the netCDF file ``path``, once it is known to be one (a CSV or a folder given in its place is
    named, not passed to xarray).

    Raises:
        FileNotFoundError: no such file. InvalidTargetError: not a netCDF file, or no DataArray in it.
    """
    import xarray as xr

    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"the assembly {path} does not exist")
    if not path.is_file():
        raise InvalidTargetError(f"the assembly {path} is a folder, not a netCDF file; pass the .nc file written by "
                                 f"assembly.to_netcdf(path)")
    with open(path, "rb") as file:
        start = file.read(8)
    if not start.startswith(_NETCDF_SIGNATURES):
        raise InvalidTargetError(f"the assembly {path} is not a netCDF file (it starts {start[:8]!r}); pass the .nc "
                                 f"file written by assembly.to_netcdf(path), and the CSV of stimuli second")
    try:
        return xr.load_dataarray(path)
    except (ValueError, OSError) as error:
        line = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise InvalidTargetError(f"the assembly {path} holds no readable DataArray ({line}); save one DataArray "
                                 f"with assembly.to_netcdf(path)") from None


def from_files(assembly_path: str | Path, stimuli_csv: str | Path, region: str,
               stratification_coord: str | None = "auto", **kwargs) -> RegionTarget:
    """A target from a lab's own files (formats: docs/design/region-commitment.md, "Committing on your own
    recordings"):

    * ``assembly_path``: an xarray netCDF file of a DataArray with dims ``presentation x neuroid`` (optionally
      ``x time_bin``, with time_bin coords ``time_bin_start``, ``time_bin_end`` in ms), presentation coords
      ``stimulus_id`` (+ optional ``repetition``, ``object_name``), neuroid coord ``neuroid_id``; MultiIndexes reset
      before saving (``assembly.reset_index(list(assembly.dims))``);
    * ``stimuli_csv``: see :func:`stimulus_set_from_csv`.

    ``stratification_coord="auto"`` stratifies the splits by ``object_name`` where the assembly has it and otherwise
    splits without stratification, with a warning; other keywords (``time_bin``, ``random_state``, ...) are those of
    :func:`from_assembly`.

    Raises:
        InvalidTargetError: as :func:`from_assembly`, or a CSV without its columns.
        FileNotFoundError: a missing assembly or image file.
    """
    from brainscore_core.supported_data_standards.brainio.assemblies import NeuroidAssembly

    assembly = NeuroidAssembly(load_netcdf(assembly_path))
    assembly.attrs["stimulus_set"] = stimulus_set_from_csv(stimuli_csv)
    identifier = kwargs.pop("identifier", Path(assembly_path).stem)
    if stratification_coord == "auto":
        stratification_coord = STRATIFICATION_COORD if _has_coord(assembly, STRATIFICATION_COORD) else None
        if stratification_coord is None:
            warnings.warn(f"{identifier}: no {STRATIFICATION_COORD!r} presentation coordinate, so the splits are not "
                          f"stratified; add it to stratify by object, or pass stratification_coord=<coordinate>")
    return from_assembly(assembly, region, identifier=identifier, stratification_coord=stratification_coord,
                         **kwargs)
