"""A small synthetic neural benchmark (``NeuralBenchmark`` + PLS + split-half ceiling) that runs offline.

It exists so that the end-to-end path (plugin -> ``ModelCommitment`` -> ``score``) can be exercised where
Brain-Score's S3-hosted data are unreachable; its numbers say nothing about the brain.
"""
from brainscore_vision import load_ceiling, load_metric
from brainscore_vision.benchmark_helpers.neural_common import NeuralBenchmark, apply_keep_attrs, average_repetition

from brainscore_plugins import hub, synthetic

VISUAL_DEGREES = 8
NUMBER_OF_TRIALS = 1
BIBTEX = ""


def SyntheticRegionBenchmark(region: str, seed: int = 0) -> NeuralBenchmark:
    stimuli = synthetic.stimulus_set(hub.cache_dir() / "synthetic_stimuli", seed=seed)
    repetitions = synthetic.neural_assembly(stimuli, region=region, seed=seed + ord(region[-1]))
    repetitions = apply_keep_attrs(repetitions, lambda a: a.squeeze("time_bin"))  # as MajajHong2015 does
    assembly = average_repetition(repetitions)
    ceiler = load_ceiling("internal_consistency")
    return NeuralBenchmark(
        identifier=f"bsp-synthetic.{region}-pls", version=1, assembly=assembly,
        similarity_metric=load_metric("pls", crossvalidation_kwargs=dict(stratification_coord="object_name")),
        visual_degrees=VISUAL_DEGREES, number_of_trials=NUMBER_OF_TRIALS,
        ceiling_func=lambda: ceiler(repetitions), parent=region, bibtex=BIBTEX)
