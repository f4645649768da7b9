"""humanlike-vits (Orhan, 2023): 78 ViTs pretrained with MAE on human-like video and their ImageNet-finetuned
versions, one checkpoint each, on the Hugging Face Hub (``eminorhan/humanlike-vits``).

Checkpoint formats: MAE's ``misc.save_model`` dict (``{'model', 'optimizer', 'epoch', 'scaler', 'args'}``, weights
at ``ckpt['model']``, no prefix); ``mae-pretrain`` files also hold MAE's decoder (ignored by name), ``mae-finetune``
files the BatchNorm1d + Linear head. The position embedding is resampled when only the patch grid differs.
"""
from __future__ import annotations

import argparse
from functools import partial

import torch

from ..architectures import humanlike
from ..weights.formats import CheckpointFormat
from ..preprocessing import TRAINING_CONFIG
from . import Family, register

_SIZE_NAMES = {"s": "small", "b": "base", "l": "large", "h": "huge"}


def mae_checkpoint(state_dict: dict[str, torch.Tensor], arch: str, finetuned: bool, seed: int = 0) -> dict:
    """MAE's ``misc.save_model`` layout, as the humanlike-vits files hold it: ``{'model': weights, 'optimizer',
    'epoch', 'scaler' (GradScaler state), 'args' (argparse.Namespace)}``; pretrained files also hold MAE's decoder
    (``mask_token``, ``decoder_*``, random values of the published shapes), finetuned ones the BatchNorm1d + Linear
    ``head.0.*`` / ``head.1.*``."""
    generator = torch.Generator().manual_seed(seed + 2)
    weights = dict(state_dict)
    if finetuned:  # non-trivial running statistics, so that a head that is not loaded is caught
        weights["head.0.running_mean"] = torch.randn(weights["head.0.running_mean"].shape, generator=generator)
        weights["head.0.running_var"] = torch.rand(weights["head.0.running_var"].shape, generator=generator) + 0.5
    else:
        weights.update({k: torch.randn(shape, generator=generator) * 0.02
                        for k, shape in humanlike.decoder_shapes(arch).items()})
    name = _SIZE_NAMES[humanlike.PATTERN.fullmatch(arch)["size"]]
    args = argparse.Namespace(model=f"{'vit' if finetuned else 'mae_vit'}_{name}_patch14",
                              input_size=humanlike.image_size(arch), batch_size=256, epochs=50 if finetuned else 999,
                              blr=1.5e-4, norm_pix_loss=True, mask_ratio=0.8, output_dir="forged", global_pool=False,
                              nb_classes=1000)
    return {"model": weights,
            "optimizer": {"state": {}, "param_groups": [{"lr": 1e-4, "weight_decay": 0.05, "params": [0, 1]}]},
            "epoch": 49 if finetuned else 998,
            "scaler": {"scale": 65536.0, "growth_factor": 2.0, "backoff_factor": 0.5, "growth_interval": 2000,
                       "_growth_tracker": 0},
            "args": args}


def _forge(finetuned: bool, entry, state_dict: dict, seed: int) -> dict:
    return mae_checkpoint(state_dict, entry.arch, finetuned, seed)


FAMILY = register(Family(
    prefix="hlvit",
    title="humanlike-vits (Orhan, 2023)",
    summary="humanlike-vits (Orhan, 2023): ViTs pretrained with MAE on human-like video, and their "
            "ImageNet-finetuned\nversions, as Brain-Score models.\n\n"
            "All 156 models are listed in brainscore_plugins/data/hlvit.csv; this plugin only resolves an "
            "identifier\nthere and builds it through the shared factory. No region commitment is published for them: "
            "a model loads as a\ncommitted brain model once ``brainscore-plugins commit <identifier>`` has computed "
            "its map\n(``get_model`` / ``get_layers`` work without one).",
    generator="scripts/build_catalog_humanlike.py",
    citation="""@article{orhan2023scaling,
      title={Scaling may be all you need for achieving human-level object recognition capacity with human-like visual experience},
      author={A. Emin Orhan},
      year={2023},
      eprint={2308.03712},
      archivePrefix={arXiv},
      url={https://arxiv.org/abs/2308.03712},
}""",
    formats={"mae-pretrain": CheckpointFormat(None, "", partial(_forge, False), ignore=humanlike.MAE_DECODER_KEYS,
                                              state_dict_filter=humanlike.adapt_pos_embed),
             "mae-finetune": CheckpointFormat(None, "", partial(_forge, True),
                                              state_dict_filter=humanlike.adapt_pos_embed)},
    preprocessing=TRAINING_CONFIG,  # the author's evaluation transform (no Brain-Score scores were published)
    published_counts={"models": 156, "checkpoints": 156},
    test_identifiers=("hlvit_vits14_0.1_3",),
    requirements=("torch", "torchvision", "timm", "numpy<2", "huggingface_hub"),
    candidate_layers=humanlike.candidate_layers,
    eval_batch_size=humanlike.eval_batch_size,
))
