"""region_commitment on planted ground truth, against Brain-Score's own LayerSelection and behavioral readout, and
on bad input."""
import json
import warnings

import numpy as np
import pytest
import torch
import torchvision

from brainscore_plugins import synthetic_recordings
from brainscore_plugins.preprocessing import preprocessing_for
from brainscore_plugins.benchmarks.bsp_synthetic.benchmark import SyntheticBehaviorBenchmark
from region_commitment import candidate_layers, commit, from_assembly, from_behavioral_assembly
from region_commitment.reference import default_reference_images

LAYERS = ["layer1.0", "layer1.1", "layer2.0", "layer2.1", "layer3.0", "layer3.1", "layer4.0", "layer4.1", "avgpool"]
PLANTED = {"V1": "layer1.1", "V2": "layer2.1", "V4": "layer3.1", "IT": "layer4.0"}
PLANTED_READOUT = "layer3.1"
N_REFERENCE = 120


def _wrapper(identifier="resnet18-random"):
    from brainscore_vision.model_helpers.activations.pytorch import PytorchWrapper
    torch.manual_seed(0)
    model = torchvision.models.resnet18()
    return PytorchWrapper(identifier=identifier, model=model, preprocessing=preprocessing_for(128, 112, "bilinear"))


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("commitment")
    wrapper = _wrapper()
    stimuli = synthetic_recordings.stimulus_set(root / "stimuli", n_per_object=25, size=96)
    reference = [str(p) for p in default_reference_images(root / "cache", n=N_REFERENCE)]
    stimulus_paths = [str(stimuli.get_stimulus(s)) for s in stimuli["stimulus_id"]]
    activations = wrapper.get_activations(wrapper._extractor.preprocess(reference + stimulus_paths),
                                          list(PLANTED.values()))
    targets = {}
    for i, (region, layer) in enumerate(PLANTED.items()):
        flat = activations[layer].reshape(len(reference) + len(stimulus_paths), -1).astype(np.float64)
        responses = synthetic_recordings.planted_responses(flat[:N_REFERENCE], flat[N_REFERENCE:], seed=i)
        assembly = synthetic_recordings.repeated_assembly(stimuli, responses, region, noise=0.3, seed=i)
        targets[region] = from_assembly(assembly, region, identifier=f"planted-{region}")
    return wrapper, targets, root


def _brainscore_probabilities(wrapper, layer, fitting, stimuli):
    """Brain-Score's own ProbabilitiesMapping classifier on ``layer``'s raw activations (stimuli x objects)."""
    from brainscore_core.supported_data_standards.brainio.assemblies import NeuroidAssembly
    from brainscore_vision.model_helpers.brain_transformation.behavior import ProbabilitiesMapping

    def assembly(stimulus_set):
        paths = [str(stimulus_set.get_stimulus(s)) for s in stimulus_set["stimulus_id"]]
        flat = wrapper.get_activations(wrapper._extractor.preprocess(paths), [layer])[layer].reshape(len(paths), -1)
        coords = {column: ("presentation", stimulus_set[column].values) for column in stimulus_set.columns}
        return NeuroidAssembly(flat, coords={**coords, "neuroid_id": ("neuroid", np.arange(flat.shape[1]))},
                               dims=["presentation", "neuroid"])

    classifier = ProbabilitiesMapping.ProbabilitiesClassifier()
    fit = assembly(fitting)
    classifier.fit(fit, fit["image_label"])
    proba = classifier.predict_proba(assembly(stimuli))
    return proba.values[:, [list(proba["choice"].values).index(obj) for obj in synthetic_recordings.OBJECTS]]


@pytest.fixture(scope="module")
def behavior_benchmark(setup):
    """Rajalingham2018-style trials of an observer whose choice probabilities are Brain-Score's readout of
    PLANTED_READOUT (50 trials per image and distractor)."""
    wrapper, _, root = setup
    fitting = synthetic_recordings.fitting_stimuli(root / "fitting", n_per_object=40)
    stimuli = synthetic_recordings.stimulus_set(root / "trials", n_per_object=25, seed=5, identifier="bsp-trials")
    probabilities = _brainscore_probabilities(wrapper, PLANTED_READOUT, fitting, stimuli)
    trials = synthetic_recordings.behavioral_trials(stimuli, probabilities)
    return SyntheticBehaviorBenchmark(fitting, trials, identifier="planted-i2n")


def test_candidate_layer_rule():
    assert candidate_layers(torchvision.models.resnet18()) == LAYERS
    assert candidate_layers(torchvision.models.alexnet())[:2] == ["features.1", "features.4"]


@pytest.mark.slow
def test_recovers_every_planted_layer_by_more_than_the_standard_error(setup, behavior_benchmark):
    wrapper, targets, root = setup
    result = commit(wrapper, LAYERS, {**targets, "behavior": behavior_benchmark}, reference=None, n_components=100,
                    cache_dir=root / "cache", progress=False)
    assert result.region_layer_map == PLANTED
    assert result.behavioral_readout_layer == PLANTED_READOUT
    for region in [*PLANTED, "behavior"]:
        margin, error = result.best_margin(region)
        assert margin > error, (region, margin, error)
    written = result.save(root / "plugin", "resnet18-random")
    assert json.loads(written["region_layer_map"].read_text()) == PLANTED
    assert json.loads(written["behavioral_readout"].read_text()) == {"behavioral_readout_layer": PLANTED_READOUT}
    assert written["plot"].stat().st_size > 10_000
    table = written["scores"].read_text().splitlines()
    assert f"behavior,{PLANTED_READOUT},5," in "\n".join(table) and len(table) == 1 + 5 * len(LAYERS)
    assert sum(line.endswith(",1") for line in table) == 5  # one chosen layer per region and for behavior


@pytest.mark.slow
def test_behavioral_scores_equal_brainscore_benchmark_on_a_readout(setup, behavior_benchmark, monkeypatch):
    """Brain-Score's own path (ProbabilitiesMapping in a BrainModel, the benchmark's metric and ceiling) gives the
    scores our per-layer readout computed through the Gram coordinates, to the classifier's solver tolerance."""
    from brainscore_vision.model_helpers.brain_transformation.behavior import ProbabilitiesMapping
    from brainscore_vision.model_interface import BrainModel

    wrapper, targets, root = setup
    monkeypatch.setenv("RESULTCACHING_DISABLE", "1")
    layers = ["layer2.1", PLANTED_READOUT, "avgpool"]
    ours = commit(wrapper, layers, {"behavior": behavior_benchmark}, cache_dir=root / "cache", progress=False)

    class Readout(BrainModel):
        def __init__(self, layer):
            self.mapping = ProbabilitiesMapping(f"readout-{layer}", wrapper, layer)

        def visual_degrees(self):
            return 8

        def start_task(self, task, fitting_stimuli):
            self.mapping.start_task(task, fitting_stimuli)

        def look_at(self, stimuli, number_of_trials=1):
            return self.mapping.look_at(stimuli, number_of_trials=number_of_trials)

    for layer in layers:
        theirs = behavior_benchmark(Readout(layer))
        row = next(r for r in ours.scores if r.layer == layer)
        assert row.raw == pytest.approx(float(theirs.raw), abs=2e-3), layer
        assert row.ceiled == pytest.approx(float(theirs), abs=2e-3), layer


@pytest.mark.slow
def test_a_given_readout_layer_is_kept(setup, behavior_benchmark):
    wrapper, targets, root = setup
    result = commit(wrapper, ["layer4.0", "avgpool"], {"IT": targets["IT"], "behavior": behavior_benchmark},
                    n_components=100, behavioral_readout_layer="layer2.0", cache_dir=root / "cache", progress=False)
    assert result.behavioral_readout_layer == "layer2.0" and {r.region for r in result.scores} == {"IT"}
    with pytest.raises(ValueError, match=r"no layer\(s\) \['layer9'\]"):
        commit(wrapper, ["avgpool"], {"IT": targets["IT"]}, behavioral_readout_layer="layer9",
               cache_dir=root / "bad", progress=False)


def test_bad_behavioral_data(behavior_benchmark):
    fitting, trials = behavior_benchmark._fitting_stimuli, behavior_benchmark._assembly
    with pytest.raises(ValueError, match="no 'image_label' column"):
        from_behavioral_assembly(trials, fitting.drop(columns="image_label"))
    with pytest.raises(ValueError, match=r"objects \['plaid'\] of the trials have no fitting images"):
        from_behavioral_assembly(trials, fitting[fitting["image_label"] != "plaid"])
    foreign = trials.copy()
    foreign.attrs["stimulus_set"] = trials.attrs["stimulus_set"].iloc[:10]
    with pytest.raises(ValueError, match="stimulus ids of the assembly are not in its stimulus set"):
        from_behavioral_assembly(foreign, fitting)
    with pytest.raises(ValueError, match=r"lacks the coordinate\(s\) \['dist_obj'\]"):
        from_behavioral_assembly(trials.reset_index("presentation").drop_vars("dist_obj"), fitting)


class _Interrupted(Exception):
    """Stands in for a kill in the middle of the per-layer loop."""


@pytest.mark.slow
def test_interrupted_run_resumes_from_cached_layers(setup, monkeypatch):
    wrapper, targets, root = setup
    import region_commitment.protocol as scoring_module
    calls, interrupt = [], [True]
    real = scoring_module.project

    def counting(*args, **kwargs):
        calls.append(1)
        if len(calls) == 3 and interrupt and interrupt.pop():
            raise _Interrupted
        return real(*args, **kwargs)

    monkeypatch.setattr(scoring_module, "project", counting)
    kwargs = dict(n_components=100, cache_dir=root / "resume", progress=False, keep_features=True)
    with pytest.raises(_Interrupted):
        commit(wrapper, LAYERS, {"IT": targets["IT"]}, **kwargs)
    calls.clear()
    result = commit(wrapper, LAYERS, {"IT": targets["IT"]}, **kwargs)
    assert len(calls) == len(LAYERS) - 2 and result.region_layer_map == {"IT": "layer4.0"}


@pytest.mark.slow
def test_default_reference_and_scores_equal_brainscores_layer_selection(setup, monkeypatch, tmp_path):
    """With Brain-Score's ImageNet file in place (a forged stand-in, only the used entries filled), the default
    reference set is exactly Brain-Score's, and every layer's score equals that of Brain-Score's own LayerScores (the
    scores LayerSelection picks from, its PCA reading the same file) to 2e-3; the choice is the same. (Ours takes each
    PLS component's exact singular vectors, sklearn's NIPALS stops short of them at its default tolerance; that gap
    moves with the BLAS threads and library versions: 1.27e-3 on one thread, 1.39e-3 on two, with this test's data
    and the 2026-12 installs.)"""
    from brainscore_vision import load_ceiling, load_metric
    from brainscore_vision.benchmark_helpers.neural_common import (NeuralBenchmark, apply_keep_attrs,
                                                                   average_repetition)
    from brainscore_vision.model_helpers.activations import pca as bs_pca
    from brainscore_vision.model_helpers.brain_transformation.neural import LayerScores
    from region_commitment.reference import imagenet_val_indices, reference_images

    _, targets, root = setup
    n = 100
    photos = [str(p) for p in default_reference_images(root / "cache", n=N_REFERENCE)][:n]
    imagenet = synthetic_recordings.imagenet_hdf5(tmp_path / "imagenet2012.hdf5", photos, n)
    monkeypatch.setenv("MT_IMAGENET_PATH", str(imagenet))
    monkeypatch.delenv("REGION_COMMITMENT_REFERENCE")
    reference = reference_images(None, root / "cache", n=n)
    assert reference.provenance["kind"] == "brainscore-imagenet"
    assert [p.split("/")[-1] for p in reference.paths] == [f"{i}.png" for i in imagenet_val_indices(n)]
    assert reference.paths == bs_pca._get_imagenet_val(n)

    region, layers = "V4", ["layer2.1", "layer3.0", "layer3.1", "layer4.0"]
    stimuli = targets[region].stimulus_set
    assembly = synthetic_recordings.repeated_assembly(stimuli, synthetic_recordings.planted_responses(
        *_planted_features(_wrapper(), reference.paths, stimuli, PLANTED[region]), seed=2), region, seed=2)
    repetitions = apply_keep_attrs(assembly, lambda a: a.squeeze("time_bin"))
    ceiling = load_ceiling("internal_consistency")(repetitions)
    benchmark = NeuralBenchmark(
        identifier="planted.V4-pls", assembly=average_repetition(repetitions), version=1, visual_degrees=8,
        number_of_trials=1, ceiling_func=lambda: ceiling, parent=region, bibtex="",
        similarity_metric=load_metric("pls", crossvalidation_kwargs=dict(stratification_coord="object_name")))
    theirs_model = _wrapper("resnet18-random-bs")
    bs_pca.LayerPCA.hook(theirs_model, n_components=n)
    theirs = LayerScores("resnet18-random-bs", theirs_model, visual_degrees=8)(benchmark, layers, prerun=True)
    ours = commit(_wrapper("resnet18-random-ours"), layers, {region: benchmark}, n_components=n,
                  cache_dir=tmp_path / "cache", progress=False)
    ours_scores = {r.layer: r.ceiled for r in ours.scores}
    differences = [abs(ours_scores[layer] - float(theirs.sel(layer=layer))) for layer in layers]
    print("per-layer |ours - Brain-Score|:", dict(zip(layers, differences)))  # shown with pytest -s
    assert max(differences) <= 2e-3, (ours_scores, theirs.values)
    assert ours.region_layer_map[region] == layers[int(theirs.argmax())] == PLANTED[region]
    assert ours.provenance["reference"] == reference.provenance


def _folder(paths, root):
    folder = root / "reference-100"
    folder.mkdir(exist_ok=True)
    for p in paths:
        target = folder / p.split("/")[-1]
        if not target.exists():
            target.symlink_to(p)
    return folder


def _planted_features(wrapper, reference, stimuli, layer):
    paths = reference + [str(stimuli.get_stimulus(s)) for s in stimuli["stimulus_id"]]
    flat = wrapper.get_activations(wrapper._extractor.preprocess(paths), [layer])[layer].reshape(len(paths), -1)
    return flat[:len(reference)].astype(np.float64), flat[len(reference):].astype(np.float64)


def test_bad_layer_lists_what_exists(setup):
    wrapper, targets, root = setup
    with pytest.raises(ValueError, match=r"no layer\(s\) \['layer9'\].*layer4.1"):
        commit(wrapper, ["layer1.0", "layer9"], {"IT": targets["IT"]}, cache_dir=root / "bad", progress=False)
    with pytest.raises(ValueError, match="empty"):
        commit(wrapper, [], {"IT": targets["IT"]}, cache_dir=root / "bad", progress=False)


def test_bad_assemblies(setup):
    _, targets, _ = setup
    stimuli = targets["IT"].stimulus_set
    responses = np.random.default_rng(0).normal(size=(len(stimuli), 6))
    responses[:, 0] = np.nan
    responses[:, 1] = 3.0
    assembly = synthetic_recordings.repeated_assembly(stimuli, responses, "IT", noise=0.0)
    assembly.values[:, 0] = np.nan  # NaN neuroid survives the noise
    assembly.values[:, 1] = 3.0     # constant neuroid
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        target = from_assembly(assembly, "IT", ceiling=0.9)
    assert target.excluded_neuroids == 2 and target.responses.shape[1] == 4
    assert any("excluded 2 of 6 neuroids" in str(w.message) for w in caught)

    few = synthetic_recordings.repeated_assembly(stimuli.iloc[:6], responses[:6, 2:], "IT")
    few.attrs["stimulus_set"] = stimuli.iloc[:6]
    with pytest.raises(ValueError, match="fewer than the 10 cross-validation splits"):
        from_assembly(few, "IT", ceiling=0.9)

    foreign = synthetic_recordings.repeated_assembly(stimuli, responses[:, 2:], "IT")
    foreign.attrs["stimulus_set"] = stimuli.iloc[: len(stimuli) // 2]
    with pytest.raises(ValueError, match="stimulus ids of the assembly are not in its stimulus set"):
        from_assembly(foreign, "IT", ceiling=0.9)


@pytest.mark.slow
def test_nan_activations_are_a_clear_error(setup, tmp_path):
    wrapper, targets, _ = setup
    handle = wrapper._model.layer1.register_forward_hook(lambda m, i, o: o * float("nan"))
    try:
        with pytest.raises(FloatingPointError, match="layer2.0 gave NaN"):
            commit(wrapper, ["layer1.1", "layer2.0"], {"IT": targets["IT"]}, n_components=100,  # NaN from layer1 on
                   cache_dir=tmp_path, progress=False)
    finally:
        handle.remove()


def _csv(stimuli, path, *columns):
    import pandas as pd
    pd.DataFrame({"stimulus_id": stimuli["stimulus_id"], **{c: stimuli[c] for c in columns},
                  "filename": [stimuli.get_stimulus(s) for s in stimuli["stimulus_id"]]}).to_csv(path, index=False)
    return path


@pytest.mark.slow
def test_cli_commit_on_local_files_writes_the_map_atomically(setup, behavior_benchmark, offline, tmp_path, run_python):
    """`brainscore-plugins commit` on a lab's own files (netCDF assemblies + stimulus CSVs), forged weights."""
    from brainscore_plugins import forge, settings

    _, targets, root = setup
    stimuli = targets["IT"].stimulus_set
    identifier = "spvvs_resnet18_imagenet_full.ep20"
    forge.forge_into_mirror(identifier, offline[settings.MIRROR])
    responses = np.random.default_rng(1).normal(size=(len(stimuli), 8))
    assembly = synthetic_recordings.repeated_assembly(stimuli, responses, "IT")
    assembly.attrs.clear()  # the stimulus set travels as the CSV
    assembly.reset_index(list(assembly.dims)).to_netcdf(tmp_path / "it.nc")
    trials = behavior_benchmark._assembly.copy()
    trials.attrs = {}
    trials.reset_index("presentation").to_netcdf(tmp_path / "trials.nc")
    behavior_files = ",".join(str(p) for p in [
        tmp_path / "trials.nc", _csv(behavior_benchmark._assembly.stimulus_set, tmp_path / "trials.csv"),
        _csv(behavior_benchmark._fitting_stimuli, tmp_path / "fitting.csv", "image_label")])
    reference = _folder([str(p) for p in default_reference_images(root / "cache", n=N_REFERENCE)][:60], tmp_path)
    args = ["commit", identifier, "--assembly", f"IT={tmp_path / 'it.nc'},"
            f"{_csv(stimuli, tmp_path / 'stimuli.csv', 'object_name')}", "--assembly", f"behavior={behavior_files}",
            "--reference", str(reference), "--n-components", "50", "--output", str(tmp_path / "out")]

    for extra, message in [(["--layers", "layer4.0", "nope"], "no layer(s) ['nope']"),
                           (["--reference", str(tmp_path / "missing")], "missing does not exist; pass a folder"),
                           (["--time-bin", "70-170"], "--time-bin must look like START,END")]:
        bad = run_python("from brainscore_plugins.cli import main; raise SystemExit(main(%r))"
                         % ([a for a in args if a not in ("--reference", str(reference))] + extra), offline)
        assert bad.returncode == 2 and message in bad.stderr, bad.stderr[-2000:]
        errors = [line for line in bad.stderr.splitlines() if line.startswith("error: ")]
        assert "Traceback" not in bad.stderr and len(errors) == 1 and message in errors[0]  # one line
    assert not (tmp_path / "out").exists()  # nothing half-written on failure

    good = run_python("from brainscore_plugins.cli import main; raise SystemExit(main(%r))"
                      % (args + ["--layers", "layer3.1", "layer4.0", "avgpool"]), offline)
    assert good.returncode == 0, good.stderr[-2000:]
    written = json.loads((tmp_path / "out" / "region_layer_map" / f"{identifier}.json").read_text())
    assert set(written) == {"IT"} and written["IT"] in {"layer3.1", "layer4.0", "avgpool"}
    assert (tmp_path / "out" / "layer_scores" / f"{identifier}.png").is_file()
    readout = json.loads((tmp_path / "out" / "behavioral_readout" / f"{identifier}.json").read_text())
    table = (tmp_path / "out" / "layer_scores" / f"{identifier}.csv").read_text()
    assert readout["behavioral_readout_layer"] in {"layer3.1", "layer4.0", "avgpool"}
    assert f"behavior,{readout['behavioral_readout_layer']}," in table and table.count("behavior,") == 3
    provenance = json.loads((tmp_path / "out" / "provenance" / f"{identifier}.json").read_text())
    assert provenance["reference"]["kind"] == "folder" and provenance["n_components"] == 50
    assert provenance["layers"] == {"mode": "explicit", "candidates": ["layer3.1", "layer4.0", "avgpool"]}
    assert set(provenance["benchmarks"]) == {"IT", "behavior"}
    assert all(len(b["digest"]) == 64 for b in provenance["benchmarks"].values())
