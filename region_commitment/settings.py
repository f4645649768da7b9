"""The environment variables region_commitment reads (the only module that reads any), each read when it is used.

:data:`VARIABLES` lists them (name, default, meaning), for a README or a ``--help`` to show.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import NamedTuple

CACHE_ENV = "REGION_COMMITMENT_CACHE"
REFERENCE_ENV = "REGION_COMMITMENT_REFERENCE"
MT_HOME_ENV = "MT_HOME"
MT_IMAGENET_PATH_ENV = "MT_IMAGENET_PATH"


class Variable(NamedTuple):
    name: str
    default: str  # in words
    meaning: str


VARIABLES = (
    Variable(CACHE_ENV, "region_commitment in torch's hub folder ($TORCH_HOME/hub)",
             "where commit streams features and caches per-layer scores"),
    Variable(REFERENCE_ENV, "Brain-Score's ImageNet images, else the built-in set",
             "the PCA reference images: 'brainscore', 'builtin' or a folder of images"),
    Variable(MT_HOME_ENV, "~/.model-tools", "Brain-Score's model-tools folder, which holds imagenet2012.hdf5"),
    Variable(MT_IMAGENET_PATH_ENV, "$MT_HOME/imagenet2012.hdf5",
             "Brain-Score's ImageNet validation images (LayerPCA's reference images)"),
)


def cache_dir() -> Path:
    """``$REGION_COMMITMENT_CACHE``, else ``region_commitment`` in torch's hub folder (``$TORCH_HOME/hub``)."""
    import torch.hub
    return Path(os.environ.get(CACHE_ENV) or Path(torch.hub.get_dir()) / "region_commitment").expanduser()


def reference() -> str | None:
    """``$REGION_COMMITMENT_REFERENCE`` (``None`` where unset or empty)."""
    return os.environ.get(REFERENCE_ENV) or None


def imagenet_hdf5() -> Path:
    """Brain-Score's ImageNet file as its ``_get_imagenet_val`` finds it: ``$MT_IMAGENET_PATH``, else
    ``$MT_HOME/imagenet2012.hdf5`` (``MT_HOME`` default ``~/.model-tools``)."""
    home = os.path.expanduser(os.environ.get(MT_HOME_ENV, "~/.model-tools"))
    return Path(os.environ.get(MT_IMAGENET_PATH_ENV, os.path.join(home, "imagenet2012.hdf5")))
