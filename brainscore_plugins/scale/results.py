"""The results table: one row per model x benchmark score, in a Parquet file that only ever grows by whole rows.

Every write replaces the file atomically (a temporary file in the same folder, then ``os.replace``) under an
exclusive lock on ``<file>.lock``, so a reader never sees half a table, concurrent writers lose nothing, and a sweep
killed midway leaves the rows it finished. A configuration (:data:`KEY`: identifier, benchmark, preprocessing
pipeline and arithmetic precision) has at most one row: a new row replaces a failed one; an ``ok`` row is never
replaced (:func:`append` drops the newcomer).

Schema ``SCHEMA_VERSION`` (the columns of :data:`COLUMNS`). A table of an older schema is migrated when read (version 0:
a table without ``schema_version``, e.g. written by hand or an earlier export, holding at least identifier,
benchmark and score; version 1: no ``metric``, ``unit`` and ``preprocessing``; its scores were all fractions, the
Algonauts ones included, so its rows get unit ``fraction``, metric ``brainscore`` ('' on an Algonauts benchmark: it
recorded none) and preprocessing ``unknown``; version 2: no ``extractor`` and ``precision``, so its rows get
extractor ``unknown`` and precision ``float32``, the only one there was); a newer one is refused with the fix
(upgrade).
"""
from __future__ import annotations

import fnmatch
from pathlib import Path

import numpy as np
import pandas as pd
from region_commitment import atomic
from region_commitment.atomic import replacing

from .. import settings
from ..errors import ResultsTableError
from . import units

SCHEMA_VERSION = 3
OK, FAILED = "ok", "failed"
# column -> pandas dtype; strings are "" when absent, numbers NaN
COLUMNS = {
    "identifier": "string", "benchmark": "string", "status": "string",
    "score": "float64", "error": "float64", "ceiling": "float64", "raw": "float64", "metric": "string",
    "unit": "string", "error_message": "string",
    "family": "string", "model_id": "string", "arch": "string", "dataset": "string", "epoch": "Int64",
    "layers": "string", "commitment_source": "string", "preprocessing": "string", "extractor": "string",
    "precision": "string",
    "published_score": "float64", "published_difference": "float64",
    "package_version": "string", "brainscore_vision_version": "string",
    "timestamp": "string", "wall_s": "float64", "peak_rss_mb": "float64", "schema_version": "Int64",
}
REQUIRED_V0 = ("identifier", "benchmark", "score")
MAX_ROWS = 2_000_000  # every catalogued checkpoint on ~170 benchmarks; about 2 GB once read
MAX_DECODED_BYTES = 1 << 30  # the results columns, decompressed (still encoded) as the file's metadata declares
FILTERS = ("identifier", "benchmark", "family", "arch", "dataset", "status")
KEY = ("identifier", "benchmark", "preprocessing", "precision")  # one row per key: what changes the numbers


def default_path() -> Path:
    """``results.parquet`` in the user data folder (``$BRAINSCORE_PLUGINS_DATA``)."""
    return settings.data_dir() / "results.parquet"


def frame(rows: list[dict]) -> pd.DataFrame:
    """``rows`` as a table of the current schema (missing columns empty, every column its dtype)."""
    table = pd.DataFrame(rows, columns=list(COLUMNS))
    return _typed(table)


def _typed(table: pd.DataFrame) -> pd.DataFrame:
    for column, dtype in COLUMNS.items():
        if dtype == "string":
            table[column] = table[column].astype("string").fillna("")
        else:
            table[column] = pd.to_numeric(table[column], errors="coerce").astype(dtype)
    return table[list(COLUMNS)]


def read(path: str | Path | None = None, where: dict | None = None) -> pd.DataFrame:
    """The table at ``path`` (default :func:`default_path`), migrated to the current schema; an empty table when the
    file does not exist. ``where`` (column -> value) keeps only the rows with those values, read as Parquet row
    filters (columns the file lacks, e.g. in an older schema, are not filtered here).

    Raises:
        ResultsTableError: not a Parquet results table, or one written by a newer version.
    """
    path = Path(path or default_path())
    if not path.exists():
        return frame([])
    try:
        columns = _bounded_columns(path)
        filters = [(column, "==", value) for column, value in (where or {}).items()
                   if value is not None and column in columns] or None
        table = pd.read_parquet(path, columns=columns, filters=filters)
    except ResultsTableError:
        raise
    except Exception as error:  # pyarrow's errors have no common base worth naming
        raise ResultsTableError(f"{path} is not a results table (Parquet): {str(error).splitlines()[0]}; pass "
                                f"another --results file or move this one away") from None
    return _migrated(table, path)


def _bounded_columns(path: Path) -> list[str]:
    """The table's columns that a results table has, once its metadata shows that reading them stays within
    :data:`MAX_ROWS` rows and :data:`MAX_DECODED_BYTES` (a few-kilobyte file may declare millions of rows);
    columns of no schema are never read.

    Raises:
        ResultsTableError: a table beyond those bounds.
    """
    import pyarrow.parquet as pq

    metadata = pq.ParquetFile(path).metadata
    names = [metadata.schema.column(i).name for i in range(metadata.num_columns)]
    wanted = [name for name in dict.fromkeys(names) if name in COLUMNS]
    positions = [i for i, name in enumerate(names) if name in COLUMNS]
    decoded = sum(metadata.row_group(g).column(i).total_uncompressed_size
                  for g in range(metadata.num_row_groups) for i in positions)
    if metadata.num_rows > MAX_ROWS or decoded > MAX_DECODED_BYTES:
        raise ResultsTableError(
            f"{path} declares {metadata.num_rows:,} rows and {decoded:,} bytes of results columns, beyond what a "
            f"results table holds ({MAX_ROWS:,} rows, {MAX_DECODED_BYTES:,} bytes): it is damaged or not ours; pass "
            f"another --results file or move this one away")
    return wanted


def _migrated(table: pd.DataFrame, path: Path) -> pd.DataFrame:
    versions = set(table["schema_version"].dropna().astype(int)) if "schema_version" in table else {0}
    if max(versions, default=0) > SCHEMA_VERSION:
        raise ResultsTableError(f"{path} has schema version {max(versions)}, newer than this brainscore-plugins "
                                f"reads ({SCHEMA_VERSION}); upgrade brainscore-plugins")
    missing = [column for column in REQUIRED_V0 if column not in table]
    if missing:
        raise ResultsTableError(f"{path} is not a results table: no column {', '.join(missing)}; pass another "
                                f"--results file")
    table = table.reindex(columns=list(COLUMNS))
    if 0 in versions:  # version 0: scores without status; a score that is not a number failed
        table["status"] = np.where(pd.to_numeric(table["score"], errors="coerce").notna(), OK, FAILED)
    if versions & {0, 1}:  # before version 2: every score a fraction, its metric and preprocessing unrecorded
        fraction = table["benchmark"].astype(str).map(units.unit) == units.FRACTION
        table["unit"] = table["unit"].fillna(units.FRACTION)
        table["metric"] = table["metric"].fillna(pd.Series(np.where(fraction, units.BRAINSCORE, ""), table.index))
        table["preprocessing"] = table["preprocessing"].fillna("unknown")
    if versions & {0, 1, 2}:  # before version 3: extractor unrecorded, every forward pass in float32
        table["extractor"] = table["extractor"].fillna("unknown")
        table["precision"] = table["precision"].fillna("float32")
    table["schema_version"] = SCHEMA_VERSION
    return _typed(table)


def check_writable(path: str | Path | None = None) -> Path:
    """The table's path (default :func:`default_path`), once it is known that a row can be written there: its folder
    can be created and written, and an existing table reads. Called before anything is scored.

    Raises:
        ResultsTableError: it cannot (the message names the file and the fix).
    """
    path = Path(path or default_path())
    try:
        atomic.probe_writable(path.parent)
        if path.exists() and not path.is_file():
            raise IsADirectoryError(f"{path} is not a file")
    except OSError as error:
        raise ResultsTableError(f"cannot write the results table {path} ({error.strerror or error}); pass --results "
                                f"FILE in a writable folder, or set {settings.DATA} to one") from None
    read(path)  # a table that cannot be read fails now, not after the scoring
    return path


def append(rows: list[dict], path: str | Path | None = None) -> pd.DataFrame:
    """Add ``rows`` to the table at ``path`` (created with its folder if needed) and return the table written. A row
    replaces an earlier failed row of its :data:`KEY`; a key that already scored ``ok`` keeps that row."""
    from filelock import FileLock

    path = Path(path or default_path())
    path.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(f"{path}.lock"):
        table = read(path)
        new = frame(rows)
        new = new[~_keys(new).isin(_keys(table[table.status == OK]))]
        replaced = _keys(table).isin(_keys(new))
        table = pd.concat([table[~replaced], new], ignore_index=True) if len(table) else new
        with replacing(path) as temporary:
            table.to_parquet(temporary, index=False)
    return table


def key(columns: dict) -> tuple[str, ...]:
    """The :data:`KEY` of a row's ``columns``, as :func:`scored` gives it."""
    return tuple(columns[column] for column in KEY)


def _keys(table: pd.DataFrame) -> pd.MultiIndex:
    return pd.MultiIndex.from_frame(table[list(KEY)].astype(object))


def scored(table: pd.DataFrame, retry_failed: bool = False) -> set[tuple[str, str, str, str]]:
    """The :data:`KEY` tuples a sweep skips: every row's, or only the ``ok`` ones' with ``retry_failed``. A row of
    schema 1 (preprocessing ``unknown``) counts for the default pipeline (``''``), so that an upgrade scores nothing
    twice."""
    done = table if not retry_failed else table[table.status == OK]
    return {(identifier, benchmark, "" if preprocessing == "unknown" else preprocessing, precision)
            for identifier, benchmark, preprocessing, precision in done[list(KEY)].itertuples(index=False)}


def select(table: pd.DataFrame, epoch: int | None = None, **patterns: str | None) -> pd.DataFrame:
    """The rows whose ``FILTERS`` columns match the given shell globs (and ``epoch``)."""
    unknown = set(patterns) - set(FILTERS)
    if unknown:
        raise ValueError(f"cannot filter on {', '.join(sorted(unknown))}; filters: {', '.join(FILTERS)}")
    keep = pd.Series(True, index=table.index)
    for column, pattern in patterns.items():
        if pattern is not None:
            keep &= table[column].map(lambda value: fnmatch.fnmatchcase(value, pattern)).astype(bool)
    if epoch is not None:
        keep &= table.epoch.eq(epoch).fillna(False).astype(bool)
    return table[keep]


def export(table: pd.DataFrame, path: str | Path, kind: str) -> None:
    """Write ``table`` as ``csv`` or ``json`` (records) to ``path`` atomically."""
    with replacing(Path(path)) as temporary:
        if kind == "csv":
            table.to_csv(temporary, index=False)
        else:
            table.to_json(temporary, orient="records", indent=1)
