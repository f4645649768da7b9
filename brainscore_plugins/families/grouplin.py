"""algonauts23 GroupLin (Lane & Kiar, 2023): the CMI-DAIR Algonauts 2023 entry, an EVA-02 trunk with a
multi-subject linear fMRI head, phase 1 (head trained on the frozen trunk) and phase 2 (trunk attention fine-tuned).

Checkpoint format (the authors' ``save_checkpoint``): ``{'epoch', 'metric', 'trunk', 'encoder'}`` with the head at
``'encoder'`` (its frozen group-PCA ``embed`` included) and the trunk's state dict at ``'trunk'`` for phase 2, ``None``
for phase 1, whose trunk is timm's pretrained ``eva02_base_patch14_224.mim_in22k`` (a safetensors file of the Hugging
Face repository ``timm/eva02_base_patch14_224.mim_in22k``, mirrored at ``<mirror>/``:data:`TRUNK_MIRROR_PATH`).
Both files load strictly; the trunk file is trusted (its sha256 recorded) only once it loaded.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import partial

import numpy as np
import torch

from ..architectures import grouplin
from ..algonauts import splits
from ..errors import CheckpointInvalidError
from ..preprocessing import ALGONAUTS23, OPENAI_CLIP_MEAN, OPENAI_CLIP_STD
from ..weights.formats import CheckpointFormat, SafetensorsFormat, extract_state_dict, load_strict
from ..weights.unpickle import safe_load, storage_bound
from . import Family, register

TRUNK_HF_REPO = f"timm/{grouplin.TRUNK}"
TRUNK_FILE = "model.safetensors"
TRUNK_MIRROR_PATH = f"{TRUNK_HF_REPO}/{TRUNK_FILE}"


def _split(state_dict: dict) -> tuple[dict, dict]:
    """(trunk, encoder) weights of a :class:`~..architectures.grouplin.GroupLin` state dict."""
    parts = {"trunk.": {}, "encoder.": {}}
    for key, value in state_dict.items():
        prefix = key.split(".", 1)[0] + "."
        parts[prefix][key[len(prefix):]] = value
    return parts["trunk."], parts["encoder."]


def _forge(finetuned: bool, entry, state_dict: dict, seed: int) -> dict:
    """The authors' ``save_checkpoint`` dict: the trunk only when it was fine-tuned (phase 2)."""
    trunk, encoder = _split(state_dict)
    generator = torch.Generator().manual_seed(seed + 1)  # non-trivial batch-norm statistics, so a lost one shows
    for key in [k for k in encoder if k.endswith(("running_mean", "running_var", "norm.weight", "norm.bias"))]:
        noise = torch.randn(encoder[key].shape, generator=generator)
        encoder[key] = noise.abs() + 0.5 if key.endswith(("running_var", "norm.weight")) else noise
    return {"epoch": 5 if finetuned else 39, "metric": 0.209 if finetuned else 0.204,
            "trunk": trunk if finetuned else None, "encoder": encoder}


def forge_trunk(path, seed: int = 0):
    """A random-weight EVA-02 trunk saved (atomically) as the Hub's ``model.safetensors`` (timm's key names)."""
    torch.manual_seed(seed)
    return SafetensorsFormat().forge_file(grouplin.build_trunk().state_dict(), path)


def _load_pretrained_trunk(trunk: torch.nn.Module) -> None:
    from ..weights import fetch
    weights = fetch.fetch_hf(TRUNK_HF_REPO, TRUNK_FILE, mirror_path=TRUNK_MIRROR_PATH)
    fetch.trust_after_load(weights, TRUNK_HF_REPO, lambda path: SafetensorsFormat().load_into(trunk, path))


@dataclass(frozen=True)
class GroupLinFormat(CheckpointFormat):
    """The head from ``'encoder'``; the trunk from ``'trunk'`` (``finetuned``) or timm's pretrained file."""

    finetuned: bool = False

    def forge_companions(self, mirror, seed: int = 0) -> list:
        """Phase 1 loads timm's pretrained trunk: forge it at its mirror path."""
        if self.finetuned:
            return []
        return [forge_trunk(mirror / TRUNK_MIRROR_PATH, seed)]

    def load_into(self, model: torch.nn.Module, path, weights_key: str) -> torch.nn.Module:
        checkpoint = safe_load(path, max_bytes=storage_bound(model))
        load_strict(model.encoder, extract_state_dict(checkpoint, weights_key, prefix="", container=None,
                                                      source=str(path)), source=f"{path} [{weights_key!r}]")
        has_trunk = checkpoint.get("trunk") is not None
        if has_trunk != self.finetuned:
            raise CheckpointInvalidError(
                f"{path} {'holds' if has_trunk else 'holds no'} fine-tuned trunk weights, so it is a phase-"
                f"{2 if has_trunk else 1} GroupLin checkpoint, not phase {2 if self.finetuned else 1}; put the right "
                f"file (grouplin_phase{2 if self.finetuned else 1}.pt) in its place")
        if self.finetuned:
            load_strict(model.trunk, extract_state_dict(checkpoint, "trunk", prefix="", container=None,
                                                        source=str(path)), source=f"{path} ['trunk']")
        else:
            _load_pretrained_trunk(model.trunk)
        return model


def _fmri_predictor(identifier: str, network, preprocessing):
    from ..algonauts.predictor import FMRIPredictor
    return FMRIPredictor(identifier, network, preprocessing)


def training_images(subject: str, nsd_ids: np.ndarray) -> np.ndarray:
    """The NSD ids of ``subject``'s training images that GroupLin was trained on (the authors' ``train``) or chose its
    checkpoint with (``val``): :func:`..algonauts.splits.lane2023` of the images in row order."""
    parts = splits.lane2023(len(nsd_ids), subject)
    return np.asarray(nsd_ids)[np.concatenate([parts["train"], parts["val"]])]


def nsd_seen(entry, predictor: bool):
    """Both fMRI predictors saw the authors' train and val images; as a Brain-Score model (trunk layers) only phase 2,
    whose trunk was fine-tuned on them (phase 1's is timm's pretrained trunk)."""
    return training_images if predictor or entry.checkpoint_format == "grouplin-finetune" else None


def candidate_layers(model) -> list[str]:
    """The trunk's blocks (token grids, class token first), then its pooled embedding ``trunk.fc_norm`` (readout)."""
    return [f"trunk.blocks.{i}" for i in range(12)] + ["trunk.fc_norm"]


FAMILY = register(Family(
    prefix="grouplin",
    title="algonauts23 GroupLin (Lane & Kiar, 2023)",
    summary="algonauts23 GroupLin (Lane & Kiar, 2023): the CMI-DAIR Algonauts 2023 challenge models (EVA-02 trunk, "
            "multi-subject\nlinear fMRI head) as Brain-Score models.\n\n"
            "Both models are listed in brainscore_plugins/data/grouplin.csv. As Brain-Score models their trunk layers "
            "are\ncommitted to regions by region_commitment (``brainscore-plugins commit <identifier>``); the "
            "algonauts2023\n``*-direct`` benchmarks score their own fMRI predictions without refitting "
            "(``predict_fmri``).",
    generator="scripts/build_catalog_grouplin.py",
    citation="""@article{lane2023algonauts,
      author  = {Connor Lane and Gregory Kiar},
      title   = {A Parameter-efficient Multi-subject Model for Predicting fMRI Activity},
      journal = {arXiv preprint arXiv:2308.02351},
      year    = {2023},
}""",
    formats={"grouplin-head": GroupLinFormat(None, "", partial(_forge, False)),
             "grouplin-finetune": GroupLinFormat(None, "", partial(_forge, True), finetuned=True)},
    preprocessing=ALGONAUTS23,  # the authors' evaluation: PIL bicubic 256, then antialiased bicubic 224, CLIP norm
    published_counts={"models": 2, "checkpoints": 2},
    test_identifiers=("grouplin_phase1",),
    requirements=("torch", "torchvision", "timm", "numpy<2", "huggingface_hub", "safetensors"),
    candidate_layers=candidate_layers,
    eval_batch_size=lambda arch: 16,
    normalization=lambda arch: (OPENAI_CLIP_MEAN, OPENAI_CLIP_STD),
    fmri_predictor=_fmri_predictor,
    nsd_seen=nsd_seen,
))
