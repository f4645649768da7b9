"""Splits of a subject's Algonauts 2023 training images (indices in file-name order = fMRI row order).

* :func:`devkit`: the challenge development kit's held-out split (``np.random.seed(5)``, shuffle, first 90 % fit, last
  10 % held out), which the ``algonauts2023.*`` benchmarks score on.
* :func:`lane2023`: the split the algonauts23 GroupLin authors (Lane & Kiar, 2023) trained, selected and tested on,
  rebuilt exactly from their ``dataset/generate_splits.py``: per subject a seed from their ``seed_hash`` (md5 of the
  arguments' ``str``) and ``np.random.default_rng(seed).permutation``, cut at the rounded cumulative 85 / 10 / 5 %.
  GroupLin was trained on ``train`` and its checkpoint chosen on ``val``; ``testval`` is held out from both.
"""
from __future__ import annotations

import hashlib

import numpy as np

DEVKIT_SEED = 5
DEVKIT_TRAIN_PERCENT = 90
LANE2023_SPLITS = {"train": 0.85, "val": 0.1, "testval": 0.05}
LANE2023_SEED = 2023
LANE2023_PARENT = "training-official"


def devkit(n_images: int) -> tuple[np.ndarray, np.ndarray]:
    """The development kit's (fit, held-out) image indices, from its own ``RandomState`` (never the global one)."""
    indices = np.arange(n_images)
    np.random.RandomState(DEVKIT_SEED).shuffle(indices)
    n_fit = int(np.round(n_images / 100 * DEVKIT_TRAIN_PERCENT))
    return indices[:n_fit], indices[n_fit:]


def seed_hash(*args) -> int:
    """The algonauts23 authors' seed (DomainBed's ``seed_hash``): md5 of ``str(args)`` modulo 2^31."""
    return int(hashlib.md5(str(args).encode("utf-8")).hexdigest(), 16) % (2 ** 31)


def lane2023(n_images: int, subject: str) -> dict[str, np.ndarray]:
    """GroupLin's ``{'train', 'val', 'testval'}`` sorted image indices for ``subject`` (``subj01`` ... ``subj08``)."""
    ends = np.round(np.cumsum(np.asarray(list(LANE2023_SPLITS.values())) * n_images)).astype(int)
    starts = np.concatenate([[0], ends[:-1]])
    order = np.random.default_rng(seed_hash("generate_splits", LANE2023_PARENT, subject, LANE2023_SEED)) \
        .permutation(n_images)
    return {name: np.sort(order[start:end]) for name, start, end in zip(LANE2023_SPLITS, starts, ends)}
