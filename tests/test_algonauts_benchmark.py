"""The Algonauts 2023 benchmarks end to end on synthetic data in the challenge's exact layout with planted signal:
registry, the layer x kernel search through Brain-Score's ModelCommitment, the committed-layer region mode, the
direct mode (a fake predictor and forged GroupLin) against a direct numpy computation of the challenge metric, and
bad inputs that fail before anything is written."""
from __future__ import annotations

import functools

import matplotlib
import numpy as np
import pytest
import torch
from brainscore_core.plugin_management.parse_plugin_changes import get_plugin_ids
from brainscore_vision.model_helpers.activations.pytorch import PytorchWrapper, load_preprocess_images
from brainscore_vision.model_helpers.brain_transformation import ModelCommitment
from torch import nn

import brainscore_vision
from brainscore_plugins import bridge, errors, forge, plugin_sources, settings
from brainscore_plugins.algonauts import benchmark as algonauts, synthetic
from brainscore_plugins.algonauts.benchmark import Algonauts2023
from brainscore_plugins.algonauts.data import split

N_IMAGES, SIZE = 160, 32
VERTICES = {"lh": 60, "rh": 70}
FAST = {"alphas": np.logspace(-2, 4, 7), "folds": 4, "progress": False}


class Tiny(nn.Module):
    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.conv1 = nn.Conv2d(3, 6, 3, stride=2, padding=1)
        self.relu1 = nn.ReLU()
        self.conv2 = nn.Conv2d(6, 8, 3, stride=2, padding=1)
        self.relu2 = nn.ReLU()

    def forward(self, x):
        return self.relu2(self.conv2(self.relu1(self.conv1(x))))


def _candidate():
    wrapper = PytorchWrapper(identifier="algonauts-tiny", model=Tiny().eval(),
                             preprocessing=functools.partial(load_preprocess_images, image_size=SIZE))
    return ModelCommitment(identifier="algonauts-tiny", activations_model=wrapper, layers=["relu1", "relu2"],
                           region_layer_map={"V1": "relu1", "V2": "relu1", "V4": "relu2", "IT": "relu2"},
                           behavioral_readout_layer="relu2")


def _planted(paths, layer: str, kernel: int) -> np.ndarray:
    """Standardised max-pooled features of ``layer`` for ``paths``: the planted signal's design."""
    model, captured = Tiny().eval(), {}
    getattr(model, layer).register_forward_hook(lambda m, i, o: captured.__setitem__("x", o))
    with torch.no_grad():
        model(torch.from_numpy(load_preprocess_images([str(p) for p in paths], SIZE)))
    design = nn.functional.adaptive_max_pool2d(captured["x"], kernel).flatten(1).numpy()
    return (design - design.mean(0)) / (design.std(0) + 1e-6)


@pytest.fixture(scope="module")
def challenge(tmp_path_factory):
    """subj01 with responses = pooled relu2 (kernel 2) x random weights + noise; noise ceilings supplied."""
    root = tmp_path_factory.mktemp("algonauts") / "algonauts_2023_challenge_data"
    paths = synthetic.write_images(root, "subj01", synthetic.random_images(N_IMAGES, size=48, seed=1))
    design, rng = _planted(paths, "relu2", 2), np.random.default_rng(0)
    fmri = {h: (design @ rng.standard_normal((design.shape[1], n)) / 4 + 0.3 * rng.standard_normal((N_IMAGES, n)))
            .astype(np.float32) for h, n in VERTICES.items()}
    ceilings = {h: rng.uniform(0.3, 0.9, n).astype(np.float32) for h, n in VERTICES.items()}
    synthetic.write_subject(root, "subj01", None, fmri, noise_ceiling=ceilings)
    return root, fmri, ceilings


@pytest.fixture(autouse=True)
def isolated(tmp_path, monkeypatch):
    monkeypatch.setenv(settings.CACHE, str(tmp_path / "cache"))
    monkeypatch.delenv(settings.ALGONAUTS, raising=False)
    return tmp_path / "cache"


def _expected(predictions: dict, fmri: dict, ceilings: dict, test: np.ndarray) -> float:
    """The challenge's metric written out: clamp r at 0, square, divide by the noise ceiling (1e-14 for 0), cap at 1,
    mean over every vertex of both hemispheres."""
    values = []
    for h in ("lh", "rh"):
        for v in range(fmri[h].shape[1]):
            r = np.corrcoef(predictions[h][:, v], fmri[h][test, v])[0, 1]
            values.append(min(1.0, max(r, 0) ** 2 / (ceilings[h][v] or 1e-14)))
    return float(np.mean(values))


def test_registry():
    """Brain-Score's own scanner finds exactly the documented identifiers, once each."""
    found = get_plugin_ids("benchmarks", ["algonauts2023"], str(plugin_sources.MODELS_DIR.parent))
    assert found == algonauts.identifiers()
    assert len(found) == 2 * 9 - 9 + 9 * 5 == 54
    assert "algonauts2023.subj03.V4-ridge" in found and "algonauts2023-direct" in found
    assert algonauts.parse("algonauts2023.subj03.V4-ridge") == (("subj03",), "V4", "ridge")
    assert algonauts.parse("algonauts2023-direct") == (algonauts.SUBJECTS, None, "direct")
    with pytest.raises(ValueError, match="Unknown Algonauts 2023 benchmark"):
        algonauts.parse("algonauts2023.subj09-ridge")


def test_load_benchmark_through_brainscore(challenge, monkeypatch):
    monkeypatch.setenv(settings.ALGONAUTS, str(challenge[0]))
    monkeypatch.setenv("BS_INSTALL_DEPENDENCIES", "no")
    bridge.link()
    benchmark = brainscore_vision.load_benchmark("algonauts2023.subj01-ridge")
    assert benchmark.identifier == "algonauts2023.subj01-ridge" and float(benchmark.ceiling) == 1


def test_search_finds_planted_layer_and_kernel(challenge, isolated):
    root, fmri, ceilings = challenge
    benchmark = Algonauts2023("algonauts2023.subj01-ridge", data_dir=root, kernels=(1, 2, 3), **FAST)
    score = benchmark(_candidate())
    cells = score.attrs["search"]
    winner = cells.loc[cells.vertices.idxmax()]
    assert (winner.layer, winner.kernel) == ("relu2", 2)
    assert cells.vertices.max() >= 0.8 * sum(VERTICES.values())
    assert float(score) > 0.5 and score.attrs["metric"] == "noise_normalized_r2"
    assert float(score.attrs["ceiling"]) == 1 and score.attrs["raw"].dims == ("subject",)
    table = score.attrs["roi_scores"]
    whole = table[(table.group == "all") & (table.hemisphere == "both")]
    assert whole.n_vertices.item() == sum(VERTICES.values())
    np.testing.assert_allclose(whole.score.item(), float(score), rtol=1e-6)
    assert not any(isolated.rglob("*.f32"))  # the per-layer feature files are removed once scored


def test_layers_in_groups_when_disk_is_short(challenge, monkeypatch):
    """A disk too small for both layers' features: one forward pass per layer, the searches merged per vertex, the
    same choice as one search over both."""
    from region_commitment import features
    root = challenge[0]
    whole = Algonauts2023("algonauts2023.subj01-ridge", data_dir=root, kernels=(1, 2), **FAST)(_candidate())
    monkeypatch.setattr(features, "free_bytes", lambda path: int(4 * N_IMAGES * 6 * 16 * 16 / 0.8) + 1)
    grouped = Algonauts2023("algonauts2023.subj01-ridge", data_dir=root, kernels=(1, 2), **FAST)(_candidate())
    np.testing.assert_allclose(float(grouped), float(whole), rtol=1e-5)
    pd_cells = grouped.attrs["search"]
    assert pd_cells.vertices.sum() == sum(VERTICES.values())
    assert pd_cells.vertices.tolist() == whole.attrs["search"].vertices.tolist()


def test_region_mode_uses_committed_layer_and_region_vertices(challenge):
    """V4: the committed layer (relu2, unpooled) predicts the hV4 vertices only."""
    root, fmri, ceilings = challenge
    score = Algonauts2023("algonauts2023.subj01.V4-ridge", data_dir=root, **FAST)(_candidate())
    cells = score.attrs["search"]
    assert cells[["layer", "kernel"]].values.tolist() == [["relu2", 0]]
    table = score.attrs["roi_scores"]
    hv4 = table[(table.roi == "hV4") & (table.hemisphere == "both")]
    whole = table[(table.group == "all") & (table.hemisphere == "both")]
    assert hv4.n_vertices.item() == whole.n_vertices.item() > 0


class FakePredictor:
    """Predicts the group space (here subj01's 39,548 vertices) as truth + noise: a known answer."""

    identifier = "fake-fmri"

    def __init__(self, fmri_by_path: dict):
        self.fmri_by_path = fmri_by_path

    def predict_fmri(self, paths, subject):
        rng = np.random.default_rng(len(paths))
        truth = np.stack([self.fmri_by_path[p] for p in paths])
        return truth + rng.standard_normal(truth.shape).astype(np.float32)


@pytest.fixture(scope="module")
def full_space(tmp_path_factory):
    """subj01 with the real vertex counts (19,004 + 20,544 = the 39,548 group vertices) and 30 images."""
    root = tmp_path_factory.mktemp("algonauts-full")
    rng = np.random.default_rng(3)
    fmri = {"lh": rng.standard_normal((30, 19004)).astype(np.float32),
            "rh": rng.standard_normal((30, 20544)).astype(np.float32)}
    ceilings = {h: rng.uniform(0, 1, a.shape[1]).astype(np.float32) for h, a in fmri.items()}
    ceilings["lh"][:5] = 0  # the challenge's 1e-14 rule
    synthetic.write_subject(root, "subj01", synthetic.random_images(30, size=32, seed=2), fmri, noise_ceiling=ceilings)
    return root, fmri, ceilings


def test_direct_mode_equals_numpy_metric(full_space):
    root, fmri, ceilings = full_space
    subject = algonauts.load_subject("subj01", root)
    group = algonauts.group_space(root)
    paths = [str(p) for p in subject.images]
    by_path = {p: np.concatenate([fmri["lh"][i], fmri["rh"][i]]) for i, p in enumerate(paths)}
    score = Algonauts2023("algonauts2023.subj01-direct", data_dir=root, progress=False)(FakePredictor(by_path))
    test = split(30)[1]
    predicted = algonauts.subject_vertices(FakePredictor(by_path).predict_fmri([paths[i] for i in test], "subj01"),
                                           subject, group)
    expected = _expected(predicted, fmri, ceilings, test)
    np.testing.assert_allclose(float(score), expected, rtol=1e-5)
    backend = matplotlib.get_backend()
    ax = algonauts.plot_rois(score)
    assert len(ax.patches) > 0 and matplotlib.get_backend() == backend


def test_grouplin_direct(full_space, tmp_path, monkeypatch):
    """The forged GroupLin phase-1 predictor through the -direct benchmark equals the metric on its own outputs."""
    root, fmri, ceilings = full_space
    monkeypatch.setenv(settings.MIRROR, str(tmp_path / "mirror"))
    monkeypatch.setenv(settings.HF_HUB_OFFLINE, "1")
    forge.forge_into_mirror("grouplin_phase1", tmp_path / "mirror")
    monkeypatch.setenv("BS_INSTALL_DEPENDENCIES", "no")
    bridge.link()
    predictor = brainscore_vision.load_model("grouplin_phase1-fmri")
    score = Algonauts2023("algonauts2023.subj01-direct", data_dir=root, progress=False)(predictor)
    subject = algonauts.load_subject("subj01", root)
    test = split(30)[1]
    raw = predictor.predict_fmri([str(subject.images[i]) for i in test], "subj01", progress=False)
    expected = _expected(algonauts.subject_vertices(raw, subject, algonauts.group_space(root)), fmri, ceilings, test)
    np.testing.assert_allclose(float(score), expected, rtol=1e-4)


def test_direct_mode_needs_a_predictor(full_space):
    with pytest.raises(algonauts.ModelUnsuitableError, match="predicts no fMRI.*-ridge"):
        Algonauts2023("algonauts2023.subj01-direct", data_dir=full_space[0], progress=False)(_candidate())


def test_direct_mode_needs_the_group_space(challenge):
    with pytest.raises(errors.AlgonautsDataError, match="39548"):
        Algonauts2023("algonauts2023.subj01-direct", data_dir=challenge[0], progress=False)(FakePredictor({}))


@pytest.mark.parametrize("problem", ["missing subject", "count mismatch", "nan", "swapped hemisphere"])
def test_bad_data_fails_before_anything_is_written(problem, challenge, tmp_path, isolated):
    root, fmri, ceilings = challenge
    bad = tmp_path / "bad"
    identifier = "algonauts2023.subj02-ridge" if problem == "missing subject" else "algonauts2023.subj01-ridge"
    if problem != "missing subject":
        images = synthetic.random_images(20 if problem == "count mismatch" else 21, size=32)
        data = {h: np.zeros((21, n), np.float32) for h, n in VERTICES.items()}
        if problem == "nan":
            data["rh"][3, 7] = np.nan
        if problem == "swapped hemisphere":
            data = {"lh": data["rh"], "rh": data["lh"]}
        if problem == "count mismatch":
            synthetic.write_images(bad, "subj01", images)
            images = None
        labels = {g: {h: synthetic.default_labels(VERTICES[h], h, g) for h in VERTICES} for g in synthetic.ROI_NAMES}
        _write_with_masks(bad, images, data, labels)
    else:
        bad = root
    message = {"missing subject": "subj02", "count mismatch": "rows", "nan": "NaN", "swapped hemisphere": "swapped"}
    with pytest.raises(errors.AlgonautsDataError, match=message[problem]):
        Algonauts2023(identifier, data_dir=bad, **FAST)(_candidate())
    assert not isolated.exists() or not any(isolated.rglob("*"))


def _write_with_masks(root, images, data, labels):
    """A subject whose fsaverage masks keep the true hemisphere vertex counts even if the fMRI files do not."""
    from brainscore_plugins.algonauts.data import FSAVERAGE_VERTICES
    subject = synthetic.write_subject(root, "subj01", images, {h: np.zeros((len(next(iter(data.values()))),
                                                                             VERTICES[h]), np.float32)
                                                             for h in VERTICES}, rois=labels)
    for h, array in data.items():
        np.save(subject / "training_split" / "training_fmri" / f"{h}_training_fmri.npy", array)
    assert FSAVERAGE_VERTICES == 163842


def test_command_line_scores_a_predictor_and_says_where_the_data_go(tmp_path):
    """`brainscore-plugins score grouplin_phase1-fmri algonauts2023.subj01-direct` without the challenge data: exit
    2 and one line naming the variable to set (the -fmri identifier itself is accepted)."""
    import os
    import subprocess
    import sys

    forge.forge_into_mirror("grouplin_phase1", tmp_path / "mirror")
    env = {**os.environ, settings.MIRROR: str(tmp_path / "mirror"), settings.CACHE: str(tmp_path / "cache"),
           settings.HF_HUB_OFFLINE: "1", "BS_INSTALL_DEPENDENCIES": "no"}
    env.pop(settings.ALGONAUTS, None)
    process = subprocess.run([sys.executable, "-m", "brainscore_plugins", "score", "grouplin_phase1-fmri",
                              "algonauts2023.subj01-direct"], capture_output=True, text=True, env=env, timeout=600)
    assert process.returncode == 2, process.stderr
    lines = [line for line in process.stderr.splitlines() if line.startswith("error:")]
    assert len(lines) == 1 and settings.ALGONAUTS in lines[0] and "Traceback" not in process.stderr


def test_search_layers_are_a_catalogued_models_candidates():
    """Our plugins' ModelCommitment lists only the committed layers: the search takes the family's candidates; any
    other Brain-Score model's ``layers`` are its candidates."""
    from brainscore_plugins import candidates, catalog, factory
    wrapper = factory.activations_model("spvvs_resnet18_imagenet_full", pretrained=False)
    committed = ModelCommitment(identifier="spvvs_resnet18_imagenet_full", activations_model=wrapper,
                                layers=["layer3.0", "avgpool"], region_layer_map={"IT": "layer3.0"},
                                behavioral_readout_layer="avgpool")
    expected = candidates.candidate_layers(catalog.resolve("spvvs_resnet18_imagenet_full"), wrapper._model)
    assert algonauts.search_layers(committed) == expected and len(expected) > 2
    assert algonauts.search_layers(_candidate()) == ["relu1", "relu2"]
