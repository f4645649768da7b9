"""`scaling fit`: the study's scaling laws (scaling-primate-vvs, Gokce & Schrimpf 2024), fitted as the study fits them.

Published values: ``optimized_parameters`` / ``loss`` / ``optimized_parameters_bootstrapped`` of the study's
``analysis/curve_fitting/outputs/fitting_results/*/results.pkl`` (commit e76f924), held in
``brainscore_plugins.scale.laws.study_fits``.
"""
import json
import logging

import matplotlib
import numpy as np
import pandas as pd
import pytest

from brainscore_plugins.scale import laws
from brainscore_plugins.scale.laws import data, fitting, law
from brainscore_plugins.scale.laws.study_fits import STUDY_FITS

PNG = b"\x89PNG\r\n\x1a\n"
EXPERIMENTS = {e.name: e for e in data.EXPERIMENTS}
# planted (E, A, alpha) per region; scores 1 - (E + A (C / 1e13)^-alpha)
PLANTED = {"V1": (0.78, 0.15, 0.35), "V2": (0.6, 0.45, 0.15), "V4": (0.35, 0.7, 0.2), "IT": (0.3, 0.9, 0.12),
           "behavior": (0.05, 1.2, 0.07)}


def synthetic_table(models: int = 30, planted=PLANTED, seed: int = 0) -> pd.DataFrame:
    """A study-like table whose scores follow the power law in compute exactly."""
    rng = np.random.default_rng(seed)
    compute = np.exp(rng.uniform(np.log(1e14), np.log(1e20), models))
    rows = []
    for i, flops in enumerate(compute):
        for region, benchmark in zip(data.REGIONS, data.BENCHMARK_REGIONS):
            e, a, alpha = planted[region]
            rows.append({"model_id": f"m{i}", "epoch": 10, "region": region, "benchmark": benchmark,
                         "score": 1 - (e + a * (flops / 1e13) ** -alpha), "arch_family": "ResNet",
                         "dataset": "imagenet", "samples_per_class": 0, "n_params": 1e6 * (i + 1),
                         "n_samples_seen": 1e7 * (i + 1), "total_flops": flops,
                         **{flag: False for flag in data.FLAGS}})
    return pd.DataFrame(rows)


@pytest.fixture(scope="module")
def study_fit():
    """The study's fits on its own table (the weak-prior experiment's ill-posed regions aside: tested below)."""
    return laws.fit(laws.study_table(), bootstrap=0, progress=False,
                       experiments=["compute", "compute_strong_prior", "parameters", "samples", "samples_ecoset",
                                    "joint"])


@pytest.mark.slow
def test_recovers_planted_power_law():
    fit = laws.fit(synthetic_table(), bootstrap=8, seed=1, progress=False, experiments=["compute"])
    for region, planted in PLANTED.items():
        curve = fit.curve("compute", region)
        assert curve.loss < 1e-9
        np.testing.assert_allclose(list(curve.parameters.values()), planted, rtol=1e-3)
        e, a, alpha = planted
        np.testing.assert_allclose(curve.predict(), 1 - (e + a * curve.x()[:, 0] ** -alpha), atol=1e-5)
        low, high = curve.band(curve.points["total_flops"])  # noise-free: every resample recovers the law
        np.testing.assert_allclose(low, high, atol=1e-6)


@pytest.mark.slow
@pytest.mark.parametrize("name, theta, x", [
    ("shifted_power_law", (np.log(0.4), np.log(30.0), 1.5, 0.8), np.geomspace(0.5, 5e6, 40)[:, None]),
    ("joint", (np.log(0.5), np.log(0.2), 0.55, np.log(0.5), 0.22),
     np.column_stack([np.geomspace(2, 3e3, 60), np.random.default_rng(0).permutation(np.geomspace(10, 1e5, 60))])),
])
def test_recovers_planted_laws(name, theta, x):
    chosen = law.LAWS[name]
    misalignment = chosen.misalignment(np.array(theta), x)[0]
    fitted, loss, _ = law.grid_search(chosen, x, misalignment)
    assert loss < 1e-9
    np.testing.assert_allclose(chosen.to_natural(fitted), chosen.to_natural(np.array(theta)), rtol=1e-3)


@pytest.mark.slow
@pytest.mark.parametrize("key", [k for k in STUDY_FITS if k[0] != "compute_weak_prior"])
def test_reproduces_published_fits(study_fit, key):
    curve = study_fit.curve(*key)
    published = STUDY_FITS[key]
    ours, theirs = curve.parameters, dict(zip(curve.law.natural, curve.law.to_natural(np.array(published.theta))))
    assert curve.loss == pytest.approx(published.loss, rel=1e-6)
    for name, value in theirs.items():
        if name == "E" and value < 1e-6:  # behavior: no floor (e -> -inf); any E ~ 0 is the same fit
            assert ours[name] < 1e-6
        else:
            assert ours[name] == pytest.approx(value, rel=1e-4), name
    assert np.max(np.abs(curve.predict() - curve.predict(theta=published.theta))) < 1e-5


@pytest.mark.slow
@pytest.mark.parametrize("region", ["behavior", "average", "V4"])
def test_reproduces_published_weak_prior_fits(region):
    """ConvNeXt / ViT: the shifted law. Where its optimum lies at infinity along a ridge (large lambda, alpha and A
    together: V1, V2, V4, IT) the study's parameters are where its BFGS stopped; the loss must be at least as low
    and the curve the same."""
    experiment = EXPERIMENTS["compute_weak_prior"]
    curve = fitting.fit_curve(experiment, region, data.points(laws.study_table(), experiment)[region])
    published = STUDY_FITS[("compute_weak_prior", region)]
    assert curve.loss <= published.loss * (1 + 1e-7)
    assert np.max(np.abs(curve.predict() - curve.predict(theta=published.theta))) < (1e-4 if region != "V4" else 2e-3)


def test_reproduces_published_bootstrap():
    """The study resamples models with numpy's default_rng(42): seed 42 draws the same 1,000 resamples."""
    experiment = EXPERIMENTS["parameters"]
    points = data.points(laws.study_table(), experiment)["average"]
    curve = fitting.fit_curve(experiment, "average", points, bootstrap=1000, seed=42)
    spread = np.percentile(curve.law.to_natural(curve.bootstrap), [2.5, 50, 97.5], axis=0)
    published = [[0.549482, 0.150472, 0.300404], [0.561693, 0.163547, 0.391248], [0.570365, 0.184973, 0.505139]]
    np.testing.assert_allclose(spread, published, atol=2e-4)


def test_study_points(study_fit):
    counts = {(c.experiment.name, c.region): len(c.points) for c in study_fit.curves}
    assert counts[("compute", "neural")] == 620  # the study's compute_neuro rows
    assert counts[("parameters", "average")] == 191
    assert counts[("joint", "average")] == 444
    assert study_fit.to_dict()["experiments"]["joint"]["fits"]["average"]["allocation"]["a"] == pytest.approx(
        0.22247 / (0.57966 + 0.22247), rel=1e-4)


def test_from_results_joins_and_drops(caplog):
    study = laws.study_table()
    final = study[study["latest"] & ~study["is_ssl"]].drop_duplicates("model_id").iloc[:2]
    checkpoint = study[~study["latest"] & ~study["is_ssl"]].iloc[0]
    rows = []
    for model_id, epoch in [(final.iloc[0].model_id, final.iloc[0].epoch), (final.iloc[1].model_id, None),
                            (checkpoint.model_id, checkpoint.epoch), ("not_a_study_model", 3),
                            (final.iloc[0].model_id, 9999)]:
        for benchmark in data.BENCHMARK_REGIONS:
            rows.append({"identifier": f"spvvs_{model_id}", "benchmark": benchmark, "status": "ok", "score": 0.3,
                         "family": "spvvs", "model_id": model_id, "epoch": epoch})
    rows += [{**rows[0], "status": "failed", "score": np.nan}, {**rows[0], "family": "hlvit"},
             {**rows[0], "benchmark": "Algonauts2023.V1"}]
    results = pd.DataFrame(rows).astype({"epoch": "Int64"})
    with caplog.at_level(logging.WARNING):
        joined = laws.from_results(results)
    assert len(joined) == 15 and set(joined["region"]) == set(data.REGIONS)
    assert "dropped 10 of 25" in caplog.text
    assert "5 of a model id the study does not list, 5 of an epoch it did not score" in caplog.text
    assert joined.groupby("model_id")["epoch"].first().loc[final.iloc[1].model_id] == final.iloc[1].epoch
    meta = study.set_index(["model_id", "epoch", "benchmark"])
    for row in joined.itertuples():
        assert row.total_flops == pytest.approx(meta.loc[(row.model_id, row.epoch, row.benchmark), "total_flops"],
                                                nan_ok=True)
        assert row.score == 0.3


@pytest.mark.slow
def test_save_writes_json_and_pngs(tmp_path):
    backend = matplotlib.get_backend()
    fit = laws.fit(synthetic_table(), bootstrap=5, progress=False, experiments=["compute", "joint"])
    written = laws.save(fit, tmp_path / "new" / "folder")
    assert matplotlib.get_backend() == backend
    saved = json.loads(written["json"].read_text(), parse_constant=lambda c: pytest.fail(f"{c} in JSON"))
    compute = saved["experiments"]["compute"]
    assert compute["fits"]["V1"]["n_points"] == 30 and compute["filters"]["datasets"] == ["imagenet", "ecoset"]
    assert set(compute["fits"]["V1"]["bootstrap_percentiles"]) == {"E", "A", "alpha"}
    assert saved["bootstrap"]["resamples"] == 5 and "joint" in saved["experiments"]
    assert set(written) == {"json", "compute"}  # the joint law has no one-resource figure
    assert written["compute"].read_bytes()[:8] == PNG
    assert sorted(p.name for p in written["json"].parent.iterdir()) == ["scaling_compute.png", "scaling_fit.json"]


@pytest.mark.parametrize("change, message", [
    (lambda t: t.drop(columns=["total_flops", "dataset"]), "lacks column(s) dataset, total_flops"),
    (lambda t: t.assign(score=t["score"].where(t["model_id"] != "m3")), "scores are NaN"),
    (lambda t: t.assign(total_flops=t["total_flops"].where(t["model_id"] != "m3", 0.0)), "total_flops must be"),
    (lambda t: t.assign(score=t["score"].where(t["model_id"] != "m3", 1.2)), "scores are >= 1"),
    (lambda t: t[t["model_id"].isin(["m1", "m2", "m3"])], "too few points"),
])
def test_bad_input_errors(change, message):
    with pytest.raises(ValueError) as error:
        laws.fit(change(synthetic_table()), bootstrap=0, progress=False, experiments=["compute"])
    assert message in str(error.value) and "\n" not in str(error.value)
    assert isinstance(error.value, laws.ScalingInputError)


def test_bad_arguments_error():
    with pytest.raises(ValueError, match="lacks column.*status, family"):
        laws.from_results(pd.DataFrame({"benchmark": [], "score": [], "model_id": [], "epoch": []}))
    with pytest.raises(ValueError, match="unknown experiment"):
        laws.fit(synthetic_table(), experiments=["flops"])
    with pytest.raises(ValueError, match="bootstrap"):
        laws.fit(synthetic_table(), bootstrap=-1, experiments=["compute"])


@pytest.mark.slow
def test_scaling_fit_command_on_the_published_table(tmp_path, capsys):
    import json

    from brainscore_plugins import cli

    assert cli.main(["scaling", "fit", "--published", "-o", str(tmp_path), "--bootstrap", "2", "--quiet"]) == 0
    summary = json.loads(capsys.readouterr().out)
    written = json.loads((tmp_path / "scaling_fit.json").read_text())
    assert summary["curves"] > 10 and set(summary["files"]) >= {"json", "compute", "parameters", "samples"}
    assert written["bootstrap"]["resamples"] == 2 and "compute" in written["experiments"]
    assert cli.main(["scaling", "fit", "-o", str(tmp_path / "mine"), "--results", str(tmp_path / "none.parquet"),
                     "--quiet"]) == 2
    [line] = capsys.readouterr().err.splitlines()
    assert line.startswith("error: the results table") and line.endswith("has no rows; score models first "
                                                                        "(`brainscore-plugins score` or `sweep`)")
