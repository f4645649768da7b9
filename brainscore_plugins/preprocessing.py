"""Evaluation preprocessing: file paths -> a float32 batch ``(N, 3, crop, crop)`` (Brain-Score's ``preprocessing``).

Pipelines, chosen per model (``activations_model(..., preprocessing=...)`` or ``$BRAINSCORE_PLUGINS_PREPROCESSING``;
each family has a default):

* ``brainscore``: pixel for pixel what Brain-Score's own ``scaling_models`` plugin feeds the network, and so what the
  study's published Brain-Score scores were made with: ``np.array(PIL.Image.open(p).convert("RGB"))``, albumentations
  ``Resize(resize, resize)`` (a square: the aspect ratio is not kept) with OpenCV ``INTER_LINEAR`` (no antialiasing;
  that plugin's ``get_interpolation_mode`` returns 1 whatever the config says), ``CenterCrop(crop, crop)``,
  ``Normalize`` (ImageNet mean/std), channels first. The default for ``spvvs``.
* ``training-config``: the training config's own evaluation transform: torchvision ``Resize(resize)`` of the shorter
  side (aspect ratio kept, antialiased) with the configured interpolation (``bicubic`` means bicubic), ``CenterCrop``,
  the family's mean/std (ImageNet unless it declares another). The default for ``hlvit`` (its author's evaluation);
  an option for ``spvvs``, ``grouplin`` and ``svenc``.
* ``unnormalized``: ``training-config`` without the normalisation, pixels in [0, 1]: what the ScalingVisionEncoder
  study fed its encoders (its ``Normalize`` line is commented out). The default for ``svenc``.
* ``algonauts23``: the algonauts23 GroupLin authors' evaluation (their ``dataset/generate_dataset.py`` then
  ``create_transform(train=False)``): PIL bicubic resize to 256 x 256 (the size their dataset stores), then on the
  uint8 tensor / 255 torchvision's antialiased bicubic ``Resize`` to the crop size, ``CenterCrop``, the family's
  mean/std. The default for ``grouplin``.
"""
from __future__ import annotations

import functools

import numpy as np
from PIL import Image

from . import settings

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
OPENAI_CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)  # CLIP's, used by EVA-02, the CLIP towers and ONE-PEACE
OPENAI_CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
BRAINSCORE, TRAINING_CONFIG, UNNORMALIZED, ALGONAUTS23 = "brainscore", "training-config", "unnormalized", "algonauts23"
PIPELINES = (BRAINSCORE, TRAINING_CONFIG, UNNORMALIZED, ALGONAUTS23)
ALGONAUTS23_STORED_SIZE = 256  # the algonauts23 authors' dataset holds every image resized to 256 x 256


def pipeline_name(family_default: str, requested: str | None = None) -> str:
    """The pipeline to use: ``requested``, else ``$BRAINSCORE_PLUGINS_PREPROCESSING``, else the family's default."""
    name = requested or settings.preprocessing() or family_default
    if name not in PIPELINES:
        source = "the argument" if requested else settings.PREPROCESSING
        raise ValueError(f"Unknown preprocessing {name!r} (from {source}); "
                         f"use one of: {', '.join(PIPELINES)}")
    return name


@functools.lru_cache(maxsize=None)
def eval_transform(resize: int, crop: int, interpolation: str,
                   mean: tuple = IMAGENET_MEAN, std: tuple = IMAGENET_STD):
    """The ``training-config`` transform of a PIL image (a torchvision ``Compose``)."""
    from torchvision import transforms  # here: the family declarations import this module without torch
    try:
        mode = transforms.InterpolationMode(interpolation.lower())
    except ValueError:
        known = ", ".join(m.value for m in transforms.InterpolationMode)
        raise ValueError(f"Unknown interpolation {interpolation!r}; use one of {known}") from None
    return transforms.Compose([
        transforms.Resize(resize, interpolation=mode),
        transforms.CenterCrop(crop),
        transforms.ToTensor(),
        transforms.Normalize(mean, std),
    ])


@functools.lru_cache(maxsize=None)
def brainscore_transform(resize: int, crop: int, mean: tuple = IMAGENET_MEAN, std: tuple = IMAGENET_STD):
    """The ``brainscore`` transform of an RGB ``uint8`` array (albumentations, as Brain-Score's plugin builds it)."""
    import albumentations as A
    from albumentations.pytorch import ToTensorV2
    return A.Compose([
        A.Resize(resize, resize, p=1.0, interpolation=1),  # cv2.INTER_LINEAR, as the plugin always uses
        A.CenterCrop(crop, crop, p=1.0),
        A.Normalize(mean=list(mean), std=list(std)),
        ToTensorV2(),
    ])


@functools.lru_cache(maxsize=None)
def algonauts23_transform(crop: int, interpolation: str, mean: tuple, std: tuple):
    """The ``algonauts23`` transform of a PIL image."""
    import torch
    from torchvision import transforms
    mode = transforms.InterpolationMode(interpolation.lower())
    tensor = transforms.Compose([transforms.Resize(crop, interpolation=mode, antialias=True),
                                 transforms.CenterCrop(crop), transforms.Normalize(mean, std)])

    def transform(image: Image.Image):
        stored = image.resize((ALGONAUTS23_STORED_SIZE, ALGONAUTS23_STORED_SIZE), resample=Image.Resampling.BICUBIC)
        return tensor(torch.from_numpy(np.array(stored)).to(torch.float32).div(255.0).permute(2, 0, 1).contiguous())
    return transform


def _rgb(path) -> Image.Image:
    with Image.open(path) as image:
        return image.convert("RGB")


def load_preprocess_images(image_filepaths, resize: int, crop: int, interpolation: str,
                           pipeline: str = TRAINING_CONFIG, mean: tuple = IMAGENET_MEAN,
                           std: tuple = IMAGENET_STD) -> np.ndarray:
    """Brain-Score's ``preprocessing`` contract: file paths -> a float32 batch (N, 3, crop, crop)."""
    mean, std = tuple(mean), tuple(std)
    if pipeline == BRAINSCORE:
        transform = brainscore_transform(resize, crop, mean, std)
        return np.stack([transform(image=np.array(_rgb(path)))["image"].numpy() for path in image_filepaths])
    if pipeline == UNNORMALIZED:
        mean, std = (0.0, 0.0, 0.0), (1.0, 1.0, 1.0)
    transform = algonauts23_transform(crop, interpolation, mean, std) if pipeline == ALGONAUTS23 else \
        eval_transform(resize, crop, interpolation, mean, std)
    return np.stack([transform(_rgb(path)).numpy() for path in image_filepaths])


def preprocessing_for(resize: int, crop: int, interpolation: str, pipeline: str = TRAINING_CONFIG,
                      mean: tuple = IMAGENET_MEAN, std: tuple = IMAGENET_STD):
    """A picklable preprocessing callable for ``PytorchWrapper`` (``mean``/``std``: the family's normalisation)."""
    if pipeline not in PIPELINES:
        raise ValueError(f"Unknown preprocessing {pipeline!r}; use one of: {', '.join(PIPELINES)}")
    return functools.partial(load_preprocess_images, resize=resize, crop=crop, interpolation=interpolation,
                             pipeline=pipeline, mean=tuple(mean), std=tuple(std))
