"""The PCA reference image set: a local folder, or a built-in default made without any network.

Brain-Score fits each layer's PCA on 1000 ImageNet validation images fetched from S3. Offline we use any folder of
images the user points to (``reference=`` / ``--reference DIR``); the built-in default is ``n`` deterministic random
crops (scale 0.2-1, random flips) of the natural photographs that ship inside installed packages (scikit-learn's
two sample photographs, matplotlib's sample images), written once to ``<cache>/pca_reference_<n>/``.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from PIL import Image

from brainscore_plugins import atomic

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff"}


def _source_photographs() -> list[np.ndarray]:
    from sklearn.datasets import load_sample_images
    photos = list(load_sample_images().images)
    import matplotlib.cbook
    for name in ("grace_hopper.jpg",):
        with matplotlib.cbook.get_sample_data(name) as f:
            photos.append(np.asarray(Image.open(f).convert("RGB")))
    return photos


def default_reference_images(directory: str | Path, n: int = 1000, size: int = 256, seed: int = 0) -> list[Path]:
    """``n`` crops of packaged photographs, written (atomically, once) as PNG files under ``directory``."""
    directory = Path(directory) / f"pca_reference_{n}_{size}_{seed}"
    paths = [directory / f"ref-{i:04d}.png" for i in range(n)]
    if all(p.exists() for p in paths):
        return paths
    directory.mkdir(parents=True, exist_ok=True)
    photos = _source_photographs()
    rng = np.random.default_rng(seed)
    for i, path in enumerate(paths):
        photo = photos[i % len(photos)]
        h, w = photo.shape[:2]
        side = int(min(h, w) * rng.uniform(0.2, 1.0))
        top, left = rng.integers(0, h - side + 1), rng.integers(0, w - side + 1)
        crop = photo[top:top + side, left:left + side]
        if rng.random() < 0.5:
            crop = crop[:, ::-1]
        if not path.exists():
            with atomic.replacing(path) as tmp:
                Image.fromarray(np.ascontiguousarray(crop)).resize((size, size), Image.BICUBIC).save(tmp)
    return paths


REFERENCE_ENV = "REGION_COMMITMENT_REFERENCE"  # a default reference folder (e.g. a local ImageNet validation set)


def reference_images(reference: str | Path | None, cache: str | Path, n: int = 1000) -> list[Path]:
    """The images of folder ``reference`` (sorted, at most ``n``); without one, those of the folder named by
    ``$REGION_COMMITMENT_REFERENCE``, else the built-in default set of ``n`` images."""
    reference = reference or os.environ.get(REFERENCE_ENV) or None
    if reference is None:
        return default_reference_images(cache, n=n)
    folder = Path(reference)
    paths = sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
    if not paths:
        raise FileNotFoundError(f"No images ({', '.join(sorted(IMAGE_SUFFIXES))}) in the PCA reference folder {folder}")
    return paths[:n]
