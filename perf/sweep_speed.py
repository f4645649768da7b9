"""Sweep throughput: the same models x benchmarks locally, with and without the pixel cache, and on a local Ray
instance with 1 and 2 workers.

    python perf/sweep_speed.py [--models 20] [--benchmark bsp-synthetic.IT-pls --benchmark bsp-synthetic-i2n]
                               [--run local_no_pixel_cache --run local ...]

The first ``--models`` checkpoints of ``spvvs_resnet18_imagenet_full``'s training run (forged: random weights of
the real ResNet-18 in the study's file layout, in a temporary mirror) on the bundled synthetic benchmarks, through
:func:`brainscore_plugins.scale.sweep.sweep` into a fresh results table per run: ``local_no_pixel_cache`` (one
process per model, one at a time, each preprocessing the images itself: ``$BRAINSCORE_PLUGINS_PIXEL_CACHE_GB=0``),
``local`` (the same with the pixel cache: the first model preprocesses, the others read), ``ray`` with a local
instance of 1 CPU, and of 2 CPUs (one CPU per model's task). The scores of the runs are compared pair by pair. The
last line is one JSON object: per run the seconds, models/hour and failures, and the largest score difference
between runs.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("BS_INSTALL_DEPENDENCIES", "no")
os.environ["RESULTCACHING_DISABLE"] = "1"
from brainscore_plugins import catalog, forge, settings  # noqa: E402
from brainscore_plugins.scale import results, sweep  # noqa: E402

RUNS = {"local_no_pixel_cache": {"engine": "local"}, "local": {"engine": "local"},
        "ray_1_worker": {"engine": "ray", "workers": 1}, "ray_2_workers": {"engine": "ray", "workers": 2}}
WITHOUT_PIXEL_CACHE = {"local_no_pixel_cache"}  # $BRAINSCORE_PLUGINS_PIXEL_CACHE_GB=0: each model preprocesses


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", type=int, default=20)
    parser.add_argument("--benchmark", action="append", dest="benchmarks")
    parser.add_argument("--run", action="append", dest="runs", choices=list(RUNS), help="default: all")
    args = parser.parse_args()
    benchmarks = args.benchmarks or ["bsp-synthetic.IT-pls", "bsp-synthetic-i2n"]
    identifiers = catalog.select(["spvvs_resnet18_imagenet_full.ep*"], checkpoints=True)[:args.models]
    report, tables = {}, {}
    with tempfile.TemporaryDirectory() as scratch:
        os.environ[settings.MIRROR] = str(Path(scratch) / "mirror")
        os.environ[settings.CACHE] = str(Path(scratch) / "cache")
        for identifier in identifiers:
            forge.forge_into_mirror(identifier, Path(scratch) / "mirror")
        for name in args.runs or RUNS:
            options = RUNS[name]
            os.environ[settings.PIXEL_CACHE] = "0" if name in WITHOUT_PIXEL_CACHE else "10"
            path = Path(scratch) / f"{name}.parquet"
            summary = sweep.sweep(identifiers, benchmarks, path, progress=False, **options)
            tables[name] = results.read(path).set_index(["identifier", "benchmark"]).score.sort_index()
            report[name] = {"seconds": round(summary.seconds, 1), "models_per_hour": round(summary.models_per_hour, 1),
                            "rows": summary.rows, "failed": summary.failed}
            print(name, report[name], flush=True)
    reference = next(iter(tables.values()))
    difference = max(float((table - reference).abs().max()) for table in tables.values())
    print(json.dumps({**report, "models": len(identifiers), "benchmarks": benchmarks,
                      "max_score_difference": difference, "cpus": os.cpu_count()}))


if __name__ == "__main__":
    main()
