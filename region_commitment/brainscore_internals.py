"""The one place that reads Brain-Score's private attributes.

``region_commitment`` needs a few things Brain-Score keeps private: the torch module and preprocessing inside a
``PytorchWrapper``, the assembly, visual degrees, PLS size and cross-validation ``Split`` of a ``NeuralBenchmark``,
the fitting stimuli and metric of a probabilities benchmark, the classifier of ``ProbabilitiesMapping`` and the
ImageNet reference images of ``LayerPCA``. A Brain-Score release that renames one of them is fixed here; the
accessors are tested against :data:`CHECKED_VERSION` (``tests/test_brainscore_internals.py``).
"""
from __future__ import annotations

CHECKED_VERSION = "2.4.2"  # brainscore_vision


def torch_module(activations_model):
    """The torch module inside a ``PytorchWrapper`` (``None`` for another kind of activations model)."""
    return getattr(activations_model, "_model", None)


def preprocess(activations_model):
    """The wrapper's ``preprocessing``: image paths -> a batch (numpy)."""
    return activations_model._extractor.preprocess


def neural_benchmark_parts(benchmark) -> tuple:
    """(assembly, visual degrees, PLS components, the metric's cross-validation ``Split``) of a cross-validated PLS
    ``NeuralBenchmark``; a ``ValueError`` for any other benchmark."""
    metric = getattr(benchmark, "_similarity_metric", None)
    regression = getattr(getattr(metric, "regression", None), "_regression", None)
    cv = getattr(metric, "cross_validation", None)
    if regression is None or type(regression).__name__ != "PLSRegression" or cv is None:
        raise ValueError(f"{benchmark.identifier}: only cross-validated PLS neural benchmarks are supported "
                         f"(its metric is {type(metric).__name__})")
    if getattr(cv, "_preprocess_indices", None) is not None:
        raise ValueError(f"{benchmark.identifier}: its cross-validation rewrites the split indices "
                         f"(preprocess_indices), which region_commitment does not reproduce; use another benchmark")
    return benchmark._assembly, benchmark._visual_degrees, regression.n_components, cv._split


def split_settings(split) -> tuple[str, str | None, int]:
    """(split coordinate, stratification coordinate or ``None``, number of splits) of a ``Split``."""
    return split._split_coord, split._stratification_coord if split.do_stratify else None, \
        split._split.get_n_splits()


def behavioral_benchmark_parts(benchmark) -> tuple:
    """(trials assembly, visual degrees, fitting stimuli, metric) of a probabilities benchmark with fitting stimuli
    (Rajalingham2018-style); a ``ValueError`` for any other benchmark."""
    if not all(hasattr(benchmark, name) for name in ("_fitting_stimuli", "_assembly", "_metric")):
        raise ValueError(f"{benchmark.identifier}: only probabilities benchmarks with fitting stimuli (like "
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
