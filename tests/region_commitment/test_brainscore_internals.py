"""Every accessor of ``region_commitment.brainscore_internals`` (the only code reading Brain-Score's private
attributes) on real Brain-Score objects. Checked against brainscore_vision 2.4.2 (``CHECKED_VERSION``); on another
installed version the tests still run every accessor, and a warning names both versions."""
import logging
import warnings
from importlib.metadata import version

import pytest
import torchvision

from brainscore_plugins.benchmarks.bsp_synthetic.benchmark import SyntheticBehaviorBenchmark, SyntheticRegionBenchmark
from brainscore_plugins.preprocessing import preprocessing_for
from region_commitment import InvalidTargetError, brainscore_internals as internals


def test_checked_version_is_named():
    assert internals.CHECKED_VERSION == "2.4.2"
    if version("brainscore_vision") != internals.CHECKED_VERSION:
        warnings.warn(f"brainscore_internals was checked against brainscore_vision {internals.CHECKED_VERSION}; "
                      f"{version('brainscore_vision')} is installed")


def test_wrapper_accessors(tmp_path):
    from PIL import Image
    from brainscore_vision.model_helpers.activations.pytorch import PytorchWrapper
    model = torchvision.models.resnet18()
    wrapper = PytorchWrapper(identifier="internals", model=model, preprocessing=preprocessing_for(40, 32, "bilinear"))
    assert internals.torch_module(wrapper) is model and internals.torch_module(object()) is None
    Image.new("RGB", (50, 40)).save(tmp_path / "a.png")
    assert internals.preprocess(wrapper)([str(tmp_path / "a.png")]).shape == (1, 3, 32, 32)


@pytest.mark.slow
def test_neural_benchmark_accessors():
    benchmark = SyntheticRegionBenchmark("IT")
    assembly, degrees, n_components, split = internals.neural_benchmark_parts(benchmark)
    assert degrees == 8 and n_components == 25 and assembly.dims[:2] == ("presentation", "neuroid")
    assert internals.split_settings(split) == ("stimulus_id", "object_name", 10)
    assert internals.is_pls_benchmark(benchmark) and not internals.is_probabilities_benchmark(benchmark)
    with pytest.raises(InvalidTargetError, match="only cross-validated PLS neural benchmarks"):
        internals.neural_benchmark_parts(SyntheticBehaviorBenchmark())


@pytest.mark.slow
def test_behavioral_benchmark_and_classifier_accessors():
    benchmark = SyntheticBehaviorBenchmark()
    assembly, degrees, fitting, metric = internals.behavioral_benchmark_parts(benchmark)
    assert "image_label" in fitting.columns and assembly["sample_obj"].size == assembly.size and callable(metric)
    assert internals.is_probabilities_benchmark(benchmark) and not internals.is_pls_benchmark(benchmark)
    with pytest.raises(InvalidTargetError, match="only probabilities benchmarks with fitting stimuli"):
        internals.behavioral_benchmark_parts(SyntheticRegionBenchmark("IT"))
    mapping, classifier = internals.probabilities_classifier()
    assert classifier.get_params()["C"] == pytest.approx(1e-3) and hasattr(mapping, "labels_to_indices")


def test_download_failures_are_recognised_as_brainio_raises_them():
    """brainio's ``BotoFetcher.download_boto`` reports a failed download as a plain ``Exception`` of both attempts'
    errors; a subclass, or another shape, is not that report."""
    from botocore.exceptions import BotoCoreError, NoCredentialsError
    from brainscore_core.supported_data_standards.brainio.fetch import BotoFetcher

    class Offline(BotoFetcher):
        def __init__(self):  # no location: only the download is exercised
            self._logger = logging.getLogger(__name__)

        def download_boto_config(self, config):
            raise NoCredentialsError()

    with pytest.raises(Exception) as caught:
        Offline().download_boto()
    assert internals._download_failure(caught.value)
    assert not internals._download_failure(RuntimeError([NoCredentialsError()]))
    assert not internals._download_failure(Exception("another message"))
    assert BotoCoreError in internals.download_errors() and OSError in internals.download_errors()
