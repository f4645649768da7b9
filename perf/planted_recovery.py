"""Planted-layer recovery: plant responses in each candidate layer in turn and count how often commit finds it.

    python perf/planted_recovery.py [--per-object 25] [--reference 120]

resnet18 (random init, seed 0), 112 px. Neural: one target per candidate layer (a middle PCA band of that layer,
``synthetic_recordings.planted_responses``, observed with noise over 4 repetitions), all committed in one call (one
forward pass). Behavior: for each candidate layer, match-to-sample trials of an observer whose choice probabilities are
Brain-Score's own ``ProbabilitiesMapping`` classifier on that layer; the readout is selected on them. A case counts
as recovered when the planted layer is chosen and wins by more than its error over splits. The last line printed
is a JSON summary.
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import warnings
from pathlib import Path

import numpy as np
import torch
import torchvision

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

LAYERS = ["layer1.0", "layer1.1", "layer2.0", "layer2.1", "layer3.0", "layer3.1", "layer4.0", "layer4.1", "avgpool",
          "fc"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--per-object", type=int, default=25)
    parser.add_argument("--reference", type=int, default=120)
    args = parser.parse_args()
    warnings.filterwarnings("ignore", category=RuntimeWarning)  # i2n's nanmean over the sample object's own column
    from brainscore_core.supported_data_standards.brainio.assemblies import NeuroidAssembly
    from brainscore_vision.model_helpers.activations.pytorch import PytorchWrapper
    from brainscore_vision.model_helpers.brain_transformation.behavior import ProbabilitiesMapping
    from brainscore_plugins import synthetic_recordings
    from brainscore_plugins.benchmarks.bsp_synthetic.benchmark import SyntheticBehaviorBenchmark
    from brainscore_plugins.preprocessing import preprocessing_for
    from region_commitment import commit, from_assembly
    from region_commitment.reference import default_reference_images

    work = Path(tempfile.mkdtemp(prefix="planted-recovery-"))
    torch.manual_seed(0)
    wrapper = PytorchWrapper(identifier="resnet18-planted", model=torchvision.models.resnet18(),
                             preprocessing=preprocessing_for(128, 112, "bilinear"))
    stimuli = synthetic_recordings.stimulus_set(work / "stimuli", n_per_object=args.per_object)
    fitting = synthetic_recordings.fitting_stimuli(work / "fitting", n_per_object=40)
    trial_stimuli = synthetic_recordings.stimulus_set(work / "trials", n_per_object=args.per_object, seed=5,
                                                      identifier="bsp-trials")
    reference = [str(p) for p in default_reference_images(work / "reference", n=args.reference)]
    sets = {"reference": reference, "stimuli": [str(stimuli.get_stimulus(s)) for s in stimuli["stimulus_id"]],
            "fitting": [str(fitting.get_stimulus(s)) for s in fitting["stimulus_id"]],
            "trials": [str(trial_stimuli.get_stimulus(s)) for s in trial_stimuli["stimulus_id"]]}
    paths = [p for group in sets.values() for p in group]
    activations = wrapper.get_activations(wrapper._extractor.preprocess(paths), LAYERS)
    bounds = np.cumsum([0] + [len(group) for group in sets.values()])
    part = {name: slice(bounds[i], bounds[i + 1]) for i, name in enumerate(sets)}

    targets = {}
    for i, layer in enumerate(LAYERS):
        flat = activations[layer].reshape(len(paths), -1).astype(np.float64)
        responses = synthetic_recordings.planted_responses(flat[part["reference"]], flat[part["stimuli"]], seed=i)
        assembly = synthetic_recordings.repeated_assembly(stimuli, responses, "IT", seed=i)
        targets[f"planted-{layer}"] = from_assembly(assembly, "IT", identifier=f"planted-{layer}")
    neural = commit(wrapper, LAYERS, targets, reference=work / "reference", n_components=args.reference,
                    cache_dir=work / "cache")

    def brainscore_probabilities(layer):
        def assembly(rows, stimulus_set):
            flat = activations[layer].reshape(len(paths), -1)[rows]
            coords = {c: ("presentation", stimulus_set[c].values) for c in stimulus_set.columns}
            return NeuroidAssembly(flat, dims=["presentation", "neuroid"],
                                   coords={**coords, "neuroid_id": ("neuroid", np.arange(flat.shape[1]))})
        classifier = ProbabilitiesMapping.ProbabilitiesClassifier()
        fit = assembly(part["fitting"], fitting)
        classifier.fit(fit, fit["image_label"])
        proba = classifier.predict_proba(assembly(part["trials"], trial_stimuli))
        return proba.values[:, [list(proba["choice"].values).index(obj) for obj in synthetic_recordings.OBJECTS]]

    cases = []
    for region, layer in zip(targets, LAYERS):
        margin, error = neural.best_margin(region)
        cases.append({"kind": "neural", "planted": layer, "chosen": neural.region_layer_map[region],
                      "margin": round(margin, 4), "error": round(error, 4)})
    for layer in LAYERS:
        trials = synthetic_recordings.behavioral_trials(trial_stimuli, brainscore_probabilities(layer))
        benchmark = SyntheticBehaviorBenchmark(fitting, trials, identifier=f"planted-{layer}-i2n")
        result = commit(wrapper, LAYERS, {"behavior": benchmark}, cache_dir=work / "cache", progress=False)
        margin, error = result.best_margin("behavior")
        cases.append({"kind": "behavior", "planted": layer, "chosen": result.behavioral_readout_layer,
                      "margin": round(margin, 4), "error": round(error, 4)})
    for case in cases:
        case["recovered"] = case["chosen"] == case["planted"] and case["margin"] > case["error"]
        print(case, flush=True)
    summary = {kind: f"{sum(c['recovered'] for c in cases if c['kind'] == kind)} of "
                     f"{sum(c['kind'] == kind for c in cases)}" for kind in ("neural", "behavior")}
    print(json.dumps({"recovered": summary, "chosen_without_margin": [
        (c["kind"], c["planted"]) for c in cases if c["chosen"] == c["planted"] and not c["recovered"]]}))


if __name__ == "__main__":
    main()
