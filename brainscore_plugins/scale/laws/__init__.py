"""``scaling fit``: the scaling laws of Gokce & Schrimpf 2024 (scaling-primate-vvs), fitted as the study fits them.

:func:`study_table` (the study's published scores) or :func:`from_results` (our results joined to the study's
metadata) -> :func:`fit` -> :func:`save` (``scaling_fit.json`` and one PNG per experiment).
"""
from .data import EXPERIMENTS, Experiment, ScalingInputError, from_results, study_table
from .fitting import Curve, ScalingFit, fit
from .output import save

__all__ = ["EXPERIMENTS", "Curve", "Experiment", "ScalingFit", "ScalingInputError", "fit", "from_results", "save",
           "study_table"]
