"""The one place that reads Brain-Score's private attributes.

``region_commitment`` needs a few things Brain-Score keeps private: the torch module and preprocessing inside a
``PytorchWrapper``, the assembly, visual degrees, PLS size and cross-validation ``Split`` of a ``NeuralBenchmark``,
the fitting stimuli and metric of a probabilities benchmark, the classifier of ``ProbabilitiesMapping``, the
ImageNet reference images of ``LayerPCA`` and how a failed download surfaces. A Brain-Score release that renames one
of them is fixed here; the accessors are tested against :data:`CHECKED_VERSION`
(``tests/region_commitment/test_brainscore_internals.py``).
"""
from __future__ import annotations

from .errors import BenchmarkUnavailableError, InvalidTargetError

CHECKED_VERSION = "2.4.2"  # brainscore_vision


def torch_module(activations_model):
    """The torch module inside a ``PytorchWrapper`` (``None`` for another kind of activations model)."""
    from torch import nn
    model = getattr(activations_model, "_model", None)
    return model if isinstance(model, nn.Module) else None


def preprocess(activations_model):
    """The wrapper's ``preprocessing``: image paths -> a batch (numpy)."""
    return activations_model._extractor.preprocess


def load_benchmark(identifier: str):
    """``brainscore_vision.load_benchmark(identifier)``.

    Raises:
        InvalidTargetError: no plugin registers ``identifier`` (brainscore_core's ``ImportPlugin`` asserts one does).
        BenchmarkUnavailableError: its data are neither cached nor downloadable (brainio's ``BotoFetcher.download_boto``
            raises a plain ``Exception`` holding the signed and the unsigned attempt's errors, e.g. botocore's
            ``NoCredentialsError`` and ``EndpointConnectionError`` offline).
    """
    from brainscore_vision import load_benchmark as load

    try:
        return load(identifier)
    except AssertionError as error:
        if not str(error).startswith("No registrations found for"):
            raise
        raise InvalidTargetError(f"No installed Brain-Score plugin registers benchmark {identifier!r}; check the "
                                 f"identifier (brainscore_vision.benchmark_registry lists the loaded ones)") from error
    except Exception as error:  # brainio raises a plain Exception: that class exactly, any other is re-raised
        if not _download_failure(error):
            raise
        attempts = "; ".join(f"{type(e).__name__}: {e}" for e in error.args[0])
        raise BenchmarkUnavailableError(f"The data of benchmark {identifier!r} are neither cached nor downloadable "
                                        f"({attempts})") from error


def _download_failure(error: Exception) -> bool:
    """Whether ``error`` is brainio's report of a failed S3 download: a plain ``Exception([signed error, unsigned
    error])``."""
    return type(error) is Exception and len(error.args) == 1 and isinstance(error.args[0], list) \
        and all(isinstance(e, Exception) for e in error.args[0])


def download_errors() -> tuple[type[BaseException], ...]:
    """What Brain-Score's own S3 downloads (``model_helpers.utils.s3``) raise when the file cannot be had: botocore's
    errors (``EndpointConnectionError`` offline, ``ClientError`` without access), boto3's transfer errors, and
    ``OSError`` (the disk, a dropped connection)."""
    from boto3.exceptions import Boto3Error
    from botocore.exceptions import BotoCoreError, ClientError
    return BotoCoreError, ClientError, Boto3Error, OSError


def _pls_metric(benchmark) -> tuple:
    """(similarity metric, its regression's estimator, its cross-validation), each ``None`` where absent."""
    metric = getattr(benchmark, "_similarity_metric", None)
    return (metric, getattr(getattr(metric, "regression", None), "_regression", None),
            getattr(metric, "cross_validation", None))


def is_pls_benchmark(benchmark) -> bool:
    """Whether ``benchmark`` is a ``NeuralBenchmark`` scored by a cross-validated PLS metric."""
    _, regression, cv = _pls_metric(benchmark)
    return type(regression).__name__ == "PLSRegression" and cv is not None


def is_probabilities_benchmark(benchmark) -> bool:
    """Whether ``benchmark`` is a probabilities benchmark with fitting stimuli (Rajalingham2018-style)."""
    return all(hasattr(benchmark, name) for name in ("_fitting_stimuli", "_assembly", "_metric"))


def neural_benchmark_parts(benchmark) -> tuple:
    """(assembly, visual degrees, PLS components, the metric's cross-validation ``Split``) of a cross-validated PLS
    ``NeuralBenchmark``.

    Raises:
        InvalidTargetError: another kind of benchmark, or one whose cross-validation rewrites its split indices.
    """
    metric, regression, cv = _pls_metric(benchmark)
    if not is_pls_benchmark(benchmark):
        raise InvalidTargetError(f"{benchmark.identifier}: only cross-validated PLS neural benchmarks are supported "
                                 f"(its metric is {type(metric).__name__})")
    if getattr(cv, "_preprocess_indices", None) is not None:
        raise InvalidTargetError(f"{benchmark.identifier}: its cross-validation rewrites the split indices "
                                 f"(preprocess_indices), which region_commitment does not reproduce; use another "
                                 f"benchmark")
    return benchmark._assembly, benchmark._visual_degrees, regression.n_components, cv._split


def split_settings(split) -> tuple[str, str | None, int]:
    """(split coordinate, stratification coordinate or ``None``, number of splits) of a ``Split``."""
    return split._split_coord, split._stratification_coord if split.do_stratify else None, \
        split._split.get_n_splits()


def behavioral_benchmark_parts(benchmark) -> tuple:
    """(trials assembly, visual degrees, fitting stimuli, metric) of a probabilities benchmark with fitting stimuli
    (Rajalingham2018-style).

    Raises:
        InvalidTargetError: another kind of benchmark.
    """
    if not is_probabilities_benchmark(benchmark):
        raise InvalidTargetError(f"{benchmark.identifier}: only probabilities benchmarks with fitting stimuli (like "
                                 f"Rajalingham2018public-i2n) can select a behavioral readout")
    return benchmark._assembly, benchmark._visual_degrees, benchmark._fitting_stimuli, benchmark._metric


def probabilities_classifier():
    """(``ProbabilitiesMapping.ProbabilitiesClassifier`` for its label indexing, its scikit-learn classifier with
    Brain-Score's settings)."""
    from brainscore_vision.model_helpers.brain_transformation.behavior import ProbabilitiesMapping
    mapping = ProbabilitiesMapping.ProbabilitiesClassifier()
    return mapping, mapping._classifier


def imagenet_val_images(n: int) -> list[str]:
    """``LayerPCA``'s reference images for ``n`` components (reads, and downloads when missing, Brain-Score's file)."""
    from brainscore_vision.model_helpers.activations.pca import _get_imagenet_val
    return _get_imagenet_val(num_images=n)
