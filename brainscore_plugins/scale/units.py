"""What a score's number means: its unit and its metric, for the results table and the report.

Brain-Score's benchmarks score in ``fraction`` ([0, 1], the ceiled ``brainscore`` metric); the Algonauts 2023 ones in
``percent``, as the challenge leaderboard and its participants' papers report them, with the metric in
``score.attrs['metric']`` (and the unit in ``score.attrs['unit']``). A row's unit applies to its ``score``,
``error``, ``ceiling``, ``published_score`` and ``published_difference``; ``raw`` is always a fraction.
"""
from __future__ import annotations

PERCENT, FRACTION = "percent", "fraction"
BRAINSCORE = "brainscore"
PERCENT_BENCHMARKS = ("algonauts2023",)  # identifier prefixes of the benchmarks that score in percent
LABELS = {
    BRAINSCORE: "Brain-Score (ceiled)",
    "noise_normalized_r2": "noise-normalised r² (challenge)",
    "pearson_r2": "raw r² (no noise ceiling)",
    "median_r2": "median R² (GroupLin validation)",
}


def unit(benchmark: str) -> str:
    """``percent`` for an Algonauts 2023 benchmark, else ``fraction``."""
    return PERCENT if benchmark.startswith(PERCENT_BENCHMARKS) else FRACTION


def default_metric(benchmark: str) -> str:
    """The metric of a row whose score names none: ``brainscore`` for a fraction benchmark, else '' (unknown)."""
    return BRAINSCORE if unit(benchmark) == FRACTION else ""


def label(metric: str) -> str:
    """How the report names ``metric`` (the name itself when it has no label)."""
    return LABELS.get(metric, metric)
