"""Peak memory of activation extraction for the largest humanlike-vits model, ViT-H/14@476, at 476 px.

    python perf/humanlike_vit_memory.py [--images 8] [--layers blocks.15 blocks.31 norm fc_norm]

Builds vith14@476 (random init: 632M parameters, 2.5 GB of float32 weights), wraps it in Brain-Score's
``PytorchWrapper`` with the family's eval preprocessing (resize 508 bicubic, center crop 476) and its bounded batch
size (the hlvit family's ``eval_batch_size``: 8 images per forward at 476 px; Brain-Score pads every batch to the batch
size, so its default of 64 would run 64 images), extracts a few token-grid layers for a small set of images and prints
the peak resident set size (``resource.getrusage``) as the final JSON line.
"""
from __future__ import annotations

import argparse
import json
import resource
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from brainscore_plugins import architectures, families  # noqa: E402
from brainscore_plugins.preprocessing import preprocessing_for  # noqa: E402

ARCH = "vith14@476"


def rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=8)
    parser.add_argument("--layers", nargs="+", default=["blocks.15", "blocks.31", "norm"])
    args = parser.parse_args()
    from brainscore_vision.model_helpers.activations.pytorch import PytorchWrapper

    start = time.time()
    with torch.no_grad():
        model = architectures.build(ARCH, 0, "mae").eval()
    after_build = rss_mib()
    batch_size = families.get("hlvit").eval_batch_size(ARCH)
    wrapper = PytorchWrapper(identifier=f"bench-{ARCH}", model=model, batch_size=batch_size,
                             preprocessing=preprocessing_for(508, 476, "bicubic"))
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as tmp:
        paths = []
        for i in range(args.images):
            path = Path(tmp) / f"image{i}.png"
            Image.fromarray(rng.integers(0, 255, (600, 640, 3), dtype=np.uint8)).save(path)
            paths.append(str(path))
        activations = wrapper(paths, layers=args.layers)
    print(json.dumps({"arch": ARCH, "params": sum(p.numel() for p in model.parameters()), "images": args.images,
                      "batch_size": batch_size, "layers": args.layers,
                      "activations_shape": list(activations.shape), "activations_mib": activations.nbytes / 2**20,
                      "rss_after_build_mib": round(after_build), "peak_rss_mib": round(rss_mib()),
                      "torch_threads": torch.get_num_threads(), "seconds": round(time.time() - start, 1)}))


if __name__ == "__main__":
    main()
