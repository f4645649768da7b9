"""The static results page (brainscore_plugins.scale.report) in a real headless browser (Chromium or Chrome, found by
tests/browser.py), opened over file:// with no network. One browser serves the module; each test gets a fresh page
that records console errors, page errors, dialogs and any request that is not a local file. Also the page of
`brainscore-plugins report` with its figures, and (run as a script) the screenshot in docs/images/report.png."""
from __future__ import annotations

import io
import json
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image
from playwright.sync_api import Page, sync_playwright

from brainscore_plugins.scale.report import DEFAULT_COLUMNS, write_report

pytestmark = pytest.mark.slow  # drives a headless browser

CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]
HOSTILE_ID = "</script><img src=x onerror=alert(1)>"
HOSTILE_BENCHMARK = "x<svg onload=alert(2)>.IT-pls"
ERROR = "RuntimeError: CUDA out of memory <script>alert(3)</script> & 'quotes'"
TITLE = "Scaling <i>results</i> & more"
ODD_CAPTION = "<b>bold</b> & \"quoted\" caption"
MODELS = [  # family, arch, dataset, epoch (None: <NA>)
    ("spvvs", "resnet18", "imagenet_full", 10), ("spvvs", "resnet18", "imagenet_full", 20),
    ("spvvs", "resnet18", "ecoset_full", 10), ("spvvs", "resnet50", "imagenet_full", None),
    ("vit", "vit_b16", "imagenet_full", 100), ("vit", "vit_b16", "ecoset_full", 100),
    ("vit", "vit_s16", "imagenet_full", None), ("cornet", "cornet_s", "imagenet_full", 20),
    ("cornet", "cornet_s", "ecoset_full", None), ("cornet", "cornet_z", "imagenet_full", 10),
]
BENCHMARKS = ["MajajHong2015public.IT-pls", "FreemanZiemba2013public.V1-pls"]


def results_table() -> pd.DataFrame:
    """21 rows of schema_version 1: 10 models x 2 benchmarks, one failed, plus one hostile row; distinct scores."""
    records = []
    for family, arch, dataset, epoch in MODELS:
        identifier = f"{family}_{arch}_{dataset}" + (f".ep{epoch}" if epoch is not None else "")
        for benchmark in BENCHMARKS:
            records.append(dict(identifier=identifier, benchmark=benchmark, family=family, arch=arch,
                                dataset=dataset, epoch=epoch))
    records.append(dict(identifier=HOSTILE_ID, benchmark=HOSTILE_BENCHMARK, family="cornet", arch="cornet_z",
                        dataset="imagenet_full", epoch=None))
    table = pd.DataFrame(records)
    n = len(table)
    scores = np.random.RandomState(0).permutation(np.linspace(0.05, 0.95, n)) + 1.23456e-5  # distinct, 4+ digits
    failed = 5
    table["status"] = ["failed" if i == failed else "ok" for i in range(n)]
    table["score"] = [np.nan if i == failed else s for i, s in enumerate(scores)]
    table["error"] = table["score"] * 0.05
    table["ceiling"] = 0.8
    table["raw"] = table["score"] * 0.8
    table["error_message"] = [ERROR if i == failed else "" for i in range(n)]
    table["model_id"] = table["identifier"]
    table["epoch"] = pd.array(table["epoch"].tolist(), dtype="Int64")
    table["layers"] = json.dumps({"V1": "layer1.0", "IT": "layer4.0", "behavior": "avgpool"})
    table["commitment_source"] = "published"
    table["published_score"] = [np.nan if i % 3 == 0 else 0.5 for i in range(n)]
    table["published_difference"] = table["score"] - table["published_score"]
    table["package_version"] = "0.1.0"
    table["brainscore_vision_version"] = "2.2.4"
    table["timestamp"] = "2025-01-01T00:00:00+00:00"
    table["wall_s"] = np.arange(n) * 12.5 + 1
    table["peak_rss_mb"] = 2048.0
    table["schema_version"] = 1
    return table


def png(path: Path, size=(48, 32), color=(30, 120, 200)) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, color).save(path, format="PNG")
    return path


@dataclass
class Report:
    page: Path
    table: pd.DataFrame
    images: dict


@dataclass
class Opened:
    page: Page
    errors: list = field(default_factory=list)
    dialogs: list = field(default_factory=list)
    remote: list = field(default_factory=list)


@pytest.fixture(scope="module")
def browser(browser_executable):
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=browser_executable, headless=True, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture(scope="module")
def report(tmp_path_factory) -> Report:
    source = tmp_path_factory.mktemp("plots")
    images = {"Scaling fits": [(png(source / "a" / "fit.png"), "score vs. compute"),
                               (png(source / "b" / "fit.png", color=(200, 60, 30)), "score vs. samples")],
              "Layer commitments": [(png(source / "odd <name> & 'x'.png", size=(64, 20)), ODD_CAPTION),
                                    (png(source / "layers.PNG"), "resnet18 layers")]}
    table = results_table()
    out = tmp_path_factory.mktemp("report") / "nested" / "site"  # created by write_report
    page = write_report(table, out, images=images, title=TITLE)
    return Report(page, table, images)


@pytest.fixture
def opened(browser, report):
    page = browser.new_page()
    seen = Opened(page)
    page.on("console", lambda message: seen.errors.append(message.text) if message.type == "error" else None)
    page.on("pageerror", lambda error: seen.errors.append(f"page error: {error}"))
    page.on("request", lambda request: None if request.url.startswith(("file:", "data:"))
            else seen.remote.append(request.url))

    def on_dialog(dialog):
        seen.dialogs.append(dialog.message)
        dialog.dismiss()

    page.on("dialog", on_dialog)
    page.goto(report.page.as_uri(), wait_until="load")
    yield seen
    page.close()
    assert not seen.errors and not seen.dialogs and not seen.remote, (seen.errors, seen.dialogs, seen.remote)


def visible_rows(page: Page) -> list[dict]:
    """The rendered rows in display order, as {column: cell text}; every one of them must be displayed."""
    rows = page.eval_on_selector_all(
        "#results tbody tr",
        "trs => trs.map(tr => ({shown: tr.getClientRects().length > 0, "
        "cells: Object.fromEntries(Array.from(tr.cells, td => [td.dataset.col, td.textContent]))}))")
    assert all(row["shown"] for row in rows)
    return [row["cells"] for row in rows]


def keys(rows) -> list[tuple[str, str]]:
    return [(row["identifier"], row["benchmark"]) for row in rows]


def expected(frame: pd.DataFrame) -> list[tuple[str, str]]:
    return list(zip(frame["identifier"], frame["benchmark"]))


def count_text(page: Page) -> str:
    return page.inner_text("#count").strip()


def test_page_loads_clean_with_every_row(opened, report):
    page, table = opened.page, report.table
    rows = visible_rows(page)
    assert sorted(keys(rows)) == sorted(expected(table))
    assert count_text(page) == f"{len(table)} of {len(table)} rows"
    headers = page.eval_on_selector_all("#results thead th", "ths => ths.map(th => th.textContent)")
    assert headers == [c for c in DEFAULT_COLUMNS if c in table.columns] + ["error_message"]
    assert page.inner_text("h1") == TITLE
    summary = page.inner_text(".summary")
    assert f"{table['identifier'].nunique()} models" in summary and "3 benchmarks" in summary
    assert "generated" in summary and re.search(r"\d{4}-\d\d-\d\d \d\d:\d\d UTC", summary)
    assert page.title() == TITLE
    # floats show 4 significant digits; integers (epoch) in full; missing values are empty
    first = table.iloc[0]
    row = next(r for r in rows if (r["identifier"], r["benchmark"]) == (first["identifier"], first["benchmark"]))
    assert row["score"] == f"{float(f'{first.score:.4g}'):g}" and row["epoch"] == "10"
    assert next(r for r in rows if r["identifier"].endswith("resnet50_imagenet_full"))["epoch"] == ""
    assert not opened.errors and not opened.dialogs and not opened.remote


def test_embedded_json_has_every_column(opened, report):
    data = opened.page.evaluate("JSON.parse(document.getElementById('report-data').textContent)")
    table = report.table
    assert [c["name"] for c in data["columns"]] == list(table.columns)
    kinds = {c["name"]: c["kind"] for c in data["columns"]}
    assert kinds["score"] == "float" and kinds["epoch"] == "int" and kinds["identifier"] == "str"
    assert len(data["rows"]) == len(table)
    records = [dict(zip(kinds, row)) for row in data["rows"]]
    assert records[6]["epoch"] is None and records[0]["epoch"] == 10  # <NA> -> null (spvvs_resnet50_imagenet_full)
    assert records[5]["score"] is None and records[5]["error_message"] == ERROR  # NaN -> null
    assert json.loads(records[0]["layers"])["behavior"] == "avgpool"
    raw = report.page.read_text(encoding="utf-8")
    assert HOSTILE_ID not in raw and "\\u003c/script\\u003e" in raw and "<script>alert(3)" not in raw
    assert raw.count("</script>") == 2  # the data element and the page's script: nothing in the data closes one
    assert not list(report.page.parent.glob(".*.tmp")) and not list((report.page.parent / "images").glob(".*"))


def test_clicking_the_score_header_sorts(opened, report):
    page, table = opened.page, report.table
    ok, failed = table[table["score"].notna()], table[table["score"].isna()]
    page.click("#results th[data-col=score] button")
    rows = visible_rows(page)
    assert keys(rows) == expected(pd.concat([ok.sort_values("score"), failed]))
    scores = [float(r["score"]) for r in rows if r["score"]]
    assert scores == sorted(scores) and len(scores) == len(ok) and rows[-1]["score"] == ""  # NaN last
    assert page.get_attribute("#results th[data-col=score]", "aria-sort") == "ascending"
    page.click("#results th[data-col=score]")  # the header cell itself, again: descending, NaN still last
    rows = visible_rows(page)
    assert keys(rows) == expected(pd.concat([ok.sort_values("score", ascending=False), failed]))
    scores = [float(r["score"]) for r in rows if r["score"]]
    assert scores == sorted(scores, reverse=True) and rows[-1]["score"] == ""
    assert page.get_attribute("#results th[data-col=score]", "aria-sort") == "descending"
    assert count_text(page) == f"{len(table)} of {len(table)} rows"
    page.click("details.columns summary")  # wall_s is one of the columns shown on demand
    page.check("#column-choice label:has-text('wall_s') input")
    page.click("#results th[data-col=wall_s] button")  # numeric, not lexicographic: 1, 13.5, 26, ..., 101, ...
    walls = [float(r["wall_s"]) for r in visible_rows(page)]
    assert walls == sorted(walls) and walls != sorted(walls, key=str)


def test_select_filters(opened, report):
    page, table = opened.page, report.table
    total = len(table)
    options = page.eval_on_selector_all("#filter-family option", "os => os.map(o => o.textContent)")
    assert options == ["all", "cornet", "spvvs", "vit"]
    assert page.eval_on_selector_all("#filter-epoch option", "os => os.map(o => o.textContent)") == \
        ["all", "10", "20", "100", "(none)"]
    assert page.eval_on_selector_all("#filter-dataset option", "os => os.map(o => o.textContent)") == \
        ["all", "ecoset_full", "imagenet_full"]

    def check(frame: pd.DataFrame):
        assert sorted(keys(visible_rows(page))) == sorted(expected(frame))
        assert count_text(page) == f"{len(frame)} of {total} rows"

    page.select_option("#filter-family", label="spvvs")
    check(table[table["family"] == "spvvs"])
    page.select_option("#filter-benchmark", label=BENCHMARKS[0])
    check(table[(table["family"] == "spvvs") & (table["benchmark"] == BENCHMARKS[0])])
    page.select_option("#filter-family", label="all")
    page.select_option("#filter-benchmark", label="all")
    check(table)
    page.select_option("#filter-epoch", label="10")
    check(table[table["epoch"].eq(10).fillna(False)])
    page.select_option("#filter-epoch", label="(none)")
    check(table[table["epoch"].isna()])
    page.select_option("#filter-epoch", label="all")
    page.select_option("#filter-dataset", label="ecoset_full")
    check(table[table["dataset"] == "ecoset_full"])
    page.select_option("#filter-dataset", label="all")
    page.select_option("#filter-benchmark", label=HOSTILE_BENCHMARK)  # an untrusted name, listed as text
    check(table[table["benchmark"] == HOSTILE_BENCHMARK])


def test_text_filter_and_sort_together(opened, report):
    page, table = opened.page, report.table
    page.fill("#filter-text", "RESNET18")  # case-insensitive substring of the identifier
    matching = table[table["identifier"].str.lower().str.contains("resnet18", regex=False)]
    assert sorted(keys(visible_rows(page))) == sorted(expected(matching))
    assert count_text(page) == f"{len(matching)} of {len(table)} rows"
    page.click("#results th[data-col=score] button")
    assert keys(visible_rows(page)) == expected(matching.sort_values("score", na_position="last"))
    page.fill("#filter-text", "no such model")
    assert visible_rows(page) == [] and count_text(page) == f"0 of {len(table)} rows"
    page.fill("#filter-text", "")
    assert len(visible_rows(page)) == len(table)


def test_failed_rows_are_marked_with_their_error(opened, report):
    page, table = opened.page, report.table
    failed = table[table["status"] == "failed"].iloc[0]
    marked = page.locator("#results tbody tr.failed")
    assert marked.count() == 1
    assert marked.get_attribute("title") == f"failed: {ERROR}"
    cells = marked.evaluate("tr => Object.fromEntries(Array.from(tr.cells, td => [td.dataset.col, td.textContent]))")
    assert (cells["identifier"], cells["status"], cells["error_message"]) == (failed.identifier, "failed", ERROR)
    assert marked.locator("td[data-col=status]").get_attribute("class") == "status-failed"
    assert marked.locator("script").count() == 0 and page.locator("tbody script").count() == 0
    background = marked.evaluate("tr => getComputedStyle(tr).backgroundColor")
    ok_background = page.locator("#results tbody tr:not(.failed)").first.evaluate(
        "tr => getComputedStyle(tr).backgroundColor")
    assert background != ok_background  # visibly marked
    page.select_option("#filter-status", label="failed")
    assert keys(visible_rows(page)) == [(failed.identifier, failed.benchmark)]


def test_images_are_copied_and_load(opened, report):
    page = opened.page
    folder = report.page.parent / "images"
    copied = sorted(p.name for p in folder.iterdir())
    assert len(copied) == 4 and all(re.fullmatch(r"[A-Za-z0-9._-]+", name) for name in copied)
    loaded = page.eval_on_selector_all(
        "figure img", "imgs => imgs.map(i => [i.getAttribute('src'), i.complete, i.naturalWidth, i.naturalHeight])")
    assert len(loaded) == 4 and all(done and width > 0 for _, done, width, _h in loaded), loaded
    assert sorted(src for src, *_ in loaded) == [f"images/{name}" for name in copied]
    assert [h for *_, h in loaded] == [32, 32, 20, 32]  # each figure shows its own file, in order
    assert page.eval_on_selector_all("section.images h2", "hs => hs.map(h => h.textContent)") == \
        ["Scaling fits", "Layer commitments"]
    captions = page.eval_on_selector_all("figcaption", "cs => cs.map(c => c.textContent)")
    assert captions == ["score vs. compute", "score vs. samples", ODD_CAPTION, "resnet18 layers"]
    assert page.locator("figure b").count() == 0  # the caption's markup is text


def test_hostile_strings_stay_text(opened, report):
    page = opened.page
    cells = page.eval_on_selector_all("#results td[data-col=identifier]", "tds => tds.map(td => td.textContent)")
    assert HOSTILE_ID in cells
    hostile = page.locator("#results tbody tr", has_text="onerror=alert(1)")
    assert hostile.locator("td[data-col=benchmark]").inner_text() == HOSTILE_BENCHMARK
    assert hostile.locator("td *").count() == 0  # no element made from the data
    assert page.locator("img[src=x]").count() == 0 and page.locator("svg").count() == 0
    assert page.locator("img").count() == 4 and page.locator("script").count() == 2
    assert page.locator("h1 i").count() == 0 and page.inner_text("h1") == TITLE
    page.click("#results th[data-col=identifier] button")
    page.fill("#filter-text", "onerror")
    assert keys(visible_rows(page)) == [(HOSTILE_ID, HOSTILE_BENCHMARK)]
    page.wait_for_timeout(100)  # give any injected handler the chance to fire
    assert opened.dialogs == [] and opened.errors == []


def test_column_chooser_shows_any_column(opened, report):
    page = opened.page
    page.click("details.columns summary")
    page.check("#column-choice label:has-text('layers') input")
    layers = page.eval_on_selector_all("#results td[data-col=layers]", "tds => tds.map(td => td.textContent)")
    assert len(layers) == len(report.table) and json.loads(layers[0])["V1"] == "layer1.0"
    assert page.locator("#results th[data-col=wall_s]").count() == 0  # not shown at first, listed as one more
    assert not page.is_checked("#column-choice label:has-text('wall_s') input")
    hidden = len(report.table.columns) - len([c for c in DEFAULT_COLUMNS if c in report.table]) - 1  # error_message
    assert page.inner_text("#more-columns").startswith(f"\u2014 {hidden} more to show: family, arch, dataset")
    page.uncheck("#column-choice label:has-text('epoch') input")
    assert page.locator("#results th[data-col=epoch]").count() == 0
    assert count_text(page) == f"{len(report.table)} of {len(report.table)} rows"


def test_bad_input_raises_before_writing(tmp_path):
    table = results_table()
    with pytest.raises(ValueError, match=r"lacks column\(s\) score; pass") as raised:
        write_report(table.drop(columns=["score"]), tmp_path / "a")
    assert "\n" not in str(raised.value)
    with pytest.raises(ValueError, match="identifier, status"):
        write_report(table.drop(columns=["identifier", "status"]), tmp_path / "a")
    with pytest.raises(ValueError, match="DataFrame"):
        write_report(table.to_dict(), tmp_path / "a")
    good = png(tmp_path / "good.png")
    with pytest.raises(ValueError, match=r"missing\.png.*does not exist"):
        write_report(table, tmp_path / "b", images={"Scaling fits": [(good, "ok"), (tmp_path / "missing.png", "x")]})
    with pytest.raises(ValueError, match="not a .png path, caption. pair"):
        write_report(table, tmp_path / "b", images={"Scaling fits": [good]})
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()  # nothing written, no folder made
    (tmp_path / "file").write_text("x")
    with pytest.raises(ValueError, match="is a file") as raised:
        write_report(table, tmp_path / "file")
    assert "\n" not in str(raised.value)


def test_rewrite_replaces_the_page(tmp_path):
    table = results_table().head(4)
    first = write_report(table, tmp_path, images={"Scaling fits": [(png(tmp_path / "src" / "p.png"), "p")]})
    before = first.read_text(encoding="utf-8")
    second = write_report(table.head(2), tmp_path, title="Second")
    assert second == first == tmp_path / "index.html"
    after = second.read_text(encoding="utf-8")
    assert after != before and "<h1>Second</h1>" in after and "section class=\"images\"" not in after
    assert sorted(p.name for p in tmp_path.iterdir()) == ["images", "index.html", "src"]  # no temporary files left


def test_units_and_metrics_are_labelled_and_never_ranked_together(browser, tmp_path):
    """A schema-2 table of Brain-Score fractions and Algonauts percent: each metric by its label (raw r² named as
    such), percent values marked, the published score and its difference beside ours, a legend, unit and metric
    filters, and sorting a score column groups the rows by unit."""
    from brainscore_plugins.scale import results

    def row(identifier, benchmark, score, unit, metric, published=np.nan):
        return {"identifier": identifier, "benchmark": benchmark, "status": "ok", "score": score, "unit": unit,
                "metric": metric, "published_score": published, "published_difference": score - published,
                "schema_version": results.SCHEMA_VERSION}

    table = results.frame([
        row("spvvs_resnet18_imagenet_full", "MajajHong2015public.IT-pls", 0.55, "fraction", "brainscore", 0.5497),
        row("grouplin_phase1-fmri", "algonauts2023-test-direct", 60.0, "percent", "noise_normalized_r2", 58.8),
        row("svenc_eva02-clip-base", "algonauts2023-test-r2-ridge", 31.0, "percent", "pearson_r2"),
        row("svenc_eva02-clip-large", "algonauts2023-test-r2-ridge", 0.8, "percent", "pearson_r2"),
        row("grouplin_phase2-fmri", "algonauts2023-lane2023val-direct", 21.5, "percent", "median_r2", 20.9),
        row("spvvs_resnet50_imagenet_full", "MajajHong2015public.IT-pls", 0.9, "fraction", "brainscore"),
    ])
    page = browser.new_page()
    errors = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
    page.goto(write_report(table, tmp_path / "site").as_uri(), wait_until="load")
    headers = page.eval_on_selector_all("#results thead th", "ths => ths.map(th => th.textContent)")
    assert headers[:6] == ["identifier", "benchmark", "status", "score", "unit", "metric"]
    assert "published_score" in headers and "published_difference" in headers
    rows = {r["identifier"]: r for r in visible_rows(page)}
    assert rows["svenc_eva02-clip-base"]["metric"] == "raw r² (no noise ceiling)"
    assert rows["grouplin_phase1-fmri"]["metric"] == "noise-normalised r² (challenge)"
    assert rows["grouplin_phase2-fmri"]["metric"] == "median R² (GroupLin validation)"
    assert rows["spvvs_resnet18_imagenet_full"]["metric"] == "Brain-Score (ceiled)"
    phase1 = rows["grouplin_phase1-fmri"]
    assert (phase1["score"], phase1["unit"], phase1["published_score"], phase1["published_difference"]) == \
        ("60 %", "percent", "58.8 %", "1.2 %")
    spvvs = rows["spvvs_resnet18_imagenet_full"]
    assert (spvvs["score"], spvvs["unit"], spvvs["published_score"]) == ("0.55", "fraction", "0.5497")
    tip = page.get_attribute("#results tbody tr:has-text('svenc_eva02-clip-base') td[data-col=score]", "title")
    assert tip == "31 (percent, raw r² (no noise ceiling))"
    legend = page.inner_text("#legend")
    assert "fraction: Brain-Score benchmarks, in [0, 1]" in legend and "percent: Algonauts 2023" in legend
    assert "raw r² (no noise ceiling) (pearson_r2)" in legend
    page.click("#results th[data-col=score] button")
    assert [r["score"] for r in visible_rows(page)] == ["0.55", "0.9", "0.8 %", "21.5 %", "31 %", "60 %"]
    page.click("#results th[data-col=score] button")
    assert [r["score"] for r in visible_rows(page)] == ["0.9", "0.55", "60 %", "31 %", "21.5 %", "0.8 %"]
    assert page.eval_on_selector_all("#filter-unit option", "os => os.map(o => o.textContent)") == \
        ["all", "fraction", "percent"]
    assert "raw r² (no noise ceiling)" in page.eval_on_selector_all("#filter-metric option",
                                                                     "os => os.map(o => o.textContent)")
    page.select_option("#filter-metric", label="raw r² (no noise ceiling)")
    assert sorted(r["identifier"] for r in visible_rows(page)) == ["svenc_eva02-clip-base", "svenc_eva02-clip-large"]
    page.select_option("#filter-metric", label="all")
    page.select_option("#filter-unit", label="percent")
    assert count_text(page) == "4 of 6 rows"
    page.close()
    assert not errors


def test_failed_rows_section_shows_each_error_within_the_page(opened, report):
    """Failed rows are listed with their identifier, benchmark and whole message, wrapped inside the viewport; the
    table fits the page's width."""
    page, table = opened.page, report.table
    failed = table[table["status"] == "failed"].iloc[0]
    assert page.inner_text("#failed-title") == "Failed rows (1)"
    item = page.locator("#failed-list li")
    assert item.count() == 1 and item.locator("script").count() == 0
    assert item.locator(".what").inner_text() == f"{failed.identifier} \u00b7 {failed.benchmark}"
    message = item.locator(".message")
    assert message.inner_text() == ERROR and message.is_visible()
    width = page.evaluate("document.documentElement.clientWidth")
    box = message.bounding_box()
    assert box["width"] > 100 and box["x"] >= 0 and box["x"] + box["width"] <= width
    assert page.evaluate("document.documentElement.scrollWidth") <= width  # nothing off-screen to the right
    wrap = page.evaluate("[document.querySelector('.table-wrap').scrollWidth, "
                         "document.querySelector('.table-wrap').clientWidth]")
    assert wrap[0] <= wrap[1], wrap
    assert page.locator("nav.contents a[href='#failed-title']").count() == 1


def realistic_results(tmp: Path) -> tuple[Path, Path]:
    """A results table of 40 study models (final checkpoints on the five benchmarks, near their published scores),
    the epochs of three of them, a catalogued model of another family, an uncatalogued one and two failures; and a
    --commitments folder with one model's layer-score plot. Returns (table path, commitments folder)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    from brainscore_plugins.scale import laws, results

    study = laws.study_table()
    flags = study[["is_pretrained", "is_random", "is_ssl", "is_adv", "is_ablation"]].astype(bool).any(axis=1)
    final = study[study.latest & study.dataset.isin(["imagenet", "ecoset"]) & ~flags]
    chosen = final.drop_duplicates("model_id").sample(40, random_state=3).model_id
    rng = np.random.default_rng(0)
    rows = []
    for r in final[final.model_id.isin(chosen)].itertuples():
        score = r.score + rng.normal(0, 0.01)
        rows.append({"identifier": f"spvvs_{r.model_id}", "benchmark": r.benchmark, "status": "ok", "score": score,
                     "unit": "fraction", "metric": "brainscore", "family": "spvvs", "model_id": r.model_id,
                     "arch": r.arch, "dataset": r.dataset, "epoch": r.epoch, "published_score": r.score,
                     "published_difference": score - r.score, "wall_s": float(rng.uniform(30, 300))})
    trained = study[~study.latest].model_id.drop_duplicates().head(3)
    for r in study[study.model_id.isin(trained) & (study.epoch % 10 == 0)].itertuples():
        rows.append({"identifier": f"spvvs_{r.model_id}.ep{r.epoch}", "benchmark": r.benchmark, "status": "ok",
                     "score": r.score, "unit": "fraction", "family": "spvvs", "model_id": r.model_id,
                     "epoch": r.epoch, "published_score": r.score, "published_difference": 0.0})
    rows += [{"identifier": "grouplin_phase1", "benchmark": "MajajHong2015public.IT-pls", "status": "ok",
              "score": 0.47, "unit": "fraction", "family": "grouplin"},
             {"identifier": "my_lab_net_v2", "benchmark": "MajajHong2015public.IT-pls", "status": "ok", "score": 0.51,
              "unit": "fraction", "family": "mine"},
             {"identifier": "hlvit_vits14_1.0_1", "benchmark": "MajajHong2015public.IT-pls", "status": "failed",
              "family": "hlvit", "error_message": "WeightsUnavailableError: hlvit_vits14_1.0_1: the weights are not "
              "in the mirror (/data/mirror/hlvit/vits14_1.0_1.pth) and the network is unreachable; set "
              "BRAINSCORE_PLUGINS_MIRROR or run `brainscore-plugins fetch hlvit_vits14_1.0_1` where it is reachable"},
             {"identifier": "spvvs_resnet18_imagenet_full", "benchmark": "Rajalingham2018public-i2n",
              "status": "failed", "family": "spvvs", "model_id": "resnet18_imagenet_full",
              "error_message": "BenchmarkDataUnavailableError: Rajalingham2018public-i2n: the stimuli are not cached "
              "and the Brain-Score S3 bucket is unreachable (offline)"}]
    path = tmp / "results.parquet"
    results.append(rows, path)
    commitments = tmp / "my-commitments"
    (commitments / "layer_scores").mkdir(parents=True)
    fig = Figure(figsize=(9, 4), dpi=100)
    FigureCanvasAgg(fig)
    ax = fig.subplots()
    layers = [f"layer{i}" for i in range(1, 9)]
    for region, peak in (("V1", 2), ("V2", 3), ("V4", 5), ("IT", 7)):
        ax.plot(layers, np.exp(-(np.arange(8) - peak) ** 2 / 6) * 0.6, marker="o", label=region)
    ax.set_title("my_lab_net_v2: layer scores per region")
    ax.legend()
    fig.savefig(commitments / "layer_scores" / "my_lab_net_v2.png")
    return path, commitments


@pytest.fixture(scope="module")
def cli_report(tmp_path_factory) -> Path:
    """`brainscore-plugins report` of :func:`realistic_results` with its --commitments folder: the page's path."""
    from brainscore_plugins import cli, settings

    tmp = tmp_path_factory.mktemp("cli_report")
    path, commitments = realistic_results(tmp)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(settings.DATA, str(tmp / "data"))
        assert cli.main(["report", str(path), "-o", str(tmp / "site"), "--commitments", str(commitments),
                         "--bootstrap", "5", "--quiet"]) == 0
    return tmp / "site" / "index.html"


def test_report_command_figures_render(browser, cli_report):
    """Every figure of the CLI's page loads at its full size and is drawn (an element screenshot of many colours,
    not one); the page has no console error; the user's figures are at least 900 px wide and shown that wide."""
    from brainscore_plugins.scale.report_figures import SECTIONS

    page = browser.new_page(viewport={"width": 1280, "height": 900})
    errors = []
    page.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.goto(cli_report.as_uri(), wait_until="load")
    headings = page.eval_on_selector_all("section.images h2", "hs => hs.map(h => h.textContent)")
    assert headings == [SECTIONS["scaling"], SECTIONS["trajectory"], SECTIONS["comparison"], "Layer commitments"]
    figures = page.locator("section.images figure img")
    sizes = figures.evaluate_all("imgs => imgs.map(i => [i.complete, i.naturalWidth, i.naturalHeight, "
                                 "i.getBoundingClientRect().width, "
                                 "i.closest('section').querySelector('h2').textContent])")
    assert len(sizes) == 5 + 5 + 1 + 1, sizes  # per benchmark, its epochs, ours vs. published, one commitment
    for complete, natural, height, shown, section in sizes:
        assert complete and height > 300
        assert natural >= (900 if section != "Layer commitments" else 880)
        assert shown >= min(natural, 1100)  # at the page's full width (or its own, when narrower)
    for number in range(figures.count()):
        shot = Image.open(io.BytesIO(figures.nth(number).screenshot())).convert("RGB")
        assert shot.width >= 800
        pixels = np.asarray(shot, dtype=float)
        assert pixels.std() > 10 and len(set(map(tuple, pixels.reshape(-1, 3)[::97]))) > 20  # drawn, not blank
    captions = page.eval_on_selector_all("figcaption", "cs => cs.map(c => c.textContent)")
    assert any(c.startswith("my_lab_net_v2 (layer scores in ") for c in captions)
    assert any("published fit (Gokce & Schrimpf 2024), not your results" in c for c in captions)
    assert page.locator("#failed-list li").count() == 2
    page.close()
    assert not errors, errors


def write_docs_screenshot(browser_executable: str, target: Path) -> Path:
    """The screenshot the documentation shows (docs/images/report.png): the top of a realistic report page and its
    first figure, as a palette PNG."""
    import tempfile

    from brainscore_plugins import cli, settings

    with tempfile.TemporaryDirectory() as tmp, pytest.MonkeyPatch.context() as patch, sync_playwright() as pw:
        tmp = Path(tmp)
        path, commitments = realistic_results(tmp)
        patch.setenv(settings.DATA, str(tmp / "data"))
        assert cli.main(["report", str(path), "-o", str(tmp / "site"), "--commitments", str(commitments), "--quiet",
                         "--title", "Brain-Score results: 40 study models"]) == 0
        chromium = pw.chromium.launch(executable_path=browser_executable, headless=True, args=CHROMIUM_ARGS)
        page = chromium.new_page(viewport={"width": 1280, "height": 1500})
        page.goto((tmp / "site" / "index.html").as_uri(), wait_until="load")
        page.evaluate("document.querySelector('.table-wrap').style.maxHeight = '430px'")
        page.evaluate("document.getElementById('failed').after(document.getElementById('images-0'))")
        shot = Image.open(io.BytesIO(page.screenshot())).convert("RGB")
        chromium.close()
    target.parent.mkdir(parents=True, exist_ok=True)
    shot.quantize(colors=128, method=Image.Quantize.MEDIANCUT).save(target, optimize=True)
    return target


if __name__ == "__main__":  # python tests/brainscore_plugins/scale/test_report.py: rewrite docs/images/report.png
    import sys

    repository = Path(__file__).resolve().parents[3]
    sys.path.insert(0, str(repository / "tests"))
    import browser as browsers

    print(write_docs_screenshot(browsers.find(), repository / "docs" / "images" / "report.png"))


@pytest.mark.slow
def test_a_large_table_is_shown_a_page_at_a_time(browser, tmp_path):
    """1,234 rows: 500 a page, built when their page is shown; sorting and filtering go back to the first page and
    count every matching row."""
    from brainscore_plugins.scale import results
    n = 1234
    table = results.frame([{"identifier": f"model_{i:05d}", "benchmark": "b", "status": "ok" if i % 7 else "failed",
                            "score": i / n, "error_message": "" if i % 7 else f"boom {i}"} for i in range(n)])
    page = browser.new_page()
    page.goto(write_report(table, tmp_path / "big").as_uri(), wait_until="load")
    try:
        assert len(visible_rows(page)) == 500 and count_text(page) == f"{n} of {n} rows"
        assert page.inner_text("#page-info") == f"rows 1\u2013500 of {n} (page 1 of 3)"
        assert page.is_disabled("#page-prev") and not page.is_disabled("#page-next")
        page.click("#page-next")
        page.click("#page-next")
        rows = visible_rows(page)
        assert len(rows) == n - 1000 and rows[0]["identifier"] == "model_01000" and page.is_disabled("#page-next")
        assert page.eval_on_selector_all("#results tbody tr", "trs => trs.length") == n - 1000
        page.click("#results thead th[data-col='score'] button")  # ascending; then descending
        page.click("#results thead th[data-col='score'] button")
        assert visible_rows(page)[0]["identifier"] == f"model_{n - 1:05d}"
        assert page.inner_text("#page-info").startswith("rows 1\u2013500 ")
        page.select_option("#filter-status", label="failed")
        failed = (n + 6) // 7
        assert count_text(page) == f"{failed} of {n} rows" and page.is_hidden("#pager")
        assert len(visible_rows(page)) == failed
    finally:
        page.close()
