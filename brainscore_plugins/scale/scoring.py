"""Scoring models into results rows: ``brainscore_vision.score`` itself, timed, with what produced the number.

:func:`score_model` runs one model on its benchmarks and returns one row per benchmark (:mod:`.results` schema); a
benchmark that fails gives a ``failed`` row with the error instead of stopping the others. :func:`check_benchmarks`
refuses identifiers no installed plugin registers, before anything runs.
"""
from __future__ import annotations

import contextlib
import datetime
import difflib
import json
import math
import re
import resource
import sys
import time
from dataclasses import dataclass

from .. import catalog, families, settings
from ..errors import BenchmarkNotFoundError
from ..settings import installed_version
from . import published_scores, results, units


@dataclass(frozen=True)
class Task:
    """One model (a registered identifier) and the benchmarks to score it on."""
    identifier: str
    benchmarks: tuple[str, ...]


def known_benchmarks() -> list[str]:
    """Every benchmark identifier a plugin of the installed brainscore_vision registers (ours once linked)."""
    from pathlib import Path

    import brainscore_vision
    from brainscore_core.plugin_management.parse_plugin_changes import get_plugin_ids

    root = Path(brainscore_vision.__file__).parent
    folders = [d.name for d in (root / "benchmarks").iterdir()
               if d.is_dir() and not d.name.startswith(("_", ".")) and (d / "__init__.py").is_file()]
    return get_plugin_ids("benchmarks", folders, str(root))


def check_benchmarks(benchmarks: list[str]) -> None:
    """Raise :class:`BenchmarkNotFoundError` (with close matches) for identifiers no installed plugin registers."""
    known = set(known_benchmarks())
    for benchmark in benchmarks:
        if benchmark not in known:
            close = difflib.get_close_matches(benchmark, known, n=3)
            hint = f"did you mean {', '.join(close)}?" if close else "see brainscore_vision/benchmarks/"
            raise BenchmarkNotFoundError(f"unknown benchmark {benchmark!r}: no installed Brain-Score plugin "
                                         f"registers it; {hint} (our own need `brainscore-plugins link`)")


def score_model(task: Task) -> list[dict]:
    """One row per benchmark of ``task``: ``brainscore_vision.score(identifier, benchmark)``, or the failure. The
    temporary files made meanwhile go to a folder removed afterwards (:func:`scratch_folder`)."""
    with scratch_folder():
        return [score_row(task.identifier, benchmark)[0] for benchmark in task.benchmarks]


@contextlib.contextmanager
def scratch_folder():
    """Make ``tempfile``'s folder a new temporary one for the block, and remove it after: Brain-Score leaves a
    folder with a probe image in the temporary folder per process (``brainscore-resolution-probe-*``, never removed),
    one per model of a sweep otherwise."""
    import tempfile
    before = tempfile.tempdir
    with tempfile.TemporaryDirectory(prefix="brainscore-plugins-scoring-", ignore_cleanup_errors=True) as folder:
        tempfile.tempdir = folder
        try:
            yield folder
        finally:
            tempfile.tempdir = before


def failed_rows(task: Task, message: str) -> list[dict]:
    """A ``failed`` row per benchmark of a model whose scoring did not answer (its process died, say)."""
    return [{**described(task.identifier, b, math.nan)[0], "benchmark": b, "status": results.FAILED,
             "score": math.nan, "error_message": message} for b in task.benchmarks]


def score_row(identifier: str, benchmark: str, entry: catalog.Entry | None = None) -> tuple[dict, Exception | None]:
    """``brainscore_vision.score`` of one pair as a results row (status ``failed`` with the error's first line on an
    exception; ``metric`` and ``unit`` from the score's attributes where it names them), and the exception.
    ``entry``: the catalog entry of ``identifier`` (less any ``-fmri``), where the caller resolved it already."""
    import brainscore_vision

    start = time.perf_counter()
    failure = None
    try:
        with contextlib.redirect_stdout(sys.stderr):  # Brain-Score's [pre-flight] lines: chatter, not results
            score = brainscore_vision.score(identifier, benchmark)
        values = {"status": results.OK, "score": _number(score), "error": _number(score.attrs.get("error")),
                  "ceiling": _number(score.attrs.get("ceiling")), "raw": _number(score.attrs.get("raw")),
                  "error_message": ""}
        values.update({k: str(score.attrs[k]) for k in ("metric", "unit") if score.attrs.get(k) is not None})
    except Exception as error:  # recorded in the row; the caller goes on with the next pair
        failure = error
        values = {"status": results.FAILED, "score": math.nan, "error_message": first_line(error)}
    wall = time.perf_counter() - start
    columns, unreadable = described(identifier, benchmark, values["score"], entry)
    if unreadable is not None and failure is None:  # scored, but its commitment or catalog row cannot be read
        failure = unreadable
        values = {"status": results.FAILED, "score": math.nan, "error_message": first_line(unreadable)}
    return {**columns, **values, "benchmark": benchmark, "wall_s": wall,
            "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}, failure


def described(identifier: str, benchmark: str, score: float,
              entry: catalog.Entry | None = None) -> tuple[dict, Exception | None]:
    """(:func:`model_columns`, None); or, when describing the model raises (a damaged commitment file, say), the
    columns that need nothing read and the error: a row is written whatever the model's files hold."""
    try:
        return model_columns(identifier, benchmark, score, entry), None
    except Exception as error:  # noqa: BLE001 - one model's data never stops a sweep
        columns = {"identifier": identifier, "unit": units.unit(benchmark), "schema_version": results.SCHEMA_VERSION,
                   "timestamp": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")}
        with contextlib.suppress(Exception):  # the row's key: a later sweep counts this failure as scored
            columns.update(configuration(identifier, entry))
        return columns, error


_UNPRINTABLE = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\ud800-\udfff]")


def first_line(error: BaseException, kind: bool = True) -> str:
    """``<kind>: <the message's first line>`` (at most 1,000 characters): what a row keeps of a failure; without
    ``kind``, the line alone. Control characters (a terminal escape) and lone surrogates (a path's undecodable
    bytes) are written as ``\\xNN`` / ``\\udcNN``, so the line is valid UTF-8 and prints as it is."""
    text = str(error).strip()
    line = text.splitlines()[0] if text else ""
    line = _UNPRINTABLE.sub(lambda m: m.group(0).encode("unicode_escape", "backslashreplace").decode("ascii"), line)
    return f"{type(error).__name__}: {line}"[:1000] if kind else line


def _number(value) -> float:
    """A scalar of a Score (or NaN when absent or not one number)."""
    import numpy as np
    if value is None:
        return math.nan
    if hasattr(value, "sel") and "aggregation" in getattr(value, "dims", ()):
        value = value.sel(aggregation="center")
    array = np.asarray(value, dtype=float) if np.size(value) == 1 else None
    return math.nan if array is None else float(array.reshape(()))


def configuration(identifier: str, entry: catalog.Entry | None = None) -> dict[str, str]:
    """What ``identifier`` is scored with now, beyond its weights: the ``preprocessing`` pipeline ('' for its
    family's default), the ``extractor`` and the ``precision`` (from the environment; a value the scoring refuses is
    kept as given, so the failed row names it). ``entry``: as in :func:`score_row`."""
    from .. import factory

    base = identifier.removesuffix(families.FMRI_SUFFIX)
    try:
        preprocessing = factory.preprocessing_variant(base, entry=entry or catalog.resolve(base))
    except ValueError:  # an unknown pipeline requested: the score failed with this error, the row keeps the name
        preprocessing = settings.preprocessing()
    return {"preprocessing": preprocessing, "extractor": _as_set(settings.extractor, settings.EXTRACTOR),
            "precision": _as_set(settings.precision, settings.PRECISION)}


def _as_set(read, variable: str) -> str:
    try:
        return read()
    except ValueError:
        return settings.given(variable)


def model_columns(identifier: str, benchmark: str, score: float, entry: catalog.Entry | None = None) -> dict:
    """The row's columns that describe the model, its preprocessing, extractor, precision and commitment, the
    benchmark's unit and default metric (:mod:`.units`), and the published score (in that unit). ``entry``: as in
    :func:`score_row`."""
    from .. import factory, provenance

    base = identifier.removesuffix(families.FMRI_SUFFIX)
    entry = entry or catalog.resolve(base)
    committed = None if base != identifier else factory.region_map(identifier, entry)
    layers = "" if committed is None else json.dumps({**committed[0], "behavior": committed[1]})
    source = entry.commitment_source if entry.region_layer_map else provenance.map_provenance(base, entry)["kind"]
    expected = published_scores.published_score(entry, benchmark)
    return {"identifier": identifier, "family": entry.family, "model_id": entry.model_id, "arch": entry.arch,
            "dataset": entry.dataset, "epoch": entry.epoch, "layers": layers,
            "commitment_source": "" if base != identifier else source, **configuration(identifier, entry),
            "unit": units.unit(benchmark), "metric": units.default_metric(benchmark),
            "published_score": expected, "published_difference": score - expected,
            "package_version": installed_version("brainscore-plugins"),
            "brainscore_vision_version": installed_version("brainscore_vision"),
            "timestamp": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "schema_version": results.SCHEMA_VERSION}
