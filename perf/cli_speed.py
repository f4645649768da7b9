"""How long the catalog commands take, as a user runs them: a fresh interpreter each time.

    python perf/cli_speed.py [--repeats 5]

Times ``brainscore-plugins list``, ``list --checkpoints``, ``list --json <glob>``, ``list <glob matching nothing>``
(exit 2 with a corrected glob) and ``info``, each the median of ``--repeats`` runs of ``python -m
brainscore_plugins``, against two references measured in the same run: a bare interpreter (``python -c pass``) and
one that imports torch (what every command paid before the catalogs were read without the family modules). The last
line is one JSON object: seconds per command, and each as a multiple of the bare interpreter.
"""
from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
COMMANDS = {
    "list": ["list"],
    "list_checkpoints": ["list", "--checkpoints"],
    "list_json_glob": ["list", "--json", "spvvs_resnet*_imagenet_full"],
    "list_no_match": ["list", "resnt18*"],
    "info": ["info", "resnet18_imagenet_full"],
}
REFERENCES = {"python": ["-c", "pass"], "import_torch": ["-c", "import torch"]}


def _seconds(arguments: list[str], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        subprocess.run([sys.executable, *arguments], cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                       check=False, timeout=300)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    seconds = {name: _seconds(arguments, args.repeats) for name, arguments in REFERENCES.items()}
    for name, arguments in COMMANDS.items():
        seconds[name] = _seconds(["-m", "brainscore_plugins", *arguments], args.repeats)
        print(f"{name}: {seconds[name]:.3f} s", file=sys.stderr)
    print(json.dumps({"seconds": {k: round(v, 3) for k, v in seconds.items()},
                      "x_bare_python": {k: round(v / seconds["python"], 1) for k, v in seconds.items()
                                        if k != "python"},
                      "repeats": args.repeats}))


if __name__ == "__main__":
    main()
