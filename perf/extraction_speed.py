"""Extraction speed of the fast activations path against Brain-Score's PytorchWrapper and a raw forward pass.

    python perf/extraction_speed.py [--images 256] [--size 425]

ResNet-18 (random weights; the spvvs preprocessing: albumentations resize 256, crop 224, ImageNet mean/std) on
``--images`` PNG files of NSD's size, three layers captured. In one run: the raw forward pass (preprocessed tensors
already in memory, batch 64, ``torch.inference_mode``), Brain-Score's ``PytorchWrapper`` and
:class:`brainscore_plugins.fast_activations.FastPytorchWrapper` (Brain-Score's activation cache disabled, so both
compute). The last line is one JSON object: ours_images_per_s, brainscore_images_per_s, raw_images_per_s, the
ratio of ours to the raw pass, and the largest activation difference between the two wrappers.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ["RESULTCACHING_DISABLE"] = "1"
from brainscore_plugins import factory  # noqa: E402
from brainscore_plugins.fast_activations import FastPytorchWrapper  # noqa: E402
from brainscore_plugins.preprocessing import preprocessing_for  # noqa: E402

LAYERS = ["layer2.0", "layer4.1", "avgpool"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=256)
    parser.add_argument("--size", type=int, default=425)
    args = parser.parse_args()
    from brainscore_vision.model_helpers.activations.pytorch import PytorchWrapper

    network = factory.create_model("spvvs_resnet18_imagenet_full", pretrained=False)
    preprocessing = preprocessing_for(256, 224, "bilinear", "brainscore")
    with tempfile.TemporaryDirectory() as scratch:
        paths = []
        for i in range(args.images):
            paths.append(str(Path(scratch) / f"image{i}.png"))
            pixels = np.random.default_rng(i).integers(0, 255, (args.size, args.size, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(paths[-1])
        batches = [torch.from_numpy(preprocessing(paths[i:i + 64])) for i in range(0, len(paths), 64)]
        start = time.perf_counter()
        with torch.inference_mode():
            for batch in batches:
                network(batch)
        raw = args.images / (time.perf_counter() - start)
        timings, outputs = {}, {}
        for name, kind in (("brainscore", PytorchWrapper), ("ours", FastPytorchWrapper)):
            wrapper = kind(identifier=f"speed-{name}", model=network, preprocessing=preprocessing, batch_size=64)
            start = time.perf_counter()
            outputs[name] = wrapper(paths, layers=LAYERS)
            timings[name] = args.images / (time.perf_counter() - start)
    print(json.dumps({"ours_images_per_s": round(timings["ours"], 2),
                      "brainscore_images_per_s": round(timings["brainscore"], 2),
                      "raw_images_per_s": round(raw, 2), "ours_over_raw": round(timings["ours"] / raw, 3),
                      "max_abs_difference": float(np.abs(outputs["ours"].values - outputs["brainscore"].values).max()),
                      "images": args.images, "cpus": os.cpu_count()}))


if __name__ == "__main__":
    main()
