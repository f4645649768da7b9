"""Brain-Score's split and aggregation semantics in the edge cases: a benchmark's own split settings, missing
stratification coordinates, NaN correlations, several time bins. Offline, on small synthetic assemblies."""
import warnings

import numpy as np
import pytest
import torch
from scipy.stats import pearsonr

from region_commitment import targets as targets_module
from region_commitment import from_assembly, from_benchmark, from_files
from region_commitment.pls import cross_validated_score, pearson_per_neuroid, split_medians

OBJECTS, PER_OBJECT, NEUROIDS, REPETITIONS, FEATURES = ("a", "b", "c", "d"), 13, 12, 3, 40
BINS = [(70, 120), (120, 170), (170, 220)]


def _stimuli():
    from brainscore_core.supported_data_standards.brainio.stimuli import StimulusSet
    ids = [f"{obj}-{i:02d}" for obj in OBJECTS for i in range(PER_OBJECT)]
    stimuli = StimulusSet({"stimulus_id": ids, "object_name": [s[0] for s in ids]})
    stimuli.stimulus_paths = {s: f"{s}.png" for s in ids}
    stimuli.identifier = "cv-semantics"
    return stimuli


def _features(seed=0):
    """Stimuli x features with a well-separated spectrum (sklearn's NIPALS converges fast)."""
    rng = np.random.default_rng(seed)
    n = len(OBJECTS) * PER_OBJECT
    return (rng.normal(size=(n, 8)) * 0.6 ** np.arange(8)) @ rng.normal(size=(8, FEATURES)) + \
        0.01 * rng.normal(size=(n, FEATURES))


def _assembly(values, stimuli, bins=BINS[:1], object_name=True):
    """A repeated ``NeuroidAssembly`` (presentation x neuroid x time_bin) of ``values`` (repetitions x stimuli x
    neuroids x bins), in Brain-Score's format."""
    from brainscore_core.supported_data_standards.brainio.assemblies import NeuroidAssembly
    repetitions, n, neuroids, _ = values.shape
    coords = {"stimulus_id": ("presentation", np.tile(stimuli["stimulus_id"].values, repetitions)),
              "repetition": ("presentation", np.repeat(np.arange(repetitions), n)),
              "neuroid_id": ("neuroid", [f"n{i}" for i in range(neuroids)]),
              "region": ("neuroid", ["IT"] * neuroids),
              "time_bin_start": ("time_bin", [start for start, _ in bins]),
              "time_bin_end": ("time_bin", [end for _, end in bins])}
    if object_name:
        coords["object_name"] = ("presentation", np.tile(stimuli["object_name"].values, repetitions))
    assembly = NeuroidAssembly(values.reshape(repetitions * n, neuroids, len(bins)), coords=coords,
                               dims=["presentation", "neuroid", "time_bin"])
    assembly.attrs["stimulus_set"] = stimuli
    return assembly


def _responses(features, seed=1, bins=1):
    rng = np.random.default_rng(seed)
    signal = features @ rng.normal(size=(FEATURES, NEUROIDS)) / np.sqrt(FEATURES)
    noise = rng.normal(size=(REPETITIONS, *signal.shape, bins))
    return signal[None, ..., None] + 0.5 * noise


def _benchmark(stimuli, values, identifier, n_components=25, **crossvalidation_kwargs):
    """A ``NeuralBenchmark`` on the repetition-averaged assembly with Brain-Score's own PLS metric (NIPALS run to
    convergence: at sklearn's default tolerance it stops ~1e-5 short of the PLS our batched PLS computes exactly)."""
    from brainscore_core.metrics import Score
    from brainscore_vision.benchmark_helpers.neural_common import NeuralBenchmark, average_repetition
    from brainscore_vision.metrics.regression_correlation.metric import (CrossRegressedCorrelation,
                                                                        pearsonr_correlation, pls_regression)
    assembly = average_repetition(_assembly(values, stimuli).squeeze("time_bin"))
    converged = dict(n_components=n_components, tol=1e-12, max_iter=10_000)
    metric = CrossRegressedCorrelation(regression=pls_regression(converged),
                                       correlation=pearsonr_correlation(),
                                       crossvalidation_kwargs=crossvalidation_kwargs)
    return NeuralBenchmark(identifier=identifier, assembly=assembly, similarity_metric=metric, version=1,
                           visual_degrees=8, number_of_trials=1, ceiling_func=lambda: Score(0.8), parent="IT",
                           bibtex="")


def _brainscore_splits(benchmark):
    """The (train, test) stimulus ids the benchmark's PLS metric fits and tests on, recorded from its own
    ``CrossValidation`` run."""
    from brainscore_core.metrics import Score
    recorded = []

    def record(source_train, target_train, source_test, target_test):
        recorded.append((set(target_train["stimulus_id"].values), set(target_test["stimulus_id"].values)))
        return Score(0.0)

    assembly = benchmark._assembly
    benchmark._similarity_metric.cross_validation(assembly, assembly, apply=record)
    return recorded


def _ids(target):
    return [(set(target.stimulus_ids[train]), set(target.stimulus_ids[test])) for train, test in target.splits]


def _source(features, stimuli):
    """Model features as the assembly Brain-Score's metric takes."""
    from brainscore_core.supported_data_standards.brainio.assemblies import NeuroidAssembly
    return NeuroidAssembly(features, dims=["presentation", "neuroid"],
                           coords={"stimulus_id": ("presentation", stimuli["stimulus_id"].values),
                                   "object_name": ("presentation", stimuli["object_name"].values),
                                   "neuroid_id": ("neuroid", np.arange(features.shape[1]))})


def _rows(target, stimuli):
    return [list(stimuli["stimulus_id"].values).index(s) for s in target.stimulus_ids]


def test_local_defaults_are_brainscores():
    from brainscore_vision.metric_helpers.transformations import Split
    assert (targets_module.SPLITS, targets_module.TRAIN_SIZE, targets_module.RANDOM_STATE,
            targets_module.STRATIFICATION_COORD) == (Split.Defaults.splits, Split.Defaults.train_size,
                                                     Split.Defaults.random_state, Split.Defaults.stratification_coord)
    stimuli = _stimuli()
    values = _responses(_features(), bins=1)
    ours = from_assembly(_assembly(values, stimuli), "IT", ceiling=0.8)
    assert _ids(ours) == _brainscore_splits(_benchmark(stimuli, values, "cv.default"))  # load_metric('pls') defaults


@pytest.mark.parametrize("kwargs", [dict(random_state=7, splits=5, stratification_coord="object_name"),
                                    dict(kfold=True, splits=5, random_state=3),
                                    dict(random_state=11, train_size=0.7, stratification_coord=None)])
def test_benchmark_splits_are_its_metrics_own(kwargs):
    stimuli = _stimuli()
    values = _responses(_features(), bins=1)
    benchmark = _benchmark(stimuli, values, "cv.settings", **kwargs)
    ours = from_benchmark(benchmark)
    assert _ids(ours) == _brainscore_splits(benchmark)
    assert _ids(ours) != _ids(from_assembly(_assembly(values, stimuli), "IT", ceiling=0.8))  # the settings matter
    local = from_assembly(_assembly(values, stimuli, object_name=kwargs.get("stratification_coord", 1) is not None),
                          "IT", ceiling=0.8, **kwargs)
    assert _ids(local) == _ids(ours)


def test_missing_stratification_coordinate_is_an_error():
    stimuli = _stimuli()
    values = _responses(_features(), bins=1)
    with pytest.raises(ValueError, match="'object_name'.*stratification_coord=None"):
        from_assembly(_assembly(values, stimuli, object_name=False), "IT", ceiling=0.8)
    benchmark = _benchmark(stimuli, values, "cv.texture", stratification_coord="texture_type")
    with pytest.raises(ValueError, match="'texture_type'"):
        from_benchmark(benchmark)
    unstratified = from_assembly(_assembly(values, stimuli, object_name=False), "IT", ceiling=0.8,
                                 stratification_coord=None)
    assert _ids(unstratified) == _brainscore_splits(_benchmark(stimuli, values, "cv.none", stratification_coord=None))


def _write_files(tmp_path, stimuli, values, object_name):
    stimulus_table = stimuli.drop(columns="object_name") if not object_name else stimuli
    table = stimulus_table.assign(filename=[f"{s}.png" for s in stimuli["stimulus_id"]])
    for name in table["filename"]:
        (tmp_path / name).touch()
    table.to_csv(tmp_path / "stimuli.csv", index=False)
    assembly = _assembly(values, stimuli, object_name=object_name)
    del assembly.attrs["stimulus_set"]  # the StimulusSet travels as the CSV
    assembly.reset_index(list(assembly.dims)).to_netcdf(tmp_path / "it.nc")
    return tmp_path / "it.nc", tmp_path / "stimuli.csv"


@pytest.mark.parametrize("object_name", [True, False])
def test_local_files_stratify_by_object_name_where_present(tmp_path, object_name):
    stimuli = _stimuli()
    values = _responses(_features(), bins=1)
    files = _write_files(tmp_path, stimuli, values, object_name)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        ours = from_files(*files, "IT", ceiling=0.8)
    assert any("not stratified" in str(w.message) for w in caught) != object_name
    expected = from_assembly(_assembly(values, stimuli, object_name=object_name), "IT", ceiling=0.8,
                             stratification_coord="object_name" if object_name else None)
    assert _ids(ours) == _ids(expected)
    if not object_name:
        with pytest.raises(ValueError, match="'object_name'.*stratification_coord=None"):
            from_files(*files, "IT", ceiling=0.8, stratification_coord="object_name")


def test_pearson_is_scipys_with_nan_for_constant_inputs():
    rng = np.random.default_rng(0)
    prediction, target = rng.normal(size=(2, 6, 5)), rng.normal(size=(2, 6, 5))
    prediction[0, :, 1] = 0.1  # its mean rounds: centred, not exactly zero
    target[1, :, 3] = -1.0
    for p, t in ((prediction, target), (prediction[:, :2], target[:, :2])):
        ours = pearson_per_neuroid(torch.from_numpy(p), torch.from_numpy(t)).numpy()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            theirs = np.array([[pearsonr(t[s, :, i], p[s, :, i])[0] for i in range(5)] for s in range(2)])
        np.testing.assert_allclose(ours, theirs, atol=1e-12)  # NaN where theirs is NaN
        assert np.isnan(ours).sum() == 2


def test_nan_correlations_are_skipped_as_brainscore_skips_them():
    """A neuroid constant on one fold's test stimuli, and a fold whose test stimuli all look alike to the model
    (every r NaN): our score equals Brain-Score's own PLS metric on the same data and splits."""
    stimuli = _stimuli()
    features = _features()
    values = _responses(features, bins=1)
    benchmark = _benchmark(stimuli, values, "cv.nan", n_components=5, kfold=True, splits=5, random_state=2)
    target_assembly = benchmark._assembly
    test_ids = [sorted(test) for _, test in _brainscore_splits(benchmark)]
    rows = np.isin(target_assembly["stimulus_id"].values, test_ids[0])
    target_assembly.values[rows, 0] = 3.0  # neuroid 0 constant on fold 0's test stimuli
    same = np.isin(stimuli["stimulus_id"].values, test_ids[2])
    features[same] = features[same][0]  # fold 2's test stimuli identical to the model: constant predictions
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        theirs = benchmark._similarity_metric(_source(features, stimuli), target_assembly)
    target = from_benchmark(benchmark)
    medians = split_medians(features[_rows(target, stimuli)], target.responses, target.splits, target.n_components)
    assert np.isnan(medians).tolist() == [False, False, True, False, False]
    assert np.isnan(theirs.raw.values).sum() == 1 + NEUROIDS  # r per split and neuroid
    np.testing.assert_allclose(medians, theirs.raw.median("neuroid").values, atol=1e-6)
    ours, _ = cross_validated_score(features[_rows(target, stimuli)], target.responses, target.splits,
                                    target.n_components)
    assert not np.isnan(ours) and ours == pytest.approx(float(theirs), abs=1e-6)


def test_a_split_of_nan_everywhere_gives_nan():
    features = np.ones((20, 4))
    responses = np.random.default_rng(0).normal(size=(20, 3))
    splits = [(np.arange(10), np.arange(10, 20)), (np.arange(10, 20), np.arange(10))]
    assert np.isnan(cross_validated_score(features, responses, splits, 2)[0])


def test_several_time_bins_are_averaged_over_the_window():
    stimuli = _stimuli()
    values = _responses(_features(), bins=len(BINS))
    assembly = _assembly(values, stimuli, bins=BINS)
    order = _rows(from_assembly(assembly, "IT", ceiling=0.8), stimuli)
    default = from_assembly(assembly, "IT", ceiling=0.8)  # 70-170 ms: the first two bins
    np.testing.assert_allclose(default.responses, values[..., :2].mean(axis=(0, 3))[order], atol=1e-12)
    late = from_assembly(assembly, "IT", ceiling=0.8, time_bin=(150, 250))  # only 170-220 lies within
    np.testing.assert_allclose(late.responses, values[..., 2].mean(axis=0)[order], atol=1e-12)
    with pytest.raises(ValueError, match="no time bin lies within 300-400 ms.*70-120, 120-170, 170-220"):
        from_assembly(assembly, "IT", ceiling=0.8, time_bin=(300, 400))
