"""Extraction speed of the fast activations path against Brain-Score's PytorchWrapper and a raw forward pass, and one
``brainscore_vision.score`` call through each.

    python perf/extraction_speed.py [--images 256] [--size 425] [--rounds 3] [--identifier ID --layers L ...]

``ours`` is the fast path without the pixel cache (what it was before the cache), ``ours_cold`` with an empty cache
(it computes and writes the entry), ``ours_warm`` and ``ours_channels_last`` reading the entry
(:mod:`brainscore_plugins.pixel_cache`).

ResNet-18 by default (``--identifier``, ``--layers``: another catalogued network; random weights; the spvvs
preprocessing: albumentations resize 256, crop 224, ImageNet mean/std) on
``--images`` PNG files of NSD's size, three layers captured. After a warm-up pass, ``--rounds`` rounds each time, in
turn: the raw forward pass of the same tensors the extractors feed the network (preprocessed, stacked into contiguous
NCHW batches of 64, already in memory, ``torch.inference_mode``), the raw forward pass of the preprocessing's arrays
as they are (channels-last in memory: the tensors ``ours_channels_last`` feeds), Brain-Score's
``PytorchWrapper``, :class:`brainscore_plugins.fast_activations.FastPytorchWrapper` and the same on channels-last
batches (``channels_last=True``; Brain-Score's activation cache disabled, so each computes); the best round of
each counts (other load on the machine only slows a round down). Then ``brainscore_vision.score(<identifier>,
"bsp-synthetic.IT-pls")`` on a forged
checkpoint, through our plugin with ``BRAINSCORE_PLUGINS_EXTRACTOR=brainscore``, ``fast`` and
``fast-channels-last`` (twice each, in turn; the best counts), with the scores compared.

The last line is one JSON object: ours_images_per_s, ours_channels_last_images_per_s, brainscore_images_per_s,
raw_images_per_s, ours_score_s, ours_channels_last_score_s, brainscore_score_s, the ratios, the largest activation
differences to Brain-Score's (absolute; channels-last: relative to each layer's largest magnitude), and
``cpu_bound_ours_over_raw``: the best ratio possible when decoding and preprocessing (``preprocess_images_per_s``
on one core) share the ``cpus`` cores with the network, 1 / (1 + raw / (cpus x preprocess)). Each extractor is
compared with the raw pass of its own tensors: ``ours*_over_raw`` with the contiguous batches, which Brain-Score's
``PytorchWrapper`` and ours stack (so activations are bit-identical), ``ours_channels_last_over_raw`` with the
channels-last ones; on CPUs the channels-last pass is the faster (``raw_channels_last_images_per_s``).
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from functools import partial
from pathlib import Path

import numpy as np
import torch
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ["RESULTCACHING_DISABLE"] = "1"
os.environ.setdefault("BS_INSTALL_DEPENDENCIES", "no")
from brainscore_plugins import factory, forge, settings  # noqa: E402
from brainscore_plugins.fast_activations import FastPytorchWrapper  # noqa: E402
from brainscore_plugins.preprocessing import preprocessing_for  # noqa: E402

LAYERS = ["layer2.0", "layer4.1", "avgpool"]
IDENTIFIER, BENCHMARK = "spvvs_resnet18_imagenet_full", "bsp-synthetic.IT-pls"


def _seconds(run) -> float:
    start = time.perf_counter()
    run()
    return time.perf_counter() - start


def extraction(paths: list[str], rounds: int, identifier: str, layers: list[str]) -> dict:
    from brainscore_vision.model_helpers.activations.pytorch import PytorchWrapper

    network = factory.create_model(identifier, pretrained=False)
    preprocessing = preprocessing_for(256, 224, "bilinear", "brainscore")
    preprocess_s = _seconds(lambda: preprocessing(paths[:64]))
    layouts = [torch.from_numpy(preprocessing(paths[i:i + 64])) for i in range(0, len(paths), 64)]
    contiguous = [batch.contiguous() for batch in layouts]  # what the extractors stack and feed the network

    def raw(batches):
        with torch.inference_mode():
            for batch in batches:
                network(batch)

    raw(contiguous)  # warm-up
    scratch = Path(paths[0]).parent
    kinds = {"brainscore": (PytorchWrapper, None), "ours": (FastPytorchWrapper, "off"),
             "ours_cold": (FastPytorchWrapper, "cold"), "ours_warm": (FastPytorchWrapper, "warm"),
             "ours_channels_last": (partial(FastPytorchWrapper, channels_last=True), "warm")}
    times, outputs = {"raw": [], "raw_channels_last": [], **{name: [] for name in kinds}}, {}
    os.environ[settings.CACHE] = str(scratch / "cache-warm")
    FastPytorchWrapper(identifier="fill", model=network, preprocessing=preprocessing, batch_size=64)(
        paths, layers=layers)  # the warm runs' entry
    for round_ in range(rounds):
        times["raw"].append(_seconds(lambda: raw(contiguous)))
        times["raw_channels_last"].append(_seconds(lambda: raw(layouts)))
        for name, (kind, cache) in kinds.items():
            os.environ[settings.PIXEL_CACHE] = "0" if cache == "off" else "10"
            os.environ[settings.CACHE] = str(scratch / (f"cache-cold-{round_}" if cache == "cold" else "cache-warm"))
            wrapper = kind(identifier=f"speed-{name}-{round_}", model=network, preprocessing=preprocessing,
                           batch_size=64)
            times[name].append(_seconds(lambda: outputs.__setitem__(name, wrapper(paths, layers=layers))))
    os.environ.pop(settings.PIXEL_CACHE)
    rate = {name: len(paths) / min(seconds) for name, seconds in times.items()}
    preprocess = 64 / preprocess_s
    cpus = os.cpu_count()
    reference = outputs["brainscore"]
    relative = max(float(np.abs(outputs["ours_channels_last"].sel(layer=layer).values - reference.sel(
        layer=layer).values).max() / np.abs(reference.sel(layer=layer).values).max()) for layer in layers)
    return {"ours_images_per_s": round(rate["ours"], 2),
            "ours_cold_images_per_s": round(rate["ours_cold"], 2),
            "ours_warm_images_per_s": round(rate["ours_warm"], 2),
            "ours_warm_over_raw": round(rate["ours_warm"] / rate["raw"], 3),
            "ours_warm_over_brainscore": round(rate["ours_warm"] / rate["brainscore"], 3),
            "ours_cold_over_raw": round(rate["ours_cold"] / rate["raw"], 3),
            "ours_cold_over_no_cache": round(rate["ours_cold"] / rate["ours"], 3),
            "warm_max_abs_difference": float(np.abs(outputs["ours_warm"].values - outputs["brainscore"].values).max()),
            "ours_channels_last_images_per_s": round(rate["ours_channels_last"], 2),
            "brainscore_images_per_s": round(rate["brainscore"], 2),
            "raw_images_per_s": round(rate["raw"], 2), "ours_over_raw": round(rate["ours"] / rate["raw"], 3),
            "raw_channels_last_images_per_s": round(rate["raw_channels_last"], 2),
            "ours_channels_last_over_raw": round(rate["ours_channels_last"] / rate["raw_channels_last"], 3),
            "ours_over_brainscore": round(rate["ours"] / rate["brainscore"], 3),
            "preprocess_images_per_s": round(preprocess, 1),
            "cpu_bound_ours_over_raw": round(1 / (1 + rate["raw"] / (cpus * preprocess)), 3),
            "max_abs_difference": float(np.abs(outputs["ours"].values - reference.values).max()),
            "channels_last_max_relative_difference": relative,
            "cpus": cpus}


def scoring(workdir: Path, identifier: str) -> dict:
    import brainscore_vision

    os.environ[settings.MIRROR] = str(workdir / "mirror")
    os.environ[settings.CACHE] = str(workdir / "cache")
    forge.forge_into_mirror(identifier, workdir / "mirror")  # our plugins are linked by the install command
    times, scores = {"brainscore": [], "fast": [], "fast-channels-last": []}, {}
    for _ in range(2):
        for extractor in times:
            os.environ[settings.EXTRACTOR] = extractor
            times[extractor].append(_seconds(lambda: scores.__setitem__(
                extractor, float(brainscore_vision.score(identifier, BENCHMARK)))))
    return {"ours_score_s": round(min(times["fast"]), 2), "brainscore_score_s": round(min(times["brainscore"]), 2),
            "ours_channels_last_score_s": round(min(times["fast-channels-last"]), 2),
            "ours_score": scores["fast"], "brainscore_score": scores["brainscore"],
            "ours_channels_last_score": scores["fast-channels-last"], "score_benchmark": BENCHMARK}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=256)
    parser.add_argument("--size", type=int, default=425)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--identifier", default=IDENTIFIER)
    parser.add_argument("--layers", nargs="+", default=LAYERS)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        paths = []
        for i in range(args.images):
            paths.append(str(Path(scratch) / f"image{i}.png"))
            pixels = np.random.default_rng(i).integers(0, 255, (args.size, args.size, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(paths[-1])
        measured = extraction(paths, args.rounds, args.identifier, args.layers)
        measured.update(scoring(Path(scratch), args.identifier))
    print(json.dumps({**measured, "images": args.images, "identifier": args.identifier}))


if __name__ == "__main__":
    main()
