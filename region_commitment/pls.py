"""Brain-Score's PLS metric (``load_metric('pls')``), batched over cross-validation splits in torch.

Per split: ``PLSRegression(n_components, scale=False)`` fit on the training stimuli, Pearson r per neuroid on the
test stimuli, median over neuroids; then the mean over splits (error: standard error over splits). As in Brain-Score
(scipy's ``pearsonr``, xarray's ``median`` and ``mean``), r is NaN where a prediction or a target is constant on a
test split, and NaN values are skipped by the median and the mean. Each PLS component uses the dominant left singular
vector of the deflated cross-covariance ``C = X^T Y``, which is the fixed point sklearn's NIPALS iteration converges
to; it is computed from the small ``Y``-side matrix ``C^T C`` (its top eigenvector ``v`` gives ``w = C v / |C v|``)
rather than a full SVD. Weights, loadings and the regression coefficients follow sklearn.
"""
from __future__ import annotations

import warnings

import numpy as np
import torch


def _center(x: torch.Tensor):
    mean = x.mean(dim=1, keepdim=True)
    return x - mean, mean


def _dominant_left_singular_vector(c: torch.Tensor) -> torch.Tensor:
    """``(splits, p, q)`` -> the top left singular vector of each ``c``, ``(splits, p, 1)``."""
    if c.shape[2] < c.shape[1]:
        _, v = torch.linalg.eigh(c.transpose(1, 2) @ c)    # ascending eigenvalues
        u = c @ v[..., -1:]
        return u / u.norm(dim=1, keepdim=True).clamp_min(1e-300)
    return torch.linalg.eigh(c @ c.transpose(1, 2))[1][..., -1:]


def _row_span_coordinates(x: torch.Tensor, x_test: torch.Tensor):
    """Centred training rows ``(splits, n, p)`` with ``p > n`` and test rows in an orthonormal basis of the training
    rows' span (``n`` coordinates; null directions zero). PLS weights lie in that span, so predictions are unchanged
    and every component costs ``O(n)`` instead of ``O(p)`` per row."""
    eigenvalues, u = torch.linalg.eigh(x @ x.transpose(1, 2))
    keep = eigenvalues > eigenvalues[:, -1:] * 1e-10
    root = torch.where(keep, eigenvalues.clamp_min(0).sqrt(), 0.0)
    return u * root.unsqueeze(1), x_test @ x.transpose(1, 2) @ u * torch.where(keep, 1 / root, 0.0).unsqueeze(1)


def fit_predict(x_train: torch.Tensor, y_train: torch.Tensor, x_test: torch.Tensor, n_components: int):
    """Batched PLS regression: ``(splits, n, p)``, ``(splits, n, q)`` -> predictions ``(splits, n_test, q)``."""
    x, x_mean = _center(x_train)
    y, y_mean = _center(y_train)
    n_components = min(n_components, x.shape[1] - 1, x.shape[2])
    x_test = x_test - x_mean
    if x.shape[2] > x.shape[1]:
        x, x_test = _row_span_coordinates(x, x_test)
    weights, x_loadings, y_loadings = [], [], []
    for _ in range(n_components):
        w = _dominant_left_singular_vector(x.transpose(1, 2) @ y)  # (splits, p, 1)
        t = x @ w                                           # scores (splits, n, 1)
        tt = (t.transpose(1, 2) @ t).clamp_min(1e-12)
        p_load = x.transpose(1, 2) @ t / tt
        q_load = y.transpose(1, 2) @ t / tt
        x = x - t @ p_load.transpose(1, 2)
        y = y - t @ q_load.transpose(1, 2)
        weights.append(w), x_loadings.append(p_load), y_loadings.append(q_load)
    w, p_load, q_load = (torch.cat(m, dim=2) for m in (weights, x_loadings, y_loadings))
    rotations = w @ torch.linalg.pinv(p_load.transpose(1, 2) @ w)
    coef = rotations @ q_load.transpose(1, 2)              # (splits, p, q)
    return x_test @ coef + y_mean


def pearson_per_neuroid(prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """``(splits, n, q)`` -> r per split and neuroid as ``scipy.stats.pearsonr`` gives it (Brain-Score's correlation):
    NaN where the prediction or the target is constant, clipped to [-1, 1], rounded to +-1 for two stimuli."""
    p, _ = _center(prediction)
    t, _ = _center(target)
    r = ((p * t).sum(1) / (p.norm(dim=1) * t.norm(dim=1))).clamp(-1, 1)
    constant = (prediction == prediction[:, :1]).all(1) | (target == target[:, :1]).all(1)
    r = r.masked_fill(constant, float("nan"))
    return r.round() if prediction.shape[1] == 2 else r


def _batches(splits: list) -> list[list[int]]:
    """Indices of the splits with equal (train, test) sizes, each batched at once (k-fold folds differ by one)."""
    batches = {}
    for i, (train, test) in enumerate(splits):
        batches.setdefault((len(train), len(test)), []).append(i)
    return list(batches.values())


def split_medians(features: np.ndarray, responses: np.ndarray, splits: list, n_components: int) -> np.ndarray:
    """Per split, the median over neuroids of the test r, NaN r skipped (xarray's ``median``; NaN if all are)."""
    x = torch.from_numpy(np.asarray(features, dtype=np.float64))
    y = torch.from_numpy(np.asarray(responses, dtype=np.float64))
    medians = np.empty(len(splits))
    for batch in _batches(splits):
        train = torch.from_numpy(np.stack([splits[i][0] for i in batch]))
        test = torch.from_numpy(np.stack([splits[i][1] for i in batch]))
        r = pearson_per_neuroid(fit_predict(x[train], y[train], x[test], n_components), y[test]).numpy()
        r[(x[test] == x[test][:, :1]).all(2).all(1).numpy()] = np.nan  # constant predictions, however they round
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN splits: NaN
            medians[batch] = np.nanmedian(r, axis=1)  # of an even count: the mean of the middle two
    return medians


def cross_validated_score(features: np.ndarray, responses: np.ndarray, splits: list, n_components: int):
    """(mean over splits of the median-over-neuroids r, its standard error over splits), as Brain-Score's
    ``Split.aggregate``: splits whose median is NaN skipped as xarray's ``mean`` / ``std`` skip them (NaN if all are),
    error = population std / sqrt(number of splits, NaN ones included)."""
    medians = split_medians(features, responses, splits, n_components)
    finite = medians[np.isfinite(medians)]
    if not len(finite):
        return float("nan"), float("nan")
    return float(finite.mean()), float(finite.std() / np.sqrt(len(medians)))
