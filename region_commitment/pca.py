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


def _column_chunks(n_rows: int, n_cols: int):
    step = max(1, CHUNK_BYTES // (4 * max(n_rows, 1)))
    for start in range(0, n_cols, step):
        yield slice(start, min(start + step, n_cols))


def _as_slice(rows: np.ndarray):
    """A contiguous run of rows as a slice: memmap slicing reads in place where fancy indexing copies."""
    rows = np.asarray(rows)
    if len(rows) and np.array_equal(rows, np.arange(rows[0], rows[0] + len(rows))):
        return slice(int(rows[0]), int(rows[0]) + len(rows))
    return rows


def _moments(block: torch.Tensor, standardize: bool):
    """Column mean (and, standardizing, sklearn ``StandardScaler``'s population std, zeros taken as 1), summed in
    float64 without a float64 copy of ``block``."""
    mean = (block.sum(0, dtype=torch.float64) / len(block)).to(block.dtype)
    if not standardize:
        return mean, None
    std = ((block - mean) ** 2).sum(0, dtype=torch.float64).div(len(block)).sqrt()
    return mean, torch.where(std < 10 * torch.finfo(torch.float64).eps, 1.0, std).to(block.dtype)


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
    reference_rows, stimulus_rows = _as_slice(reference_rows), _as_slice(stimulus_rows)
    n_features = features.shape[1]
    n_ref, n_stim = len(features[reference_rows, :1]), len(features[stimulus_rows, :1])
    if n_features <= (n_components or n_ref):
        stimuli = torch.from_numpy(np.asarray(features[stimulus_rows], dtype=np.float64))
        if not standardize:
            return stimuli.numpy()
        mean, std = _moments(torch.from_numpy(np.asarray(features[reference_rows], dtype=np.float64)), True)
        return ((stimuli - mean) / std).numpy()
    gram = torch.zeros(n_ref, n_ref, dtype=torch.float64)
    cross = torch.zeros(n_stim, n_ref, dtype=torch.float64)
    for cols in _column_chunks(n_ref + n_stim, n_features):
        ref = torch.from_numpy(np.ascontiguousarray(features[reference_rows, cols], dtype=np.float32))
        stim = torch.from_numpy(np.ascontiguousarray(features[stimulus_rows, cols], dtype=np.float32))
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
