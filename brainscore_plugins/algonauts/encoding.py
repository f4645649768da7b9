"""ScalingVisionEncoder-style voxel-wise encoding (Matsuyama et al. 2023, arXiv:2308.00678): each layer's features
max-pooled to a k x k grid (k = 1..16; first to the layer's ``pre_pool`` grid where one is declared, as the study did
for ConvNeXt and InternImage), centred on the training images, and ridge regression with 8-fold CV over 30 alphas
(himalaya, correlation score, one alpha per vertex); each vertex keeps the (layer, k) cell with its best CV score
(strictly better than the cells before it, in layer then kernel order), and that cell's refitted model predicts the
held-out test images.

Primal fits (images >= features) run :func:`_primal_ridge_cv`, himalaya's RidgeCV reassociated (equal to it, n_train /
n_features times less work); dual fits run himalaya's KernelRidgeCV. Both score with :func:`correlation`, himalaya's
correlation score in one float32 pass.

The search runs on the training images only; the test images are only predicted. Features come from a
:class:`region_commitment.features.FeatureStore`, one layer at a time, pooled while streaming row chunks off disk.
A design too large for memory (``max_design_bytes``) is never materialised: its linear kernel is accumulated panel by
panel and the equivalent dual problem is solved.
"""
from __future__ import annotations

import os
import time
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
from himalaya.backend import get_backend, set_backend
from himalaya.kernel_ridge import KernelRidgeCV
from tqdm.auto import tqdm

ALPHAS = np.logspace(0, 15, 30)
N_FOLDS = 8
KERNELS = tuple(range(1, 17))
LAYOUTS = ("tokens", "channels", "flat")
TARGETS_BATCH = 8192  # himalaya's targets per batch: CV predictions are (alphas batch, fold images, targets batch)
ALPHAS_BATCH = 10  # himalaya's alphas per batch: resolution matrices are (alphas batch, features or images, images)
CHUNK_ROWS = 512


def backend_name() -> str:
    """himalaya's backend for the fits: "torch_cuda" with a GPU, else "torch" (its torch CPU backend)."""
    return "torch_cuda" if torch.cuda.is_available() else "torch"


@contextmanager
def fit_backend(name: str | None = None):
    """himalaya's (global) backend set to ``name`` (default :func:`backend_name`) inside; the previous one after."""
    previous = get_backend()
    backend = set_backend(name or backend_name())
    try:
        yield backend
    finally:
        set_backend(previous)


@dataclass(frozen=True)
class LayerGrid:
    """Where a layer's flattened features lie on its spatial grid.

    ``layout``: 'tokens' (rows are flattened (T, C), T = prefix + height * width tokens, the first ``prefix`` of them,
    e.g. a class token, off the grid; also an (H, W, C) channels-last map), 'channels' (flattened (C, H, W)) or 'flat'
    (no grid: ``channels`` is the width, height = width = 1). ``pre_pool``: the grid is first max-pooled to
    pre_pool x pre_pool (as ScalingVisionEncoder stored its ConvNeXt and InternImage maps), then by the kernel.
    """
    layout: str
    channels: int
    height: int
    width: int
    prefix: int = 0
    pre_pool: int | None = None

    def __post_init__(self):
        if self.layout not in LAYOUTS:
            raise ValueError(f"layout must be one of {LAYOUTS}, not {self.layout!r}")
        if min(self.channels, self.height, self.width) < 1 or self.prefix < 0:
            raise ValueError(f"{self}: channels, height and width must be >= 1 and prefix >= 0")
        if self.prefix and self.layout != "tokens":
            raise ValueError(f"{self}: only a 'tokens' layout has prefix tokens")
        if self.pre_pool is not None and (self.layout == "flat" or self.pre_pool < 1):
            raise ValueError(f"{self}: pre_pool must be >= 1 and needs a spatial grid; use pre_pool None")

    @property
    def row_width(self) -> int:
        """Stored features per image."""
        return self.channels * (self.prefix + self.height * self.width)

    def n_features(self, kernel: int | None) -> int:
        """Features per image after :meth:`pool` with ``kernel``."""
        if kernel is not None:
            return self.channels * kernel * kernel
        return self.row_width if self.pre_pool is None else self.channels * self.pre_pool ** 2

    def stored(self) -> "LayerGrid":
        """The grid of the rows :meth:`pre_pooled` returns: the pre-pooled (C, pre_pool, pre_pool) map (itself
        without ``pre_pool``). Storing those rows instead of the layer's output gives the same search (the study
        stored its pre-pooled maps) at a fraction of the disk."""
        return self if self.pre_pool is None else LayerGrid("channels", self.channels, self.pre_pool, self.pre_pool)

    def pre_pooled(self, rows: np.ndarray) -> np.ndarray:
        """``rows`` of the layer's output as the rows of :meth:`stored`."""
        return self.pool(rows, None)

    def pool(self, rows: np.ndarray, kernel: int | None) -> np.ndarray:
        """``rows`` (m, row_width) max-pooled to a (kernel x kernel) grid (``nn.AdaptiveMaxPool2d``, so kernels
        larger than the grid are allowed), after the ``pre_pool`` grid if any, flattened in (C, k, k) order, float32;
        kernel None: the rows as stored, or with ``pre_pool`` the pre-pooled grid (prefix tokens dropped).

        Raises:
            ValueError: rows of another width, a kernel below 1, or a kernel for a 'flat' layer.
        """
        rows = np.asarray(rows)
        if rows.ndim != 2 or rows.shape[1] != self.row_width:
            raise ValueError(f"rows of shape {rows.shape} do not fit {self}: expected (n_images, {self.row_width})")
        if kernel is None and self.pre_pool is None:
            return rows.astype(np.float32, copy=False)
        if self.layout == "flat":
            raise ValueError(f"{self} has no spatial grid to pool; use kernel None")
        if kernel is not None and kernel < 1:
            raise ValueError(f"pooling kernel must be >= 1, not {kernel}")
        m = len(rows)
        x = torch.from_numpy(np.require(rows, np.float32, ("C", "W")))
        if self.layout == "tokens":
            x = x.view(m, -1, self.channels)[:, self.prefix:].reshape(m, self.height, self.width, self.channels)
            x = x.permute(0, 3, 1, 2)
        else:
            x = x.view(m, self.channels, self.height, self.width)
        for size in (self.pre_pool, kernel):
            if size is not None:
                x = torch.nn.functional.adaptive_max_pool2d(x, size)
        return x.reshape(m, -1).numpy()


def _row_chunks(layer_features, rows: np.ndarray, chunk_rows: int):
    """(offset, all stored columns of rows[offset:offset + chunk_rows]) chunk after chunk, read off the column
    blocks."""
    blocks = list(layer_features.column_blocks())
    for start in range(0, len(rows), chunk_rows):
        yield start, np.concatenate([block[rows[start:start + chunk_rows]] for block in blocks], axis=1)


def _pooled(layer_features, grid: LayerGrid, kernels: list, rows: np.ndarray, chunk_rows: int) -> list[np.ndarray]:
    """The pooled designs of ``rows`` for each of ``kernels``, from one pass over the layer."""
    if layer_features.shape[1] != grid.row_width:
        raise ValueError(f"{layer_features.path} has {layer_features.shape[1]} features per image; {grid} expects "
                         f"{grid.row_width}")
    designs = [np.empty((len(rows), grid.n_features(kernel)), np.float32) for kernel in kernels]
    for start, chunk in _row_chunks(layer_features, rows, chunk_rows):
        for design, kernel in zip(designs, kernels):
            design[start:start + len(chunk)] = grid.pool(chunk, kernel)
    return designs


def pooled_rows(layer_features, grid: LayerGrid, kernel: int | None, rows: np.ndarray | None = None,
                chunk_rows: int = CHUNK_ROWS) -> np.ndarray:
    """The (len(rows), n_features) float32 pooled design of ``rows`` (store row indices; all when None) of a
    :class:`~region_commitment.features.LayerFeatures`, pooled ``chunk_rows`` rows at a time."""
    rows = np.arange(layer_features.shape[0]) if rows is None else np.asarray(rows)
    return _pooled(layer_features, grid, [kernel], rows, chunk_rows)[0]


def design_bytes(n_rows: int, n_features: int) -> int:
    """Bytes of a float32 design matrix."""
    return 4 * n_rows * n_features


def default_design_budget() -> int:
    """A quarter of the available memory (psutil's estimate where installed)."""
    try:
        import psutil
        available = psutil.virtual_memory().available
    except ImportError:
        available = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    return available // 4


def correlation(y_true, y_pred):
    """himalaya's :func:`~himalaya.scoring.correlation_score` (Pearson r per target; ``y_pred`` may carry a leading
    alphas axis; a constant column scores 0, non-finite predictions count as 0), computed in place in one float32
    pass: on the CPU it spends most of a CV fit's time in float64 z-scoring."""
    backend = get_backend()
    y_true, y_pred = backend.check_arrays(y_true, y_pred)
    axis = 1 if len(y_pred.shape) > len(y_true.shape) else 0
    y_pred = torch.nan_to_num(y_pred, nan=0.0, posinf=0.0, neginf=0.0) if backend.name.startswith("torch") \
        else backend.asarray(np.nan_to_num(backend.to_numpy(y_pred), nan=0.0, posinf=0.0, neginf=0.0))
    truth = y_true - y_true.mean(0, keepdims=True)
    truth = truth / backend.clip(backend.sqrt((truth ** 2).sum(0, keepdims=True)), 1e-30, None)
    y_pred -= y_pred.mean(axis, keepdims=True)
    norm = backend.sqrt((y_pred ** 2).sum(axis))
    scores = (y_pred * truth).sum(axis) / backend.clip(norm, 1e-30, None)
    scores[norm == 0] = 0
    return scores


def _solver_params() -> dict:
    return {"score_func": correlation, "n_targets_batch": TARGETS_BATCH, "n_targets_batch_refit": TARGETS_BATCH,
            "n_alphas_batch": ALPHAS_BATCH}


def _fit(model, train: np.ndarray, Y_train: np.ndarray, test: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    with fit_backend() as backend:
        model.fit(train, np.asarray(Y_train, dtype=np.float32))
        scores, predictions = backend.to_numpy(model.cv_scores_), backend.to_numpy(model.predict(test))
    return np.asarray(scores, np.float32), np.asarray(predictions, np.float32)


def _fold_scores(A, B, Y_val, alphas) -> object:
    """CV correlations (alphas, targets) of the predictions ``A diag(s / (s^2 + alpha)) B`` of one fold, ``A`` =
    validation design x V (centred over the validation rows, which leaves Pearson r unchanged), ``B`` = U^T Y_train.
    With few features the predictions are never formed: sum(pred * y) = sum_j w_j B_j (A^T y)_j and
    sum(pred^2) = (w B)^T (A^T A) (w B); else they are formed and scored by :func:`correlation`."""
    backend = get_backend()
    Y_val = Y_val - Y_val.mean(0, keepdims=True)
    if A.shape[1] > A.shape[0]:
        return backend.stack([correlation(Y_val, backend.matmul(A * w[None], B)) for w in alphas])
    G, M = backend.matmul(A.T, Y_val), backend.matmul(A.T, A)
    y_norm = backend.sqrt((Y_val ** 2).sum(0))
    scores = []
    for w in alphas:
        wB = w[:, None] * B
        norm = backend.sqrt(backend.clip((wB * backend.matmul(M, wB)).sum(0), 0, None)) * y_norm
        score = (wB * G).sum(0) / backend.clip(norm, 1e-30, None)
        score[norm == 0] = 0
        scores.append(score)
    return backend.stack(scores)


def _primal_ridge_cv(X_train: np.ndarray, Y_train: np.ndarray, X_test: np.ndarray, alphas, folds: int):
    """himalaya's ``RidgeCV`` (``solve_ridge_cv_svd``: SVD per fold, weights ``s / (s^2 + alpha)``, KFold without
    shuffling, correlation score, per-target best alpha by its mean CV score with himalaya's own selection rule, refit
    on all rows), reassociated as ``(X_val V) diag(w) (U^T Y)``: himalaya forms ``X_val V diag(w) U^T`` (alphas x
    validation x training images) before multiplying by Y, n_train / n_features times the work. Equal to himalaya's
    RidgeCV (a test checks); runs on himalaya's backend."""
    from himalaya.kernel_ridge._random_search import _select_best_alphas
    from himalaya.validation import check_cv

    with fit_backend() as backend:
        X, X_test = backend.asarray(X_train), backend.asarray(X_test)
        alphas_ = backend.asarray(np.asarray(alphas, np.float32))
        scores = backend.zeros_like(X, shape=(folds, len(alphas), Y_train.shape[1]))
        for j, (train, val) in enumerate(check_cv(folds, Y_train).split(Y_train)):
            U, s, Vt = backend.svd(X[train], full_matrices=False)
            weights = s[None] / (alphas_[:, None] + s[None] ** 2)
            A = backend.matmul(X[val], Vt.T)
            A = A - A.mean(0, keepdims=True)
            for start in range(0, Y_train.shape[1], TARGETS_BATCH):
                batch = slice(start, start + TARGETS_BATCH)
                B = backend.matmul(U.T, backend.asarray(Y_train[train, batch]))
                scores[j, :, batch] = _fold_scores(A, B, backend.asarray(Y_train[val, batch]), weights)
        best, cv_scores = _select_best_alphas(scores, alphas_, local_alpha=True, conservative=False)
        U, s, Vt = backend.svd(X, full_matrices=False)
        A_test = backend.matmul(X_test, Vt.T)
        predictions = np.empty((len(X_test), Y_train.shape[1]), np.float32)
        best = backend.to_numpy(best)
        for index in np.unique(best):
            targets = np.flatnonzero(best == index)
            w = s / (alphas_[int(index)] + s ** 2)
            for start in range(0, len(targets), TARGETS_BATCH):
                chosen = targets[start:start + TARGETS_BATCH]
                B = backend.matmul(U.T, backend.asarray(Y_train[:, chosen]))
                predictions[:, chosen] = backend.to_numpy(backend.matmul(A_test * w[None], B))
        return np.asarray(backend.to_numpy(cv_scores), np.float32), predictions


def _fit_centered(X_train: np.ndarray, Y_train: np.ndarray, X_test: np.ndarray, alphas, folds: int):
    """The paper's rule on centred designs: primal ridge (:func:`_primal_ridge_cv`, himalaya's RidgeCV) when
    n_train >= n_features, else himalaya's linear KernelRidgeCV."""
    Y_train = np.asarray(Y_train, dtype=np.float32)
    if len(X_train) >= X_train.shape[1]:
        return _primal_ridge_cv(X_train, Y_train, X_test, alphas, folds)
    return _fit(KernelRidgeCV(alphas=alphas, cv=folds, solver_params=_solver_params()), X_train, Y_train, X_test)


def _centred(X: np.ndarray, mean: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """float32 ``X`` minus the float64 training ``mean`` (into ``out``; a new array when None), each value rounded to
    float32 once, as ``StandardScaler(with_std=False)`` centres float32 data (not X minus the rounded mean: with
    the duplicated columns of an upsampled grid, the CV scores at large alphas differ in the fourth decimal)."""
    return np.subtract(X, mean, out=np.empty(X.shape, np.float32) if out is None else out, casting="same_kind")


def fit_predict(X_train: np.ndarray, Y_train: np.ndarray, X_test: np.ndarray, alphas=ALPHAS,
                folds: int = N_FOLDS) -> tuple[np.ndarray, np.ndarray]:
    """The paper's pipeline: X centred with the training mean (``StandardScaler(with_std=False)``), then himalaya's
    RidgeCV (n_train >= n_features) or KernelRidgeCV over ``alphas`` with ``folds``-fold CV (KFold, no shuffling),
    correlation score, refit on all training rows at each target's best alpha; float32, backend
    :func:`backend_name`.

    Returns:
        (CV score of each target at its best alpha, (n_test, n_targets) predictions of ``X_test``). Like the paper's
        pipeline, the predictions carry no intercept (Pearson r ignores offsets).
    """
    X_train = np.asarray(X_train, dtype=np.float32)
    mean = X_train.mean(0, dtype=np.float64)
    return _fit_centered(_centred(X_train, mean), Y_train, _centred(np.asarray(X_test, dtype=np.float32), mean), alphas,
                         folds)


def _gram(layer_features, grid: LayerGrid, kernel: int | None, train: np.ndarray, test: np.ndarray, budget: int,
          chunk_rows: int) -> np.ndarray:
    """The linear kernel (train + test rows, train rows) of the centred pooled design, never holding the design: the
    training mean in one pass, then per panel of training rows that fits ``budget`` one pass over the later rows."""
    n_train, n_features = len(train), grid.n_features(kernel)
    total = np.zeros(n_features)
    for _, chunk in _row_chunks(layer_features, train, chunk_rows):
        total += grid.pool(chunk, kernel).sum(0, dtype=np.float64)
    mean = total / n_train
    rows = np.concatenate([train, test])
    K = np.empty((len(rows), n_train), np.float32)
    panel = max(1, budget // design_bytes(1, n_features))
    for start in range(0, n_train, panel):
        stop = min(start + panel, n_train)
        held = pooled_rows(layer_features, grid, kernel, train[start:stop], chunk_rows)
        _centred(held, mean, out=held)
        K[start:stop, start:stop] = held @ held.T
        for offset, chunk in _row_chunks(layer_features, rows[stop:], chunk_rows):
            K[stop + offset:stop + offset + len(chunk), start:stop] = _centred(grid.pool(chunk, kernel), mean) @ held.T
    lower = np.tril(K[:n_train])  # the training block's lower triangle is complete: mirror it
    K[:n_train] = lower + np.tril(lower, -1).T
    return K


def _groups(grid: LayerGrid, kernels: list, n_rows: int, budget: int) -> list[tuple[list, bool]]:
    """Consecutive kernels whose designs fit ``budget`` together, pooled in one pass: (kernels, True); a kernel whose
    design alone exceeds it: ([kernel], False), solved from its kernel matrix."""
    groups, size = [], 0
    for kernel in kernels:
        need = design_bytes(n_rows, grid.n_features(kernel))
        if need > budget:
            groups.append(([kernel], False))
        elif groups and groups[-1][1] and size + need <= budget:
            groups[-1][0].append(kernel)
            size += need
        else:
            groups.append(([kernel], True))
            size = need
    return groups


def _fit_layer(layer_features, grid: LayerGrid, kernels: list, train: np.ndarray, test: np.ndarray,
               Y_train: np.ndarray, alphas, folds: int, budget: int):
    """(kernel, CV scores, test predictions, seconds) for each kernel of one layer."""
    n_train, rows = len(train), np.concatenate([train, test])
    for group, materialise in _groups(grid, kernels, len(rows), budget):
        start = time.perf_counter()
        if not materialise:
            K = _gram(layer_features, grid, group[0], train, test, budget, CHUNK_ROWS)
            model = KernelRidgeCV(alphas=alphas, kernel="precomputed", cv=folds, solver_params=_solver_params())
            yield (group[0], *_fit(model, K[:n_train], Y_train, K[n_train:]), time.perf_counter() - start)
            continue
        designs = _pooled(layer_features, grid, group, rows, CHUNK_ROWS)
        share = (time.perf_counter() - start) / len(group)  # the pass is shared by the group's kernels
        for kernel in group:
            start = time.perf_counter()
            X = designs.pop(0)
            _centred(X, X[:n_train].mean(0, dtype=np.float64), out=X)
            scores, predictions = _fit_centered(X[:n_train], Y_train, X[n_train:], alphas, folds)
            del X
            yield kernel, scores, predictions, share + time.perf_counter() - start


@dataclass
class SearchResult:
    """Per vertex: the best cell's layer, kernel (0 for no pooling), CV score and test predictions (n_test,
    n_vertices); ``cells``: one row per (layer, kernel) with columns layer, kernel, n_features, cv_score (mean over
    vertices), vertices (won), seconds."""
    layers: np.ndarray
    kernels: np.ndarray
    cv_scores: np.ndarray
    predictions: np.ndarray
    cells: pd.DataFrame


def search(store, layers: dict[str, LayerGrid], responses: np.ndarray, train: np.ndarray, test: np.ndarray,
           kernels=KERNELS, alphas=ALPHAS, folds: int = N_FOLDS, progress: bool = True,
           max_design_bytes: int | None = None) -> SearchResult:
    """The layer x kernel search: every (layer, kernel) cell fitted on the ``train`` rows (:func:`fit_predict`), each
    vertex keeping the cell with its best CV score and that cell's predictions of the ``test`` rows. The study's own
    choice (``predicting.py``) starts every vertex at score 0 and cell (layer 4, kernel 1), so a vertex without a
    positive CV score keeps that arbitrary cell; here it keeps its best one.

    Args:
        store: a :class:`~region_commitment.features.FeatureStore` holding ``layers``.
        layers: layer name -> its :class:`LayerGrid`, searched in this order, one layer in memory at a time.
        responses: (n_images, n_vertices), rows in the store's row order (a memmap is fine).
        train, test: store row indices.
        kernels: pooling kernels for grid layers ('flat' layers get no pooling); None: no kernel pooling for any
            layer (a layer's ``pre_pool`` still applies).
        max_design_bytes: designs larger than this are solved from their kernel matrix instead of materialised
            (default :func:`default_design_budget`).

    Raises:
        ValueError: a layer's stored width does not fit its grid, or ``responses`` does not match the store.
    """
    train, test = np.asarray(train), np.asarray(test)
    budget = default_design_budget() if max_design_bytes is None else max_design_bytes
    features = {name: store.layer(name) for name in layers}
    for name, grid in layers.items():
        if features[name].shape != (len(responses), grid.row_width):
            raise ValueError(f"Layer {name} has features of shape {features[name].shape}; {grid} and the "
                             f"{len(responses)} response rows need ({len(responses)}, {grid.row_width})")
    Y_train = np.ascontiguousarray(responses[train], dtype=np.float32)
    searched = {name: [None] if kernels is None or grid.layout == "flat" else list(kernels)
                for name, grid in layers.items()}
    best = np.full(Y_train.shape[1], np.nan, np.float32)
    choice = np.full(Y_train.shape[1], -1)
    predictions = np.zeros((len(test), Y_train.shape[1]), np.float32)
    rows = []
    total = sum(map(len, searched.values()))
    with tqdm(total=total, desc="encoding search (layer x kernel)", disable=not progress) as bar:
        for name, grid in layers.items():
            for kernel, scores, predicted, seconds in _fit_layer(features[name], grid, searched[name], train, test,
                                                                 Y_train, alphas, folds, budget):
                won = ~(best >= np.nan_to_num(scores, nan=-np.inf))  # a NaN best (none yet) always loses
                best[won], choice[won] = scores[won], len(rows)
                predictions[:, won] = predicted[:, won]
                rows.append({"layer": name, "kernel": kernel or 0, "n_features": grid.n_features(kernel),
                             "cv_score": float(np.nanmean(scores)), "seconds": seconds})
                bar.set_postfix(layer=name, kernel=kernel)
                bar.update()
    table = pd.DataFrame(rows)
    table.insert(4, "vertices", np.bincount(choice, minlength=len(table)))
    return SearchResult(layers=table["layer"].to_numpy()[choice], kernels=table["kernel"].to_numpy()[choice],
                        cv_scores=best, predictions=predictions, cells=table)
