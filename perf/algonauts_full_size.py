"""Time and peak memory of one Algonauts 2023 subject at full size, end to end through the benchmark.

    python perf/algonauts_full_size.py [--images 9841] [--vertices 19004 20544] [--kernels 1 2] [--folder DIR]

Writes synthetic challenge data in the exact layout (subj01: 9,841 PNG images, 19,004 lh + 20,544 rh vertices, with
signal planted from the model's 7th block), then scores a 12-block ViT (random weights, 64 px input, width 64,
wrapped as a Brain-Score ModelCommitment) on ``algonauts2023.subj01-r2-ridge``: one forward pass streaming all 12
layers to disk, then the layer x kernel ridge search (the paper's 30 alphas and 8 folds), one layer in memory at a
time. The last line is one JSON object: seconds (scoring only), peak_rss_mb (of the whole process, data writing
included), n_images, n_vertices, and the grid searched.
"""
from __future__ import annotations

import argparse
import functools
import json
import resource
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import timm
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from brainscore_plugins import npy_memmap  # noqa: E402
from brainscore_plugins.algonauts import synthetic_subjects  # noqa: E402
from brainscore_plugins.algonauts.benchmark import Algonauts2023  # noqa: E402


def network() -> torch.nn.Module:
    torch.manual_seed(0)
    return timm.create_model("vit_tiny_patch16_224", img_size=64, patch_size=8, embed_dim=64, depth=12,
                             num_heads=2, num_classes=0, pretrained=False).eval()


def candidate(model):
    from brainscore_vision.model_helpers.activations.pytorch import PytorchWrapper, load_preprocess_images
    from brainscore_vision.model_helpers.brain_transformation import ModelCommitment
    layers = [f"blocks.{i}" for i in range(12)]
    wrapper = PytorchWrapper(identifier="perf-vit-12", model=model,
                             preprocessing=functools.partial(load_preprocess_images, image_size=64), batch_size=64)
    return ModelCommitment(identifier="perf-vit-12", activations_model=wrapper, layers=layers,
                           region_layer_map={r: "blocks.6" for r in ("V1", "V2", "V4", "IT")},
                           behavioral_readout_layer="blocks.11")


def write_data(root: Path, model, n_images: int, vertices: tuple[int, int]) -> None:
    """Images, then responses planted from block 6 (max-pooled 2 x 2) plus noise, streamed to disk."""
    from brainscore_vision.model_helpers.activations.pytorch import load_preprocess_images
    images = synthetic_subjects.random_images(n_images, size=96, seed=0)
    paths = synthetic_subjects.write_images(root, "subj01", images, progress=True)
    captured = {}
    model.blocks[6].register_forward_hook(lambda m, i, o: captured.__setitem__("x", o))
    rows = []
    with torch.no_grad():
        for start in range(0, n_images, 256):
            model(torch.from_numpy(load_preprocess_images([str(p) for p in paths[start:start + 256]], 64)))
            grid = captured["x"][:, 1:].reshape(-1, 8, 8, 64).permute(0, 3, 1, 2)
            rows.append(torch.nn.functional.adaptive_max_pool2d(grid, 2).flatten(1).numpy())
    design = np.concatenate(rows)
    design = (design - design.mean(0)) / (design.std(0) + 1e-6)
    rng = np.random.default_rng(0)
    fmri = {}
    for hemisphere, n in zip(("lh", "rh"), vertices):
        path = root / f"{hemisphere}.tmp.npy"
        out = npy_memmap.create(path, np.float32, (n_images, n))
        for start in range(0, n, 4096):
            width = min(4096, n - start)
            weights = rng.standard_normal((design.shape[1], width)).astype(np.float32) / np.sqrt(design.shape[1])
            out[:, start:start + width] = design @ weights + rng.standard_normal((n_images, width)).astype(np.float32)
        fmri[hemisphere] = out
    synthetic_subjects.write_subject(root, "subj01", None, fmri, progress=True)
    for hemisphere in fmri:
        (root / f"{hemisphere}.tmp.npy").unlink()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=9841)
    parser.add_argument("--vertices", type=int, nargs=2, default=(19004, 20544))
    parser.add_argument("--kernels", type=int, nargs="+", default=(1, 2))
    parser.add_argument("--folder", type=Path, help="where to write the data (default: a temporary folder)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        root = args.folder or Path(scratch)
        model = network()
        write_data(root, model, args.images, tuple(args.vertices))
        benchmark = Algonauts2023("algonauts2023.subj01-r2-ridge", data_dir=root, kernels=tuple(args.kernels))
        start = time.perf_counter()
        score = benchmark(candidate(model))
        seconds = time.perf_counter() - start
    search = score.attrs["search"]
    print(search.to_string())
    print(json.dumps({"seconds": round(seconds, 1),
                      "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
                      "n_images": args.images, "n_vertices": int(sum(args.vertices)), "layers": 12,
                      "kernels": list(args.kernels), "alphas": 30, "folds": 8, "score": round(float(score), 4),
                      "best_cell": [str(v) for v in search.loc[search.vertices.idxmax(), ["layer", "kernel"]]]}))


if __name__ == "__main__":
    main()
