"""``commit``'s cache cannot go stale (weights and image bytes are in its key; a cached run needs no forward pass; a
failed run leaves no feature files), and every bad input is a clear error before any forward pass. Offline, on a
small resnet18."""
import errno
import hashlib
import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import torchvision

from brainscore_plugins import synthetic_recordings
from brainscore_plugins.preprocessing import preprocessing_for
from region_commitment import (CommitmentError, CommitmentResult, DiskFullError, InvalidTargetError, LayerScore,
                               brainscore_internals, commit, digests, features, from_assembly,
                               from_behavioral_assembly, from_files, stimulus_set_from_csv)
from region_commitment.reference import default_reference_images

LAYERS = ["layer1.1", "layer2.1", "layer3.1", "layer4.0", "avgpool"]
PLANTED = "layer3.1"
N_REFERENCE = 40


def _wrapper(seed=0, identifier="resnet18-inputs"):
    from brainscore_vision.model_helpers.activations.pytorch import PytorchWrapper
    torch.manual_seed(seed)
    return PytorchWrapper(identifier=identifier, model=torchvision.models.resnet18(),
                          preprocessing=preprocessing_for(64, 56, "bilinear"))


class MeanActivation:
    """A target needing no reference images (fast): r of each image's mean activation with a fixed vector."""
    needs_reference = False
    region = identifier = "mean-activation"

    def __init__(self, paths):
        self.paths, self.planted = paths, np.random.default_rng(0).normal(size=len(paths))

    def image_paths(self):
        return self.paths

    def fingerprint(self):
        return hashlib.sha256(self.planted.tobytes()).hexdigest()

    def score(self, layer):
        r = float(np.corrcoef(np.asarray(layer.features)[layer.rows(self.paths)].mean(1), self.planted)[0, 1])
        return r, 0.0, r


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("inputs")
    stimuli = synthetic_recordings.stimulus_set(root / "stimuli", n_per_object=10, size=64)
    reference = root / "reference"
    reference.mkdir()
    for path in default_reference_images(root / "builtin", n=N_REFERENCE):
        shutil.copy(path, reference / path.name)
    return root, stimuli, reference


@pytest.fixture(scope="module")
def wrapper():
    return _wrapper()


@pytest.fixture
def toy(data):
    _, stimuli, _ = data
    return MeanActivation([str(stimuli.get_stimulus(s)) for s in stimuli["stimulus_id"]])


@pytest.fixture(scope="module")
def unplanted(data):
    """A neural target of random responses (needs the reference images)."""
    _, stimuli, _ = data
    return _target(stimuli, np.random.default_rng(0).normal(size=(len(stimuli), 6)))


@pytest.fixture
def no_forward_pass(monkeypatch, wrapper):
    """Any forward pass (extraction, width probe, the module itself) fails the test."""
    monkeypatch.setattr(features, "extract", lambda *a, **k: pytest.fail("features extracted"))
    monkeypatch.setattr(features, "probe_widths", lambda *a, **k: pytest.fail("widths probed"))
    handle = wrapper._model.register_forward_pre_hook(lambda *a: pytest.fail("forward pass"))
    yield
    handle.remove()


def _flat(wrapper, paths, layer):
    return wrapper.get_activations(wrapper._extractor.preprocess(paths), [layer])[layer].reshape(len(paths), -1)


def _target(stimuli, responses, **kwargs):
    return from_assembly(synthetic_recordings.repeated_assembly(stimuli, responses, "IT", noise=0.3), "IT",
                         identifier="planted-IT", **kwargs)


# ---- part 4: a cache that cannot go stale ----

@pytest.mark.slow
def test_images_rewritten_in_place_are_scored_again(data, wrapper, tmp_path):
    """Responses planted in PLANTED on images B; the stimulus files first hold other images A (so the planted layer
    does not win), then B's bytes, written in place: the same paths, the same target, the same cache."""
    reference = Path(shutil.copytree(data[2], tmp_path / "reference"))
    stimuli = synthetic_recordings.stimulus_set(tmp_path / "A", n_per_object=10, size=64, seed=0)
    planted_on = synthetic_recordings.stimulus_set(tmp_path / "B", n_per_object=10, size=64, seed=3)
    reference_paths = sorted(str(p) for p in reference.iterdir())
    paths = [str(planted_on.get_stimulus(s)) for s in planted_on["stimulus_id"]]
    flat = _flat(wrapper, reference_paths + paths, PLANTED).astype(np.float64)
    target = _target(stimuli, synthetic_recordings.planted_responses(flat[:N_REFERENCE], flat[N_REFERENCE:], seed=1))
    kwargs = dict(reference=str(reference), n_components=N_REFERENCE, cache_dir=tmp_path / "cache", progress=False)

    before = commit(wrapper, LAYERS, {"IT": target}, **kwargs)
    assert before.region_layer_map["IT"] != PLANTED
    for stimulus_id in stimuli["stimulus_id"]:  # in place: the very files the target names
        Path(stimuli.get_stimulus(stimulus_id)).write_bytes(Path(planted_on.get_stimulus(stimulus_id)).read_bytes())
    after = commit(wrapper, LAYERS, {"IT": target}, **kwargs)
    fresh = commit(wrapper, LAYERS, {"IT": target}, **{**kwargs, "cache_dir": tmp_path / "fresh"})
    assert after.region_layer_map["IT"] == fresh.region_layer_map["IT"] == PLANTED
    assert after.scores == fresh.scores != before.scores
    assert after.provenance["images"]["digest"] != before.provenance["images"]["digest"]
    assert after.provenance["images"]["n"] == N_REFERENCE + len(stimuli)

    commit(wrapper, LAYERS[-2:], {"IT": target}, **kwargs)
    runs = set((tmp_path / "cache" / wrapper.identifier).iterdir())
    Path(reference_paths[0]).write_bytes(Path(reference_paths[1]).read_bytes())  # a reference image, in place
    commit(wrapper, LAYERS[-2:], {"IT": target}, **kwargs)
    assert len(set((tmp_path / "cache" / wrapper.identifier).iterdir()) - runs) == 1


def test_other_weights_under_the_same_identifier_are_scored_again(toy, tmp_path):
    first, second, again = _wrapper(seed=0), _wrapper(seed=1), _wrapper(seed=0)
    results = [commit(w, LAYERS, {"toy": toy}, cache_dir=tmp_path, progress=False) for w in (first, second, again)]
    assert len(list((tmp_path / first.identifier).iterdir())) == 2  # one cache entry per set of weights
    assert results[0].scores != results[1].scores and results[0].scores == results[2].scores
    digests_ = [r.provenance["weights"]["digest"] for r in results]
    assert digests_[0] == digests_[2] == digests.weights(first) != digests_[1] and len(digests_[0]) == 64

    buffers = _wrapper(seed=0)
    buffers._model.bn1.running_mean += 1  # a buffer, not a parameter
    assert digests.weights(buffers) != digests_[0]


def test_a_model_without_a_torch_module_is_keyed_by_its_identifier(wrapper, toy, tmp_path):
    class Opaque:  # Brain-Score's activations-model interface, no torch module to read
        identifier, _extractor = "opaque-model", wrapper._extractor

        def get_activations(self, images, layers):
            return wrapper.get_activations(images, layers)

    assert brainscore_internals.torch_module(Opaque()) is None
    assert brainscore_internals.torch_module(type("Keras", (), {"_model": object()})()) is None  # not a torch module
    result = commit(Opaque(), LAYERS, {"toy": toy}, cache_dir=tmp_path, progress=False)
    assert result.provenance["weights"]["digest"] is None
    assert "cached by its identifier alone" in result.provenance["weights"]["of"]
    with pytest.raises(CommitmentError, match="no torch module to apply a layer rule to"):
        commit(Opaque(), None, {"toy": toy}, cache_dir=tmp_path, progress=False)


def test_a_fully_cached_rerun_runs_no_forward_pass(wrapper, toy, tmp_path, request):
    first = commit(wrapper, LAYERS, {"toy": toy}, cache_dir=tmp_path, progress=False)
    request.getfixturevalue("no_forward_pass")
    again = commit(wrapper, LAYERS, {"toy": toy}, cache_dir=tmp_path, progress=False)
    assert again.scores == first.scores and again.region_layer_map == first.region_layer_map


class _Interrupted(Exception):
    pass


def test_an_interrupted_run_resumes_without_probing_again(wrapper, toy, tmp_path, monkeypatch):
    scored = []

    def interrupting(layer):
        if len(scored) == 2:
            raise _Interrupted
        scored.append(1)
        return MeanActivation.score(toy, layer)

    monkeypatch.setattr(toy, "score", interrupting)
    with pytest.raises(_Interrupted):
        commit(wrapper, LAYERS, {"toy": toy}, cache_dir=tmp_path, progress=False)
    assert not list(tmp_path.rglob("*.f32"))  # the features of the failed run are removed
    monkeypatch.undo()
    monkeypatch.setattr(features, "probe_widths", lambda *a, **k: pytest.fail("widths probed again"))
    extracted = []
    real = features.extract
    monkeypatch.setattr(features, "extract", lambda model, layers, *a, **k: extracted.append(layers) or
                        real(model, layers, *a, **k))
    resumed = commit(wrapper, LAYERS, {"toy": toy}, cache_dir=tmp_path, progress=False)
    assert extracted == [LAYERS[2:]] and [r.layer for r in resumed.scores] == LAYERS


@pytest.mark.parametrize("keep_features", [False, True])
def test_a_full_disk_removes_the_feature_files_and_says_why(wrapper, toy, tmp_path, monkeypatch, keep_features):
    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(features, "_write", full)
    full_disk = r"Disk full at .*features.* need ~\d+\.\d+ GB and .* GB are free \(the feature files written"
    with pytest.raises(DiskFullError, match=full_disk) as caught:
        commit(wrapper, LAYERS, {"toy": toy}, cache_dir=tmp_path, keep_features=keep_features, progress=False)
    assert isinstance(caught.value, OSError) and caught.value.errno == errno.ENOSPC
    assert not list(tmp_path.rglob("*.f32")) and not list(tmp_path.rglob("features/*"))
    assert not list(tmp_path.rglob("scores/*.json"))


# ---- part 5: bad inputs, each a clear error before any forward pass ----

@pytest.mark.slow
@pytest.mark.parametrize("n", [0, -5, 10 ** 8, 2 * 10 ** 5, 2.5, None])
def test_n_components_outside_one_to_the_reference_images(n, data, wrapper, unplanted, tmp_path, no_forward_pass):
    reference, target = data[2], unplanted
    for source in ("builtin", str(reference)):
        with pytest.raises(CommitmentError, match=rf"n_components={n!r} is not a whole number from 1 to"):
            commit(wrapper, LAYERS, {"IT": target}, reference=source, n_components=n, cache_dir=tmp_path,
                   progress=False)
    assert not list(tmp_path.rglob("*.png"))  # no reference image written
    with pytest.raises(CommitmentError, match=rf"n_components={n!r}"):  # checked where no target needs a PCA
        commit(wrapper, LAYERS, {"toy": MeanActivation(target.image_paths())}, n_components=n, cache_dir=tmp_path,
               progress=False)
    with pytest.raises(CommitmentError, match=rf"from 1 to {N_REFERENCE}, the reference images the folder"):
        commit(wrapper, LAYERS, {"IT": target}, reference=str(reference), n_components=N_REFERENCE + 1,
               cache_dir=tmp_path, progress=False)


def test_duplicate_layers_are_named(wrapper, toy, tmp_path, no_forward_pass):
    with pytest.raises(CommitmentError, match=r"\['layer2.1', 'avgpool'\] are listed more than once"):
        commit(wrapper, ["layer2.1", "layer3.1", "layer2.1", "avgpool", "avgpool"], {"toy": toy},
               cache_dir=tmp_path, progress=False)


def _csv(stimuli, path, rows=None):
    table = pd.DataFrame({"stimulus_id": stimuli["stimulus_id"], "object_name": stimuli["object_name"],
                          "filename": [Path(stimuli.get_stimulus(s)).name for s in stimuli["stimulus_id"]]})
    pd.concat([table, *(rows or [])]).to_csv(path, index=False)
    return path


def test_a_stimulus_id_listed_with_different_files_or_metadata(data, tmp_path):
    root, stimuli, _ = data
    folder = Path(stimuli.get_stimulus(stimuli["stimulus_id"].iloc[0])).parent
    first, second = stimuli["stimulus_id"].iloc[0], stimuli["stimulus_id"].iloc[1]
    other_file = pd.DataFrame({"stimulus_id": [first], "object_name": [stimuli["object_name"].iloc[0]],
                               "filename": [Path(stimuli.get_stimulus(second)).name]})
    with pytest.raises(InvalidTargetError, match=rf"stimulus ids \['{first}'\] \(1 in all\) are listed in several "
                                                 rf"rows with different files"):
        stimulus_set_from_csv(_csv(stimuli, folder / "conflicting.csv", [other_file]))
    other_label = pd.DataFrame({"stimulus_id": [first], "object_name": ["plaid-not"],
                                "filename": [Path(stimuli.get_stimulus(first)).name]})
    with pytest.raises(InvalidTargetError, match="different files or metadata"):
        stimulus_set_from_csv(_csv(stimuli, folder / "relabelled.csv", [other_label]))
    same = pd.DataFrame({"stimulus_id": [first], "object_name": [stimuli["object_name"].iloc[0]],
                         "filename": [f"./{Path(stimuli.get_stimulus(first)).name}"]})  # the same file, spelt anew
    collapsed = stimulus_set_from_csv(_csv(stimuli, folder / "repeated.csv", [same]))
    assert list(collapsed["stimulus_id"]) == list(stimuli["stimulus_id"])
    assert collapsed.get_stimulus(first) == stimuli.get_stimulus(first)

    relabelled = pd.concat([stimuli, stimuli.iloc[:1].assign(object_name="blob")])
    relabelled.stimulus_paths, relabelled.identifier = stimuli.stimulus_paths, stimuli.identifier
    responses = np.random.default_rng(0).normal(size=(len(stimuli), 6))
    assembly = synthetic_recordings.repeated_assembly(stimuli, responses, "IT")
    assembly.attrs["stimulus_set"] = relabelled
    with pytest.raises(InvalidTargetError, match=rf"\['{first}'\] .* several rows of the stimulus set with "
                                                 rf"different metadata"):
        from_assembly(assembly, "IT")


def test_missing_dimensions_and_coordinates_are_named_with_what_is_there(data, tmp_path):
    _, stimuli, _ = data
    responses = np.random.default_rng(0).normal(size=(len(stimuli), 6))
    assembly = synthetic_recordings.repeated_assembly(stimuli, responses, "IT")
    renamed = assembly.rename(presentation="image")
    with pytest.raises(InvalidTargetError, match=r"lacks the dimension\(s\) \['presentation'\] and has the "
                                                 r"unexpected dimension\(s\) \['image'\] \(its dimensions: \['image', "
                                                 r"'neuroid', 'time_bin'\], its coordinates: .*'stimulus_id'"):
        from_assembly(renamed, "IT")
    flat = assembly.reset_index("presentation").drop_vars("stimulus_id")
    with pytest.raises(InvalidTargetError, match=r"lacks the coordinate\(s\) \['stimulus_id'\] .*'object_name'"):
        from_assembly(flat, "IT")

    trials = synthetic_recordings.behavioral_trials(stimuli, np.full((len(stimuli), 4), 0.25))
    fitting = stimuli.assign(image_label=stimuli["object_name"])
    fitting.stimulus_paths = stimuli.stimulus_paths
    with pytest.raises(InvalidTargetError, match=r"lacks the dimension\(s\) \['presentation'\] .*its dimensions: "
                                                 r"\['trial_row'\]"):
        from_behavioral_assembly(trials.rename(presentation="trial_row"), fitting)


def test_too_few_stimuli_per_class_names_the_class_counts(data, tmp_path):
    _, stimuli, _ = data
    few = stimuli.groupby("object_name").head(2)
    few.stimulus_paths, few.identifier = stimuli.stimulus_paths, "few"
    assembly = synthetic_recordings.repeated_assembly(few, np.random.default_rng(0).normal(size=(len(few), 6)), "IT")
    counts = r"\{'blob': 2, 'checker': 2, 'grating': 2, 'plaid': 2\}"
    with pytest.raises(InvalidTargetError, match=rf"too few stimuli per 'object_name' class for 2 stratified splits "
                                                 rf"\(stimuli per class: {counts}"):
        from_assembly(assembly, "IT", splits=2)
    with pytest.raises(InvalidTargetError, match=rf"for 5 stratified splits \(stimuli per class: {counts}"):
        from_assembly(assembly, "IT", splits=5, kfold=True)


@pytest.mark.parametrize("identifier", ["../../x", "a/b", "a\\b", "", "..", ".", "x\0y", None])
def test_save_takes_only_file_names(identifier, tmp_path):
    result = CommitmentResult({"IT": "a"}, "a", ["a", "b"], [LayerScore("IT", "a", 0, 0.5, 0.1, 0.5),
                                                             LayerScore("IT", "b", 1, 0.2, 0.1, 0.2)])
    with pytest.raises(CommitmentError, match="is not a file name"):
        result.save(tmp_path / "plugin" / "out", identifier)
    assert not list(tmp_path.rglob("*.*"))


def test_save_refuses_to_write_outside_its_folder(tmp_path):
    result = CommitmentResult({"IT": "a"}, "a", ["a", "b"], [LayerScore("IT", "a", 0, 0.5, 0.1, 0.5),
                                                             LayerScore("IT", "b", 1, 0.2, 0.1, 0.2)])
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "provenance").symlink_to(tmp_path / "elsewhere")
    with pytest.raises(CommitmentError, match=r"provenance/m.json resolves outside .*out; refusing to write there"):
        result.save(tmp_path / "out", "m")
    assert not list(tmp_path.rglob("*.json"))
    written = result.save(tmp_path / "fine", "m.v2")
    assert {p.parent.name for p in written.values()} == {"region_layer_map", "behavioral_readout", "layer_scores",
                                                        "provenance"} and len(set(written.values())) == 5
    assert json.loads(written["region_layer_map"].read_text()) == {"IT": "a"}


def test_local_files_with_a_duplicated_stimulus_fail_before_the_model(data, tmp_path):
    """``from_files`` (the CLI's ``--assembly``) on a CSV listing a stimulus twice with two files."""
    _, stimuli, _ = data
    folder = Path(stimuli.get_stimulus(stimuli["stimulus_id"].iloc[0])).parent
    responses = np.random.default_rng(0).normal(size=(len(stimuli), 6))
    assembly = synthetic_recordings.repeated_assembly(stimuli, responses, "IT")
    assembly.attrs.clear()
    assembly.reset_index(list(assembly.dims)).to_netcdf(tmp_path / "it.nc")
    twice = pd.DataFrame({"stimulus_id": [stimuli["stimulus_id"].iloc[3]], "object_name": ["grating"],
                          "filename": [Path(stimuli.get_stimulus(stimuli["stimulus_id"].iloc[4])).name]})
    with pytest.raises(InvalidTargetError, match="listed in several rows with different files"):
        from_files(tmp_path / "it.nc", _csv(stimuli, folder / "twice.csv", [twice]), "IT")


def test_something_else_given_as_the_assembly_is_named(tmp_path):
    from region_commitment.behavior import from_behavioral_files
    csv = tmp_path / "stimuli.csv"
    csv.write_text("stimulus_id,filename\na,a.png\n")
    (tmp_path / "folder.nc").mkdir()
    (tmp_path / "empty.nc").write_bytes(b"CDF\x01" + b"\x00" * 4)
    cases = [(csv, "is not a netCDF file (it starts b'stimulus'); pass the .nc file"),
             (tmp_path / "folder.nc", "is a folder, not a netCDF file"),
             (tmp_path / "empty.nc", "holds no readable DataArray")]
    for path, message in cases:
        for load in (lambda p: from_files(p, csv, "IT"), lambda p: from_behavioral_files(p, csv, csv)):
            with pytest.raises(InvalidTargetError) as raised:
                load(path)
            assert str(raised.value).startswith(f"the assembly {path} ") and message in str(raised.value)
            assert "\n" not in str(raised.value)
    with pytest.raises(FileNotFoundError, match="missing.nc does not exist"):
        from_files(tmp_path / "missing.nc", csv, "IT")
