"""How long ``brainscore-plugins report`` takes for large results tables, and how long the page takes to show them.

    python perf/report_speed.py [--rows 3000 --rows 100000] [--browser /path/to/chromium]

For each size, two synthetic tables in the results schema: rows of catalogued identifiers (spvvs epoch checkpoints
x benchmarks, with their study compute, so every figure is drawn) and rows of identifiers that are in no catalog
(a one-in-twenty failed). Timed: the ``report`` command in a fresh process (``--bootstrap 0 --quiet``) and, with a
headless Chromium (``--browser``, else ``tests/browser.py``'s search), the page until its table says how many rows it
shows. The reference, measured in the same run: pandas' own ``DataFrame.to_html`` of the same table. The last line
is one JSON object: seconds per size and kind, and the command's time as a multiple of ``to_html``.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))
from brainscore_plugins import catalog  # noqa: E402
from brainscore_plugins.scale import results  # noqa: E402

BENCHMARKS = ("MajajHong2015public.IT-pls", "MajajHong2015public.V4-pls", "FreemanZiemba2013public.V1-pls",
              "FreemanZiemba2013public.V2-pls", "Rajalingham2018public-i2n")


def _table(rows: int, catalogued: bool):
    if catalogued:
        names = catalog.list_models("*", family="spvvs", checkpoints=True)
    else:
        names = [f"lab_model_{i:06d}" for i in range(rows // len(BENCHMARKS) + 1)]
    records = []
    for i in range(rows):
        name, benchmark = names[(i // len(BENCHMARKS)) % len(names)], BENCHMARKS[i % len(BENCHMARKS)]
        entry = catalog.lookup(name)
        failed = not catalogued and i % 20 == 0
        records.append({"identifier": name, "benchmark": benchmark, "status": "failed" if failed else "ok",
                        "score": float("nan") if failed else 0.2 + 0.3 * ((i * 7919) % 1000) / 1000,
                        "error_message": f"RuntimeError: synthetic failure {i}" if failed else "",
                        "family": entry.family if entry else "", "model_id": entry.model_id if entry else "",
                        "arch": entry.arch if entry else "", "dataset": entry.dataset if entry else "",
                        "epoch": entry.epoch if entry else None, "unit": "fraction", "metric": "brainscore",
                        "schema_version": results.SCHEMA_VERSION})
    return results.frame(records)


def _page_seconds(page_path: Path, rows: int, executable: str | None) -> float | None:
    if executable is None:
        return None
    from playwright.sync_api import sync_playwright
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, headless=True, args=["--no-sandbox"])
        page = browser.new_page()
        start = time.perf_counter()
        page.goto(page_path.as_uri(), wait_until="load")
        page.wait_for_function(f"document.getElementById('count').textContent === '{rows} of {rows} rows'",
                               timeout=600_000)
        seconds = time.perf_counter() - start
        browser.close()
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, action="append")
    parser.add_argument("--browser", help="a Chromium or Chrome binary (default: tests/browser.py's search)")
    args = parser.parse_args()
    executable = args.browser
    if executable is None:
        import browser
        try:
            executable = browser.find()
        except browser.BrowserNotFound as error:
            print(f"no browser, page times skipped: {error}", file=sys.stderr)
    report = {}
    with tempfile.TemporaryDirectory() as scratch:
        for rows in args.rows or [3000, 100000]:
            for kind in ("catalogued", "uncatalogued"):
                table = _table(rows, kind == "catalogued")
                path = Path(scratch) / f"{kind}-{rows}.parquet"
                table.to_parquet(path, index=False)
                start = time.perf_counter()
                table.to_html(Path(scratch) / "pandas.html")
                pandas_s = time.perf_counter() - start
                out = Path(scratch) / f"report-{kind}-{rows}"
                start = time.perf_counter()
                subprocess.run([sys.executable, "-m", "brainscore_plugins", "report", str(path), "-o", str(out),
                                "--bootstrap", "0", "--quiet"], check=True, cwd=ROOT, stdout=subprocess.DEVNULL,
                               env={**os.environ, "BRAINSCORE_PLUGINS_DATA": str(Path(scratch) / "data")})
                command_s = time.perf_counter() - start
                page_s = _page_seconds(out / "index.html", rows, executable)
                report[f"{kind}_{rows}"] = {"command_s": round(command_s, 2), "page_s": page_s and round(page_s, 2),
                                            "pandas_to_html_s": round(pandas_s, 2),
                                            "command_x_to_html": round(command_s / pandas_s, 1),
                                            "html_mb": round((out / "index.html").stat().st_size / 2 ** 20, 1)}
                print(f"{kind} {rows}: {report[f'{kind}_{rows}']}", file=sys.stderr)
    print(json.dumps(report))


if __name__ == "__main__":
    main()
