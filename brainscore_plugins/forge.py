"""Forge checkpoints in a family's exact published layout, with random weights of the real architecture.

Used by the offline demo and the tests: the weights cannot be downloaded here, so we write files that are
byte-for-byte what the loader must cope with (nesting, key prefixes, EMA copy, non-tensor training objects).
"""
from __future__ import annotations

import argparse
from pathlib import Path

import torch

from region_commitment import atomic

from . import architectures, catalog


def forged_state_dict(entry: catalog.Entry, seed: int = 0) -> dict[str, torch.Tensor]:
    """Weights of a freshly initialised model for ``entry`` (deterministic in ``seed``)."""
    torch.manual_seed(seed)
    model = architectures.build(entry.arch, entry.num_classes, entry.method)
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


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


def mae_checkpoint(state_dict: dict[str, torch.Tensor], arch: str, finetuned: bool, seed: int = 0) -> dict:
    """MAE's ``misc.save_model`` layout, as the humanlike-vits files hold it: ``{'model': weights, 'optimizer',
    'epoch', 'scaler' (GradScaler state), 'args' (argparse.Namespace)}``; pretrained files also hold MAE's decoder
    (``mask_token``, ``decoder_*``, random values of the published shapes), finetuned ones the BatchNorm1d + Linear
    ``head.0.*`` / ``head.1.*``."""
    from .architectures import humanlike
    generator = torch.Generator().manual_seed(seed + 2)
    weights = dict(state_dict)
    if finetuned:  # non-trivial running statistics, so that a head that is not loaded is caught
        weights["head.0.running_mean"] = torch.randn(weights["head.0.running_mean"].shape, generator=generator)
        weights["head.0.running_var"] = torch.rand(weights["head.0.running_var"].shape, generator=generator) + 0.5
    else:
        weights.update({k: torch.randn(shape, generator=generator) * 0.02
                        for k, shape in humanlike.decoder_shapes(arch).items()})
    size = humanlike.image_size(arch)
    name = {"s": "small", "b": "base", "l": "large", "h": "huge"}[humanlike.PATTERN.fullmatch(arch)["size"]]
    args = argparse.Namespace(model=f"{'vit' if finetuned else 'mae_vit'}_{name}_patch14", input_size=size,
                              batch_size=256, epochs=50 if finetuned else 999, blr=1.5e-4, norm_pix_loss=True,
                              mask_ratio=0.8, output_dir="forged", global_pool=False, nb_classes=1000)
    return {"model": weights,
            "optimizer": {"state": {}, "param_groups": [{"lr": 1e-4, "weight_decay": 0.05, "params": [0, 1]}]},
            "epoch": 49 if finetuned else 998,
            "scaler": {"scale": 65536.0, "growth_factor": 2.0, "backoff_factor": 0.5, "growth_interval": 2000,
                       "_growth_tracker": 0},
            "args": args}


def save_atomically(obj, path: Path) -> Path:
    """``torch.save`` ``obj`` to ``path`` atomically; returns ``path``."""
    with atomic.replacing(path) as tmp:
        torch.save(obj, tmp)
    return path


def forge_into_mirror(name: str, mirror: str | Path, seed: int = 0) -> Path:
    """Write a forged checkpoint for identifier ``name`` at ``<mirror>/<relative path>`` (``<model_id>/ep<N>.pt``,
    or the file's path in its Hugging Face repository)."""
    entry = catalog.resolve(name)
    if entry.method in architectures.MAE_METHODS:
        checkpoint = mae_checkpoint(forged_state_dict(entry, seed), entry.arch, entry.method == "mae-finetuned", seed)
        return save_atomically(checkpoint, Path(mirror) / entry.relative_path)
    checkpoint = composer_checkpoint(forged_state_dict(entry, seed), entry.weights_key, seed,
                                     prefix=architectures.checkpoint_prefix(entry.method))
    return save_atomically(checkpoint, Path(mirror) / entry.relative_path)
