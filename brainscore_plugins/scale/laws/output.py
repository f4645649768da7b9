"""Write a scaling fit: ``scaling_fit.json`` and one ``scaling_<experiment>.png`` per one-resource experiment."""
from __future__ import annotations

import json
import math
from pathlib import Path

from region_commitment.atomic import replacing, write_text

from . import plots
from .fitting import ScalingFit

JSON_NAME = "scaling_fit.json"


def save(fit: ScalingFit, output_dir) -> dict[str, Path]:
    """Write the fit into ``output_dir`` (created if needed), each file atomically; returns name -> path."""
    folder = Path(output_dir)
    folder.mkdir(parents=True, exist_ok=True)
    written = {"json": write_text(folder / JSON_NAME, json.dumps(_finite(fit.to_dict()), indent=1,
                                                                 allow_nan=False) + "\n")}
    for experiment in fit.experiments:
        if len(experiment.variables) == 1:
            path = folder / f"scaling_{experiment.name}.png"
            with replacing(path) as tmp:
                plots.figure(fit, experiment.name).savefig(tmp, format="png", dpi=120)
            written[experiment.name] = path
    return written


def _finite(value):
    """JSON has no NaN or infinity: they become null."""
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value
