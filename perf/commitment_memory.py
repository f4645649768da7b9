"""Peak memory and time of ``region_commitment.commit`` on a large model: every candidate layer, streamed.

    python perf/commitment_memory.py [--arch vith14] [--reference 40] [--per-object 12] [--behavior]

Builds a humanlike-vits ViT (random init; default ViT-H/14: 632M parameters, 34 candidate layers of 257 tokens x
1280 = 329k features each) in Brain-Score's ``PytorchWrapper`` with the family's preprocessing and bounded batch
size, then commits IT on the synthetic benchmark ``bsp-synthetic.IT-pls`` (and, with ``--behavior``, the readout on
``bsp-synthetic-i2n``) with a PCA reference set of ``--reference`` built-in images. Prints the peak resident set size
against the size of all captured activations (which never sit in memory together) as the final JSON line.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--arch", default="vith14")
    parser.add_argument("--reference", type=int, default=40)
    parser.add_argument("--per-object", type=int, default=12)
    parser.add_argument("--behavior", action="store_true")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="commitment-memory-"))
    os.environ.setdefault("BRAINSCORE_PLUGINS_CACHE", str(work / "cache"))
    os.environ["RESULTCACHING_DISABLE"] = "1"
    from brainscore_vision.model_helpers.activations.pytorch import PytorchWrapper
    from brainscore_plugins import architectures, families
    from brainscore_plugins.benchmarks.bsp_synthetic.benchmark import (SyntheticBehaviorBenchmark,
                                                                        SyntheticRegionBenchmark)
    from brainscore_plugins.preprocessing import preprocessing_for
    from region_commitment import commit
    from region_commitment.reference import default_reference_images

    crop = int(args.arch.split("@")[1]) if "@" in args.arch else 224
    with torch.no_grad():
        model = architectures.build(args.arch, 0, "mae").eval()
    wrapper = PytorchWrapper(identifier=f"bench-{args.arch}", model=model, preprocessing=preprocessing_for(
        crop + 32, crop, "bicubic"), batch_size=families.get("hlvit").eval_batch_size(args.arch))
    after_build = rss_mib()
    layers = families.get("hlvit").candidate_layers(model)
    reference = work / "reference"
    reference.mkdir()
    for path in default_reference_images(work / "images", n=args.reference):
        (reference / path.name).symlink_to(path)
    benchmarks = {"IT": SyntheticRegionBenchmark("IT")}
    if args.behavior:
        benchmarks["behavior"] = SyntheticBehaviorBenchmark()
    start = time.time()
    result = commit(wrapper, layers, benchmarks, reference=reference, n_components=args.reference,
                    cache_dir=work / "commit", keep_features=True)
    seconds = time.time() - start
    features = sum(f.stat().st_size for f in (work / "commit").rglob("*.f32"))
    print(json.dumps({"arch": args.arch, "params": sum(p.numel() for p in model.parameters()), "layers": len(layers),
                      "images": len(json.loads(next((work / "commit").rglob("done.json")).read_text())["paths"]),
                      "all_activations_mib": round(features / 2**20), "rss_after_build_mib": round(after_build),
                      "peak_rss_mib": round(rss_mib()), "seconds": round(seconds, 1),
                      "region_layer_map": result.region_layer_map,
                      "behavioral_readout_layer": result.behavioral_readout_layer}))


if __name__ == "__main__":
    main()
