"""region_commitment against Brain-Score's own LayerSelection, on the same planted synthetic benchmark.

    .venv/bin/python perf/commitment_speed.py [--work DIR] [--rounds 2]

resnet18 (random init, seed 0), 200 stimuli x 100 neuroids planted in ``layer3.0`` (a middle PCA band, see
``brainscore_plugins.synthetic_recordings.planted_responses``), the PCA reference set = the built-in offline images. Two
settings, as measured in the issue: defaults (1000 PCA components on 1000 images, 10 layers layer1.0 .. fc,
``MT_MULTITHREAD=0``, result caching on with an empty cache) and small (300 on 300, 7 layers layer2.0 .. avgpool).
Each selection runs in its own subprocess so its peak RSS is its own. Five kinds, in turn: ``forward`` (one plain
forward pass over the same distinct images, decoded and preprocessed in the process, batch 64, ``torch.no_grad``),
``ours`` (``region_commitment.commit`` on Brain-Score's ``PytorchWrapper``), ``ours_fast`` (the same on the plugins'
default extractor, ``FastPytorchWrapper``: its images preprocessed by worker processes into an empty pixel cache),
``ours_fast_warm`` (the same again, the pixels read from the cache: every later model of a sweep) and ``brainscore``
(``LayerSelection`` with ``LayerPCA``). The first four run ``--rounds`` times in turn, the best round counting (this
machine's speed varies by a third between runs minutes apart); ``brainscore`` once. The last line
printed is a JSON summary: seconds, ratios to the forward pass and speed-ups over Brain-Score.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

DEFAULT_LAYERS = ["layer1.0", "layer1.1", "layer2.0", "layer2.1", "layer3.0", "layer3.1", "layer4.0", "layer4.1",
                  "avgpool", "fc"]
SMALL_LAYERS = ["layer2.0", "layer2.1", "layer3.0", "layer3.1", "layer4.0", "layer4.1", "avgpool"]
PLANTED = "layer3.0"
REGION = "IT"


def wrapper(identifier, fast: bool = False):
    """resnet18 (seed 0) in Brain-Score's ``PytorchWrapper``, or (``fast``) in the plugins' default extractor."""
    import torch
    import torchvision
    from brainscore_vision.model_helpers.activations.pytorch import PytorchWrapper
    from brainscore_plugins.fast_activations import FastPytorchWrapper
    from brainscore_plugins.preprocessing import preprocessing_for
    torch.manual_seed(0)
    return (FastPytorchWrapper if fast else PytorchWrapper)(
        identifier=identifier, model=torchvision.models.resnet18(),
        preprocessing=preprocessing_for(256, 224, "bilinear"))


def benchmark(work: Path, n_reference: int):
    """The planted NeuralBenchmark (built once per work folder, from the PCA band of PLANTED)."""
    import numpy as np
    from brainscore_vision import load_ceiling, load_metric
    from brainscore_vision.benchmark_helpers.neural_common import (NeuralBenchmark, apply_keep_attrs,
                                                                       average_repetition)
    from brainscore_plugins import synthetic_recordings
    from region_commitment.reference import default_reference_images

    stimuli = synthetic_recordings.stimulus_set(work / "stimuli", n_per_object=50, size=128)
    reference = [str(p) for p in default_reference_images(work, n=n_reference)]
    responses_file = work / f"responses-{n_reference}.npy"
    if not responses_file.exists():
        model = wrapper("planting")
        paths = reference + [str(stimuli.get_stimulus(s)) for s in stimuli["stimulus_id"]]
        flat = np.concatenate([model.get_activations(model._extractor.preprocess(paths[i:i + 64]), [PLANTED])[PLANTED]
                               .reshape(len(paths[i:i + 64]), -1) for i in range(0, len(paths), 64)])
        responses = synthetic_recordings.planted_responses(flat[:len(reference)].astype(np.float64),
                                                           flat[len(reference):].astype(np.float64), n_neuroids=100)
        np.save(responses_file, responses)
    repetitions = synthetic_recordings.repeated_assembly(stimuli, np.load(responses_file), REGION, noise=0.3)
    repetitions = apply_keep_attrs(repetitions, lambda a: a.squeeze("time_bin"))
    ceiling = load_ceiling("internal_consistency")(repetitions)
    return NeuralBenchmark(
        identifier=f"planted-{n_reference}.{REGION}-pls", assembly=average_repetition(repetitions), version=1,
        visual_degrees=8, number_of_trials=1, ceiling_func=lambda: ceiling, parent=REGION, bibtex="",
        similarity_metric=load_metric("pls", crossvalidation_kwargs=dict(stratification_coord="object_name"))
    ), reference


def run_one(kind: str, setting: str, work: Path) -> dict:
    n, layers = (1000, DEFAULT_LAYERS) if setting == "default" else (300, SMALL_LAYERS)
    bench, reference = benchmark(work, n)
    start = time.perf_counter()
    if kind == "brainscore":
        from brainscore_vision.model_helpers.activations import pca
        from brainscore_vision.model_helpers.brain_transformation.neural import LayerSelection
        pca._get_imagenet_val = lambda num_images: reference[:num_images]
        model = wrapper(f"resnet18-bench-{setting}")
        pca.LayerPCA.hook(model, n_components=n)
        layer = LayerSelection(f"resnet18-bench-{setting}", model, layers, visual_degrees=8)(REGION, bench)
    elif kind in ("ours", "ours_fast"):
        from region_commitment import commit
        folder = work / f"reference-{n}"
        folder.mkdir(exist_ok=True)
        for path in reference:
            if not (folder / Path(path).name).exists():
                (folder / Path(path).name).symlink_to(path)
        result = commit(wrapper(f"resnet18-bench-{setting}", fast=kind == "ours_fast"), layers, {REGION: bench},
                        reference=folder, n_components=n, progress=False,
                        cache_dir=work / f"ours-cache-{setting}-{time.time_ns()}")
        layer = result.region_layer_map[REGION]
    else:  # a plain torch forward pass over the same distinct images
        import torch
        model = wrapper("forward")
        paths = list(dict.fromkeys(reference + [str(bench._assembly.stimulus_set.get_stimulus(s))
                                                for s in bench._assembly["stimulus_id"].values]))
        with torch.no_grad():
            for i in range(0, len(paths), 64):
                model._model(torch.from_numpy(model._extractor.preprocess(paths[i:i + 64])))
        layer = None
    return {"seconds": time.perf_counter() - start, "layer": layer, "peak_rss_mb": peak_rss_mb()}


def peak_rss_mb() -> float:
    """This process's peak resident set size (``VmHWM``; ``getrusage``'s ``ru_maxrss`` would report the parent's
    peak at fork time when that was higher, as it survives ``exec``)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _run(kind: str, setting: str, work: Path, env: dict) -> dict:
    process = subprocess.run([sys.executable, __file__, "--one", kind.removesuffix("_warm"), setting,
                              "--work", str(work)], env=env, capture_output=True, text=True)
    if process.returncode:
        sys.exit(f"{kind} {setting} failed:\n{process.stderr[-3000:]}")
    return json.loads(process.stdout.split("RESULT ", 1)[1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--one", nargs=2, metavar=("KIND", "SETTING"), help=argparse.SUPPRESS)
    parser.add_argument("--work", type=Path, default=None)
    parser.add_argument("--rounds", type=int, default=2, help="rounds of the four fast kinds (the best counts)")
    args = parser.parse_args()
    work = args.work or Path(tempfile.mkdtemp(prefix="commitment-speed-"))
    if args.one:
        print("RESULT " + json.dumps(run_one(*args.one, work)))
        return
    env = {**os.environ, "MT_MULTITHREAD": "0", "RESULTCACHING_HOME": str(work / "result_caching"),
           "BS_INSTALL_DEPENDENCIES": "no", "BRAINSCORE_PLUGINS_CACHE": str(work / "plugins-cache")}
    env.pop("RESULTCACHING_DISABLE", None)
    results = {}
    for setting in ("small", "default"):
        benchmark(work, 1000 if setting == "default" else 300)  # planting is not part of anyone's timing
        for round_ in range(args.rounds):
            shutil.rmtree(work / "plugins-cache", ignore_errors=True)  # ours_fast computes the pixels, _warm reads
            for kind in ("forward", "ours", "ours_fast", "ours_fast_warm") + (("brainscore",) if not round_ else ()):
                measured = _run(kind, setting, work, env)
                print(f"{setting:8s} {kind:14s} {measured}", file=sys.stderr, flush=True)
                if (kind, setting) not in results or measured["seconds"] < results[kind, setting]["seconds"]:
                    results[kind, setting] = measured
    summary = {
        "speedup_default": results["brainscore", "default"]["seconds"] / results["ours", "default"]["seconds"],
        "speedup_small": results["brainscore", "small"]["seconds"] / results["ours", "small"]["seconds"],
        "ours_default_s": results["ours", "default"]["seconds"],
        "ours_fast_default_s": results["ours_fast", "default"]["seconds"],
        "ours_over_forward_default": results["ours", "default"]["seconds"] / results["forward", "default"]["seconds"],
        "ours_fast_over_forward_default": results["ours_fast", "default"]["seconds"]
        / results["forward", "default"]["seconds"],
        "ours_fast_warm_default_s": results["ours_fast_warm", "default"]["seconds"],
        "ours_fast_warm_over_forward_default": results["ours_fast_warm", "default"]["seconds"]
        / results["forward", "default"]["seconds"],
        "ours_over_forward_small": results["ours", "small"]["seconds"] / results["forward", "small"]["seconds"],
        "brainscore_default_s": results["brainscore", "default"]["seconds"],
        "forward_pass_default_s": results["forward", "default"]["seconds"],
        "ours_peak_rss_mb_default": results["ours", "default"]["peak_rss_mb"],
        "brainscore_peak_rss_mb_default": results["brainscore", "default"]["peak_rss_mb"],
        "ours_layer": results["ours", "default"]["layer"],
        "brainscore_layer": results["brainscore", "default"]["layer"],
        "planted_layer": PLANTED,
    }
    print(json.dumps({k: round(v, 3) if isinstance(v, float) else v for k, v in summary.items()}))


if __name__ == "__main__":
    main()
