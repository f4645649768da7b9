"""What scoring the whole catalog on Brain-Score's public benchmarks costs: forward passes, images, compute hours.

    python perf/sweep_cost.py [--family spvvs] [--measure-below 400] [--batch 16] [--gpu-tflops 20]

Images one model sees (counts from Brain-Score's data plugins; ``IMAGES`` below), each benchmark one forward pass over
its stimuli at the committed layer (Brain-Score's activation cache is keyed by layer, so regions committed to
different layers are separate passes; no PCA at scoring): FreemanZiemba2013public V1 and V2, 135 images each
(450 stimuli, 315 private); MajajHong2015public V4 and IT, 3,200 each (5,760, 2,560 private);
Rajalingham2018public-i2n, 2,160 fitting images (``objectome.public``) and the 2,160 test images (its two trials
repeat nothing without microsaccades): 10,990 forward passes per model.

Per architecture: the forward FLOPs of one image (``torch.utils.flop_counter``, the network built on the ``meta``
device: nothing allocated), and, for networks under ``--measure-below`` million parameters, the images/s of a plain
float32 forward pass on this machine's device (random weights, batch ``--batch``, best of two after a warm-up). A
network too large to time here is costed at the median seconds per GFLOP of those timed. GPU-hours are not measured
unless this runs on one (``--device cuda``): they are estimated as FLOPs / ``--gpu-tflops`` (sustained float32
TFLOP/s; 20 is about what a ResNet-50 float32 inference at batch 64 sustains on an A100-class GPU, ~2,500 images/s).
Decoding and preprocessing are left out: the pixel cache computes them once per benchmark per preprocessing.

The last line is one JSON object: per-architecture rows and totals for every epoch checkpoint and for the final
checkpoints only.
"""
from __future__ import annotations

import argparse
import collections
import json
import os
import statistics
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("BS_INSTALL_DEPENDENCIES", "no")
from brainscore_plugins import catalog, factory  # noqa: E402

IMAGES = {"FreemanZiemba2013public.V1-pls": 135, "FreemanZiemba2013public.V2-pls": 135,
          "MajajHong2015public.V4-pls": 3200, "MajajHong2015public.IT-pls": 3200,
          "Rajalingham2018public-i2n (fitting)": 2160, "Rajalingham2018public-i2n (test)": 2160}


def _networks(family: str | None) -> dict[str, list[catalog.Entry]]:
    """Architecture -> every catalogued checkpoint of it."""
    by_arch, seen = collections.defaultdict(list), set()
    for identifier in catalog.select([], family=family, checkpoints=True, strict=False):
        entry = catalog.lookup(identifier)
        if not entry.unsupported and (entry.family, entry.model_id, entry.epoch) not in seen:  # a bare name is its
            seen.add((entry.family, entry.model_id, entry.epoch))                             # latest checkpoint
            by_arch[(entry.family, entry.arch)].append(entry)
    return by_arch


def _flops_and_parameters(entry: catalog.Entry) -> tuple[float | None, int]:
    """Forward FLOPs of one image through ``entry``'s network, and its parameter count (the network built on the meta
    device: nothing allocated); FLOPs ``None`` where the network cannot run there."""
    from torch.utils.flop_counter import FlopCounterMode
    with torch.device("meta"):
        network = factory.create_model(entry.identifier, pretrained=False).eval()
        image = torch.empty(1, 3, entry.crop, entry.crop)
    parameters = sum(p.numel() for p in network.parameters())
    try:
        with FlopCounterMode(display=False) as counter, torch.no_grad():
            network(image)
        return float(counter.get_total_flops()), parameters
    except Exception as error:  # noqa: BLE001 - an architecture that cannot run on meta is reported, not fatal
        print(f"{entry.arch}: FLOPs not counted ({type(error).__name__}: {str(error).splitlines()[0][:120]})",
              file=sys.stderr)
        return None, parameters


def _images_per_s(entry: catalog.Entry, batch: int, device: str) -> float:
    network = factory.create_model(entry.identifier, pretrained=False).eval().to(device)
    images = torch.randn(batch, 3, entry.crop, entry.crop, device=device)
    best = float("inf")
    with torch.inference_mode():
        for _ in range(3):
            start = time.perf_counter()
            network(images)
            if device == "cuda":
                torch.cuda.synchronize()
            best = min(best, time.perf_counter() - start)
    return batch / best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--family", default=None)
    parser.add_argument("--measure-below", type=float, default=400, help="million parameters")
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--gpu-tflops", type=float, default=20.0)
    args = parser.parse_args()
    per_model = sum(IMAGES.values())
    rows = []
    for (family, arch), entries in sorted(_networks(args.family).items()):
        entry = entries[0]
        flops, parameters = _flops_and_parameters(entry)
        timed = parameters < args.measure_below * 1e6
        rate = _images_per_s(entry, args.batch, args.device) if timed else None
        rows.append({"family": family, "arch": arch, "checkpoints": len(entries),
                     "final_checkpoints": sum(bool(e.latest) for e in entries),
                     "n_params": parameters, "gflops_per_image": flops and round(flops / 1e9, 3),
                     "images_per_s": rate and round(rate, 2), "timed": timed})
        print(f"{family:9s} {arch:32s} {len(entries):6d} ckpts  {rows[-1]['gflops_per_image']} GFLOP  "
              f"{rows[-1]['images_per_s']} img/s ({args.device})", file=sys.stderr, flush=True)
    seconds_per_gflop = statistics.median(1 / (r["images_per_s"] * r["gflops_per_image"]) for r in rows
                                          if r["images_per_s"] and r["gflops_per_image"])
    for row in rows:
        seconds = 1 / row["images_per_s"] if row["images_per_s"] else (row["gflops_per_image"] or 0) * seconds_per_gflop
        row["device_s_per_model"] = round(seconds * per_model, 1)
        row["gpu_s_per_model_estimated"] = round((row["gflops_per_image"] or 0) * 1e9 * per_model
                                                 / (args.gpu_tflops * 1e12), 2)

    def total(count: str) -> dict:
        models = sum(r[count] for r in rows)
        return {"models": models, "forward_passes": models * per_model,
                "pflop": round(sum(r[count] * (r["gflops_per_image"] or 0) for r in rows) * per_model / 1e6, 1),
                f"{args.device}_hours": round(sum(r[count] * r["device_s_per_model"] for r in rows) / 3600, 1),
                "gpu_hours_estimated": round(sum(r[count] * r["gpu_s_per_model_estimated"] for r in rows) / 3600, 1)}

    print(json.dumps({"images_per_model": per_model, "benchmark_images": IMAGES, "device": args.device,
                      "cpus": os.cpu_count(), "gpu_tflops_assumed": args.gpu_tflops,
                      "median_s_per_gflop": seconds_per_gflop, "architectures": rows,
                      "every_checkpoint": total("checkpoints"), "final_checkpoints": total("final_checkpoints")}))


if __name__ == "__main__":
    main()
