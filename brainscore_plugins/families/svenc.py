"""ScalingVisionEncoder (Matsuyama et al., 2023, arXiv:2308.00678): the seven vision encoders whose brain
predictivity the study scaled up to 4.4B parameters, as Brain-Score models.

Five are timm models whose weights sit in timm's Hugging Face repositories as ``model.safetensors`` under timm's own
key names (format ``timm-safetensors``: header checked against the model, then streamed tensor by tensor); InternImage-G
and ONE-PEACE's vision branch are written here (:mod:`..architectures.internimage`, :mod:`..architectures.onepeace`):
``internimage_g_22kto1k_512.pth`` (Hugging Face ``OpenGVLab/InternImage``) holds ``{'model': state dict}``, loaded
strictly (the study loaded it with ``strict=False``); ``one-peace.pt`` is a fairseq checkpoint whose ``'model'`` holds
the whole text-image-audio model: its vision keys (``encoder_wrapper.`` stripped) load strictly, the other modalities'
are dropped by name (:func:`..architectures.onepeace.vision_state_dict`).
Default preprocessing: each model's own evaluation transform and normalisation; the study fed unnormalised [0, 1]
pixels, which the ``unnormalized`` pipeline reproduces.
"""
from __future__ import annotations

from ..architectures import internimage, onepeace
from ..checkpoint import CheckpointFormat, SafetensorsFormat
from ..preprocessing import IMAGENET_MEAN, IMAGENET_STD, OPENAI_CLIP_MEAN, OPENAI_CLIP_STD, TRAINING_CONFIG
from . import Family, register

BATCH_SIZES = {"eva02_enormous_patch14_clip_224": 4, "eva_giant_patch14_clip_224": 8, "convnext_xxlarge": 8,
               "internimage_g_22kto1k_512": 2, "one-peace": 8}


def candidate_layers(model) -> list[str]:
    """Every block's output in depth order (token grids with the class token, or feature maps), then the readout: the
    CLIP image embedding (``head``) of the EVA towers, the logits (``head.fc``) of the fine-tuned ConvNeXt, and
    :func:`.internimage.candidate_layers` / :func:`.onepeace.candidate_layers` for the two written here."""
    if isinstance(model, internimage.InternImage):
        return internimage.candidate_layers(model)
    if isinstance(model, onepeace.OnePeaceVision):
        return onepeace.candidate_layers(model)
    if hasattr(model, "stages"):
        return [f"stages.{s}.blocks.{b}" for s, stage in enumerate(model.stages) for b in range(len(stage.blocks))] \
            + ["head.fc"]
    return [f"blocks.{i}" for i in range(len(model.blocks))] + ["head"]


def normalization(arch: str) -> tuple:
    """What each network was trained with: ImageNet mean/std for InternImage, CLIP's for the others (timm's
    pretrained configs; ONE-PEACE's ``hub_interface``)."""
    return (IMAGENET_MEAN, IMAGENET_STD) if arch.startswith("internimage") else (OPENAI_CLIP_MEAN, OPENAI_CLIP_STD)


FAMILY = register(Family(
    prefix="svenc",
    title="ScalingVisionEncoder (Matsuyama et al., 2023)",
    summary="ScalingVisionEncoder (Matsuyama et al., 2023): the vision encoders of the study of scaling laws of "
            "fMRI encoding\nmodels (EVA01/EVA02-CLIP, ConvNeXt-xxlarge CLIP, InternImage-G, ONE-PEACE), 86M to 4.4B "
            "parameters, as Brain-Score\nmodels. Listed in brainscore_plugins/data/svenc.csv; no region commitment "
            "is published (``brainscore-plugins\ncommit <identifier>``).",
    catalog="svenc.csv",
    generator="scripts/build_catalog_svenc.py",
    citation="""@article{matsuyama2023applicability,
      title={Applicability of scaling laws to vision encoding models},
      author={Matsuyama, Takuya and Sasaki, Kota S and Nishimoto, Shinji},
      journal={arXiv preprint arXiv:2308.00678},
      year={2023}
}""",
    formats={"timm-safetensors": SafetensorsFormat(),
             "internimage": CheckpointFormat(None, "", lambda entry, weights, seed: internimage.checkpoint(weights)),
             "one-peace": CheckpointFormat(None, "", lambda entry, weights, seed: onepeace.checkpoint(weights, seed),
                                           state_dict_filter=lambda weights, _: onepeace.vision_state_dict(weights))},
    preprocessing=TRAINING_CONFIG,
    published={"models": 7, "checkpoints": 7},
    test_identifiers=("svenc_eva02-clip-base",),
    requirements=("torch", "torchvision", "timm", "numpy<2", "huggingface_hub", "safetensors"),
    candidate_layers=candidate_layers,
    eval_batch_size=lambda arch: BATCH_SIZES.get(arch, 16),
    normalization=normalization,
))
