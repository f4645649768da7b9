"""ScalingVisionEncoder (Matsuyama et al., 2023, arXiv:2308.00678): the seven vision encoders whose brain
predictivity the study scaled up to 4.4B parameters, as Brain-Score models.

Five are timm models whose weights sit in timm's Hugging Face repositories as ``model.safetensors`` under timm's own
key names (format ``timm-safetensors``: header checked against the model, then streamed tensor by tensor); InternImage-G
and ONE-PEACE's vision branch are written here (:mod:`..architectures.internimage`, :mod:`..architectures.onepeace`):
``internimage_g_22kto1k_512.pth`` (Hugging Face ``OpenGVLab/InternImage``) holds ``{'model': state dict}``, loaded
strictly (the study loaded it with ``strict=False``); ``one-peace.pt`` is a fairseq checkpoint whose ``'model'`` holds
the whole text-image-audio model: its vision keys (``encoder_wrapper.`` stripped) load strictly, the other modalities'
are dropped by name (:func:`..architectures.onepeace.vision_state_dict`).

Defaults: the study's own settings (github.com/suyamat/ScalingVisionEncoder, ``encoding/extracting.py``):

* pixels in [0, 1] (``unnormalized``: resize to the study's ``model_img_size``, ``ToTensor()``; its ``Normalize`` is
  commented out). Each network's training normalisation (CLIP's, ImageNet's for InternImage) is the option
  ``training-config``, reported as ``<identifier>-training-config-preprocessing``.
* candidate layers (:func:`candidate_layers`): the layers the study extracted (``for l in range(model_layer)``,
  ``define_model(model_name, depth=l)``), in its order; nothing else (no readout layer: the last of them is the
  behavioral readout).
* the study's pre-pooling before the encoding search's kernels (:func:`feature_maps`): ConvNeXt maps max-pooled to
  21 x 21, InternImage maps to 14 x 14 (``nn.AdaptiveMaxPool2d``); token grids are not pre-pooled (their class
  token is left off the grid).

Where the released code contradicts itself, the reading the study's numbers must have come from:

* InternImage: ``model_layer`` is 52 while the network has 56 blocks (2 + 2 + 48 + 4). Only ``EXTRACT_LAYER`` 0..51
  were extracted (``layer1.npy`` .. ``layer52.npy``, all the search could read): the blocks of levels 0-2, not the
  last level. Its level ``forward`` returns a block's output after the post norm that follows 8 of level 2's blocks,
  so those layers are ``levels.2.post_norms.<k>``, not ``levels.2.blocks.<j>``.
* ConvNeXt and InternImage: after pre-pooling, the released branch also runs the token models'
  ``pred[:, 1:, :].reshape(B, spatial_res, ...)`` with ``spatial_res`` None, which raises; the stored features were
  the pre-pooled ``(B, C, 21, 21)`` / ``(B, C, 14, 14)`` maps, all channels.
* ONE-PEACE: the released code indexes ``extract_image_features``' output with ``l`` up to 39 (its vendored model
  returns a 3-tuple): the study read ``image_encoder_states[l]``, layer ``l``'s output before ``image_layer_norm``,
  class token dropped (16 x 16 grid): ``fusion_model.layers.<l>``.
* ``predicting.py`` loops over odd layers (``range(1, 64, 2)``) and odd kernels (``range(1, 16, 2)``), one run's
  settings; the README's search (every layer, kernels 1..16) is what :mod:`..algonauts.encoding` runs, with that
  file's per-vertex choice.
"""
from __future__ import annotations

from ..architectures import internimage, onepeace
from ..weights.formats import CheckpointFormat, SafetensorsFormat
from ..preprocessing import IMAGENET_MEAN, IMAGENET_STD, OPENAI_CLIP_MEAN, OPENAI_CLIP_STD, UNNORMALIZED
from . import Family, FeatureMap, register

BATCH_SIZES = {"eva02_enormous_patch14_clip_224": 4, "eva_giant_patch14_clip_224": 8, "convnext_xxlarge": 8,
               "internimage_g_22kto1k_512": 2, "one-peace": 8}
CONVNEXT_PRE_POOL, INTERNIMAGE_PRE_POOL = 21, 14


def candidate_layers(model) -> list[str]:
    """The study's extracted layers in its order (``extracting_depth`` / ``EXTRACT_LAYER`` 0, 1, ...):

    * EVA towers: every block ``blocks.<i>`` (token grids with the class token, before the final norm);
    * ConvNeXt: ``stem``, then every block of every stage but the network's last block (depth 0 is the stem, the loop
      stops one short of the 41 blocks);
    * InternImage: every block of every level but the last, a block followed by a post norm read after it;
    * ONE-PEACE: every layer ``fusion_model.layers.<i>`` (before ``image_layer_norm``).
    """
    if isinstance(model, internimage.InternImage):
        return [f"levels.{i}.post_norms.{level.post_norm_block_ids.index(j)}" if j in level.post_norm_block_ids
                else f"levels.{i}.blocks.{j}" for i, level in enumerate(model.levels[:-1])
                for j in range(len(level.blocks))]
    if isinstance(model, onepeace.OnePeaceVision):
        return [f"fusion_model.layers.{i}" for i in range(len(model.fusion_model.layers))]
    if hasattr(model, "stages"):
        blocks = [f"stages.{s}.blocks.{b}" for s, stage in enumerate(model.stages) for b in range(len(stage.blocks))]
        return ["stem", *blocks[:-1]]
    return [f"blocks.{i}" for i in range(len(model.blocks))]


def feature_maps(model) -> dict[str, FeatureMap]:
    """The study's pre-pooling of the maps it stored: ConvNeXt's to 21 x 21, InternImage's (channels-last) to
    14 x 14; nothing for the token grids."""
    if isinstance(model, internimage.InternImage):
        return {layer: FeatureMap(INTERNIMAGE_PRE_POOL, channels_last=True) for layer in candidate_layers(model)}
    if hasattr(model, "stages"):
        return {layer: FeatureMap(CONVNEXT_PRE_POOL) for layer in candidate_layers(model)}
    return {}


def normalization(arch: str) -> tuple:
    """What each network was trained with (the ``training-config`` option): ImageNet mean/std for InternImage, CLIP's
    for the others (timm's pretrained configs; ONE-PEACE's ``hub_interface``)."""
    return (IMAGENET_MEAN, IMAGENET_STD) if arch.startswith("internimage") else (OPENAI_CLIP_MEAN, OPENAI_CLIP_STD)


FAMILY = register(Family(
    prefix="svenc",
    title="ScalingVisionEncoder (Matsuyama et al., 2023)",
    summary="ScalingVisionEncoder (Matsuyama et al., 2023): the vision encoders of the study of scaling laws of "
            "fMRI encoding\nmodels (EVA01/EVA02-CLIP, ConvNeXt-xxlarge CLIP, InternImage-G, ONE-PEACE), 86M to 4.4B "
            "parameters, as Brain-Score\nmodels. Listed in brainscore_plugins/data/svenc.csv; no region commitment "
            "is published (``brainscore-plugins\ncommit <identifier>``).",
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
    preprocessing=UNNORMALIZED,
    published_counts={"models": 7, "checkpoints": 7},
    test_identifiers=("svenc_eva02-clip-base",),
    requirements=("torch", "torchvision", "timm", "numpy<2", "huggingface_hub", "safetensors"),
    candidate_layers=candidate_layers,
    eval_batch_size=lambda arch: BATCH_SIZES.get(arch, 16),
    normalization=normalization,
    feature_maps=feature_maps,
))
