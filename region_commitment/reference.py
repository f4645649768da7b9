"""The PCA reference images: Brain-Score's ImageNet validation images by default, a folder, or a built-in set.

Brain-Score's ``LayerPCA`` fits each layer's PCA on ``_get_imagenet_val(n_components)``: entries ``50 i`` (one per
class; more per class past 1000) of ``val/images`` in ``imagenet2012.hdf5`` at ``$MT_IMAGENET_PATH`` (default
``$MT_HOME/imagenet2012.hdf5``, ``MT_HOME`` default ``~/.model-tools``), downloaded from Brain-Score's S3 bucket when
missing. ``reference`` (argument, or ``$REGION_COMMITMENT_REFERENCE``) picks the source:

* ``None`` / ``"brainscore"``: exactly those images (Brain-Score's own function reads them; the hdf5 is downloaded
  when missing and reachable). With ``None``, when it can be neither found nor downloaded, the built-in set is used
  with a warning; with ``"brainscore"`` that is an error.
* a folder: an ImageNet validation folder in class-folder layout (1000 ``n*`` synset folders) gives Brain-Score's
  selection: class folders in sorted order, files sorted by name within each, entry ``50 c + j`` = file ``j`` of
  class ``c`` (the hdf5's order when it is sorted by synset, then file name, as ImageNet's devkit orders it). Any
  other folder: its first ``n`` images in sorted order.
* ``"builtin"``: ``n`` deterministic crops (scale 0.2-1, random flips) of the natural photographs shipped inside
  installed packages (scikit-learn's two sample photographs, matplotlib's sample photograph and scikit-image's
  photographs when installed), written once under ``<cache>/pca_reference_*``. Not Brain-Score's images: layer
  choices made on it can differ from Brain-Score's.

``n`` (``commit``'s ``n_components``) is checked against the images the source holds (:func:`check_count`): at most
:data:`MAX_IMAGES` (the ImageNet validation set) for Brain-Score's and the built-in set, at most the folder's images
for a plain folder. Every source is recorded (:attr:`ReferenceSet.provenance`): which images, and a digest of their
bytes.
"""
from __future__ import annotations

import logging
import numbers
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from . import brainscore_internals, digests, settings
from .atomic import replacing
from .errors import CommitmentError

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff"}
BRAINSCORE, BUILTIN = "brainscore", "builtin"
IMAGENET_CLASSES, IMAGES_PER_CLASS = 1000, 50
MAX_IMAGES = IMAGENET_CLASSES * IMAGES_PER_CLASS  # the most images Brain-Score's selection can read
_logger = logging.getLogger(__name__)


@dataclass
class ReferenceSet:
    paths: list[str]
    provenance: dict  # kind, where, how selected, digest


def check_count(n, available: int = MAX_IMAGES, source: str = "Brain-Score's ImageNet validation set") -> None:
    """``n`` reference images (one per PCA component) must be a whole number from 1 to the ``available`` images of
    ``source`` (by default the most any source gives).

    Raises:
        CommitmentError: another ``n``.
    """
    if isinstance(n, bool) or not isinstance(n, numbers.Integral) or not 1 <= n <= available:
        raise CommitmentError(f"n_components={n!r} is not a whole number from 1 to {available}, the reference images "
                              f"{source} holds (one per PCA component)")


def imagenet_val_indices(n: int) -> list[int]:
    """The entries of ImageNet's validation set Brain-Score's ``_get_imagenet_val(n)`` reads (its own formula)."""
    per_class = (n - 1) // IMAGENET_CLASSES
    indices = [IMAGES_PER_CLASS * c + j for c in range(IMAGENET_CLASSES) for j in range(per_class)]
    indices += [IMAGES_PER_CLASS * c + per_class for c in range((n - 1) % IMAGENET_CLASSES + 1)]
    return indices


def _download_hdf5(path: Path) -> None:
    from brainscore_vision.model_helpers.utils import s3
    _logger.warning("Downloading Brain-Score's ImageNet validation images (imagenet2012-val.hdf5) to %s", path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with replacing(path) as tmp:
        s3.download_file("imagenet2012-val.hdf5", str(tmp))


def brainscore_images(n: int, download: bool = True) -> ReferenceSet:
    """Brain-Score's own reference images for ``n`` components, read by its own ``_get_imagenet_val``.

    Raises:
        CommitmentError: ``n`` outside ``[1, MAX_IMAGES]``.
        FileNotFoundError: the file is missing and ``download`` is off.
        OSError, LookupError: a file that is not Brain-Score's (h5py cannot open it, lacks or is short of entries).
        botocore/boto3 errors, OSError: the download fails (:func:`brainscore_internals.download_errors`).
    """
    check_count(n)
    path = settings.imagenet_hdf5()
    if not path.is_file():
        if not download:
            raise FileNotFoundError(f"Brain-Score's ImageNet reference file {path} does not exist")
        _download_hdf5(path)
    paths = brainscore_internals.imagenet_val_images(n)
    return ReferenceSet(paths, {"kind": "brainscore-imagenet", "file": path.name, "entries": "val/images "
                                "[50 i + j] as brainscore_vision _get_imagenet_val", "n": n,
                                "digest": digests.files(paths)})


def _imagenet_class_folders(folder: Path) -> list[Path] | None:
    classes = sorted(p for p in folder.iterdir() if p.is_dir() and p.name.startswith("n") and p.name[1:].isdigit())
    return classes if len(classes) == IMAGENET_CLASSES else None


def _images(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())


def folder_images(folder: str | Path, n: int) -> ReferenceSet:
    """Brain-Score's one-per-class selection from an ImageNet validation class-folder layout, else the first ``n``
    images of ``folder`` in sorted order.

    Raises:
        FileNotFoundError: no such folder, or no images in it.
        CommitmentError: ``n`` outside ``[1, MAX_IMAGES]`` or past the folder's images.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"The PCA reference folder {folder} does not exist; pass a folder of images, "
                                f"'{BRAINSCORE}' or '{BUILTIN}'")
    classes = _imagenet_class_folders(folder)
    if classes is not None:
        check_count(n, MAX_IMAGES, "an ImageNet validation folder")
        per_class = [sorted(p for p in c.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES) for c in classes]
        try:
            paths = [str(per_class[i // IMAGES_PER_CLASS][i % IMAGES_PER_CLASS]) for i in imagenet_val_indices(n)]
        except IndexError:
            raise CommitmentError(f"{folder}: an ImageNet class folder has fewer images than Brain-Score's selection "
                                  f"of {n} needs") from None
        selection = "imagenet-val one per class (Brain-Score's entries 50 i + j)"
    else:
        images = _images(folder)
        if not images:
            raise FileNotFoundError(f"No images ({', '.join(sorted(IMAGE_SUFFIXES))}) in the PCA reference folder "
                                    f"{folder}")
        check_count(n, len(images), f"the folder {folder}")
        paths = [str(p) for p in images[:n]]
        selection = "first n files in sorted order"
    return ReferenceSet(paths, {"kind": "folder", "folder": str(folder), "selection": selection, "n": len(paths),
                                "digest": digests.files(paths)})


def _source_photographs() -> list[np.ndarray]:
    """The natural photographs that ship inside installed packages (no network)."""
    import matplotlib.cbook
    from sklearn.datasets import load_sample_images
    photos = list(load_sample_images().images)
    with matplotlib.cbook.get_sample_data("grace_hopper.jpg") as f:
        photos.append(np.asarray(Image.open(f).convert("RGB")))
    try:
        from skimage import data
    except ImportError:
        return photos
    for name in ("astronaut", "chelsea", "coffee", "rocket", "motorcycle_left", "hubble_deep_field"):
        try:
            photo = np.asarray(getattr(data, name)())
        except (AttributeError, ModuleNotFoundError, OSError):  # not in this version; not installed, no pooch, offline
            continue
        if photo.ndim == 3 and photo.shape[2] == 3:
            photos.append(photo)
    return photos


def default_reference_images(directory: str | Path, n: int = 1000, size: int = 256, seed: int = 0) -> list[Path]:
    """``n`` crops of packaged photographs, written (atomically, once) as PNG files under ``directory``."""
    photos = _source_photographs()
    directory = Path(directory) / f"pca_reference_{n}_{size}_{seed}_{len(photos)}"
    paths = [directory / f"ref-{i:04d}.png" for i in range(n)]
    if all(p.exists() for p in paths):
        return paths
    directory.mkdir(parents=True, exist_ok=True)
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
            with replacing(path) as tmp:
                Image.fromarray(np.ascontiguousarray(crop)).resize((size, size), Image.BICUBIC).save(tmp,
                                                                                                     format="PNG")
    return paths


def builtin_images(cache: str | Path, n: int) -> ReferenceSet:
    """``n`` crops of packaged photographs (:func:`default_reference_images`).

    Raises:
        CommitmentError: ``n`` outside ``[1, MAX_IMAGES]`` (checked before any image is written).
    """
    check_count(n, MAX_IMAGES, "the built-in set (capped as Brain-Score's ImageNet validation set)")
    paths = [str(p) for p in default_reference_images(cache, n=n)]
    return ReferenceSet(paths, {"kind": "builtin", "selection": "crops of photographs shipped in installed packages "
                                "(not Brain-Score's ImageNet images)", "n": n, "digest": digests.files(paths)})


def reference_images(reference: str | Path | None, cache: str | Path, n: int = 1000) -> ReferenceSet:
    """The reference set for ``n`` components from ``reference`` (else ``$REGION_COMMITMENT_REFERENCE``); see the
    module docstring for the sources and the fallback.

    Raises:
        FileNotFoundError: a folder that does not exist or holds no images.
        CommitmentError: ``n`` is not a whole number from 1 to the images the source holds (:func:`check_count`),
            or an ImageNet class folder has fewer images than Brain-Score's selection of ``n`` needs.
        OSError, LookupError, botocore/boto3 errors: ``"brainscore"`` asked for, and its file can be neither read
            nor downloaded (see :func:`brainscore_images`).
    """
    reference = reference or settings.reference()
    if reference == BUILTIN:
        return builtin_images(cache, n)
    if reference == BRAINSCORE:
        return brainscore_images(n)
    if reference is not None:
        return folder_images(reference, n)
    try:
        return brainscore_images(n)
    except brainscore_internals.download_errors() + (LookupError,) as error:  # not cached, not reachable, broken
        warnings.warn(f"Brain-Score's ImageNet reference images are neither cached at {settings.imagenet_hdf5()} nor "
                      f"downloadable ({type(error).__name__}: {str(error)[:200]}); using the built-in offline set, "
                      f"whose layer choices can differ from Brain-Score's. Place imagenet2012.hdf5 there (or set "
                      f"MT_IMAGENET_PATH), or pass an ImageNet validation folder as the reference.")
        return builtin_images(cache, n)
