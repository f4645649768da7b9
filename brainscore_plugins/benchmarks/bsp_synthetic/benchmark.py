"""Small synthetic neural benchmarks (``NeuralBenchmark`` + PLS + split-half ceiling) and a behavioral one
(Rajalingham2018's match-to-sample ``i2n``) that run offline.

It exists so that the end-to-end path (plugin -> ``ModelCommitment`` -> ``score``) can be exercised where
Brain-Score's S3-hosted data are unreachable; its numbers say nothing about the brain.
"""
from brainscore_vision import load_ceiling, load_metric
from brainscore_vision.benchmark_helpers.neural_common import NeuralBenchmark, apply_keep_attrs, average_repetition
from brainscore_vision.benchmarks import BenchmarkBase
from brainscore_vision.benchmarks.rajalingham2018.benchmarks.benchmark import _DicarloRajalingham2018

from brainscore_plugins import settings, synthetic_recordings

VISUAL_DEGREES = 8
NUMBER_OF_TRIALS = 1
BIBTEX = ""


def SyntheticRegionBenchmark(region: str, seed: int = 0) -> NeuralBenchmark:
    stimuli = synthetic_recordings.stimulus_set(settings.cache_dir() / "synthetic_stimuli", seed=seed)
    repetitions = synthetic_recordings.neural_assembly(stimuli, region=region, seed=seed + ord(region[-1]))
    repetitions = apply_keep_attrs(repetitions, lambda a: a.squeeze("time_bin"))  # as MajajHong2015 does
    assembly = average_repetition(repetitions)
    ceiler = load_ceiling("internal_consistency")
    return NeuralBenchmark(
        identifier=f"bsp-synthetic.{region}-pls", version=1, assembly=assembly,
        similarity_metric=load_metric("pls", crossvalidation_kwargs=dict(stratification_coord="object_name")),
        visual_degrees=VISUAL_DEGREES, number_of_trials=NUMBER_OF_TRIALS,
        ceiling_func=lambda: ceiler(repetitions), parent=region, bibtex=BIBTEX)


def pixel_observer_trials(fitting, stimuli, seed: int = 0):
    """Trials of an observer reading objects out of image statistics (``synthetic_recordings.image_features``)."""
    from sklearn.linear_model import LogisticRegression

    observer = LogisticRegression(C=0.1).fit(synthetic_recordings.image_features(fitting),
                                             fitting["image_label"].values)
    proba = observer.predict_proba(synthetic_recordings.image_features(stimuli))
    order = [list(observer.classes_).index(obj) for obj in synthetic_recordings.OBJECTS]
    return synthetic_recordings.behavioral_trials(stimuli, proba[:, order], seed=seed)


class SyntheticBehaviorBenchmark(_DicarloRajalingham2018):
    """Rajalingham2018's match-to-sample benchmark (``i2n``, its ceiling and ceiling normalisation) on synthetic
    trials: by default an image-statistics observer's; ``fitting_stimuli`` + ``assembly`` plant any other."""

    def __init__(self, fitting_stimuli=None, assembly=None, seed: int = 0, identifier: str = "bsp-synthetic-i2n"):
        if fitting_stimuli is None:
            root = settings.cache_dir() / "synthetic_stimuli"
            fitting_stimuli = synthetic_recordings.fitting_stimuli(root, seed=seed + 100)
            stimuli = synthetic_recordings.stimulus_set(root, seed=seed + 200, identifier="bsp-trials")
            assembly = pixel_observer_trials(fitting_stimuli, stimuli, seed=seed)
        self._metric = load_metric("i2n")
        self._fitting_stimuli = fitting_stimuli
        self._assembly = assembly
        self._visual_degrees = VISUAL_DEGREES
        self._number_of_trials = 2
        BenchmarkBase.__init__(self, identifier=identifier, version=1, parent="behavior", bibtex=BIBTEX,
                               ceiling_func=lambda: self._metric.ceiling(self._assembly, skipna=True))
