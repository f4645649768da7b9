"""The study's search space (every named module) on resnet50 at Brain-Score's defaults, against our default rule and
one forward pass.

    .venv/bin/python perf/study_layers.py [--model resnet50] [--n 1000]

resnet50 (random init), 1000 PCA components on 1000 reference images (the built-in set: Brain-Score's ImageNet file
cannot be downloaded here) plus 200 synthetic stimuli of one IT-like target. Three runs, each in its own process
(peak RSS from ``VmHWM``), empty caches: a plain torch forward pass over the same 1,200 images, ``commit`` with the
default candidate rule, and ``commit(layers="study")``, whose features exceed the disk and are extracted and scored
in groups (one forward pass per group); the peak disk use of its feature cache is sampled every second. It also
counts how many of the study's published region layers (catalog rows labelled ``published``) the study mode can
reach. The last line printed is a JSON summary.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from commitment_speed import peak_rss_mb  # perf/ is on sys.path when this script runs


def setup(work: Path, n: int):
    from brainscore_plugins import synthetic_recordings
    from region_commitment import from_assembly
    from region_commitment.reference import default_reference_images

    stimuli = synthetic_recordings.stimulus_set(work / "stimuli", n_per_object=50, size=128)
    reference = work / f"reference-{n}"
    if not reference.exists():
        source = default_reference_images(work / "builtin", n=n)
        reference.mkdir()
        for path in source:
            (reference / path.name).symlink_to(path)
    assembly = synthetic_recordings.neural_assembly(stimuli, "IT", n_neuroids=100)
    target = from_assembly(assembly, "IT", identifier="bench-IT")
    return target, reference


def wrapper(arch: str):
    import torch
    import torchvision
    from brainscore_vision.model_helpers.activations.pytorch import PytorchWrapper
    from brainscore_plugins.preprocessing import BRAINSCORE, preprocessing_for
    torch.manual_seed(0)
    return PytorchWrapper(identifier=f"{arch}-study-bench", model=getattr(torchvision.models, arch)().eval(),
                          preprocessing=preprocessing_for(256, 224, "bilinear", BRAINSCORE))


def _disk_sampler(folder: Path, peak: list, groups: set) -> threading.Event:
    """Every second: the feature files' total size (its peak into ``peak[0]``) and the group folders seen."""
    stop = threading.Event()

    def sample():
        while not stop.wait(1.0):
            files = [p for p in folder.rglob("*.f32") if p.is_file()] if folder.exists() else []
            peak[0] = max(peak[0], sum(p.stat().st_size for p in files))
            groups.update(p.parent.name for p in files)
    threading.Thread(target=sample, daemon=True).start()
    return stop


def run_one(kind: str, work: Path, arch: str, n: int) -> dict:
    target, reference = setup(work, n)
    model = wrapper(arch)
    start, peak_disk, groups = time.perf_counter(), [0], set()
    if kind == "forward":
        import torch
        paths = sorted(str(p) for p in reference.iterdir()) + [str(target.stimulus_set.get_stimulus(s))
                                                               for s in target.stimulus_ids]
        with torch.no_grad():
            for i in range(0, len(paths), 64):
                model._model(torch.from_numpy(model._extractor.preprocess(paths[i:i + 64])))
        layers = None
    else:
        from region_commitment import commit
        cache = work / f"cache-{kind}-{time.time_ns()}"
        stop = _disk_sampler(cache, peak_disk, groups)
        result = commit(model, "study" if kind == "study" else None, {"IT": target}, reference=str(reference),
                        n_components=n, cache_dir=cache, progress=False)
        stop.set()
        layers = len(result.layers)
        shutil.rmtree(cache, ignore_errors=True)
    return {"seconds": time.perf_counter() - start, "peak_rss_mb": peak_rss_mb(), "layers": layers,
            "groups": len(groups), "peak_disk_gb": peak_disk[0] / 2 ** 30}


def published_layers_reachable() -> tuple[int, int]:
    """(published region-layer entries whose layer is a named module of our build, all published entries)."""
    import torch
    from brainscore_plugins import architectures, catalog
    from region_commitment.layers import study_layers

    reachable, total, modules = 0, 0, {}
    for entry in catalog.entries("spvvs"):
        if not entry.latest or not entry.commitment_source.startswith("published"):
            continue
        arch, method = key = entry.arch, entry.training_method  # an SSL wrapper names its modules differently
        if key not in modules:
            with torch.device("meta"):
                modules[key] = set(study_layers(architectures.build(arch, entry.num_classes, method)))
        total += len(entry.region_layer_map)
        reachable += sum(layer in modules[key] for layer in entry.region_layer_map.values())
    return reachable, total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--one", metavar="KIND", help=argparse.SUPPRESS)
    parser.add_argument("--work", type=Path, default=None)
    parser.add_argument("--model", default="resnet50")
    parser.add_argument("--n", type=int, default=1000, help="PCA components = reference images")
    args = parser.parse_args()
    work = args.work or Path(tempfile.mkdtemp(prefix="study-layers-"))
    if args.one:
        print("RESULT " + json.dumps(run_one(args.one, work, args.model, args.n)))
        return
    env = {**os.environ, "RESULTCACHING_DISABLE": "1", "BS_INSTALL_DEPENDENCIES": "no"}
    free_disk = shutil.disk_usage(work).free
    results = {}
    for kind in ("forward", "default", "study"):
        process = subprocess.run([sys.executable, __file__, "--one", kind, "--work", str(work), "--model",
                                  args.model, "--n", str(args.n)], env=env, capture_output=True, text=True)
        if process.returncode:
            sys.exit(f"{kind} failed:\n{process.stderr[-3000:]}")
        results[kind] = json.loads(process.stdout.split("RESULT ", 1)[1])
        print(f"{kind:8s} {results[kind]}", flush=True)
    reachable, total = published_layers_reachable()
    summary = {
        "model": args.model, "n_components": args.n,
        "study_s": results["study"]["seconds"], "default_s": results["default"]["seconds"],
        "forward_pass_s": results["forward"]["seconds"],
        "study_vs_forward": results["study"]["seconds"] / results["forward"]["seconds"],
        "study_vs_default": results["study"]["seconds"] / results["default"]["seconds"],
        "study_layers": results["study"]["layers"], "default_layers": results["default"]["layers"],
        "study_groups": results["study"]["groups"],
        "study_peak_rss_mb": results["study"]["peak_rss_mb"], "default_peak_rss_mb": results["default"]["peak_rss_mb"],
        "study_peak_disk_gb": results["study"]["peak_disk_gb"],
        "free_disk_gb_at_start": free_disk / 2 ** 30,
        "published_region_layers_reachable": reachable, "published_region_layers": total,
    }
    print(json.dumps({k: round(v, 3) if isinstance(v, float) else v for k, v in summary.items()}))


if __name__ == "__main__":
    main()
