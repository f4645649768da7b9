"""The figures of the user's own results (brainscore_plugins.scale.report_figures) on synthetic tables with planted
values, read back from the figure objects; and `brainscore-plugins report` writing them with commitment plots."""
from __future__ import annotations

import inspect
import re

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from brainscore_plugins.scale import laws, report_figures, results
from brainscore_plugins.scale.report_figures import PUBLISHED, SECTIONS

IT = "MajajHong2015public.IT-pls"
V1 = "FreemanZiemba2013public.V1-pls"
PLANTED = {"E": 0.35, "A": 0.4, "alpha": 0.2}  # 1 - score = E + A (C / 1e13)^-alpha


def planted_score(flops):
    return 1 - (PLANTED["E"] + PLANTED["A"] * (np.asarray(flops, float) / 1e13) ** -PLANTED["alpha"])


def study_models(count: int | None = None) -> pd.DataFrame:
    """Final checkpoints of supervised ImageNet / EcoSet models of the study (one row per model, its metadata)."""
    study = laws.study_table()
    flags = study[["is_pretrained", "is_random", "is_ssl", "is_adv", "is_ablation"]].astype(bool).any(axis=1)
    chosen = study[study.latest & study.dataset.isin(["imagenet", "ecoset"]) & ~flags & study.total_flops.notna()]
    chosen = chosen.drop_duplicates("model_id").sort_values("model_id")
    return chosen if count is None else chosen.head(count)


def planted_table(models: pd.DataFrame, benchmark: str = IT, **extra) -> pd.DataFrame:
    return results.frame([{"identifier": f"spvvs_{m.model_id}", "benchmark": benchmark, "status": "ok",
                           "score": float(planted_score(m.total_flops)), "family": "spvvs", "model_id": m.model_id,
                           "epoch": m.epoch, "unit": "fraction", **extra} for m in models.itertuples()])


def line(ax, prefix: str):
    found = [ln for ln in ax.get_lines() if ln.get_label().startswith(prefix)]
    assert len(found) == 1, [ln.get_label() for ln in ax.get_lines()]
    return found[0]


def scatter_points(ax) -> int:
    return sum(len(c.get_offsets()) for c in ax.collections if hasattr(c, "get_offsets")
               and type(c).__name__ == "PathCollection")


def test_the_fit_of_planted_points_recovers_the_planted_law():
    models = study_models()
    table = planted_table(models)
    stray = {"identifier": "mymodel_v1", "benchmark": IT, "status": "ok", "score": 0.42, "family": "mine",
             "unit": "fraction"}
    table = pd.concat([table, results.frame([stray])], ignore_index=True)
    drawn = report_figures.scaling_figure(table, IT, parameters={"mymodel_v1": 2.5e7})
    assert drawn.section == SECTIONS["scaling"] and drawn.name == f"scaling-{IT}"
    curve = drawn.curves["compute"]
    assert len(curve.points) == len(models)
    for name, value in PLANTED.items():
        assert curve.parameters[name] == pytest.approx(value, rel=1e-3), curve.parameters
    compute, parameters, samples = drawn.figure.axes[:3]
    assert compute.get_xscale() == "log" and "compute" in compute.get_xlabel()
    fitted = line(compute, "your fit")
    x, y = fitted.get_data()
    assert np.allclose(y, planted_score(x), atol=1e-4) and x.min() == pytest.approx(models.total_flops.min())
    published = line(compute, PUBLISHED)
    assert published.get_linestyle() == "--"
    study = laws.fitting.Curve(laws.EXPERIMENTS[0], "IT", np.array(
        report_figures.STUDY_FITS[("compute_strong_prior", "IT")].theta), 0.0, pd.DataFrame(), np.empty((0, 3)))
    assert np.allclose(published.get_data()[1], study.predict(published.get_data()[0]))
    assert not np.allclose(published.get_data()[1], y)  # the published curve is not ours
    assert scatter_points(compute) == len(models)  # every model in the fit, the stray row has no compute
    assert scatter_points(parameters) >= len(models) - 5 and any(
        c.get_label().startswith("other families (1") for c in parameters.collections)
    assert drawn.figure.get_suptitle().startswith(f"Your results \u2014 {IT}")
    assert drawn.notes[0].startswith(f"1 of {len(table)} rows have no compute")
    assert "1 of" in drawn.caption and "not your results" in drawn.caption
    assert drawn.figure.get_figwidth() * drawn.figure.dpi >= 1500


def test_too_few_points_draw_no_fit_but_the_published_curve():
    table = planted_table(study_models(3))
    drawn = report_figures.scaling_figure(table, IT)
    assert drawn.curves == {"compute": None, "parameters": None, "samples": None}
    compute = drawn.figure.axes[0]
    assert not [ln for ln in compute.get_lines() if ln.get_label().startswith("your fit")]
    line(compute, PUBLISHED)
    assert any("compute: 3 models pass the study's filters, a fit needs >= 5" in n for n in drawn.notes)
    assert "too few points" in drawn.caption


def test_scaling_figures_are_optional(tmp_path):
    other = results.frame([{"identifier": "mine_a", "benchmark": IT, "status": "ok", "score": 0.3, "family": "mine"},
                           {"identifier": "mine_b", "benchmark": IT, "status": "failed", "family": "mine"}])
    assert report_figures.scaling_figure(other, IT) is None  # no compute, no parameter count
    drawn = report_figures.scaling_figure(other, IT, parameters={"mine_a": 1e6})
    assert drawn is not None and scatter_points(drawn.figure.axes[1]) == 1 and drawn.curves["parameters"] is None
    assert report_figures.draw(other) == [] and report_figures.write(other, tmp_path / "figures") == {}
    empty = results.frame([])
    assert report_figures.draw(empty) == []


def test_trajectories_have_one_line_per_model_with_two_epochs():
    rows = []
    planted = {"fam_a": {1: 0.1, 2: 0.3, 5: 0.45}, "fam_b": {10: 0.2, 20: 0.25}, "fam_c": {3: 0.5}}
    for model, scores in planted.items():
        for epoch, score in scores.items():
            rows.append({"identifier": f"{model}.ep{epoch}", "benchmark": IT, "status": "ok", "score": score,
                         "family": "fam", "epoch": epoch})
    rows.append({"identifier": "fam_a.ep9", "benchmark": IT, "status": "failed", "family": "fam", "epoch": 9})
    rows += [{"identifier": "fam_a.ep1", "benchmark": V1, "status": "ok", "score": 0.2, "family": "fam", "epoch": 1}]
    drawn = report_figures.trajectory_figures(results.frame(rows))
    assert [d.name for d in drawn] == [f"epochs-{IT}"]  # V1 has one epoch per model
    ax = drawn[0].figure.axes[0]
    lines = {ln.get_label(): ln.get_data() for ln in ax.get_lines()}
    assert sorted(lines) == ["fam_a", "fam_b"]
    assert list(lines["fam_a"][0]) == [1, 2, 5] and list(lines["fam_a"][1]) == [0.1, 0.3, 0.45]
    assert list(lines["fam_b"][0]) == [10, 20] and ax.get_xlabel() == "epoch"
    assert drawn[0].section == SECTIONS["trajectory"]


def test_ours_vs_published_has_the_identity_line_and_every_pair():
    rng = np.random.default_rng(1)
    published = rng.uniform(0.1, 0.6, 12)
    ours = published + rng.normal(0, 0.02, 12)
    rows = [{"identifier": f"m{i}", "benchmark": (IT, V1)[i % 2], "status": "ok", "score": o, "published_score": p,
             "unit": "fraction"} for i, (o, p) in enumerate(zip(ours, published))]
    rows += [{"identifier": "np", "benchmark": IT, "status": "ok", "score": 0.4, "unit": "fraction"},  # no published
             {"identifier": "bad", "benchmark": IT, "status": "failed", "published_score": 0.4, "unit": "fraction"},
             {"identifier": "alg", "benchmark": "algonauts2023-test-direct", "status": "ok", "score": 60.0,
              "published_score": 58.8, "unit": "percent"}]
    drawn = report_figures.comparison_figure(results.frame(rows))
    fraction, percent = drawn.figure.axes[:2]
    assert scatter_points(fraction) == 12 and scatter_points(percent) == 1
    identity = line(fraction, "identity")
    assert np.array_equal(*identity.get_data())
    r = np.corrcoef(ours, published)[0, 1]
    assert f"r={r:.3f}" in fraction.get_title() and f"{np.mean(ours - published):+.4g}" in fraction.get_title()
    assert fraction.get_xlabel() == "published score (fraction)" and "percent" in percent.get_title()
    assert report_figures.comparison_figure(results.frame(rows[-3:-1])) is None


def test_figures_never_touch_pyplot():
    source = inspect.getsource(report_figures)
    assert not re.search(r"import matplotlib\.pyplot|from matplotlib import pyplot|matplotlib\.use\(", source)


def test_report_command_writes_figures_and_commitment_plots(tmp_path, monkeypatch, capsys):
    """`report` on a synthetic table: the user's figures, a commitment plot from a --commitments folder (found for a
    study checkpoint and an uncatalogued model alike, without any close-match search), stdout only the page."""
    from brainscore_plugins import catalog, cli, settings

    models = study_models(8)
    rows = planted_table(models).to_dict("records")
    rows[0]["published_score"] = rows[0]["score"] - 0.01
    rows += [{"identifier": "uncatalogued_net", "benchmark": IT, "status": "ok", "score": 0.3, "family": "mine"},
             {"identifier": "broken_net", "benchmark": IT, "status": "failed", "family": "mine",
              "error_message": "RuntimeError: " + "very long reason " * 40}]
    path = tmp_path / "r.parquet"
    results.append(rows, path)
    monkeypatch.setenv(settings.DATA, str(tmp_path / "data"))
    commitments = tmp_path / "mine"
    for name in (rows[0]["identifier"], "uncatalogued_net"):
        (commitments / "layer_scores").mkdir(parents=True, exist_ok=True)
        Image.new("RGB", (720, 480), (20, 90, 160)).save(commitments / "layer_scores" / f"{name}.png")

    def no_suggestions(name):
        raise AssertionError(f"catalog.resolve({name!r}) computes close matches; the report must not call it")

    monkeypatch.setattr(catalog, "resolve", no_suggestions)
    capsys.readouterr()
    out = tmp_path / "site"
    assert cli.main(["report", str(path), "-o", str(out), "--commitments", str(commitments), "--bootstrap", "0",
                     "--quiet"]) == 0
    assert capsys.readouterr().out == f"{out / 'index.html'}\n"
    page = (out / "index.html").read_text(encoding="utf-8")
    for section in (SECTIONS["scaling"], SECTIONS["comparison"], "Layer commitments", "Failed rows (1)"):
        assert f">{section}</h2>" in page
    images = sorted(p.name for p in (out / "images").iterdir())
    assert len(images) == 4 and sum("scaling-" in n for n in images) == 1, images
    for name in ("uncatalogued_net", rows[0]["identifier"]):
        assert re.search(rf"<figcaption>{re.escape(name)} \(layer scores in ", page)
    assert not (out / "scaling").exists()

    assert cli.main(["report", str(path), "-o", str(tmp_path / "x"), "--commitments", str(tmp_path / "no")]) == 2
    assert "--commitments" in capsys.readouterr().err and not (tmp_path / "x").exists()
