"""Figures of the user's own results for the report (:mod:`.report`): one full-width PNG per benchmark or comparison.

* per benchmark, score against compute, parameters and samples seen (:func:`scaling_figure`): the ``ok`` rows of
  ``spvvs`` models joined to the study's metadata by (model id, epoch) as :func:`.laws.from_results` joins them (an
  empty epoch: the model's final checkpoint), the study's saturating power law fitted to these points with the study's
  filters (:func:`.laws.data.points`, :func:`.laws.fitting.fit_curve`) where there are enough, and the study's
  published fit (:mod:`.laws.study_fits`) beside it, dashed and labelled as published. Other families have no
  compute or samples; their parameter counts come from ``parameters`` (the catalog's ``n_params``) where given.
* per benchmark, score against epoch, one line per model with rows at two epochs or more (:func:`trajectory_figures`);
* our score against the published one, identity line, r and mean difference (:func:`comparison_figure`).

Every figure is optional: a table without what it needs gives fewer figures, never an error. Built on
``matplotlib.figure.Figure`` with an Agg canvas, never pyplot: the caller's backend is left alone.
"""
from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping

import matplotlib
import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from ..errors import ScalingInputError
from . import units
from .laws import data as law_data, fitting, law as scaling_law
from .laws.study_fits import STUDY_FITS

__all__ = ["Drawn", "SECTIONS", "resources", "scaling_figure", "trajectory_figures", "comparison_figure", "draw",
           "write"]

PUBLISHED = "published fit (Gokce & Schrimpf 2024)"
STUDY_FAMILY = "spvvs"
WIDTH, DPI = 16.0, 100  # inches and dots per inch: 1600 px wide PNGs, shown at the page's full width
STYLE = {"font.size": 14, "axes.titlesize": 15, "axes.labelsize": 14, "xtick.labelsize": 12, "ytick.labelsize": 12,
         "legend.fontsize": 11, "figure.titlesize": 17}
SECTIONS = {"scaling": "Your results: score vs. compute, parameters and samples seen",
            "trajectory": "Your results: epoch trajectories", "comparison": "Your results vs. published scores"}
PANELS = (("compute", "total_flops", "compute C (training FLOPs)"), ("parameters", "n_params", "parameters N"),
          ("samples", "n_samples_seen", "samples seen D"))
_AVERAGE = "the mean of the study's 5 benchmarks"
# per panel, the study's published fits to draw, the first found: (experiment, region or None: the benchmark's, what
# the fit covered when it is not this benchmark's models on this experiment)
_PUBLISHED_FITS = {
    "compute": (("compute", None, ""), ("compute_strong_prior", None, "ResNet, EfficientNet, CORnet-S, AlexNet")),
    "parameters": (("parameters", None, ""), ("parameters", "average", _AVERAGE)),
    "samples": (("samples", None, ""), ("samples", "average", _AVERAGE)),
}
_COLORS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22",
           "#17becf")
_JOIN_COLUMNS = ("identifier", "model_id", "epoch", "benchmark", "score", "unit")


@dataclass
class Drawn:
    """One figure of the report: its section, file stem, caption and the figure; ``curves`` (experiment -> the
    fit of the user's points, or ``None``) and ``notes`` say what it shows and what it left out."""
    section: str
    name: str
    caption: str
    figure: Figure
    curves: dict = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


def resources(table: pd.DataFrame, study: pd.DataFrame | None = None) -> pd.DataFrame:
    """The ``ok`` rows of ``spvvs`` models of ``table`` with a finite score, joined by (model id, epoch) to the
    study's metadata (compute, parameters, samples seen, filters), as :func:`.laws.from_results` joins them but on
    every benchmark; ``region`` is the benchmark. Rows the study does not list are left out."""
    study = law_data.study_table() if study is None else study
    rows = _ok(table)
    rows = rows[rows["family"].astype(str) == STUDY_FAMILY] if "family" in rows else rows.iloc[:0]
    rows = rows[[c for c in _JOIN_COLUMNS if c in rows]].copy()
    if rows.empty or "model_id" not in rows:
        return pd.DataFrame(columns=[*_JOIN_COLUMNS, *law_data.METADATA, "region"])
    rows["model_id"] = rows["model_id"].astype(str)
    metadata = study.drop_duplicates(["model_id", "epoch"]).set_index(["model_id", "epoch"])[list(law_data.METADATA)]
    final = study[study["latest"].astype(bool)].groupby("model_id")["epoch"].max()
    epoch = pd.to_numeric(rows["epoch"], errors="coerce") if "epoch" in rows else pd.Series(np.nan, rows.index)
    rows["epoch"] = epoch.fillna(rows["model_id"].map(final)).astype("Int64")
    joined = rows.join(metadata, on=["model_id", "epoch"])
    joined = joined[joined["arch_family"].notna()].copy()
    joined["region"] = joined["benchmark"].astype(str)
    joined["epoch"] = joined["epoch"].astype(int)
    for flag in (*law_data.FLAGS, "latest"):
        joined[flag] = joined[flag].astype(bool)
    return joined.reset_index(drop=True)


def scaling_figure(table: pd.DataFrame, benchmark: str, *, joined: pd.DataFrame | None = None,
                   parameters: Mapping[str, float] | None = None, bootstrap: int = 0, seed: int = 0) -> Drawn | None:
    """Score against compute, parameters and samples seen of ``table``'s ``ok`` rows on ``benchmark`` (three panels),
    with the fit of the study's law to them where there are enough points and the study's published fit, dashed;
    ``None`` when no row of the benchmark has any of the three. ``joined``: :func:`resources` of ``table`` (computed
    when not given); ``parameters``: identifier -> parameter count for rows of other families (the catalog's)."""
    joined = resources(table) if joined is None else joined
    ok = _ok(table)
    ok = ok[ok["benchmark"].astype(str) == benchmark]
    rows = joined[joined["benchmark"] == benchmark]
    if ok.empty:
        return None
    joined_ids = set(rows["identifier"].astype(str)) if "identifier" in rows else set()
    others = ok[~ok["identifier"].astype(str).isin(joined_ids)]  # no compute or samples: not a study checkpoint
    extra = pd.DataFrame({"identifier": others["identifier"].astype(str), "score": others["score"].astype(float)})
    extra["n_params"] = extra["identifier"].map(lambda i: (parameters or {}).get(i, np.nan)).astype(float)
    extra = extra[np.isfinite(extra["n_params"]) & (extra["n_params"] > 0)]
    if rows.empty and extra.empty:
        return None
    unit = _unit(ok)
    notes = []
    if len(others):
        notes.append(f"{len(others)} of {len(ok)} rows have no compute or samples seen (not a checkpoint the study "
                     f"lists)"
                     + (f"; {len(extra)} of them plotted by their catalog parameter count" if len(extra) else ""))
    with matplotlib.rc_context(STYLE):
        fig = Figure(figsize=(WIDTH, 7.6), dpi=DPI, layout="constrained")
        FigureCanvasAgg(fig)
        axes = fig.subplots(1, len(PANELS), squeeze=False)[0]
        families = sorted(set(rows["arch_family"].astype(str)))
        colors = {family: _COLORS[i % len(_COLORS)] for i, family in enumerate(families)}
        curves = {}
        for ax, (name, variable, label) in zip(axes, PANELS):
            curves[name], note = _scaling_panel(ax, rows, extra if variable == "n_params" else None, name, variable,
                                                label, benchmark, unit, colors, bootstrap, seed)
            if note:
                notes.append(note)
        handles = [Line2D([], [], marker="o", linestyle="", markersize=7, color=colors[f], label=f) for f in families]
        if handles:
            fig.legend(handles=handles, loc="outside right center", title="architecture\nfamily", frameon=False)
        fig.suptitle(f"Your results \u2014 {benchmark} ({len(ok)} ok rows)", fontweight="bold")
        if notes:
            fig.supxlabel("; ".join(notes), fontsize=12, color="#4a5363", wrap=True)
    fitted = [f"{name} ({len(curve.points)} models, alpha={curve.parameters['alpha']:.3f})"
              for name, curve in curves.items() if curve is not None]
    caption = (f"{benchmark}: your scores against each resource; solid: the study's law fitted to your points"
               + (f" ({', '.join(fitted)})" if fitted else " (too few points for a fit)")
               + f"; dashed: the {PUBLISHED}, not your results." + (" " + "; ".join(notes) + "." if notes else ""))
    return Drawn(SECTIONS["scaling"], f"scaling-{benchmark}", caption, fig, curves, notes)


def _scaling_panel(ax, rows, extra, name, variable, label, benchmark, unit, colors, bootstrap, seed):
    """One resource's panel; returns (the fit of the user's points or None, a note or '')."""
    experiment = next(e for e in law_data.EXPERIMENTS if e.name == name)
    experiment = dataclasses.replace(experiment, regions=(benchmark,))
    values = pd.to_numeric(rows[variable], errors="coerce").astype(float)
    plotted = rows[np.isfinite(values) & (values > 0)]
    curve, note, points = None, "", pd.DataFrame(columns=["model_id", variable, "score"])
    needed = len(scaling_law.LAWS[experiment.law].fitted) + 2
    if len(plotted):
        try:
            points = law_data.points(rows, experiment).get(benchmark, points)
        except ScalingInputError as error:
            note = f"{name}: no fit ({_first_clause(str(error))})"
        if len(points) >= needed:
            curve = fitting.fit_curve(experiment, benchmark, points, bootstrap=bootstrap, seed=seed)
        elif not note:
            note = (f"{name}: {len(points)} models pass the study's filters, a fit needs >= {needed}")
    latest = plotted["epoch"] == plotted.groupby("model_id")["epoch"].transform("max")
    in_fit = plotted["model_id"].isin(set(points["model_id"])) & latest
    outside = plotted[~in_fit]
    if len(outside):
        ax.scatter(outside[variable].astype(float), outside["score"].astype(float), s=28, facecolors="none",
                   edgecolors="#9aa0a6", linewidths=1, label=f"not in the fit ({len(outside)}: study filters, "
                   f"earlier epochs)")
    fitted = plotted[in_fit]
    ax.scatter(fitted[variable].astype(float), fitted["score"].astype(float), s=40, alpha=0.85, linewidths=0,
               c=[colors.get(str(f), "#333333") for f in fitted["arch_family"]])
    if extra is not None and len(extra):
        ax.scatter(extra["n_params"], extra["score"], s=60, marker="X", color="#111111",
                   label=f"other families ({len(extra)}, catalog n_params)")
    xs = np.concatenate([plotted[variable].to_numpy(float),
                         extra["n_params"].to_numpy(float) if extra is not None else np.array([])])
    ys = [plotted["score"].to_numpy(float), extra["score"].to_numpy(float) if extra is not None else np.array([])]
    if xs.size:
        grid = np.geomspace(xs.min(), xs.max(), 200) if xs.min() < xs.max() else np.array([xs.min()])
        if curve is not None:  # over the fitted points' range: no extrapolation
            span = curve.points[variable].to_numpy(float)
            own = np.geomspace(span.min(), span.max(), 200)
            if (band := curve.band(own)) is not None:
                ax.fill_between(own, *band, color="#1f77b4", alpha=0.18, linewidth=0, label="95% bootstrap band")
            p = curve.parameters
            ax.plot(own, curve.predict(own), color="#1f77b4", linewidth=2.5,
                    label=f"your fit ({len(points)} models): E={p['E']:.3f}, alpha={p['alpha']:.3f}")
        published = _published(name, benchmark)
        if published is not None and unit == units.FRACTION:
            study_curve, what = published
            ys.append(study_curve.predict(grid))
            ax.plot(grid, ys[-1], color="black", linestyle="--", linewidth=1.8,
                    label=PUBLISHED + (f",\n{what}" if what else ""))
        ax.set_xscale("log")
        y = np.concatenate(ys)
        y = y[np.isfinite(y)]
        if y.size:  # the points and the published curve set the scale; a fit or band running off it is clipped
            pad = max(float(y.max() - y.min()) * 0.06, 0.01)
            ax.set_ylim(float(y.min()) - pad, float(y.max()) + pad)
    else:
        ax.text(0.5, 0.5, f"no rows with {label}", transform=ax.transAxes, ha="center", va="center",
                color="#4a5363")
    ax.set_title(f"{name} ({len(plotted) + (len(extra) if extra is not None else 0)} rows)")
    ax.set_xlabel(label)
    ax.set_ylabel(_score_label(unit))
    ax.grid(True, alpha=0.3)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.16), frameon=False)
    return curve, note


def _published(name: str, benchmark: str) -> tuple[fitting.Curve, str] | None:
    """The study's published fit to draw on ``name``'s panel of ``benchmark`` (as a curve), and what it covered."""
    region = law_data.BENCHMARK_REGIONS.get(benchmark)
    if region is None:
        return None
    for experiment_name, fit_region, what in _PUBLISHED_FITS[name]:
        study = STUDY_FITS.get((experiment_name, fit_region or region))
        if study is not None:
            experiment = next(e for e in law_data.EXPERIMENTS if e.name == experiment_name)
            theta = np.array(study.theta, dtype=float)
            curve = fitting.Curve(experiment, fit_region or region, theta, study.loss, pd.DataFrame(),
                                  np.empty((0, theta.size)))
            return curve, what or (f"{region}" if fit_region is None else what)
    return None


def trajectory_figures(table: pd.DataFrame) -> list[Drawn]:
    """Per benchmark, score against epoch, one line per model with ``ok`` rows at two epochs or more."""
    rows = _ok(table)
    if "epoch" not in rows or rows.empty:
        return []
    rows = rows.assign(epoch=pd.to_numeric(rows["epoch"], errors="coerce"), model=_model_keys(rows))
    rows = rows[rows["epoch"].notna()]
    epochs = rows.groupby(["benchmark", "model"])["epoch"].nunique()
    drawn = []
    for benchmark in sorted(set(rows["benchmark"].astype(str))):
        models = [m for (b, m), n in epochs.items() if b == benchmark and n >= 2]
        if not models:
            continue
        chosen = rows[(rows["benchmark"] == benchmark) & rows["model"].isin(models)]
        with matplotlib.rc_context(STYLE):
            fig = Figure(figsize=(WIDTH, 6.4), dpi=DPI, layout="constrained")
            FigureCanvasAgg(fig)
            ax = fig.subplots()
            for number, model in enumerate(sorted(models)):
                line = chosen[chosen["model"] == model].groupby("epoch")["score"].mean().sort_index()
                ax.plot(line.index.to_numpy(float), line.to_numpy(float), marker="o", linewidth=2,
                        color=_COLORS[number % len(_COLORS)], linestyle=("-", "--", ":", "-.")[number // 10 % 4],
                        label=model)
            ax.set_xlabel("epoch")
            ax.set_ylabel(_score_label(_unit(chosen)))
            ax.grid(True, alpha=0.3)
            ax.set_title(f"Your results \u2014 {benchmark}: score by epoch ({len(models)} models)")
            ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1),
                      ncols=1 if len(models) <= 18 else 2, fontsize=10 if len(models) > 10 else 11, frameon=False)
        caption = f"{benchmark}: your score of each checkpoint against its epoch, one line per model"
        drawn.append(Drawn(SECTIONS["trajectory"], f"epochs-{benchmark}", caption, fig))
    return drawn


def comparison_figure(table: pd.DataFrame) -> Drawn | None:
    """Our score against the published one (rows with both), one panel per unit, a colour per benchmark, the
    identity line; r and the mean difference in the titles. ``None`` without such rows."""
    if "published_score" not in table:
        return None
    rows = _ok(table)
    rows = rows.assign(published=pd.to_numeric(rows["published_score"], errors="coerce"))
    rows = rows[np.isfinite(rows["published"])]
    if rows.empty:
        return None
    rows = rows.assign(unit=rows["unit"].astype(str) if "unit" in rows else units.FRACTION)
    groups = [(u, rows[rows["unit"] == u]) for u in sorted(set(rows["unit"]))]
    benchmarks = sorted(set(rows["benchmark"].astype(str)))
    colors = {b: _COLORS[i % len(_COLORS)] for i, b in enumerate(benchmarks)}
    with matplotlib.rc_context(STYLE):
        fig = Figure(figsize=(min(WIDTH, 4.5 + 7.5 * len(groups)), 7.5), dpi=DPI, layout="constrained")
        FigureCanvasAgg(fig)
        axes = fig.subplots(1, len(groups), squeeze=False)[0]
        for ax, (unit, group) in zip(axes, groups):
            for benchmark in benchmarks:
                chosen = group[group["benchmark"].astype(str) == benchmark]
                if len(chosen):
                    ax.scatter(chosen["published"], chosen["score"].astype(float), s=40, alpha=0.8, linewidths=0,
                               color=colors[benchmark], label=f"{benchmark} ({len(chosen)})")
            low = float(min(group["published"].min(), group["score"].min()))
            high = float(max(group["published"].max(), group["score"].max()))
            pad = (high - low) * 0.05 or 0.05
            ax.plot([low - pad, high + pad], [low - pad, high + pad], color="black", linestyle="--", linewidth=1.2,
                    label="identity (ours = published)")
            ax.set_xlim(low - pad, high + pad)
            ax.set_ylim(low - pad, high + pad)
            ax.set_aspect("equal", adjustable="box")
            ax.set_xlabel(f"published score ({unit})")
            ax.set_ylabel(f"your score ({unit})")
            ax.set_title(f"{unit}: {_agreement(group)}" if len(groups) > 1 else f"{unit} ({len(group)} rows)")
            ax.grid(True, alpha=0.3)
            ax.legend(loc="upper left", bbox_to_anchor=(1.02, 1), frameon=False)
        fig.suptitle(f"Your scores vs. published scores \u2014 {_agreement(rows)}" if len(groups) == 1
                     else f"Your scores vs. published scores ({len(rows)} rows)", fontweight="bold")
    caption = (f"your score against the published score of the same checkpoint and benchmark ({len(rows)} rows); "
               f"dashed: identity; {_agreement(rows) if len(groups) == 1 else 'per unit in the panel titles'}")
    return Drawn(SECTIONS["comparison"], "ours-vs-published", caption, fig)


def draw(table: pd.DataFrame, *, parameters: Mapping[str, float] | None = None, bootstrap: int = 0, seed: int = 0,
         progress: bool = False) -> list[Drawn]:
    """Every figure of ``table``: per benchmark its scaling figure, then the epoch trajectories, then ours vs.
    published. ``progress``: a bar on stderr."""
    from tqdm.auto import tqdm

    benchmarks = sorted(set(_ok(table)["benchmark"].astype(str)))
    joined = resources(table)
    drawn = []
    tasks = [("scaling", b) for b in benchmarks] + [("trajectory", None), ("comparison", None)]
    for kind, benchmark in tqdm(tasks, desc="report figures", unit="figure", disable=not progress):
        if kind == "scaling":
            found = scaling_figure(table, benchmark, joined=joined, parameters=parameters, bootstrap=bootstrap,
                                   seed=seed)
            drawn += [found] if found is not None else []
        elif kind == "trajectory":
            drawn += trajectory_figures(table)
        elif (found := comparison_figure(table)) is not None:
            drawn.append(found)
    return drawn


def write(table: pd.DataFrame, folder, **options) -> dict[str, list[tuple[Path, str]]]:
    """Draw every figure of ``table`` (:func:`draw`, with ``options``) as PNGs into ``folder`` (created); returns
    section title -> [(png path, caption)], the sections in page order, as :func:`.report.write_report` takes them."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    sections: dict[str, list[tuple[Path, str]]] = {}
    for drawn in draw(table, **options):
        path, number = folder / f"{_safe(drawn.name)}.png", 1
        while path.exists():  # two names alike once made safe
            number += 1
            path = folder / f"{_safe(drawn.name)}-{number}.png"
        with matplotlib.rc_context(STYLE):
            drawn.figure.savefig(path, format="png", dpi=DPI)
        sections.setdefault(drawn.section, []).append((path, drawn.caption))
    return sections


def _ok(table: pd.DataFrame) -> pd.DataFrame:
    """The ``ok`` rows with a finite score."""
    score = pd.to_numeric(table["score"], errors="coerce").astype(float)
    return table[(table["status"].astype(str) == "ok") & np.isfinite(score)].assign(score=score)


def _model_keys(rows: pd.DataFrame) -> pd.Series:
    """A model's name across its checkpoints: the identifier without its ``.ep<N>``."""
    return rows["identifier"].astype(str).str.replace(r"\.ep\d+$", "", regex=True)


def _unit(rows: pd.DataFrame) -> str:
    if "unit" not in rows:
        return units.FRACTION
    present = {str(u) for u in rows["unit"] if str(u)}
    return present.pop() if len(present) == 1 else (units.FRACTION if not present else "mixed units")


def _score_label(unit: str) -> str:
    return {units.FRACTION: "your score (Brain-Score, fraction)", units.PERCENT: "your score (percent)"}.get(
        unit, f"your score ({unit})")


def _agreement(rows: pd.DataFrame) -> str:
    ours, theirs = rows["score"].to_numpy(float), rows["published"].to_numpy(float)
    difference = float(np.mean(ours - theirs))
    text = f"n={len(rows)}, mean difference (yours \u2212 published) {difference:+.4g}"
    if len(rows) >= 2 and np.std(ours) > 0 and np.std(theirs) > 0:
        text = f"r={float(np.corrcoef(ours, theirs)[0, 1]):.3f}, " + text
    return text


def _first_clause(text: str) -> str:
    return text.split(";")[0][:120]


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_-]+", "-", name).strip("-_")[:60] or "figure"

