"""A static HTML page of scoring results: a sortable, filterable table that fits the page's width (the main columns
shown, every other one in a column chooser), failed rows marked and listed with their whole error messages, and
sections of full-width images (the figures of :mod:`.report_figures`, layer-commitment plots), with links to each.

The page works opened from the file system (``file://``) with no network: its CSS and JavaScript are inline, the
table is embedded as JSON in a ``<script type="application/json">`` element and rendered with ``textContent`` (the
identifiers, benchmark names and error messages in it are untrusted), and images are copied beside it.

Units and metrics (:mod:`.units`) are labelled: a table with a ``unit`` column shows it, marks percent values of the
score columns (:data:`UNIT_COLUMNS`) with ``%`` and sorts those columns by unit first, so percent and fractions are
never ranked together; ``metric`` cells show the metric's label (``raw r² (no noise ceiling)``); a legend above the
table names the units and metrics present.
"""
from __future__ import annotations

import contextlib
import datetime as _dt
import html
import json
import math
import os
import re
import shutil
import tempfile
from importlib import resources
from pathlib import Path

import numpy as np
import pandas as pd
from region_commitment.atomic import replacing

from . import units
from ..errors import ReportInputError

__all__ = ["ReportInputError", "write_report", "REQUIRED_COLUMNS", "DEFAULT_COLUMNS"]

REQUIRED_COLUMNS = ("identifier", "benchmark", "score", "status")
# the columns shown at first (error_message too when a row failed), narrow enough for the page's width; every
# other column is a click away in the column chooser
DEFAULT_COLUMNS = ("identifier", "benchmark", "status", "score", "unit", "metric", "published_score",
                   "published_difference", "epoch")
UNIT_COLUMNS = ("score", "error", "ceiling", "published_score", "published_difference")  # in the row's unit
UNIT_NOTES = {units.FRACTION: "Brain-Score benchmarks, in [0, 1]",
              units.PERCENT: "Algonauts 2023 benchmarks, as the challenge reports them"}
TEMPLATE = "report_template.html"
_PLACEHOLDER = re.compile(r"\{\{(\w+)\}\}")
_JSON_ESCAPES = {"<": "\\u003c", ">": "\\u003e", "&": "\\u0026", "\u2028": "\\u2028", "\u2029": "\\u2029"}


def write_report(table: pd.DataFrame, output, *, images: dict[str, list[tuple[Path, str]]] | None = None,
                 title: str = "Brain-Score results") -> Path:
    """Write ``output/index.html`` (created if needed) for the results ``table`` (one row per model x benchmark),
    with ``images`` (section title -> ``(png path, caption)`` pairs) copied into ``output/images/``; return the
    page's path. Raises :class:`ReportInputError` (a ``ValueError``) for a table without the required columns or
    an image that does not exist, before writing anything."""
    _check_table(table)
    sections = _check_images(images)
    out = Path(output)
    if out.exists() and not out.is_dir():
        raise ReportInputError(f"report output {out} is a file, not a folder; pass a folder path (-o DIR)")
    out.mkdir(parents=True, exist_ok=True)
    figures = _copy_images(sections, out / "images")
    now = _dt.datetime.now(_dt.timezone.utc).replace(microsecond=0)
    values = {"title": html.escape(str(title)), "summary": html.escape(_summary(table)), "legend": _legend(table),
              "generated": now.strftime("%Y-%m-%d %H:%M UTC"), "generated_iso": now.isoformat(),
              "images": _images_html(figures), "failed": _failed_html(table),
              "contents": _contents_html(table, figures), "data": _script_json(_payload(table, title, now))}
    page = _PLACEHOLDER.sub(lambda m: values[m.group(1)], _template())  # one pass: filled text is never re-scanned
    target = out / "index.html"
    with replacing(target) as temporary:
        temporary.write_text(page, encoding="utf-8")
    return target


def _check_table(table) -> None:
    if not isinstance(table, pd.DataFrame):
        raise ReportInputError(f"the results table is a {type(table).__name__}, not a pandas DataFrame; "
                               "load it with pandas (e.g. pd.read_csv) first")
    names = [str(c) for c in table.columns]
    missing = [c for c in REQUIRED_COLUMNS if c not in names]
    if missing:
        raise ReportInputError(f"the results table lacks column(s) {', '.join(missing)}; pass a scoring results "
                               f"table with at least {', '.join(REQUIRED_COLUMNS)}")
    if len(set(names)) != len(names):
        duplicated = sorted({n for n in names if names.count(n) > 1})
        raise ReportInputError(f"the results table has duplicated column(s) {', '.join(duplicated)}; "
                               "rename or drop them")


def _check_images(images) -> list[tuple[str, list[tuple[Path, str]]]]:
    """``images`` as (section, [(existing path, caption)]) in order; every problem is raised before any copy."""
    if images is None:
        return []
    if not isinstance(images, dict):
        raise ReportInputError("images must map a section title to a list of (png path, caption) pairs; "
                               f"got a {type(images).__name__}")
    sections = []
    for section, items in images.items():
        checked = []
        for item in items:
            if not (isinstance(item, (tuple, list)) and len(item) == 2):
                raise ReportInputError(f"image {item!r} in section {section!r} is not a (png path, caption) pair; "
                                       "pass a list of (Path, str) tuples")
            path, caption = Path(item[0]), "" if item[1] is None else str(item[1])
            if not path.is_file():
                raise ReportInputError(f"image {path} (section {section!r}) does not exist; pass existing PNG "
                                       "files (write the plots first)")
            checked.append((path, caption))
        sections.append((str(section), checked))
    return sections


def _copy_images(sections, folder: Path) -> list[tuple[str, list[tuple[str, str]]]]:
    """Copy each image to ``folder`` under a safe unique name (``NNN-stem.png``); return the relative sources.
    Every copy is staged before any is moved into place, so a source inside ``folder`` is never overwritten
    before it is read."""
    staged, figures, number = [], [], 0
    if any(items for _, items in sections):
        folder.mkdir(parents=True, exist_ok=True)
    try:
        for section, items in sections:
            entries = []
            for path, caption in items:
                stem = re.sub(r"[^A-Za-z0-9_-]+", "-", path.stem).strip("-_")[:60] or "image"
                suffix = path.suffix.lower() if re.fullmatch(r"\.[a-z0-9]{1,5}", path.suffix.lower()) else ".png"
                name = f"{number:03d}-{stem}{suffix}"
                number += 1
                fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".{name}.", suffix=".tmp")
                os.close(fd)
                staged.append((tmp, folder / name))
                shutil.copyfile(path, tmp)
                os.chmod(tmp, 0o644)
                entries.append((f"images/{name}", caption))
            if entries:
                figures.append((section, entries))
        for tmp, final in staged:
            os.replace(tmp, final)
    finally:
        for tmp, _ in staged:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
    return figures


def _images_html(figures) -> str:
    parts = []
    for number, (section, entries) in enumerate(figures):
        heading = f"images-{number}"
        parts.append(f'<section class="images" aria-labelledby="{heading}">\n'
                     f'<h2 id="{heading}">{html.escape(section)}</h2>\n<div class="gallery">')
        for source, caption in entries:
            src, text = html.escape(source, quote=True), html.escape(caption, quote=True)
            parts.append(f'<figure><a href="{src}"><img src="{src}" alt="{text}"></a>'
                         f'<figcaption>{text}</figcaption></figure>')
        parts.append("</div>\n</section>")
    return "\n".join(parts)


def _failed_count(table: pd.DataFrame) -> int:
    return int((table["status"].astype("string") == "failed").sum())


def _failed_html(table: pd.DataFrame) -> str:
    """The failed rows' section; the page's script fills its list from the data (identifier, benchmark, message)."""
    failed = _failed_count(table)
    if not failed:
        return ""
    return ('<section class="failed" id="failed" aria-labelledby="failed-title">\n'
            f'<h2 id="failed-title">Failed rows ({failed})</h2>\n'
            '<div class="failures"><ol id="failed-list"></ol></div>\n</section>')


def _contents_html(table: pd.DataFrame, figures) -> str:
    """Links to the page's sections."""
    links = [("results-title", "Results table")]
    if _failed_count(table):
        links.append(("failed-title", f"Failed rows ({_failed_count(table)})"))
    links += [(f"images-{number}", section) for number, (section, _) in enumerate(figures)]
    items = "\n".join(f'<a href="#{target}">{html.escape(text)}</a>' for target, text in links)
    return f'<nav class="contents" aria-label="sections">{items}</nav>'


def _summary(table: pd.DataFrame) -> str:
    def count(n: int, noun: str) -> str:
        return f"{n} {noun}{'' if n == 1 else 's'}"

    failed = _failed_count(table)
    text = (f"{count(table['identifier'].nunique(), 'model')} \u00b7 {count(table['benchmark'].nunique(), 'benchmark')}"
            f" \u00b7 {count(len(table), 'row')}")
    return text + (f" ({failed} failed)" if failed else "")


def _legend(table: pd.DataFrame) -> str:
    """A paragraph naming the units and metrics in ``table`` ('' without a ``unit`` column)."""
    if "unit" not in table.columns:
        return ""
    present = [str(u) for u in dict.fromkeys(table["unit"].dropna()) if str(u)]
    parts = [f"{u}: {UNIT_NOTES.get(u, 'as the benchmark reports it')}" for u in sorted(present)]
    text = (f"Units \u2014 {'; '.join(parts)}. {', '.join(UNIT_COLUMNS)} are in their row's unit; sorting one of "
            f"them groups the rows by unit.") if parts else ""
    if "metric" in table.columns:
        metrics = sorted({str(m) for m in table["metric"].dropna() if str(m)})
        if metrics:
            text += f" Metrics \u2014 {'; '.join(f'{units.label(m)} ({m})' for m in metrics)}."
    return f'<p class="legend" id="legend">{html.escape(text.strip())}</p>' if text else ""


def _kind(series: pd.Series) -> str:
    """``int``, ``float`` or ``str``: how the page formats and sorts a column."""
    if pd.api.types.is_bool_dtype(series.dtype):
        return "str"
    inferred = pd.api.types.infer_dtype(series, skipna=True)
    if inferred == "integer":
        return "int"
    if inferred in ("floating", "mixed-integer-float", "decimal"):
        return "float"
    return "str"


def _jsonable(value):
    """A JSON value for one cell: missing (None, NA, NaN, NaT, +-inf) becomes null."""
    if value is None or value is pd.NA or value is pd.NaT:
        return None
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return float(value) if math.isfinite(value) else None
    if isinstance(value, str):
        return value
    if isinstance(value, (_dt.datetime, _dt.date)):
        return value.isoformat()
    with contextlib.suppress(TypeError, ValueError):
        isna = pd.isna(value)
        if np.ndim(isna) == 0 and bool(isna):
            return None
    return str(value)


def _payload(table: pd.DataFrame, title, now: _dt.datetime) -> dict:
    names = [str(c) for c in table.columns]
    columns = [{"name": name, "kind": _kind(table.iloc[:, i])} for i, name in enumerate(names)]
    cells = [[_jsonable(v) for v in table.iloc[:, i].tolist()] for i in range(len(names))]
    rows = [list(row) for row in zip(*cells)] if cells else [[] for _ in range(len(table))]
    display = [c for c in DEFAULT_COLUMNS if c in names]
    if "error_message" in names and (table["status"].astype("string") == "failed").any():
        display.append("error_message")
    return {"title": str(title), "generated": now.isoformat(), "columns": columns, "display": display, "rows": rows,
            "unitColumns": list(UNIT_COLUMNS), "metricLabels": dict(units.LABELS)}


def _script_json(payload: dict) -> str:
    """JSON that cannot end its ``<script>`` element or open markup: ``<``, ``>`` and ``&`` are \\u-escaped."""
    text = json.dumps(payload, ensure_ascii=False, allow_nan=False, separators=(",", ":"))
    return re.sub("[<>&\u2028\u2029]", lambda m: _JSON_ESCAPES[m.group(0)], text)


def _template() -> str:
    return resources.files(__package__).joinpath(TEMPLATE).read_text(encoding="utf-8")

