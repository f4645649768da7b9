"""The Algonauts 2023 benchmarks end to end on synthetic data in the challenge's exact layout with planted signal:
registry, the layer x kernel search through Brain-Score's ModelCommitment, the committed-layer region mode, the
direct mode (a fake predictor and forged GroupLin) against the organisers' metric and noise ceiling written out as
their scripts compute them (held-out split and official test split, noise-normalised and raw r^2), GroupLin's
seen images left out, its validation benchmark against the authors' own computation, and bad inputs that fail before
anything is written."""
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
from brainscore_plugins.algonauts import benchmark as algonauts, synthetic_subjects
from brainscore_plugins.algonauts.benchmark import Algonauts2023
from brainscore_plugins.algonauts import splits

N_IMAGES, SIZE, N_TEST_IMAGES = 160, 32, 20
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
    """subj01 with responses = pooled relu2 (kernel 2) x random weights + noise, for its training and 20 test images;
    noise-ceiling inputs and the test split's files supplied."""
    root = tmp_path_factory.mktemp("algonauts") / "algonauts_2023_challenge_data"
    paths = synthetic_subjects.write_images(root, "subj01", synthetic_subjects.random_images(N_IMAGES, size=48, seed=1),
                                            test_images=N_TEST_IMAGES)
    paths += sorted((root / "subj01" / "test_split" / "test_images").glob("*.png"))
    design, rng = _planted(paths, "relu2", 2), np.random.default_rng(0)
    everything = {h: (design @ rng.standard_normal((design.shape[1], n)) / 4 + 0.3 * rng.standard_normal((len(paths),
                                                                                                          n)))
                  .astype(np.float32) for h, n in VERTICES.items()}
    fmri = {h: values[:N_IMAGES] for h, values in everything.items()}
    ncsnr = {h: rng.uniform(0.3, 1.5, n) for h, n in VERTICES.items()}
    repetitions = rng.integers(1, 4, N_IMAGES)
    synthetic_subjects.write_subject(root, "subj01", None, fmri, ncsnr=ncsnr, repetitions=repetitions,
                                     test_fmri={h: values[N_IMAGES:] for h, values in everything.items()},
                                     test_noise_ceiling={h: rng.uniform(0.3, 0.9, n) for h, n in VERTICES.items()})
    return root, fmri, _organisers_ceiling(ncsnr, repetitions[splits.devkit(N_IMAGES)[1]])


@pytest.fixture(autouse=True)
def isolated(tmp_path, monkeypatch):
    monkeypatch.setenv(settings.CACHE, str(tmp_path / "cache"))
    monkeypatch.delenv(settings.ALGONAUTS, raising=False)
    return tmp_path / "cache"


def _organisers_ceiling(ncsnr: dict, repetitions: np.ndarray) -> dict:
    """challenge_data_preparation.py's noise ceiling of images with these repetition counts."""
    rep_1 = rep_2 = rep_3 = 0
    for count in repetitions:
        if count == 1:
            rep_1 += 1
        elif count == 2:
            rep_2 += 1
        elif count == 3:
            rep_3 += 1
    norm_term = (rep_3 / 3 + rep_2 / 2 + rep_1 / 1) / (rep_3 + rep_2 + rep_1)
    return {h: (snr ** 2) / ((snr ** 2) + norm_term) for h, snr in ncsnr.items()}


def _expected(predictions: dict, fmri: dict, ceilings: dict | None, test: np.ndarray) -> float:
    """03_test_encoding.py written out (scipy's pearsonr per vertex, along axis 0 instead of their loop; r < 0 set to
    0, squared, over the noise ceiling with 1e-14 for 0, x 100, capped at 100; raw r^2 x 100 without ceilings),
    averaged over every vertex of both hemispheres: the challenge's score in percent."""
    from scipy.stats import pearsonr
    values = []
    for h in ("lh", "rh"):
        correlation = pearsonr(fmri[h][test], predictions[h], axis=0)[0]  # per vertex, as their loop, vectorised
        correlation[correlation < 0] = 0
        r2 = correlation ** 2
        if ceilings is None:
            values.append(r2 * 100)
            continue
        noise_ceiling = np.array(ceilings[h], dtype=np.float64)
        noise_ceiling[np.argwhere(noise_ceiling == 0)] = 1e-14
        normalized = np.divide(r2, noise_ceiling) * 100
        normalized[normalized > 100] = 100
        values.append(normalized)
    return float(np.mean(np.concatenate(values)))


def test_registry():
    """Brain-Score's own scanner finds exactly the documented identifiers, once each."""
    found = get_plugin_ids("benchmarks", ["algonauts2023"], str(plugin_sources.MODELS_DIR.parent))
    assert found == algonauts.identifiers()
    assert len(found) == 2 * 2 * (9 * 5 + 9) + 9 == 225
    assert {"algonauts2023.subj03.V4-ridge", "algonauts2023-direct", "algonauts2023-test-ridge",
            "algonauts2023.subj01-r2-ridge", "algonauts2023.IT-test-r2-ridge", "algonauts2023-lane2023val-direct"} \
        <= set(found)
    assert algonauts.parse("algonauts2023.subj03.V4-ridge") == algonauts.Spec(("subj03",), "V4", "heldout", True,
                                                                              "ridge")
    assert algonauts.parse("algonauts2023-test-r2-direct") == algonauts.Spec(algonauts.SUBJECTS, None, "test", False,
                                                                             "direct")
    assert algonauts.parse("algonauts2023-lane2023val-direct").metric == "median_r2"
    with pytest.raises(ValueError, match="Unknown Algonauts 2023 benchmark"):
        algonauts.parse("algonauts2023.subj09-ridge")


def test_load_benchmark_through_brainscore(challenge, monkeypatch):
    monkeypatch.setenv(settings.ALGONAUTS, str(challenge[0]))
    monkeypatch.setenv("BS_INSTALL_DEPENDENCIES", "no")
    bridge.link()
    benchmark = brainscore_vision.load_benchmark("algonauts2023.subj01-ridge")
    assert benchmark.identifier == "algonauts2023.subj01-ridge" and float(benchmark.ceiling) == 100
    assert np.isnan(float(brainscore_vision.load_benchmark("algonauts2023.subj01-r2-ridge").ceiling))


def test_search_finds_planted_layer_and_kernel(challenge, isolated):
    root, fmri, ceilings = challenge
    benchmark = Algonauts2023("algonauts2023.subj01-ridge", data_dir=root, kernels=(1, 2, 3), **FAST)
    score = benchmark(_candidate())
    cells = score.attrs["search"]
    winner = cells.loc[cells.vertices.idxmax()]
    assert (winner.layer, winner.kernel) == ("relu2", 2)
    assert cells.vertices.max() >= 0.8 * sum(VERTICES.values())
    assert float(score) > 50 and score.attrs["metric"] == "noise_normalized_r2" and score.attrs["unit"] == "percent"
    assert float(score.attrs["ceiling"]) == 100 and float(score.attrs["raw"]) == pytest.approx(float(score) / 100)
    assert score.attrs["scored_images"] == {"subj01": len(splits.devkit(N_IMAGES)[1])}
    table = score.attrs["roi_scores"]
    whole = table[(table.group == "all") & (table.hemisphere == "both")]
    assert whole.n_vertices.item() == sum(VERTICES.values())
    np.testing.assert_allclose(whole.score.item(), float(score), rtol=1e-6)
    assert not any(isolated.rglob("*.f32"))  # the per-layer feature files are removed once scored


@pytest.mark.parametrize("identifier", ["algonauts2023.subj01-test-ridge", "algonauts2023.subj01-r2-ridge"])
def test_search_on_the_test_split_and_raw_r2(challenge, identifier):
    """The test split fits on every training image and scores the test images; raw r^2 needs no ceiling: both find
    the planted cell."""
    score = Algonauts2023(identifier, data_dir=challenge[0], kernels=(1, 2), **FAST)(_candidate())
    cells = score.attrs["search"]
    assert tuple(cells.loc[cells.vertices.idxmax(), ["layer", "kernel"]]) == ("relu2", 2)
    test = "-test" in identifier
    assert score.attrs["scored_images"] == {"subj01": N_TEST_IMAGES if test else N_IMAGES // 10}
    assert score.attrs["metric"] == ("noise_normalized_r2" if test else "pearson_r2") and 30 < float(score) <= 100


def test_normalised_heldout_score_needs_the_noise_ceiling_inputs(challenge, tmp_path):
    """Without ncsnr / repetitions the noise-normalised held-out benchmark names the command and the raw variant."""
    import shutil
    copy = tmp_path / "copy"
    shutil.copytree(challenge[0], copy)
    shutil.rmtree(copy / "subj01" / "training_split" / "noise_ceiling")
    with pytest.raises(errors.AlgonautsDataError, match="noise-ceiling --nsd.*algonauts2023.subj01-r2-ridge"):
        Algonauts2023("algonauts2023.subj01-ridge", data_dir=copy, **FAST)(_candidate())


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


N_FULL, N_TEST = 120, 12


@pytest.fixture(scope="module")
def full_space(tmp_path_factory):
    """subj01 with the real vertex counts (19,004 + 20,544 = the 39,548 group vertices), 120 training and 12 test
    images, NSD ncsnr (some 0: the 1e-14 rule) and repetition counts, and the organisers' test split files."""
    root = tmp_path_factory.mktemp("algonauts-full")
    rng = np.random.default_rng(3)
    counts = {"lh": 19004, "rh": 20544}
    fmri = {h: rng.standard_normal((N_FULL, n)).astype(np.float32) for h, n in counts.items()}
    test_fmri = {h: rng.standard_normal((N_TEST, n)).astype(np.float32) for h, n in counts.items()}
    ncsnr = {h: rng.uniform(0, 1.2, n) for h, n in counts.items()}
    ncsnr["lh"][:5] = 0
    test_ceiling = {h: rng.uniform(0, 1, n) for h, n in counts.items()}
    test_ceiling["rh"][:5] = 0
    repetitions = rng.integers(1, 4, N_FULL)
    images = synthetic_subjects.random_images(N_FULL, size=32, seed=2)
    synthetic_subjects.write_subject(root, "subj01", images, fmri, ncsnr=ncsnr, repetitions=repetitions,
                                     test_fmri=test_fmri, test_noise_ceiling=test_ceiling, test_images=N_TEST)
    subject = algonauts.load_subject("subj01", root, test=True)
    by_path = {str(p): np.concatenate([data["lh"][i], data["rh"][i]])
               for paths, data in ((subject.images, fmri), (subject.test_images, test_fmri))
               for i, p in enumerate(paths)}
    return {"root": root, "fmri": fmri, "test_fmri": test_fmri, "ncsnr": ncsnr, "repetitions": repetitions,
            "test_ceiling": test_ceiling, "subject": subject, "by_path": by_path}


def _direct_expected(space: dict, predictor, split: str, normalized: bool, rows=None) -> float:
    """The organisers' computation on ``predictor``'s predictions of the split's scored images (``rows`` of the
    training images for the held-out split, default the dev kit's held-out 10 %)."""
    subject, group = space["subject"], algonauts.group_space(space["root"])
    if split == "test":
        paths, truth, rows = [str(p) for p in subject.test_images], space["test_fmri"], np.arange(N_TEST)
        ceilings = space["test_ceiling"]
    else:
        rows = splits.devkit(N_FULL)[1] if rows is None else rows
        paths, truth = [str(subject.images[i]) for i in rows], space["fmri"]
        ceilings = _organisers_ceiling(space["ncsnr"], space["repetitions"][rows])
    predicted = algonauts.subject_vertices(predictor.predict_fmri(paths, "subj01"), subject, group)
    return _expected(predicted, truth, ceilings if normalized else None, rows)


@pytest.mark.parametrize("identifier", ["algonauts2023.subj01-direct", "algonauts2023.subj01-r2-direct",
                                        "algonauts2023.subj01-test-direct", "algonauts2023.subj01-test-r2-direct"])
@pytest.mark.slow
def test_direct_mode_equals_the_organisers_computation(full_space, identifier):
    """Held-out split (ceiling from ncsnr and the held-out images' repetitions) and test split (the organisers' ceiling
    file), noise-normalised and raw r^2, all in percent."""
    predictor = FakePredictor(full_space["by_path"])
    score = Algonauts2023(identifier, data_dir=full_space["root"], progress=False)(predictor)
    split = "test" if "-test" in identifier else "heldout"
    normalized = "-r2" not in identifier
    np.testing.assert_allclose(float(score), _direct_expected(full_space, predictor, split, normalized), rtol=1e-5)
    assert score.attrs["metric"] == ("noise_normalized_r2" if normalized else "pearson_r2")
    assert score.attrs["scored_images"] == {"subj01": N_TEST if split == "test" else N_FULL // 10}
    assert float(score.attrs["raw"]) == pytest.approx(float(score) / 100)
    backend = matplotlib.get_backend()
    ax = algonauts.plot_rois(score)
    assert len(ax.patches) > 0 and matplotlib.get_backend() == backend


@pytest.mark.slow
def test_images_a_model_saw_are_never_scored(full_space, caplog):
    """A predictor declaring the NSD ids it trained on is scored on the held-out images it did not see (counted,
    warned), with the ceiling of exactly those images; too few left, or a seen test image, is an error."""
    subject, heldout = full_space["subject"], splits.devkit(N_FULL)[1]
    nsd_ids = subject.nsd_ids()
    predictor = FakePredictor(full_space["by_path"])
    predictor.nsd_seen = lambda name, ids: ids[heldout[:2]]
    score = Algonauts2023("algonauts2023.subj01-direct", data_dir=full_space["root"], progress=False)(predictor)
    assert score.attrs["excluded_seen_images"] == {"subj01": 2} and "trained or selected on the other 2" in caplog.text
    expected = _direct_expected(full_space, predictor, "heldout", True, rows=heldout[2:])
    np.testing.assert_allclose(float(score), expected, rtol=1e-5)
    predictor.nsd_seen = lambda name, ids: ids[heldout[:5]]
    with pytest.raises(errors.AlgonautsDataError, match="leaving 7 .*fewer than 10.*test split"):
        Algonauts2023("algonauts2023.subj01-direct", data_dir=full_space["root"], progress=False)(predictor)
    predictor.nsd_seen = lambda name, ids: np.concatenate([ids, subject.nsd_ids("test")[:1]])
    with pytest.raises(errors.AlgonautsDataError, match="1 of subj01's test images"):
        Algonauts2023("algonauts2023.subj01-test-direct", data_dir=full_space["root"], progress=False)(predictor)
    assert len(nsd_ids) == N_FULL


@pytest.mark.slow
def test_grouplin_direct(full_space, tmp_path, monkeypatch):
    """The forged GroupLin phase-1 predictor: on the test split its score is the organisers' metric of its own
    outputs; on the dev kit's held-out split, where it trained or selected on all but a few images, it is refused."""
    monkeypatch.setenv(settings.MIRROR, str(tmp_path / "mirror"))
    monkeypatch.setenv(settings.HF_HUB_OFFLINE, "1")
    forge.forge_into_mirror("grouplin_phase1", tmp_path / "mirror")
    monkeypatch.setenv("BS_INSTALL_DEPENDENCIES", "no")
    bridge.link()
    predictor = brainscore_vision.load_model("grouplin_phase1-fmri")
    score = Algonauts2023("algonauts2023.subj01-test-direct", data_dir=full_space["root"], progress=False)(predictor)
    predictor.predict_fmri = functools.partial(predictor.predict_fmri, progress=False)
    np.testing.assert_allclose(float(score), _direct_expected(full_space, predictor, "test", True), rtol=1e-4)
    assert score.attrs["excluded_seen_images"] == {"subj01": 0}
    parts = splits.lane2023(N_FULL, "subj01")
    seen = np.isin(splits.devkit(N_FULL)[1], np.concatenate([parts["train"], parts["val"]])).sum()
    with pytest.raises(errors.AlgonautsDataError, match=f"trained or selected on {seen} of the 12 images"):
        Algonauts2023("algonauts2023.subj01-direct", data_dir=full_space["root"], progress=False)(predictor)


@pytest.mark.slow
def test_direct_mode_needs_a_predictor(full_space):
    with pytest.raises(algonauts.ModelUnsuitableError, match="predicts no fMRI.*-ridge"):
        Algonauts2023("algonauts2023.subj01-direct", data_dir=full_space["root"], progress=False)(_candidate())


def test_direct_mode_needs_the_group_space(challenge):
    with pytest.raises(errors.AlgonautsDataError, match="39548"):
        Algonauts2023("algonauts2023.subj01-direct", data_dir=challenge[0], progress=False)(FakePredictor({}))


@pytest.mark.parametrize("problem", ["missing subject", "count mismatch", "nan", "swapped hemisphere"])
def test_bad_data_fails_before_anything_is_written(problem, challenge, tmp_path, isolated):
    root, fmri, ceilings = challenge
    bad = tmp_path / "bad"
    identifier = "algonauts2023.subj02-ridge" if problem == "missing subject" else "algonauts2023.subj01-ridge"
    if problem != "missing subject":
        images = synthetic_subjects.random_images(20 if problem == "count mismatch" else 21, size=32)
        data = {h: np.zeros((21, n), np.float32) for h, n in VERTICES.items()}
        if problem == "nan":
            data["rh"][3, 7] = np.nan
        if problem == "swapped hemisphere":
            data = {"lh": data["rh"], "rh": data["lh"]}
        if problem == "count mismatch":
            synthetic_subjects.write_images(bad, "subj01", images)
            images = None
        labels = {g: {h: synthetic_subjects.default_labels(VERTICES[h], h, g) for h in VERTICES}
                  for g in synthetic_subjects.ROI_NAMES}
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
    zeros = {h: np.zeros((len(next(iter(data.values()))), VERTICES[h]), np.float32) for h in VERTICES}
    subject = synthetic_subjects.write_subject(root, "subj01", images, zeros, rois=labels)
    for h, array in data.items():
        np.save(subject / "training_split" / "training_fmri" / f"{h}_training_fmri.npy", array)
    assert FSAVERAGE_VERTICES == 163842


@pytest.mark.slow
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
    """Our plugins' ModelCommitment lists only the committed layers: the search takes the family's candidates, which
    the model carries; any other Brain-Score model's ``layers`` are its candidates."""
    from brainscore_plugins import candidates, catalog, factory
    committed = factory.brain_model("spvvs_resnet18_imagenet_full", pretrained=False)
    expected = candidates.for_entry(catalog.resolve("spvvs_resnet18_imagenet_full"),
                                    committed.activations_model._model)
    assert algonauts.search_layers(committed) == expected and len(expected) > 2
    assert committed.layers != expected
    assert algonauts.search_layers(_candidate()) == ["relu1", "relu2"]
