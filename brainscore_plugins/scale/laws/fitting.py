"""Fit the study's laws per experiment and region, with bootstrap confidence intervals over models."""
from __future__ import annotations

import logging
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from . import data, law
from .study_fits import STUDY_FITS, StudyFit

_logger = logging.getLogger(__name__)
BOOTSTRAP_STARTS = 8  # bootstrap refits start from this many distinct local optima of the full data's grid search
PERCENTILES = (2.5, 50.0, 97.5)


@dataclass
class Curve:
    """One fitted law: an experiment's points of one region, the best parameters and their bootstrap."""
    experiment: data.Experiment
    region: str
    theta: np.ndarray  # log-space parameters (law.fitted order)
    loss: float
    points: pd.DataFrame  # model_id, the experiment's variables, score
    bootstrap: np.ndarray  # (B, P) log-space parameters of the bootstrap refits

    @property
    def law(self) -> law.Law:
        return law.LAWS[self.experiment.law]

    @property
    def parameters(self) -> dict[str, float]:
        return dict(zip(self.law.natural, map(float, self.law.to_natural(self.theta))))

    @property
    def study(self) -> StudyFit | None:
        return STUDY_FITS.get((self.experiment.name, self.region))

    def x(self, values: np.ndarray | pd.DataFrame | None = None) -> np.ndarray:
        """Scaled resources (n, inputs) of ``values`` in table units (default: the points)."""
        values = self.points[list(self.experiment.variables)] if values is None else values
        return np.asarray(values, dtype=float).reshape(-1, len(self.experiment.scales)) / self.experiment.scales

    def predict(self, values=None, theta=None) -> np.ndarray:
        """Predicted score ``1 - L`` at ``values`` (table units), per row of ``theta`` (default: the best fit)."""
        rows = np.atleast_2d(self.theta if theta is None else theta)
        predicted = 1 - self.law.misalignment(rows, self.x(values))
        return predicted[0] if theta is None or np.ndim(theta) == 1 else predicted

    def band(self, values, percentile: float = 95.0) -> tuple[np.ndarray, np.ndarray] | None:
        """The central ``percentile`` band of the bootstrap refits' predictions (the study's figures), if any."""
        if not len(self.bootstrap):
            return None
        predictions = self.predict(values, self.bootstrap)
        tail = (100 - percentile) / 2
        return np.nanpercentile(predictions, tail, axis=0), np.nanpercentile(predictions, 100 - tail, axis=0)

    def to_dict(self) -> dict:
        names = self.law.natural
        found = {"n_points": len(self.points), "parameters": self.parameters, "loss": self.loss,
                 "log_space_parameters": dict(zip(self.law.fitted, map(float, self.theta))),
                 "x_range": {v: [float(self.points[v].min()), float(self.points[v].max())]
                             for v in self.experiment.variables}}
        if len(self.bootstrap):
            spread = np.nanpercentile(self.law.to_natural(self.bootstrap), PERCENTILES, axis=0)
            found["bootstrap_percentiles"] = {name: dict(zip(map(str, PERCENTILES), map(float, spread[:, i])))
                                              for i, name in enumerate(names)}
        if self.experiment.law == "joint":  # compute-optimal allocation, N ~ C^a, D ~ C^b (the study's Fig. 4)
            alpha, beta = self.parameters["alpha"], self.parameters["beta"]
            found["allocation"] = {"a": beta / (alpha + beta), "b": alpha / (alpha + beta)}
        if (study := self.study) is not None:
            ours, theirs = self.parameters, dict(zip(names, map(float, self.law.to_natural(np.array(study.theta)))))
            found["study"] = {"source": study.source, "parameters": theirs, "loss": study.loss,
                              "relative_difference": {k: _relative(ours[k], theirs[k]) for k in names},
                              "max_score_difference": float(np.max(np.abs(self.predict() - self.predict(
                                  theta=study.theta))))}
        return found


@dataclass
class ScalingFit:
    """Every fitted curve, what was fitted and how."""
    curves: list[Curve]
    source: str
    bootstrap: int
    seed: int
    skipped: dict[str, str] = field(default_factory=dict)

    def curve(self, experiment: str, region: str) -> Curve:
        for curve in self.curves:
            if (curve.experiment.name, curve.region) == (experiment, region):
                return curve
        raise KeyError(f"no {experiment} fit of {region} (fitted: {sorted({c.experiment.name for c in self.curves})}")

    @property
    def experiments(self) -> list[data.Experiment]:
        return list({curve.experiment.name: curve.experiment for curve in self.curves}.values())

    def to_dict(self) -> dict:
        return {
            "study": "Gokce & Schrimpf 2024, Scaling Laws for Task-Optimized Models of the Primate Visual Ventral "
                     "Stream (arXiv:2411.05712), github.com/epflneuroailab/scaling-primate-vvs",
            "source_table": self.source,
            "objective": f"sum of Huber(delta={law.DELTA}) of log(L_hat) - log(1 - score), BFGS from every start "
                         f"of the study's grid, the lowest loss",
            "bootstrap": {"resamples": self.bootstrap, "seed": self.seed, "percentiles": list(PERCENTILES),
                          "resampling": "models with replacement (as many as fitted), numpy default_rng(seed)",
                          "starts": f"the full data's {BOOTSTRAP_STARTS} best distinct local optima"},
            "experiments": {e.name: {"law": e.law, "formula": law.LAWS[e.law].formula, "x": e.label,
                                     "variables": dict(zip(e.variables, e.scales)), "study_config": e.study,
                                     "filters": e.filters(), "fits": {c.region: c.to_dict() for c in self.curves
                                                                      if c.experiment.name == e.name}}
                            for e in self.experiments},
            "skipped": self.skipped,
        }


def fit(table: pd.DataFrame, *, bootstrap: int = 100, seed: int = 0, progress: bool = True,
        experiments: tuple[str, ...] | list[str] | None = None) -> ScalingFit:
    """Fit the study's laws to ``table`` (:func:`study_table` or :func:`from_results`): every experiment of
    :data:`data.EXPERIMENTS` (or those named) and region; an experiment with too few points in a region is skipped
    with a warning. ``bootstrap`` resamples of the models give each curve's confidence band.

    Raises:
        ScalingInputError: missing columns, NaN scores, non-positive resources, or too few points for any fit.
    """
    chosen = _chosen(experiments)
    if bootstrap < 0:
        raise data.ScalingInputError(f"bootstrap must be >= 0, not {bootstrap}")
    planned, skipped = [], {}
    for experiment in chosen:
        found = data.points(table, experiment)
        needed = len(law.LAWS[experiment.law].fitted) + 2
        short = {region: len(p) for region, p in found.items() if len(p) < needed}
        if short:
            skipped[experiment.name] = _shortfall(short, len(found), needed)
            continue
        planned += [(experiment, region, p) for region, p in found.items()]
    if not planned:
        raise data.ScalingInputError("too few points for any scaling fit: " + "; ".join(
            f"{name}: {why}" for name, why in skipped.items()) + "; score more spvvs models (supervised, ImageNet or "
            "EcoSet) on the five benchmarks")
    for name, why in skipped.items():
        _logger.warning("scaling: skipped %s: %s", name, why)
    curves = [fit_curve(*plan, bootstrap=bootstrap, seed=seed)
              for plan in tqdm(planned, desc="scaling fit", unit="fit", disable=not progress)]
    return ScalingFit(curves, table.attrs.get("source", "a table given to fit()"), bootstrap, seed, skipped)


def fit_curve(experiment: data.Experiment, region: str, points: pd.DataFrame, *, bootstrap: int = 0,
              seed: int = 0) -> Curve:
    """Fit ``experiment``'s law to ``points`` (one row per model: its variables and score) of ``region``."""
    chosen_law = law.LAWS[experiment.law]
    x = points[list(experiment.variables)].to_numpy(float) / experiment.scales
    misalignment = 1 - points["score"].to_numpy(float)
    theta, loss, optima = law.grid_search(chosen_law, x, misalignment)
    refits = np.empty((0, len(theta)))
    if bootstrap:
        samples = np.random.default_rng(seed).integers(0, len(points), size=(bootstrap, len(points)))
        refits, _ = law.bootstrap_fits(chosen_law, x, misalignment, law.distinct(optima, BOOTSTRAP_STARTS), samples)
    return Curve(experiment, region, theta, loss, points, refits)


def _shortfall(short: dict[str, int], regions: int, needed: int) -> str:
    if len(short) == regions and len(set(short.values())) == 1:
        return f"{next(iter(short.values()))} models in every region, needs >= {needed}"
    return ", ".join(f"{region}: {count} models" for region, count in short.items()) + f", needs >= {needed}"


def _chosen(names) -> list[data.Experiment]:
    known = {e.name: e for e in data.EXPERIMENTS}
    if names is None:
        return list(known.values())
    unknown = [n for n in names if n not in known]
    if unknown:
        raise data.ScalingInputError(f"unknown experiment(s) {', '.join(unknown)}; choose from {', '.join(known)}")
    return [known[n] for n in names]


def _relative(ours: float, theirs: float) -> float:
    return abs(ours - theirs) / abs(theirs) if theirs else abs(ours)
