"""Writing a family's catalog CSV (used by the generator scripts beside this file)."""
from __future__ import annotations

import argparse
import csv
from pathlib import Path
from typing import Callable

from brainscore_plugins import families
from brainscore_plugins.catalog import CSV_COLUMNS


def output_argument(parser) -> None:
    """``--output FILE``: where a generator script writes (default: the family's catalog CSV in the package)."""
    parser.add_argument("--output", type=Path, help="write the CSV here instead of the package's catalog file")


def write_rows(prefix: str, rows: list[dict], out: Path | None = None) -> Path:
    """Write the catalog CSV of family ``prefix`` (columns :data:`brainscore_plugins.catalog.CSV_COLUMNS`) to
    ``out`` (default: the family's catalog file)."""
    out = out or families.get(prefix).catalog_path
    out.parent.mkdir(parents=True, exist_ok=True)
    with open(out, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=CSV_COLUMNS, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
    return out


def generate(prefix: str, description: str, build_rows: Callable[[], list[dict]],
             summary: Callable[[list[dict]], str]) -> None:
    """The command line of a generator without inputs of its own: ``--output``, write the rows, print a summary."""
    parser = argparse.ArgumentParser(description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    output_argument(parser)
    rows = build_rows()
    out = write_rows(prefix, rows, parser.parse_args().output)
    print(f"{out}: {summary(rows)}")
