"""Peak memory and throughput of the two biggest ScalingVisionEncoder encoders on this machine, end to end.

    python perf/big_encoders.py [--images 8] [--identifiers svenc_eva02-clip-enormous svenc_internimage]

For each identifier: forge its published file at full size with random weights into a temporary mirror (written one
tensor at a time: EVA02-CLIP-enormous as timm's ``model.safetensors``, 17.4 GB; InternImage-G as its ``{'model': ...}``
pickle, 12.3 GB), then, in a fresh process, load it through the package (``factory.activations_model``: strict
load, streamed / meta-device construction) and stream every candidate layer of ``--images`` images to disk with
``region_commitment.features.extract``. The last line is one JSON object keyed by identifier with peak_rss_mb (of
that process), images_per_s (extraction of all candidate layers), load_s, n_params and layers.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from brainscore_plugins import architectures, catalog, families  # noqa: E402

DTYPES = {torch.float32: "F32", torch.int64: "I64", torch.bool: "BOOL"}


def _random(shape, dtype, generator):
    if not dtype.is_floating_point:
        return torch.zeros(shape, dtype=dtype)
    return torch.randn(shape, generator=generator) * 0.02


def forge_safetensors(state_dict: dict, path: Path, seed: int = 0) -> None:
    """A safetensors file of random tensors with ``state_dict``'s names and shapes (meta tensors), written one tensor
    at a time (the format: 8-byte header length, JSON header, the raw bytes)."""
    header, offset = {}, 0
    for key, value in state_dict.items():
        size = value.numel() * value.element_size()
        header[key] = {"dtype": DTYPES[value.dtype], "shape": list(value.shape),
                       "data_offsets": [offset, offset + size]}
        offset += size
    text = json.dumps(header).encode()
    text += b" " * (-len(text) % 8)
    generator = torch.Generator().manual_seed(seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as file:
        file.write(struct.pack("<Q", len(text)) + text)
        for value in state_dict.values():
            file.write(_random(value.shape, value.dtype, generator).to(value.dtype).numpy().tobytes())


def forge(identifier: str, mirror: Path) -> None:
    entry = catalog.resolve(identifier)
    with torch.device("meta"):
        model = architectures.build(entry.arch, entry.num_classes, entry.training_method)
    state_dict = model.state_dict()
    if entry.checkpoint_format == "timm-safetensors":
        forge_safetensors(state_dict, mirror / entry.mirror_path)
        return
    generator = torch.Generator().manual_seed(0)
    weights = {k: _random(v.shape, v.dtype, generator) for k, v in state_dict.items()}
    checkpoint_format = families.get(entry.family).checkpoint_format(entry.checkpoint_format)
    checkpoint_format.forge_file(checkpoint_format.forge(entry, weights, 0), mirror / entry.mirror_path)


def measure(identifier: str, n_images: int) -> dict:
    """In this process: load, then extract every candidate layer of ``n_images`` images (after one warm-up batch)."""
    from PIL import Image

    from brainscore_plugins import candidates, factory
    from region_commitment import features

    start = time.perf_counter()
    model = factory.activations_model(identifier)
    load_s = time.perf_counter() - start
    entry = catalog.resolve(identifier)
    layers = candidates.for_entry(entry, model._model)
    with tempfile.TemporaryDirectory() as scratch:
        paths = []
        for i in range(n_images):
            paths.append(Path(scratch) / f"image{i}.png")
            Image.fromarray(np.random.default_rng(i).integers(0, 255, (425, 425, 3), dtype=np.uint8)).save(paths[-1])
        batch = families.get(entry.family).eval_batch_size(entry.arch)
        features.extract(model, layers, paths[:batch], Path(scratch) / "warm-up", batch_size=batch, progress=False)
        start = time.perf_counter()
        features.extract(model, layers, paths, Path(scratch) / "features", batch_size=batch, progress=False)
        seconds = time.perf_counter() - start
    return {"peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
            "images_per_s": round(n_images / seconds, 3), "load_s": round(load_s, 1), "n_params": entry.n_params,
            "layers": len(layers), "batch_size": batch}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=8)
    parser.add_argument("--identifiers", nargs="+", default=["svenc_eva02-clip-enormous", "svenc_internimage"])
    parser.add_argument("--measure", help=argparse.SUPPRESS)  # the child process
    args = parser.parse_args()
    if args.measure:
        print(json.dumps(measure(args.measure, args.images)))
        return
    results = {}
    for identifier in args.identifiers:
        with tempfile.TemporaryDirectory() as scratch:
            mirror = Path(scratch) / "mirror"
            start = time.perf_counter()
            forge(identifier, mirror)
            print(f"{identifier}: forged in {time.perf_counter() - start:.0f} s", flush=True)
            env = {**os.environ, "BRAINSCORE_PLUGINS_MIRROR": str(mirror), "HF_HUB_OFFLINE": "1",
                   "BRAINSCORE_PLUGINS_CACHE": str(Path(scratch) / "cache")}
            child = subprocess.run([sys.executable, __file__, "--measure", identifier, "--images", str(args.images)],
                                   env=env, capture_output=True, text=True)
            if child.returncode:
                raise SystemExit(f"{identifier}: {child.stderr.strip().splitlines()[-1]}")
            results[identifier] = json.loads(child.stdout.strip().splitlines()[-1])
            print(f"{identifier}: {results[identifier]}", flush=True)
    print(json.dumps(results))


if __name__ == "__main__":
    main()
