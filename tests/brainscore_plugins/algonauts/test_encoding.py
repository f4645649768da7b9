"""The Algonauts challenge metric against direct numpy, max-pooling against torch's AdaptiveMaxPool2d, the himalaya
ridge pipeline against a direct closed-form reimplementation, and the layer x kernel search recovering a planted
(layer, kernel) from a real on-disk feature store."""
from __future__ import annotations


import matplotlib
import numpy as np
import pytest
import torch
from scipy.stats import pearsonr
from sklearn.model_selection import KFold

from brainscore_plugins.algonauts import encoding, metric

GRID = encoding.LayerGrid("tokens", channels=8, height=4, width=4, prefix=1)  # a CLS token and a 4 x 4 grid


pytestmark = pytest.mark.usefixtures("one_thread")


# ---------------------------------------------------------------- metric

def test_correlation_and_challenge_scores_match_direct_numpy(monkeypatch):
    rng = np.random.default_rng(0)
    predictions = rng.normal(size=(50, 12))
    responses = predictions * rng.uniform(-1, 1, 12) + rng.normal(size=(50, 12))
    predictions[:, 0] = 0.1  # constant prediction
    responses[:, 1] = 3.0  # constant response
    responses[:, 2] = -predictions[:, 2] + 0.1 * rng.normal(size=50)  # negative r
    expected = np.array([0, 0] + [pearsonr(predictions[:, i], responses[:, i])[0] for i in range(2, 12)])
    monkeypatch.setattr(metric, "COLUMNS_CHUNK", 5)  # several column chunks
    np.testing.assert_allclose(metric.correlation(predictions, responses), expected, atol=1e-12)
    assert metric.correlation(predictions.astype(np.float32), responses)[2] < -0.9

    r2 = np.where(expected < 0, 0, expected) ** 2
    np.testing.assert_allclose(metric.challenge_scores(predictions, responses), r2, atol=1e-12)
    positive = int(np.argmax(expected))
    nc = np.full(12, 0.5)
    nc[positive] = 0  # counts as 1e-14: the score caps at 1
    nc[2] = 0  # r < 0: 0 / 1e-14 = 0
    low = int(np.argsort(r2)[-2])
    nc[low] = r2[low] / 2  # r2 > nc: capped at 1
    expected_scores = np.minimum(r2 / np.where(nc == 0, 1e-14, nc), 1)
    scores = metric.challenge_scores(predictions, responses, nc)
    np.testing.assert_allclose(scores, expected_scores, atol=1e-12)
    assert scores[positive] == 1 and scores[low] == 1 and scores[2] == 0 and nc[positive] == 0  # nc not modified
    assert metric.metric_name(nc) == "noise_normalized_r2" and metric.metric_name(None) == "pearson_r2"
    assert set(metric.METRICS) == {"noise_normalized_r2", "pearson_r2", "median_r2"}


def test_determination_is_sklearns_r2_score():
    """GroupLin's validation metric per vertex: sklearn's r2_score (raw values), constant columns included."""
    from sklearn.metrics import r2_score
    rng = np.random.default_rng(5)
    responses = rng.standard_normal((12, 9000)).astype(np.float32)
    predictions = responses + rng.standard_normal(responses.shape).astype(np.float32)
    responses[:, 0] = 1.5
    predictions[:, 0] = 1.5  # constant and exactly predicted: 1
    responses[:, 1] = 2.0  # constant, not predicted: 0
    np.testing.assert_allclose(metric.determination(predictions, responses),
                               r2_score(responses, predictions, multioutput="raw_values"), rtol=1e-5, atol=1e-6)
    assert metric.determination(predictions, responses)[:2].tolist() == [1.0, 0.0]
    with pytest.raises(ValueError, match="shape"):
        metric.correlation(predictions[:, :3], responses)


def test_roi_table_rows_and_means_and_plot():
    rng = np.random.default_rng(1)
    scores = {"lh": rng.uniform(size=10), "rh": rng.uniform(size=12)}
    rois = {"lh": {"streams": {"early": np.array([0, 1, 2]), "ventral": np.array([3, 4])},
                   "floc-faces": {"FFA-1": np.array([5])}},
            "rh": {"streams": {"early": np.array([0, 1]), "ventral": np.array([], dtype=int)},
                   "floc-faces": {"FFA-1": np.array([7, 8]), "OFA": np.array([2])}}}
    table = metric.roi_table(scores, rois, subject="subj01")
    assert list(table.columns) == ["subject", "group", "roi", "hemisphere", "n_vertices", "score"]
    assert len(table) == 4 * 3 + 3 and (table["subject"] == "subj01").all()
    indexed = table.set_index(["group", "roi", "hemisphere"])
    for group, roi in [("streams", "early"), ("streams", "ventral"), ("floc-faces", "FFA-1"), ("floc-faces", "OFA")]:
        parts = {h: scores[h][rois[h][group].get(roi, np.array([], dtype=int))] for h in scores}
        parts["both"] = np.concatenate([parts["lh"], parts["rh"]])
        for hemisphere, values in parts.items():
            row = indexed.loc[(group, roi, hemisphere)]
            assert row["n_vertices"] == len(values)
            if len(values):
                assert row["score"] == pytest.approx(values.mean())
            else:
                assert np.isnan(row["score"])
    assert indexed.loc[("all", "all", "both"), "score"] == pytest.approx(np.concatenate(list(scores.values())).mean())
    assert indexed.loc[("all", "all", "rh"), "n_vertices"] == 12

    backend = matplotlib.get_backend()
    ax = metric.plot_roi_table(table)
    assert isinstance(ax, matplotlib.axes.Axes) and len(ax.patches) == 5  # the 'both' rows, 'all' included
    assert matplotlib.get_backend() == backend
    import matplotlib.pyplot as plt
    plt.close(ax.figure)


# ---------------------------------------------------------------- pooling and the feature store

@pytest.mark.parametrize("layout", ["tokens", "channels"])
def test_pool_equals_adaptive_max_pool(layout):
    rng = np.random.default_rng(2)
    grid = encoding.LayerGrid(layout, channels=3, height=4, width=6, prefix=2 if layout == "tokens" else 0)
    rows = rng.normal(size=(5, grid.row_width)).astype(np.float32)
    if layout == "tokens":
        spatial = rows.reshape(5, 2 + 24, 3)[:, 2:].reshape(5, 4, 6, 3).transpose(0, 3, 1, 2)
    else:
        spatial = rows.reshape(5, 3, 4, 6)
    for kernel in (1, 2, 3, 5, 7):  # 5 and 7 exceed the grid's height, as AdaptiveMaxPool2d allows
        expected = torch.nn.AdaptiveMaxPool2d((kernel, kernel))(torch.from_numpy(spatial.copy())).flatten(1)
        pooled = grid.pool(rows, kernel)
        assert pooled.dtype == np.float32 and pooled.shape == (5, grid.n_features(kernel)) == (5, 3 * kernel ** 2)
        np.testing.assert_array_equal(pooled, expected.numpy())
    np.testing.assert_array_equal(grid.pool(rows, None), rows)
    with pytest.raises(ValueError, match="do not fit"):
        grid.pool(rows[:, 1:], 2)
    flat = encoding.LayerGrid("flat", channels=7, height=1, width=1)
    assert flat.pool(rows[:, :7], None).shape == (5, 7)
    with pytest.raises(ValueError, match="no spatial grid"):
        flat.pool(rows[:, :7], 1)
    with pytest.raises(ValueError, match="prefix"):
        encoding.LayerGrid("channels", 3, 4, 6, prefix=1)


def test_pooled_rows_from_a_store_equal_pooling_the_whole_array(tmp_path, monkeypatch, make_store):
    values = np.random.default_rng(3).normal(size=(30, GRID.row_width)).astype(np.float32)
    store = make_store(tmp_path / "store", {"layer": values})
    layer = store.layer("layer")
    assert len(list(layer.column_blocks())) == 4  # 136 columns in blocks of 40
    rows = np.array([29, 3, 17, 0, 8, 21, 5, 11, 2])
    for kernel in (None, 1, 2, 3):
        np.testing.assert_array_equal(encoding.pooled_rows(layer, GRID, kernel, rows, chunk_rows=4),
                                      GRID.pool(values[rows], kernel))
    np.testing.assert_array_equal(encoding.pooled_rows(layer, GRID, 2, chunk_rows=7), GRID.pool(values, 2))
    with pytest.raises(ValueError, match="features per image"):
        encoding.pooled_rows(layer, encoding.LayerGrid("tokens", 8, 4, 4), 2)


# ---------------------------------------------------------------- ridge

def direct_ridge_cv(X_train, Y_train, X_test, alphas, folds):
    """The paper's pipeline in float64 numpy: centre X, per alpha and KFold split the closed-form ridge and Pearson r
    on the held-out fold, each target's best mean r, then the closed-form refit at that alpha."""
    mean = X_train.mean(0)
    X, T = X_train - mean, X_test - mean

    def ridge(A, B, alpha):
        return np.linalg.solve(A.T @ A + alpha * np.eye(A.shape[1]), A.T @ B)

    scores = np.zeros((len(alphas), Y_train.shape[1]))
    for fit, held in KFold(folds).split(X):
        for a, alpha in enumerate(alphas):
            predicted = X[held] @ ridge(X[fit], Y_train[fit], alpha)
            scores[a] += [pearsonr(predicted[:, t], Y_train[held, t])[0] for t in range(Y_train.shape[1])]
    scores /= folds
    best = scores.argmax(0)
    predictions = np.stack([T @ ridge(X, Y_train[:, t], alphas[best[t]]) for t in range(Y_train.shape[1])], 1)
    return scores.max(0), predictions


@pytest.mark.parametrize("n_features", [20, 200])  # RidgeCV (n_train >= n_features), KernelRidgeCV
def test_fit_predict_equals_direct_closed_form_ridge(n_features, monkeypatch):
    monkeypatch.setattr(encoding, "TARGETS_BATCH", 4)  # himalaya's target and alpha batches: 6 targets, 30 alphas
    monkeypatch.setattr(encoding, "ALPHAS_BATCH", 7)
    rng = np.random.default_rng(4)
    X = rng.normal(size=(150, n_features)).astype(np.float32) + 3  # off-centre: the training mean is removed
    Y = (X[:, :10] @ rng.normal(size=(10, 6)) * np.logspace(-1, 1, 6) + 4 * rng.normal(size=(150, 6))).astype(
        np.float32)
    scores, predictions = encoding.fit_predict(X[:120], Y[:120], X[120:])
    assert scores.shape == (6,) and predictions.shape == (30, 6)
    assert scores.dtype == predictions.dtype == np.float32
    expected_scores, expected_predictions = direct_ridge_cv(X[:120].astype(np.float64), Y[:120].astype(np.float64),
                                                            X[120:].astype(np.float64), encoding.ALPHAS, 8)
    np.testing.assert_allclose(scores, expected_scores, rtol=1e-3, atol=1e-4)
    np.testing.assert_allclose(predictions, expected_predictions, rtol=1e-3, atol=1e-3 * np.abs(
        expected_predictions).max())


def test_ridge_and_kernel_ridge_paths_agree():
    """Zero columns change neither the ridge solution nor the linear kernel, but push n_features past n_train:
    himalaya's KernelRidgeCV then gives what its RidgeCV gave."""
    rng = np.random.default_rng(5)
    X = rng.normal(size=(100, 30)).astype(np.float32)
    Y = (X @ rng.normal(size=(30, 8)) + 3 * rng.normal(size=(100, 8))).astype(np.float32)
    primal = encoding.fit_predict(X[:80], Y[:80], X[80:], folds=5)
    padded = np.pad(X, ((0, 0), (0, 90)))
    dual = encoding.fit_predict(padded[:80], Y[:80], padded[80:], folds=5)
    for a, b in zip(primal, dual):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4 * np.abs(b).max())


def test_fit_backend_restores_the_previous_backend():
    from himalaya.backend import get_backend, set_backend
    set_backend("numpy")
    try:
        with encoding.fit_backend() as backend:
            assert backend.name == encoding.backend_name() == get_backend().name
            assert backend.name == ("torch_cuda" if torch.cuda.is_available() else "torch")
        assert get_backend().name == "numpy"
    finally:
        set_backend("numpy")


# ---------------------------------------------------------------- the search

@pytest.fixture
def planted(tmp_path, monkeypatch, make_store):
    """Three token layers of random features; 40 vertices are a linear map of layer 'b' pooled to 2 x 2 plus a
    little noise, 8 are pure noise."""
    rng = np.random.default_rng(6)
    arrays = {name: rng.normal(size=(240, GRID.row_width)).astype(np.float32) for name in "abc"}
    truth = GRID.pool(arrays["b"], 2) @ rng.normal(size=(GRID.n_features(2), 40))
    responses = np.concatenate([truth + 0.3 * truth.std() * rng.normal(size=truth.shape),
                                rng.normal(size=(240, 8))], 1).astype(np.float32)
    store = make_store(tmp_path / "store", arrays)
    order = rng.permutation(240)
    return store, responses, truth, np.sort(order[:180]), np.sort(order[180:])


def test_search_finds_the_planted_layer_and_kernel(planted):
    store, responses, truth, train, test = planted
    layers = {name: GRID for name in "abc"}
    result = encoding.search(store, layers, responses, train, test, kernels=(1, 2, 3, 4), progress=False)
    assert result.predictions.shape == (60, 48) and result.cv_scores.shape == (48,)
    hits = (result.layers[:40] == "b") & (result.kernels[:40] == 2)
    assert hits.mean() >= 0.9, list(zip(result.layers, result.kernels))
    r = metric.correlation(result.predictions[:, :40], truth[test])
    assert np.median(r) > 0.9 and r.min() > 0.7
    assert result.cv_scores[:40].min() > 0.5 and np.median(result.cv_scores[40:]) < 0.3
    cells = result.cells
    assert list(cells.columns) == ["layer", "kernel", "n_features", "cv_score", "vertices", "seconds"]
    assert len(cells) == 12 and cells["vertices"].sum() == 48
    assert cells.set_index(["layer", "kernel"]).loc[("b", 2), "vertices"] >= 36
    with pytest.raises(ValueError, match="features of shape"):
        encoding.search(store, {"a": encoding.LayerGrid("tokens", 8, 4, 4)}, responses, train, test, progress=False)


def test_a_design_over_budget_is_solved_from_its_kernel_matrix(planted, monkeypatch):
    """A tiny budget: every design is replaced by its linear kernel, accumulated over several panels and row
    chunks; the results are the materialised ones. kernels=None searches the stored features unpooled."""
    store, responses, _, train, test = planted
    monkeypatch.setattr(encoding, "CHUNK_ROWS", 64)
    layers = {"b": GRID, "c": GRID}
    for kernels in [(2, 4), None]:
        budget = encoding.design_bytes(50, GRID.row_width)  # panels of 50 / 53 / 212 rows (kernel None / 4 / 2)
        assert encoding.design_bytes(240, GRID.n_features(2)) > budget
        tiny = encoding.search(store, layers, responses, train, test, kernels=kernels, progress=False,
                               max_design_bytes=budget)
        full = encoding.search(store, layers, responses, train, test, kernels=kernels, progress=False)
        np.testing.assert_array_equal(tiny.layers, full.layers)
        np.testing.assert_array_equal(tiny.kernels, full.kernels)
        np.testing.assert_allclose(tiny.cv_scores, full.cv_scores, rtol=1e-4, atol=1e-5)
        np.testing.assert_allclose(tiny.predictions, full.predictions, rtol=1e-4,
                                   atol=1e-4 * np.abs(full.predictions).max())
    assert set(full.kernels) == {0} and set(full.cells["n_features"]) == {GRID.row_width}


@pytest.mark.parametrize("n_features", [12, 60])  # fewer / more features than validation images per fold
def test_primal_solver_equals_himalaya_ridgecv(n_features, monkeypatch):
    """Our reassociated primal CV equals himalaya's own RidgeCV (scores, chosen alphas' predictions), target and
    alpha batches included."""
    from himalaya.ridge import RidgeCV
    monkeypatch.setattr(encoding, "TARGETS_BATCH", 7)
    rng = np.random.default_rng(6)
    X = rng.normal(size=(230, n_features)).astype(np.float32)
    X -= X.mean(0)
    Y = (X @ rng.normal(size=(n_features, 20)) + 2 * rng.normal(size=(230, 20))).astype(np.float32)
    scores, predictions = encoding._primal_ridge_cv(X[:200], Y[:200], X[200:], encoding.ALPHAS, 8)
    with encoding.fit_backend() as backend:
        reference = RidgeCV(alphas=encoding.ALPHAS, cv=8, solver_params=encoding._solver_params())
        reference.fit(X[:200], Y[:200])
        expected_scores = backend.to_numpy(reference.cv_scores_)
        expected_predictions = backend.to_numpy(reference.predict(X[200:]))
    np.testing.assert_allclose(scores, expected_scores, rtol=1e-5, atol=1e-6)
    scale = np.abs(expected_predictions).max()
    np.testing.assert_allclose(predictions, expected_predictions, rtol=1e-4, atol=1e-4 * scale)


def test_fast_correlation_equals_himalaya_correlation_score():
    from himalaya.scoring import correlation_score
    rng = np.random.default_rng(7)
    truth = rng.normal(size=(40, 9)).astype(np.float32)
    truth[:, 2] = 1.0  # constant column: 0, as himalaya
    predictions = rng.normal(size=(3, 40, 9)).astype(np.float32)
    predictions[:, :, 4] = 5.0
    with encoding.fit_backend() as backend:
        ours = backend.to_numpy(encoding.correlation(backend.asarray(truth), backend.asarray(predictions.copy())))
        theirs = backend.to_numpy(correlation_score(backend.asarray(truth), backend.asarray(predictions.copy())))
    np.testing.assert_allclose(ours, theirs, atol=1e-6)
    assert (ours[:, [2, 4]] == 0).all()
