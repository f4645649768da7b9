"""The rows a scaling fit reads: the study's table or our results joined to its metadata, and the study's filters.

Every experiment mirrors one of the study's curve-fitting configs (``analysis/curve_fitting/configs``): supervised
ImageNet / EcoSet models only (no pretrained, random, self-supervised, adversarial or ablation model), ``*Flex``
families merged into their family, one point per model (its final checkpoint: the study fits its
``benchmark_scores.csv``), and for ``neural`` / ``average`` the model's mean score over V1-IT / all five benchmarks.
"""
from __future__ import annotations

import logging
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from ...errors import ScalingInputError

_logger = logging.getLogger(__name__)

STUDY_TABLE = Path(__file__).resolve().parents[1] / "data" / "study_scores.csv"
BENCHMARK_REGIONS = {
    "FreemanZiemba2013public.V1-pls": "V1", "FreemanZiemba2013public.V2-pls": "V2",
    "MajajHong2015public.V4-pls": "V4", "MajajHong2015public.IT-pls": "IT",
    "Rajalingham2018public-i2n": "behavior",
}
REGIONS = tuple(BENCHMARK_REGIONS.values())
COMPOSITES = {"neural": REGIONS[:4], "average": REGIONS}  # the study's "neuro" and "avg"
ALL_REGIONS = REGIONS + tuple(COMPOSITES)
FLAGS = ("is_pretrained", "is_random", "is_ssl", "is_adv", "is_ablation")
FLEX_FAMILIES = {"ResNetFlex": "ResNet", "ViTFlex": "ViT", "ConvNeXtFlex": "ConvNeXt"}
METADATA = ("arch", "arch_family", "dataset", "seed", "n_params", "n_samples", "samples_per_class", "n_samples_seen",
            "total_flops", "acc", *FLAGS, "ssl_method", "latest")
TABLE_COLUMNS = ("model_id", "epoch", "region", "score", "arch_family", "dataset", "samples_per_class",
                 "n_params", "n_samples_seen", "total_flops", *FLAGS)
RESULTS_COLUMNS = ("benchmark", "status", "score", "family", "model_id", "epoch")


@dataclass(frozen=True)
class Experiment:
    """One of the study's fits: which rows, which resource(s) on the x axis, which law."""
    name: str
    label: str  # x axis
    variables: tuple[str, ...]  # table columns
    scales: tuple[float, ...]  # the study's X_scaler: x = column / scale
    law: str  # a key of law.LAWS
    datasets: tuple[str, ...]
    study: str  # the study's configs this reproduces
    arch_families: tuple[str, ...] | None = None
    samples_per_class: tuple[int, ...] | None = None
    capped_families: tuple[str, ...] = ()  # only trained on all samples (0) or 300 per class
    regions: tuple[str, ...] = ALL_REGIONS

    def filters(self) -> dict:
        """The row filters, as written to scaling_fit.json."""
        described = {k: v for k, v in asdict(self).items() if k in ("datasets", "arch_families", "samples_per_class")}
        described.update(excluded_flags=list(FLAGS), merged_families=FLEX_FAMILIES,
                         checkpoint="each model's latest epoch in the table (the study: final checkpoints)")
        if self.capped_families:
            described["samples_per_class_of_capped_families"] = {"families": list(self.capped_families),
                                                                  "samples_per_class": [0, 300]}
        return described


_IN_EC = ("imagenet", "ecoset")
_CAPPED = ("ConvNeXt", "ViT")
EXPERIMENTS = (
    Experiment("compute", "compute C (training FLOPs)", ("total_flops",), (1e13,), "power_law", _IN_EC,
               "configs/compute/compute_{neuro,behavior}.yaml"),
    Experiment("compute_strong_prior", "compute C (training FLOPs), ResNet/EfficientNet/CORnet-S/AlexNet",
               ("total_flops",), (1e13,), "power_law", _IN_EC, "configs/region/*/*_group1.yaml",
               arch_families=("ResNet", "EfficientNet", "CORnet-S", "AlexNet")),
    Experiment("compute_weak_prior", "compute C (training FLOPs), ConvNeXt/ViT", ("total_flops",), (1e13,),
               "shifted_power_law", _IN_EC, "configs/region/*/*_group2.yaml", arch_families=_CAPPED),
    Experiment("parameters", "parameters N (full training sets)", ("n_params",), (1e5,), "power_law", _IN_EC,
               "configs/parameter/parameter_scaling.yaml", samples_per_class=(0,)),
    Experiment("samples", "samples seen D (ImageNet)", ("n_samples_seen",), (1e4,), "power_law", ("imagenet",),
               "configs/sample/imagenet_scaling.yaml", capped_families=_CAPPED),
    Experiment("samples_ecoset", "samples seen D (EcoSet)", ("n_samples_seen",), (1e4,), "power_law", ("ecoset",),
               "configs/sample/ecoset_scaling.yaml", capped_families=_CAPPED),
    Experiment("joint", "parameters N and samples seen D", ("n_params", "n_samples_seen"), (1e5, 1e4), "joint",
               _IN_EC, "configs/compute/chinchilla.yaml", capped_families=_CAPPED, regions=("average",)),
)


def study_table() -> pd.DataFrame:
    """The study's published scores with each checkpoint's metadata (``data/study_scores.csv``)."""
    table = pd.read_csv(STUDY_TABLE)
    table.attrs["source"] = str(STUDY_TABLE)
    return table


def from_results(results: pd.DataFrame) -> pd.DataFrame:
    """Our results table (one row per model x benchmark) as a fit's input: the ``ok`` rows of ``spvvs`` models on
    the study's five benchmarks, joined by (model id, epoch) to the study's metadata (an empty epoch: the model's
    final checkpoint). Rows that cannot be joined are dropped with a warning."""
    _require(results, RESULTS_COLUMNS, "results table", "pass the table of `brainscore_plugins.scale.results.read()`")
    rows = results[(results["status"] == "ok") & (results["family"] == "spvvs")
                   & results["benchmark"].isin(list(BENCHMARK_REGIONS))]
    keep = [c for c in ("identifier", "model_id", "epoch", "benchmark", "score") if c in rows]
    rows = rows[keep].astype({"model_id": str, "benchmark": str, "score": float}).copy()
    study = study_table()
    metadata = study.drop_duplicates(["model_id", "epoch"]).set_index(["model_id", "epoch"])[list(METADATA)]
    final = study[study["latest"]].groupby("model_id")["epoch"].max()
    epoch = pd.to_numeric(rows["epoch"], errors="coerce")
    rows["epoch"] = epoch.fillna(rows["model_id"].map(final)).astype("Int64")
    joined = rows.join(metadata, on=["model_id", "epoch"])
    unjoined = joined["arch_family"].isna()
    if unjoined.any():
        unknown = ~joined.loc[unjoined, "model_id"].isin(final.index)
        _logger.warning("scaling: dropped %d of %d results rows without the study's metadata: %d of a model id the "
                        "study does not list, %d of an epoch it did not score (e.g. %s)", unjoined.sum(), len(rows),
                        unknown.sum(), (~unknown).sum(), ", ".join(_examples(joined[unjoined])))
    joined = joined[~unjoined].copy()
    joined["region"] = joined["benchmark"].map(BENCHMARK_REGIONS)
    joined["epoch"] = joined["epoch"].astype(int)
    for flag in (*FLAGS, "latest"):
        joined[flag] = joined[flag].astype(bool)
    joined.attrs["source"] = f"results table ({len(joined)} of {len(results)} rows joined to {STUDY_TABLE.name})"
    return joined.reset_index(drop=True)


def points(table: pd.DataFrame, experiment: Experiment) -> dict[str, pd.DataFrame]:
    """Per region, the points of ``experiment``: one row per model (model_id, its variables, score)."""
    _require(table, TABLE_COLUMNS, "table", "pass study_table() or from_results(results)")
    rows = table[table["dataset"].isin(experiment.datasets) & ~table[list(FLAGS)].astype(bool).any(axis=1)]
    family = rows["arch_family"].replace(FLEX_FAMILIES)
    if experiment.arch_families is not None:
        rows, family = rows[family.isin(experiment.arch_families)], family[family.isin(experiment.arch_families)]
    if experiment.samples_per_class is not None:
        rows = rows[rows["samples_per_class"].isin(experiment.samples_per_class)]
    if experiment.capped_families:
        rows = rows[~family.loc[rows.index].isin(experiment.capped_families) | rows["samples_per_class"].isin([0, 300])]
    rows = rows[rows["epoch"] == rows.groupby("model_id")["epoch"].transform("max")]
    _check(rows, experiment)
    per_model = rows.groupby(["model_id", "region"])["score"].mean().unstack("region")
    variables = rows.groupby("model_id")[list(experiment.variables)].first()
    found = {}
    for region in experiment.regions:
        members = list(COMPOSITES.get(region, (region,)))
        scores = per_model.reindex(columns=members)
        complete = scores.notna().all(axis=1)
        if region in COMPOSITES and (incomplete := (scores.notna().any(axis=1) & ~complete).sum()):
            _logger.warning("scaling: %s %s leaves out %d models without a score on each of %s", experiment.name,
                            region, incomplete, ", ".join(members))
        score = scores[complete].mean(axis=1).rename("score")
        found[region] = variables.join(score, how="inner").reset_index()
    return found


def _check(rows: pd.DataFrame, experiment: Experiment) -> None:
    if rows["score"].isna().any():
        raise ScalingInputError(f"{rows['score'].isna().sum()} scores are NaN ({', '.join(_examples(rows))}); drop "
                                f"those rows or score the models again")
    if (rows["score"] >= 1).any():
        raise ScalingInputError(f"{(rows['score'] >= 1).sum()} scores are >= 1, where the misalignment 1 - score has "
                                f"no logarithm ({', '.join(_examples(rows[rows['score'] >= 1]))}); pass ceiled scores")
    for column in experiment.variables:
        values = pd.to_numeric(rows[column], errors="coerce")
        bad = ~(np.isfinite(values) & (values > 0))
        if bad.any():
            raise ScalingInputError(f"{column} must be positive and finite for the {experiment.name} fit, but "
                                    f"{bad.sum()} rows have {sorted(set(values[bad].astype(str)))[:3]} "
                                    f"({', '.join(_examples(rows[bad]))}); fix or drop those rows")


def _require(table: pd.DataFrame, columns: tuple[str, ...], what: str, fix: str) -> None:
    missing = [c for c in columns if c not in table.columns]
    if missing:
        raise ScalingInputError(f"the {what} lacks column(s) {', '.join(missing)}; {fix}")


def _examples(rows: pd.DataFrame, count: int = 3) -> list[str]:
    return [f"{m} ep{e}" for m, e in rows[["model_id", "epoch"]].drop_duplicates().head(count).itertuples(index=False)]
