"""Figures of a scaling fit: per one-resource experiment, score against the resource, one panel per region.

Built on ``matplotlib.figure.Figure`` with an Agg canvas, never pyplot: the caller's backend is left alone.
"""
from __future__ import annotations

import math

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from .fitting import Curve, ScalingFit

COLORS = {"V1": "#1f77b4", "V2": "#2ca02c", "V4": "#ff7f0e", "IT": "#d62728", "behavior": "#9467bd",
          "neural": "#17becf", "average": "#333333"}
COLUMNS = 4


def figure(fit: ScalingFit, experiment: str) -> Figure:
    """Points, fitted curve (solid), 95% bootstrap band (shaded) and the study's published curve (dashed) per
    region of ``experiment``, on a log x axis."""
    curves = [c for c in fit.curves if c.experiment.name == experiment]
    if not curves or len(curves[0].experiment.variables) != 1:
        raise ValueError(f"{experiment} is not a fitted one-resource experiment")
    rows = math.ceil(len(curves) / COLUMNS)
    columns = min(COLUMNS, len(curves))
    fig = Figure(figsize=(3.6 * columns, 3.2 * rows))
    FigureCanvasAgg(fig)
    axes = fig.subplots(rows, columns, squeeze=False, gridspec_kw={"left": 0.22 / columns, "right": 0.98,
                                                                   "bottom": 0.45 / (3.2 * rows),
                                                                   "top": 1 - 0.6 / (3.2 * rows),
                                                                   "wspace": 0.3, "hspace": 0.45}).ravel()
    for ax, curve in zip(axes, curves):
        _panel(ax, curve)
    for ax in axes[len(curves):]:
        ax.set_visible(False)
    fig.suptitle(f"{experiment}: 1 - S = {curves[0].law.formula.split('= ', 1)[1]}  "
                 f"(band: 95% of {fit.bootstrap} bootstrap refits)", fontsize=10)
    return fig


def _panel(ax, curve: Curve) -> None:
    variable = curve.experiment.variables[0]
    x, score = curve.points[variable].to_numpy(float), curve.points["score"].to_numpy(float)
    grid = np.geomspace(x.min(), x.max(), 200)
    color = COLORS.get(curve.region, "#333333")
    ax.scatter(x, score, s=8, alpha=0.35, color=color, linewidths=0)
    if (band := curve.band(grid)) is not None:
        ax.fill_between(grid, *band, color=color, alpha=0.25, linewidth=0)
    parameters = curve.parameters
    ax.plot(grid, curve.predict(grid), color=color, linewidth=2,
            label=f"fit: alpha={parameters['alpha']:.3f}, E={parameters['E']:.3f}")
    if (study := curve.study) is not None:
        ax.plot(grid, curve.predict(grid, theta=study.theta), color="black", linestyle="--", linewidth=1,
                label="study (published)")
    ax.set_xscale("log")
    ax.set_title(f"{curve.region} (n={len(x)})", fontsize=10)
    ax.set_xlabel(curve.experiment.label, fontsize=8)
    ax.set_ylabel("score S (Brain-Score, fraction)", fontsize=8)
    ax.tick_params(labelsize=7)
    ax.legend(fontsize=6, loc="lower right")
