"""Generate brainscore_plugins/scale/data/study_scores.csv and site_scores.csv from the study's published score tables.

    python scripts/build_study_scores.py [--reference DIR] [--output FOLDER]

DIR holds scaling-primate-vvs's ``benchmark_scores.csv`` (every model's final checkpoint) and
``benchmark_scores_ckpts.csv`` (every epoch of 43 training runs); by default ``../shared/reference/scaling_primate_vvs``
beside the repository. One row per published (model id, epoch, benchmark) score, with what a scaling fit needs of the
model (parameters, samples, samples seen, compute) and the study's flags. Benchmarks are named as Brain-Score names
them today (the study's ``movshon.`` / ``dicarlo.`` prefixes dropped); ``region`` is V1, V2, V4, IT or behavior.
Where the final-checkpoint table and the per-epoch table both hold a (model id, epoch, benchmark), the first wins.
``site_scores.csv``: the Brain-Score site's scores of the study's final checkpoints (``benchmark_scores_brainscore.csv``,
one column per benchmark or aggregate), one row per (model id, benchmark) with a number.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_REFERENCE = ROOT.parent / "shared" / "reference" / "scaling_primate_vvs"
OUTPUT = ROOT / "brainscore_plugins" / "scale" / "data"
COLUMNS = ["model_id", "epoch", "latest", "benchmark", "region", "score", "arch", "arch_family", "dataset", "seed",
           "n_params", "n_samples", "samples_per_class", "n_samples_seen", "total_flops", "acc", "is_pretrained",
           "is_random", "is_ssl", "ssl_method", "is_adv", "is_ablation"]


def study_scores(reference: Path) -> pd.DataFrame:
    final = pd.read_csv(reference / "benchmark_scores.csv").rename(columns={"n_epochs": "epoch"})
    final["latest"] = True
    epochs = pd.read_csv(reference / "benchmark_scores_ckpts.csv").drop(columns="epochs").rename(
        columns={"ckpt": "epoch"})
    epochs["latest"] = False
    table = pd.concat([final, epochs], ignore_index=True)
    table["benchmark"] = table["benchmark_name"].str.replace(r"^(movshon|dicarlo)\.", "", regex=True)
    table["region"] = table["region"].where(table["region"].isin(["V1", "V2", "V4", "IT"]), "behavior")
    table = table.drop_duplicates(["model_id", "epoch", "benchmark"])
    for flag in ("is_pretrained", "is_random", "is_ssl", "is_adv", "is_ablation"):
        table[flag] = table[flag].eq(True)
    table["epoch"] = table["epoch"].astype(int)
    return table.reindex(columns=COLUMNS).sort_values(["model_id", "epoch", "benchmark"])


def site_scores(reference: Path) -> pd.DataFrame:
    wide = pd.read_csv(reference / "benchmark_scores_brainscore.csv", dtype=str)
    table = wide.melt(id_vars="model_id", var_name="benchmark", value_name="score")
    table["score"] = pd.to_numeric(table["score"], errors="coerce")  # "X": not scored
    return table.dropna(subset="score").sort_values(["model_id", "benchmark"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--reference", type=Path, default=DEFAULT_REFERENCE)
    parser.add_argument("--output", type=Path, default=OUTPUT, help="folder to write both files into")
    args = parser.parse_args()
    for name, table in (("study_scores.csv", study_scores(args.reference)), ("site_scores.csv",
                                                                            site_scores(args.reference))):
        table.to_csv(args.output / name, index=False, float_format="%.10g")
        print(f"{args.output / name}: {len(table)} scores of {table.model_id.nunique()} model ids", file=sys.stderr)


if __name__ == "__main__":
    main()
