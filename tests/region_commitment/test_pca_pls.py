"""The Gram-trick PCA, the batched PLS and the span-coordinates readout against the sklearn code Brain-Score runs."""
import numpy as np
import pytest
from scipy.stats import pearsonr

from region_commitment.behavior import probabilities
from region_commitment.pca import project
from region_commitment.pls import cross_validated_score


def _data(n, p, rank=30, seed=0):
    """Low-rank signal with a geometric spectrum (well-separated principal components) plus noise."""
    rng = np.random.default_rng(seed)
    latents = rng.normal(size=(n, rank)) * 0.8 ** np.arange(rank)
    return (latents @ rng.normal(size=(rank, p)) + 0.05 * rng.normal(size=(n, p))).astype(np.float32)


@pytest.mark.parametrize("n_components", [10, 25])
def test_pca_projection_spans_sklearns_components(n_components, monkeypatch):
    from sklearn.decomposition import PCA
    import region_commitment.pca as pca_module
    monkeypatch.setattr(pca_module, "CHUNK_BYTES", 4 * 90 * 64)  # many column chunks: the streamed path
    features = _data(90, 700)
    reference, stimuli = np.arange(60), np.arange(60, 90)
    ours = project(features, reference, stimuli, n_components)
    theirs = PCA(n_components=n_components).fit(features[reference].astype(np.float64)).transform(
        features[stimuli].astype(np.float64))
    assert ours.shape == theirs.shape
    np.testing.assert_allclose(ours @ ours.T, theirs @ theirs.T, rtol=1e-4, atol=1e-3 * np.abs(theirs).max() ** 2)


def test_narrow_layers_are_used_as_they_are():
    features = _data(50, 8)
    np.testing.assert_array_equal(project(features, np.arange(40), np.arange(40, 50), 20), features[40:])


@pytest.mark.parametrize("width", [60, 300])  # fewer features than training stimuli, and more (the span path)
def test_pls_equals_sklearn_per_split(width):
    from sklearn.cross_decomposition import PLSRegression
    rng = np.random.default_rng(1)
    x = _data(120, width, seed=2).astype(np.float64)
    y = x[:, :10] @ rng.normal(size=(10, 15)) + rng.normal(size=(120, 15))
    splits = [(np.setdiff1d(np.arange(120), test), test) for test in np.array_split(rng.permutation(120), 4)]
    ours, error = cross_validated_score(x, y, splits, n_components=5)
    per_split = []
    for train, test in splits:
        prediction = PLSRegression(5, scale=False, tol=1e-12, max_iter=10_000).fit(x[train], y[train]).predict(x[test])
        per_split.append(np.median([pearsonr(prediction[:, i], y[test, i])[0] for i in range(y.shape[1])]))
    assert ours == pytest.approx(np.mean(per_split), abs=1e-6)
    assert error == pytest.approx(np.std(per_split) / np.sqrt(len(splits)), abs=1e-6)  # Brain-Score: ddof=0


def test_readout_equals_brainscores_probabilities_classifier():
    """StandardScaler + LogisticRegression on 3,000 raw features == the same fit in the fitting rows' span."""
    from brainscore_core.supported_data_standards.brainio.assemblies import NeuroidAssembly
    from brainscore_core.supported_data_standards.brainio.stimuli import StimulusSet
    from brainscore_vision.model_helpers.brain_transformation.behavior import ProbabilitiesMapping

    n_fit, n_test, width = 120, 30, 3000
    features = _data(n_fit + n_test, width, rank=20, seed=3)
    features[:, 5] = 3.0  # a constant feature: StandardScaler's zero-variance rule
    labels = np.array(list("abcd"))[np.random.default_rng(4).integers(0, 4, n_fit)]
    test = StimulusSet({"stimulus_id": [f"s{i}" for i in range(n_test)]})
    test.stimulus_paths = {f"s{i}": f"s{i}.png" for i in range(n_test)}
    ours = probabilities(features, np.arange(n_fit), np.arange(n_fit, n_fit + n_test), labels, test)

    def assembly(rows, ids):
        coords = {"stimulus_id": ("presentation", ids), "row": ("presentation", np.arange(len(ids))),
                  "neuroid_id": ("neuroid", np.arange(width))}
        return NeuroidAssembly(features[rows], dims=["presentation", "neuroid"], coords=coords)
    classifier = ProbabilitiesMapping.ProbabilitiesClassifier()
    classifier.fit(assembly(slice(0, n_fit), [f"f{i}" for i in range(n_fit)]), _Labels(labels))
    theirs = classifier.predict_proba(assembly(slice(n_fit, None), list(test["stimulus_id"])))
    assert list(ours["choice"].values) == list(theirs["choice"].values)
    assert list(ours["stimulus_id"].values) == list(theirs["stimulus_id"].values)
    np.testing.assert_allclose(ours.values, theirs.values, atol=1e-3)  # newton-cg's own tolerance is 1e-4


class _Labels:
    def __init__(self, values):
        self.values = values
