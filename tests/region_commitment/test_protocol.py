"""The target protocol: a kind of target written here alone runs through ``commit`` beside a neural one, per-layer
scores round-trip through the cache, the factory table dispatches benchmarks by kind, and errors are
region_commitment's own classes."""
import ast
import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
import torch
import torchvision

import region_commitment
from brainscore_plugins import synthetic_recordings
from brainscore_plugins.benchmarks.bsp_synthetic.benchmark import SyntheticBehaviorBenchmark, SyntheticRegionBenchmark
from brainscore_plugins.preprocessing import preprocessing_for
from region_commitment import (TARGET_FACTORIES, BehaviorTarget, BenchmarkUnavailableError, CommitmentError,
                               InvalidTargetError, LayerScore, RegionCommitmentError, RegionTarget, Target,
                               brainscore_internals, commit, from_assembly, load_target, settings)
from region_commitment.reference import default_reference_images

LAYERS = ["layer2.1", "layer3.1", "layer4.0", "avgpool"]
PLANTED = {"V4": "layer3.1", "IT": "layer4.0"}
TOY_LAYER = "layer2.1"
N_REFERENCE = 60


class MeanActivationTarget:
    """A kind of target only this test knows: Pearson r of each image's mean activation with a planted vector."""
    needs_reference = False

    def __init__(self, paths: list[str], planted: np.ndarray, region: str = "toy"):
        self.region, self.identifier, self.paths, self.planted = region, f"mean-activation-{region}", paths, planted

    def image_paths(self) -> list[str]:
        return self.paths

    def fingerprint(self) -> str:
        return hashlib.sha256(self.planted.tobytes()).hexdigest()

    def score(self, layer) -> tuple[float, float, float]:
        means = np.asarray(layer.features)[layer.rows(self.paths)].mean(1, dtype=np.float64)
        r = float(np.corrcoef(means, self.planted)[0, 1])
        return r, 0.0, r


class NaNTarget(MeanActivationTarget):
    def score(self, layer):
        return float("nan"), float("nan"), float("nan")


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    from brainscore_vision.model_helpers.activations.pytorch import PytorchWrapper
    root = tmp_path_factory.mktemp("protocol")
    torch.manual_seed(0)
    wrapper = PytorchWrapper(identifier="resnet18-protocol", model=torchvision.models.resnet18(),
                             preprocessing=preprocessing_for(96, 80, "bilinear"))
    stimuli = synthetic_recordings.stimulus_set(root / "stimuli", n_per_object=12, size=64)
    reference = [str(p) for p in default_reference_images(root / "cache", n=N_REFERENCE)]
    paths = [str(stimuli.get_stimulus(s)) for s in stimuli["stimulus_id"]]
    activations = wrapper.get_activations(wrapper._extractor.preprocess(reference + paths),
                                          [*PLANTED.values(), TOY_LAYER])
    flat = {layer: a.reshape(len(reference) + len(paths), -1).astype(np.float64) for layer, a in activations.items()}
    targets = {}
    for i, (region, layer) in enumerate(PLANTED.items()):
        responses = synthetic_recordings.planted_responses(flat[layer][:N_REFERENCE], flat[layer][N_REFERENCE:], seed=i)
        assembly = synthetic_recordings.repeated_assembly(stimuli, responses, region, noise=0.3, seed=i)
        targets[region] = from_assembly(assembly, region, identifier=f"planted-{region}")
    toy = MeanActivationTarget(paths, flat[TOY_LAYER][N_REFERENCE:].mean(1))
    return wrapper, targets, toy, root


def _commit(wrapper, benchmarks, cache_dir):
    return commit(wrapper, LAYERS, benchmarks, reference="builtin", n_components=50, cache_dir=cache_dir,
                  progress=False)


@pytest.mark.slow
def test_a_new_kind_of_target_needs_no_change_to_commit(setup, monkeypatch):
    """The toy target gets its planted layer beside the neural ones, whose scores it leaves bit for bit as they are;
    the layer's PCA is still projected once per layer for every neural target together."""
    import region_commitment.protocol as protocol_module
    wrapper, targets, toy, root = setup
    assert all(isinstance(t, Target) for t in (*targets.values(), toy))
    projections = []
    real = protocol_module.project
    monkeypatch.setattr(protocol_module, "project", lambda *a, **k: projections.append(1) or real(*a, **k))
    result = _commit(wrapper, {"toy": toy, **targets}, root / "cache")
    assert len(projections) == len(LAYERS)
    assert result.region_layer_map["toy"] == TOY_LAYER
    assert next(r for r in result.scores if r.region == "toy" and r.layer == TOY_LAYER).ceiled > 0.999
    assert [r.region for r in result.scores[:3]] == ["V4", "IT", "toy"]  # neural rows first, as ever
    assert result.provenance["benchmarks"]["toy"] == {"identifier": toy.identifier, "digest": toy.fingerprint()}
    assert f"toy,{TOY_LAYER},0," in result.csv()

    neural_only = _commit(wrapper, targets, root / "cache")
    assert [r for r in result.scores if r.region != "toy"] == neural_only.scores
    assert {r: result.region_layer_map[r] for r in targets} == neural_only.region_layer_map

    alone = _commit(wrapper, {"toy": toy}, root / "cache")  # needs no reference images: none are loaded
    assert alone.provenance["reference"] is None and alone.region_layer_map == {"toy": TOY_LAYER}
    assert alone.behavioral_readout_layer == LAYERS[-1]


@pytest.mark.slow
def test_layer_scores_round_trip_through_the_per_layer_cache(setup, monkeypatch, tmp_path):
    from region_commitment import features
    wrapper, targets, toy, _ = setup
    first = _commit(wrapper, {"IT": targets["IT"], "toy": toy}, tmp_path)
    assert all(isinstance(r, LayerScore) for r in first.scores)
    (cached,) = tmp_path.glob(f"{wrapper.identifier}/*/scores/{LAYERS[0]}.json")
    rows = json.loads(cached.read_text())
    assert [list(row) for row in rows] == [["region", "layer", "depth", "raw", "error", "ceiled"]] * 2
    assert [LayerScore.from_dict(row) for row in rows] == first.scores[:2]

    monkeypatch.setattr(features, "extract", lambda *a, **k: pytest.fail("scores are cached"))
    second = _commit(wrapper, {"IT": targets["IT"], "toy": toy}, tmp_path)
    assert second.scores == first.scores and second.region_layer_map == first.region_layer_map
    score = first.scores[0]
    assert LayerScore.from_dict(score.as_dict()) == score
    with pytest.raises(AttributeError):
        score.raw = 0.0


@pytest.mark.slow
def test_the_factory_table_dispatches_benchmarks_by_kind(setup, offline, linked):
    _, targets, toy, _ = setup
    assert [f.accepts for f in TARGET_FACTORIES] == [brainscore_internals.is_pls_benchmark,
                                                     brainscore_internals.is_probabilities_benchmark]  # in this order
    neural = load_target("V4", SyntheticRegionBenchmark("IT"))
    assert isinstance(neural, RegionTarget) and neural.region == "V4" and neural.identifier == "bsp-synthetic.IT-pls"
    assert isinstance(load_target("anything", SyntheticBehaviorBenchmark()), BehaviorTarget)  # the kind, not the key
    assert isinstance(load_target("IT", "bsp-synthetic.IT-pls"), RegionTarget)  # an identifier, loaded first
    assert load_target("IT", targets["IT"]) is targets["IT"] and load_target("toy", toy) is toy
    with pytest.raises(InvalidTargetError, match="a target is made only from a cross-validated PLS NeuralBenchmark"):
        load_target("IT", object())


def test_an_unreachable_or_unknown_benchmark_is_unavailable(offline, monkeypatch, tmp_path):
    """Brain-Score's own loading, offline (its S3 download fails as it does without network): the plain Exception
    brainio raises becomes a BenchmarkUnavailableError; any other error passes through as it is."""
    from botocore.exceptions import EndpointConnectionError
    from brainscore_core.supported_data_standards.brainio import fetch

    def offline_download(self, config):
        raise EndpointConnectionError(endpoint_url=f"https://{self.bucketname}.invalid/{self.relative_path}")

    monkeypatch.setattr(fetch, "_local_data_path", str(tmp_path))  # nothing cached
    monkeypatch.setattr(fetch.BotoFetcher, "download_boto_config", offline_download)
    unreachable = "MajajHong2015public.IT-pls.*neither cached nor downloadable.*EndpointConnectionError"
    with pytest.raises(BenchmarkUnavailableError, match=unreachable) as caught:
        load_target("IT", "MajajHong2015public.IT-pls")
    assert type(caught.value.__cause__) is Exception
    with pytest.raises(InvalidTargetError, match="No installed Brain-Score plugin registers"):
        region_commitment.from_behavioral_benchmark("NoSuchBenchmark-i2n")

    def broken(self):
        raise RuntimeError("a bug, not an unreachable file")
    monkeypatch.setattr(fetch.BotoFetcher, "download_boto", broken)
    with pytest.raises(RuntimeError, match="a bug"):
        load_target("IT", "MajajHong2015public.IT-pls")


def test_errors_are_region_commitment_errors(setup, tmp_path):
    wrapper, targets, toy, _ = setup
    assert all(issubclass(e, RegionCommitmentError) for e in (BenchmarkUnavailableError, InvalidTargetError,
                                                               CommitmentError))
    assert issubclass(InvalidTargetError, ValueError) and issubclass(CommitmentError, ValueError)
    stimuli = targets["IT"].stimulus_set
    nan = synthetic_recordings.repeated_assembly(stimuli, np.full((len(stimuli), 3), np.nan), "IT", noise=0.0)
    with pytest.raises(InvalidTargetError, match="every neuroid is NaN or constant"):
        from_assembly(nan, "IT", ceiling=0.9)
    foreign = synthetic_recordings.repeated_assembly(stimuli, np.ones((len(stimuli), 3)), "IT")
    foreign.attrs["stimulus_set"] = stimuli.iloc[:5]
    with pytest.raises(InvalidTargetError, match="not in its stimulus set"):
        from_assembly(foreign, "IT", ceiling=0.9)
    for layers, message in [(["layer9"], r"no layer\(s\) \['layer9'\]"), ([], "empty"), ("all", "Unknown layer set")]:
        with pytest.raises(CommitmentError, match=message):
            commit(wrapper, layers, {"toy": toy}, cache_dir=tmp_path, progress=False)
    with pytest.raises(CommitmentError, match="Every candidate layer scored NaN on mean-activation-nan"):
        commit(wrapper, ["avgpool"], {"nan": NaNTarget(toy.paths, toy.planted, "nan")}, cache_dir=tmp_path,
               progress=False)


def test_settings_are_read_when_used_and_nowhere_else(monkeypatch, tmp_path):
    monkeypatch.setenv(settings.CACHE_ENV, str(tmp_path / "cache"))
    monkeypatch.setenv(settings.MT_HOME_ENV, str(tmp_path / "mt"))
    monkeypatch.delenv(settings.MT_IMAGENET_PATH_ENV, raising=False)
    monkeypatch.setenv(settings.REFERENCE_ENV, "")
    assert settings.cache_dir() == tmp_path / "cache" and settings.reference() is None
    assert settings.imagenet_hdf5() == tmp_path / "mt" / "imagenet2012.hdf5"
    assert {v.name for v in settings.VARIABLES} == {settings.CACHE_ENV, settings.REFERENCE_ENV, settings.MT_HOME_ENV,
                                                    settings.MT_IMAGENET_PATH_ENV}
    package = Path(region_commitment.__file__).parent
    readers = {path.name for path in package.glob("*.py") for node in ast.walk(ast.parse(path.read_text()))
               if isinstance(node, ast.Attribute) and node.attr in ("environ", "getenv")}
    assert readers == {"settings.py"}
