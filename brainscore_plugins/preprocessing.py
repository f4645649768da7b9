"""Evaluation preprocessing as the training configs define it: resize, center crop, normalize.

Unlike Brain-Score's own ``scaling_models`` plugin (which resizes bilinearly whatever is configured), the configured
interpolation is honoured: ``bicubic`` means bicubic.
"""
from __future__ import annotations

import functools

import numpy as np
from PIL import Image
from torchvision import transforms

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@functools.lru_cache(maxsize=None)
def eval_transform(resize: int, crop: int, interpolation: str,
                   mean: tuple = IMAGENET_MEAN, std: tuple = IMAGENET_STD) -> transforms.Compose:
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


def load_preprocess_images(image_filepaths, resize: int, crop: int, interpolation: str) -> np.ndarray:
    """Brain-Score's ``preprocessing`` contract: file paths -> a float32 batch (N, 3, crop, crop)."""
    transform = eval_transform(resize, crop, interpolation)
    batch = []
    for path in image_filepaths:
        with Image.open(path) as image:
            batch.append(transform(image.convert("RGB")).numpy())
    return np.stack(batch)


def preprocessing_for(resize: int, crop: int, interpolation: str):
    """A picklable preprocessing callable for ``PytorchWrapper``."""
    return functools.partial(load_preprocess_images, resize=resize, crop=crop, interpolation=interpolation)
