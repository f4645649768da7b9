"""Brain-Score's ``LayerPCA`` semantics, computed through the reference set's Gram matrix.

Brain-Score fits ``sklearn.decomposition.PCA(n_components)`` per layer on the reference images' flattened
activations and projects every stimulus onto the components (layers with at most ``n_components`` features are
used as they are). With ``N`` reference images the components span the centred reference rows, so they follow from
the ``N x N`` Gram matrix: ``G = R_c R_c^T = U L U^T``, components ``V = R_c^T U L^-1/2`` and projections
``(x - mean) R_c^T U L^-1/2``. Only ``N x N`` and ``n x N`` matrices are ever formed; the features are read in
column chunks, so memory stays bounded for any layer width. The basis is orthonormal and spans the same subspace
as sklearn's (up to the null directions of a rank-deficient set), which is all the PLS that follows depends on.
"""
from __future__ import annotations

import numpy as np
import torch

CHUNK_BYTES = 256 << 20


def _column_blocks(features):
    """Every image x one block of columns, block after block: a :class:`~region_commitment.features.LayerFeatures`'
    own blocks (one contiguous mapping each), or column chunks of an array of at most ``CHUNK_BYTES``."""
    if hasattr(features, "column_blocks"):
        yield from features.column_blocks()
        return
    n_rows, n_cols = features.shape
    step = max(1, CHUNK_BYTES // (4 * max(n_rows, 1)))
    for start in range(0, n_cols, step):
        yield features[:, start:start + step]


def _as_slice(rows: np.ndarray):
    """A contiguous run of rows as a slice: slicing a block gives a view where fancy indexing copies."""
    rows = np.asarray(rows)
    if len(rows) and np.array_equal(rows, np.arange(rows[0], rows[0] + len(rows))):
        return slice(int(rows[0]), int(rows[0]) + len(rows))
    return rows


def _moments(block: torch.Tensor, standardize: bool):
    """Column mean (and, standardizing, sklearn ``StandardScaler``'s population std, zeros taken as 1)."""
    mean = block.mean(0)
    if not standardize:
        return mean, None
    std = ((block - mean) ** 2).mean(0).sqrt()
    return mean, torch.where(std < 10 * torch.finfo(block.dtype).eps, 1.0, std)


def _gram(a: torch.Tensor, blocks: int = 4) -> torch.Tensor:
    """``a @ a.T`` from its upper block triangle only (a symmetric rank-k update: 10 of 16 block products)."""
    edges = [len(a) * k // blocks for k in range(blocks + 1)]
    out = torch.empty(len(a), len(a), dtype=a.dtype)
    for i in range(blocks):
        rows = slice(edges[i], edges[i + 1])
        for j in range(i, blocks):
            cols = slice(edges[j], edges[j + 1])
            out[rows, cols] = a[rows] @ a[cols].T
            if j > i:
                out[cols, rows] = out[rows, cols].T
    return out


def project(features: np.ndarray, reference_rows: np.ndarray, stimulus_rows: np.ndarray,
            n_components: int | None, standardize: bool = False) -> np.ndarray:
    """Stimulus activations in the PCA basis of the reference activations (``features``: images x features).

    ``n_components=None`` keeps every non-null component (an exact change of coordinates within the span of the
    reference rows); ``standardize`` scales each feature by its reference std first, as ``StandardScaler`` does.
    """
    n_ref, n_stim, n_features = len(reference_rows), len(stimulus_rows), features.shape[1]
    reference_rows, stimulus_rows = _as_slice(reference_rows), _as_slice(stimulus_rows)
    if n_features <= (n_components or n_ref):
        values = np.asarray(features)
        stimuli = torch.from_numpy(np.asarray(values[stimulus_rows], dtype=np.float64))
        if not standardize:
            return stimuli.numpy()
        mean, std = _moments(torch.from_numpy(np.asarray(values[reference_rows], dtype=np.float64)), True)
        return ((stimuli - mean) / std).numpy()
    gram = torch.zeros(n_ref, n_ref, dtype=torch.float64)
    cross = torch.zeros(n_stim, n_ref, dtype=torch.float64)
    for block in _column_blocks(features):
        ref = torch.from_numpy(np.ascontiguousarray(block[reference_rows], dtype=np.float32))
        stim = torch.from_numpy(np.ascontiguousarray(block[stimulus_rows], dtype=np.float32))
        mean, std = _moments(ref, standardize)
        ref_c, stim_c = ref - mean, stim - mean
        if standardize:
            ref_c, stim_c = ref_c / std, stim_c / std
        gram += _gram(ref_c).double()
        cross += (stim_c @ ref_c.T).double()
    eigenvalues, eigenvectors = torch.linalg.eigh(gram)
    order = torch.argsort(eigenvalues, descending=True)[:n_components]
    eigenvalues, eigenvectors = eigenvalues[order], eigenvectors[:, order]
    keep = eigenvalues > eigenvalues[0] * 1e-10  # drop the null directions of a rank-deficient reference set
    basis = eigenvectors[:, keep] / eigenvalues[keep].sqrt()
    return (cross @ basis).numpy()
