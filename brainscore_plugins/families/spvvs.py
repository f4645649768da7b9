"""scaling-primate-vvs (Gokce & Schrimpf, 2024): 811 models, 10,751 epoch checkpoints, trained with Composer.

Checkpoint formats (the study's ``training/src/models/*.py``; :mod:`brainscore_plugins.architectures` has the key
layouts): ``composer`` for classifiers (supervised, adversarial: a ``ComposerClassifier`` whose network is its
``module``, so keys start with ``module.``), ``composer-ssl`` for SimCLR / DINO (a bare ``ComposerModel``, no
prefix). Weights at ``ckpt['state'][weights_key]``: ``model``, or ``model_ema_state_dict`` for ConvNeXt and DeiT.
"""
from __future__ import annotations

import argparse
from functools import partial

import torch

from ..weights.formats import CheckpointFormat
from ..preprocessing import BRAINSCORE
from . import Family, register


def composer_checkpoint(state_dict: dict[str, torch.Tensor], weights_key: str, seed: int = 0,
                        prefix: str = "module.") -> dict:
    """The Composer layout: ``{'state': {'model': {'<prefix><key>': ...}, ...}, 'rng': [...]}``.

    When ``weights_key`` names the EMA dict, the plain ``model`` dict holds different (perturbed) weights, so a
    loader that picks the wrong one is caught.
    """
    generator = torch.Generator().manual_seed(seed + 1)
    prefixed = {f"{prefix}{k}": v for k, v in state_dict.items()}
    state = {
        "model": prefixed,
        "optimizers": {"SGD": {"state": {}, "param_groups": [{"lr": 0.1, "params": [0, 1]}]}},
        "timestamp": argparse.Namespace(epoch=1, batch=10),  # a non-tensor training object, as Composer pickles
        "run_name": "forged",
    }
    if weights_key != "model":
        state["model"] = {k: (v + torch.randn(v.shape, generator=generator) if v.is_floating_point() else v)
                          for k, v in prefixed.items()}
        state[weights_key] = prefixed
    return {"state": state, "rng": [{"torch": torch.get_rng_state()}]}


def _forge(prefix: str, entry, state_dict: dict, seed: int) -> dict:
    return composer_checkpoint(state_dict, entry.weights_key, seed, prefix=prefix)


FAMILY = register(Family(
    prefix="spvvs",
    title="scaling-primate-vvs (Gokce & Schrimpf, 2024)",
    summary="scaling-primate-vvs checkpoints (Gokce & Schrimpf, 2024) as Brain-Score models.\n\n"
            "Every model id and epoch checkpoint of the study is listed in brainscore_plugins/data/"
            "spvvs.csv;\nthis plugin only resolves an identifier there and builds it through the "
            "shared factory.",
    generator="scripts/build_catalog.py",
    citation="""@article{gokce2024scalingprimatevvs,
      title={Scaling Laws for Task-Optimized Models of the Primate Visual Ventral Stream},
      author={Abdulkadir Gokce and Martin Schrimpf},
      year={2024},
      eprint={2411.05712},
      archivePrefix={arXiv},
      url={https://arxiv.org/abs/2411.05712},
}""",
    formats={"composer": CheckpointFormat("state", "module.", partial(_forge, "module.")),
             "composer-ssl": CheckpointFormat("state", "", partial(_forge, ""))},
    # Brain-Score's own scaling_models plugin pipeline: what the study's published scores were made with
    preprocessing=BRAINSCORE,
    published_counts={"models": 811, "checkpoints": 10751},
    test_identifiers=("spvvs_alexnet_ecoset_full_seed-0", "spvvs_resnet34_imagenet_full.ep5"),
    requirements=("torch", "torchvision", "timm", "numpy<2", "albumentations<2"),
))
